"""Notifiers against real servers on 127.0.0.1: HTTP for Slack/webhook, aiosmtpd for email."""

from __future__ import annotations

import hashlib
import hmac
import socket
import subprocess
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from collector.alerts.evaluator import AlertEvent
from collector.alerts.notify.base import MissingSecret, Notification
from collector.alerts.notify.dispatcher import Dispatcher, build_notifiers
from collector.alerts.notify.email import Email
from collector.alerts.notify.http import SIGNATURE_HEADER, TIMESTAMP_HEADER
from collector.alerts.rules import AlertRules, EmailNotifier
from collector.receivers import http_receiver

RULE = {
    "name": "dd",
    "level": "strategy",
    "kind": "drawdown_pct",
    "threshold": 0.02,
    "severity": "critical",
    "fast_path": True,
}


def _rules(notifiers: dict[str, Any], **extra: Any) -> AlertRules:
    notify = list(notifiers)
    return AlertRules.model_validate({"notifiers": notifiers, "rules": [RULE | {"notify": notify}], **extra})


def _event(rules: AlertRules, state: str = "firing", strategy: str = "trend_es") -> AlertEvent:
    rule = rules.rules[0]
    return AlertEvent(
        rule,
        "strategy",
        "_all",
        strategy,
        state,
        0.031,
        0.02,
        1_709_301_600_000_000_000,
        f"[critical] {state}: drawdown on strategy _all/{strategy}: drawdown_pct = 0.031 (> 0.02)",
    )


def test_slack_and_signed_webhook_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as slack, http_receiver() as hook:
        monkeypatch.setenv("T_SLACK_URL", slack.url + "/services/T/B/X")
        monkeypatch.setenv("T_HOOK_URL", hook.url + "/alerts")
        monkeypatch.setenv("T_HOOK_SECRET", "s3cret")
        rules = _rules(
            {
                "slack": {"type": "slack", "url_env": "T_SLACK_URL"},
                "hook": {"type": "webhook", "url_env": "T_HOOK_URL", "hmac_secret_env": "T_HOOK_SECRET"},
            },
            defaults={"group_interval": 0.2},
        )
        notifiers, problems = build_notifiers(rules)
        assert problems == []
        dispatcher = Dispatcher(rules, notifiers)
        dispatcher.submit(_event(rules))
        [message] = slack.wait(1)
        assert message.path == "/services/T/B/X"
        payload = message.json()
        assert payload["text"] == "[FIRING] critical: dd"
        assert "trend_es" in payload["attachments"][0]["text"] and payload["attachments"][0]["color"] == "#d62728"
        [request] = hook.wait(1)
        body = request.json()
        assert body["status"] == "firing" and body["alerts"][0]["strategy"] == "trend_es"
        assert body["alerts"][0]["value"] == 0.031 and body["alerts"][0]["threshold"] == 0.02
        timestamp = request.headers[TIMESTAMP_HEADER]
        expected = hmac.new(b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        assert request.headers[SIGNATURE_HEADER] == f"sha256={expected}"
        assert abs(int(timestamp) - time.time()) < 60
        dispatcher.submit(_event(rules, "resolved"))
        resolved = slack.wait(2)[1].json()
        assert resolved["text"].startswith("[RESOLVED]") and resolved["attachments"][0]["color"] == "#2ca02c"
        dispatcher.close()


def test_retry_after_the_receiver_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as hook:
        hook.fail_next = 1
        monkeypatch.setenv("T_HOOK_URL", hook.url)
        rules = _rules({"hook": {"type": "webhook", "url_env": "T_HOOK_URL"}})
        dispatcher = Dispatcher(rules, build_notifiers(rules)[0])
        dispatcher.submit(_event(rules))
        assert len(hook.wait(1)) == 1
        dispatcher.close()
        assert dispatcher.stats.retried == 1 and dispatcher.stats.sent == 1 and dispatcher.stats.failed == 0


def test_bursts_are_grouped_and_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as hook:
        monkeypatch.setenv("T_HOOK_URL", hook.url)
        rules = _rules(
            {"hook": {"type": "webhook", "url_env": "T_HOOK_URL"}},
            defaults={"group_interval": 0.3},
            rate_limit={"count": 2, "per": 60},
        )
        dispatcher = Dispatcher(rules, build_notifiers(rules)[0])
        dispatcher.submit(_event(rules, strategy="s0"))
        assert len(hook.wait(1)) == 1  # the first goes out at once
        for i in range(1, 6):
            dispatcher.submit(_event(rules, strategy=f"s{i}"))
        grouped = hook.wait(2)[1].json()
        assert [a["strategy"] for a in grouped["alerts"]] == ["s1", "s2", "s3", "s4", "s5"]  # one message
        time.sleep(0.35)
        dispatcher.submit(_event(rules, strategy="s6"))  # over the limit of 2 per minute
        time.sleep(0.4)
        dispatcher.submit(_event(rules, "resolved", strategy="s0"))  # resolves are never held back
        resolved = hook.wait(3)[2].json()
        assert resolved["status"] == "resolved" and resolved["suppressed"] == 1
        dispatcher.close()
        assert dispatcher.stats.suppressed == 1


def test_a_rules_own_group_interval_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as hook:
        monkeypatch.setenv("T_HOOK_URL", hook.url)
        notifiers = {"hook": {"type": "webhook", "url_env": "T_HOOK_URL"}}
        rule = RULE | {"notify": ["hook"], "group_interval": "0.6s"}
        rules = AlertRules.model_validate({"notifiers": notifiers, "defaults": {"group_interval": 0}, "rules": [rule]})
        dispatcher = Dispatcher(rules, build_notifiers(rules)[0])
        dispatcher.submit(_event(rules, strategy="s0"))
        assert len(hook.wait(1)) == 1
        for i in (1, 2):
            dispatcher.submit(_event(rules, strategy=f"s{i}"))
        grouped = hook.wait(2)[1].json()
        assert [a["strategy"] for a in grouped["alerts"]] == ["s1", "s2"]  # grouped: the default 0 would send each
        dispatcher.close()


def test_a_dead_notifier_does_not_delay_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]  # nothing listens once closed
    with http_receiver() as hook:
        monkeypatch.setenv("T_DEAD_URL", f"http://127.0.0.1:{dead_port}/x")
        monkeypatch.setenv("T_HOOK_URL", hook.url)
        rules = _rules(
            {
                "dead": {"type": "webhook", "url_env": "T_DEAD_URL"},
                "hook": {"type": "webhook", "url_env": "T_HOOK_URL"},
            }
        )
        dispatcher = Dispatcher(rules, build_notifiers(rules)[0])
        started = time.monotonic()
        dispatcher.submit(_event(rules))
        assert len(hook.wait(1, timeout=2)) == 1
        assert time.monotonic() - started < 2  # not behind the dead one's retries (3.5 s of backoff)
        dispatcher.close(timeout=15)
        assert dispatcher.stats.failed == 1 and dispatcher.stats.retried == 3


