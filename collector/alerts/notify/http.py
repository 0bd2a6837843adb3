"""Slack incoming webhooks and generic JSON webhooks (optionally HMAC-signed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from collector.alerts.notify.base import Notification, Notifier, secret
from collector.alerts.notify.deadline import post
from collector.alerts.rules import SlackNotifier, WebhookNotifier

SIGNATURE_HEADER = "X-Stratmon-Signature"
TIMESTAMP_HEADER = "X-Stratmon-Timestamp"


def sign(secret_key: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>` (the timestamp defeats replays)."""
    digest = hmac.new(secret_key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _HttpNotifier(Notifier):
    def __init__(self, name: str, url: str, timeout: float) -> None:
        self.name, self.url, self.timeout = name, url, timeout

    def post(self, body: bytes, headers: dict[str, str]) -> None:
        post(self.url, body, headers, self.timeout)


class Slack(_HttpNotifier):
    def __init__(self, name: str, config: SlackNotifier, timeout: float) -> None:
        super().__init__(name, secret(name, config.url_env, config.url_file, "the webhook URL"), timeout)

    def send(self, notification: Notification) -> None:
        color = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}.get(notification.severity, "#888")
        if notification.status == "resolved":
            color = "#2ca02c"
        payload = {
            "text": notification.title,
            "attachments": [{"color": color, "text": "\n".join(notification.lines())}],
        }
        self.post(json.dumps(payload).encode(), {"Content-Type": "application/json"})


class Webhook(_HttpNotifier):
    def __init__(self, name: str, config: WebhookNotifier, timeout: float) -> None:
        super().__init__(name, secret(name, config.url_env, config.url_file, "the URL"), timeout)
        self.hmac_key = (
            secret(name, config.hmac_secret_env, config.hmac_secret_file, "the HMAC secret")
            if config.hmac_secret_env or config.hmac_secret_file
            else None
        )

    def send(self, notification: Notification) -> None:
        payload: dict[str, Any] = {
            "version": "1",
            "status": notification.status,
            "rule": notification.rule,
            "severity": notification.severity,
            "title": notification.title,
            "suppressed": notification.suppressed,
            "alerts": [
                {
                    **event.tags(),
                    "value": event.value,
                    "threshold": event.threshold,
                    "time_ns": event.ts_ns,
                    "message": event.message,
                }
                for event in notification.events
            ],
        }
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.hmac_key is not None:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.hmac_key, timestamp, body)
        self.post(body, headers)
