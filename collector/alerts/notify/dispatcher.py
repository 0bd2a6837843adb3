"""Delivery of alert events to notifiers, off the engine thread.

One worker thread and one bounded queue per notifier, so a slow or failing notifier delays
nobody else and never the engine (a full queue drops the event and counts it). Per notifier
and rule: the first event goes out at once; events arriving within `group_interval` of the last
send are grouped into one message at the end of the interval (bursts). Firing messages are
rate-limited per rule (resolve messages never are, so nobody is left believing a resolved
alert still fires); what the limit held back is counted in the next message. Failed sends are
retried with exponential backoff when the error is retryable.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

from collector.alerts.evaluator import AlertEvent
from collector.alerts.notify.base import MissingSecret, Notification, Notifier, NotifyError
from collector.alerts.notify.email import Email
from collector.alerts.notify.http import Slack, Webhook
from collector.alerts.rules import AlertRules, EmailNotifier, SlackNotifier, WebhookNotifier

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0
    dropped: int = 0


def build_notifiers(rules: AlertRules) -> tuple[dict[str, Notifier], list[str]]:
    """Notifiers whose secrets are present, and one warning per notifier that had to be disabled."""
    notifiers: dict[str, Notifier] = {}
    problems: list[str] = []
    timeout = rules.defaults.timeout
    for name, config in rules.notifiers.items():
        try:
            if isinstance(config, SlackNotifier):
                notifiers[name] = Slack(name, config, timeout)
            elif isinstance(config, WebhookNotifier):
                notifiers[name] = Webhook(name, config, timeout)
            elif isinstance(config, EmailNotifier):
                notifiers[name] = Email(name, config, timeout)
        except MissingSecret as exc:
            problems.append(f"{exc}; alerts still go to InfluxDB and Grafana")
    return notifiers, problems


class _Worker:
    def __init__(self, notifier: Notifier, rules: AlertRules, stats: DeliveryStats) -> None:
        self.notifier = notifier
        self.rules = rules
        self.stats = stats
        self.queue: queue.Queue[AlertEvent | None] = queue.Queue(QUEUE_SIZE)
        self.pending: dict[tuple[str, str], tuple[float, list[AlertEvent]]] = {}  # (rule, status) → due, events
        self.last_sent: dict[str, float] = {}
        self.sent_at: dict[str, deque[float]] = {}
        self.suppressed: dict[str, int] = {}
        self.thread = threading.Thread(target=self._run, name=f"notify-{notifier.name}", daemon=True)
        self.thread.start()

    def submit(self, event: AlertEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.stats.dropped += 1

    def _run(self) -> None:
        while True:
            due = min((d for d, _ in self.pending.values()), default=None)
            timeout = 0.5 if due is None else max(0.0, due - time.monotonic())
            try:
                event = self.queue.get(timeout=timeout)
            except queue.Empty:
                self._flush(force=False)
                continue
            if event is None:
                self._flush(force=True)
                return
            self._accept(event)
            self._flush(force=False)

    def _accept(self, event: AlertEvent) -> None:
        rule = event.rule.name
        key = (rule, event.state)
        if key in self.pending:
            self.pending[key][1].append(event)
            return
        interval = event.rule.group_interval
        if interval is None:
            interval = self.rules.defaults.group_interval
        since = time.monotonic() - self.last_sent.get(rule, -1e18)
        if since >= interval:
            self._deliver([event])
        else:
            self.pending[key] = (time.monotonic() + interval - since, [event])

    def _flush(self, force: bool) -> None:
        now = time.monotonic()
        for key, (due, events) in list(self.pending.items()):
            if force or due <= now:
                del self.pending[key]
                self._deliver(events)

    def _deliver(self, events: list[AlertEvent]) -> None:
        first = events[0]
        rule = first.rule
        firing = any(e.state == "firing" for e in events)
        self.last_sent[rule.name] = time.monotonic()
        if firing and not self._allowed(rule.name):
            self.suppressed[rule.name] = self.suppressed.get(rule.name, 0) + len(events)
            self.stats.suppressed += len(events)
            return
        notification = Notification(
            rule.name, rule.severity, "firing" if firing else "resolved", events, self.suppressed.pop(rule.name, 0)
        )
        attempts = self.rules.defaults.retries + 1
        for attempt in range(attempts):
            try:
                self.notifier.send(notification)
            except NotifyError as exc:
                if exc.retryable and attempt + 1 < attempts:
                    self.stats.retried += 1
                    time.sleep(0.5 * 2**attempt)
                    continue
                self.stats.failed += 1
                log.error("notifier %s: %s not delivered: %s", self.notifier.name, notification.title, exc)
                return
            self.stats.sent += 1
            return

    def _allowed(self, rule: str) -> bool:
        limit = self.rules.rate_limit
        window = self.sent_at.setdefault(rule, deque())
        now = time.monotonic()
        while window and now - window[0] > limit.per:
            window.popleft()
        if len(window) >= limit.count:
            return False
        window.append(now)
        return True

    def close(self, timeout: float) -> None:
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)


class Dispatcher:
    """Routes events of rules marked `fast_path` to their notifiers' workers."""

    def __init__(self, rules: AlertRules, notifiers: dict[str, Notifier]) -> None:
        self.stats = DeliveryStats()
        self.workers = {name: _Worker(notifier, rules, self.stats) for name, notifier in notifiers.items()}

    def submit(self, event: AlertEvent) -> None:
        if not event.rule.fast_path:
            return
        for name in event.rule.notify:
            worker = self.workers.get(name)
            if worker is not None:
                worker.submit(event)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is grouped and waiting, then stop the workers."""
        for worker in self.workers.values():
            worker.close(timeout)