def test_missing_secrets_disable_only_that_notifier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_NOPE", raising=False)
    rules = _rules({"slack": {"type": "slack", "url_env": "T_NOPE"}})
    notifiers, problems = build_notifiers(rules)
    assert notifiers == {} and "T_NOPE" in problems[0]


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def test_email_over_starttls_with_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    key, cert = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = _Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"desk" and auth_data.password == b"pw"
        return AuthResult(success=ok)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        monkeypatch.setenv("T_SMTP_PASSWORD", "pw")
        config = EmailNotifier.model_validate(
            {
                "type": "email",
                "host": "localhost",
                "port": port,
                "security": "starttls",
                "username": "desk",
                "password_env": "T_SMTP_PASSWORD",
                "from": "stratmon@desk.test",
                "to": ["a@desk.test", "b@desk.test"],
                "ca_file": str(cert),
            }
        )
        rules = _rules({"mail": config.model_dump(by_alias=True, mode="json")})
        Email("mail", config, timeout=10).send(Notification("dd", "critical", "firing", [_event(rules)]))
        [(sender, recipients, raw)] = inbox.messages
        assert sender == "stratmon@desk.test" and recipients == ["a@desk.test", "b@desk.test"]
        message = message_from_bytes(raw)
        assert message["Subject"] == "stratmon [FIRING] critical: dd"
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes) and b"trend_es" in payload
    finally:
        controller.stop()


def test_secret_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "url"
    secret_file.write_text("http://127.0.0.1:9/x\n")
    rules = _rules({"slack": {"type": "slack", "url_env": "T_UNSET", "url_file": str(secret_file)}})
    notifiers, problems = build_notifiers(rules)
    assert problems == [] and notifiers["slack"].url == "http://127.0.0.1:9/x"  # type: ignore[attr-defined]
    (tmp_path / "url").unlink()
    with pytest.raises(MissingSecret):
        from collector.alerts.notify.base import secret

        secret("slack", None, secret_file, "the URL")
