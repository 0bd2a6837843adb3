"""Notifiers under hostile receivers on 127.0.0.1: redirects, dripping answers, and secrets kept out of logs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from collector.alerts.notify.dispatcher import Dispatcher, build_notifiers
from collector.alerts.rules import AlertRules
from collector.receivers import http_receiver
from tests.alerts.test_notify import _event, _rules

SECRET_TOKEN = "tok-5ecret-0123456789"
HMAC_SECRET = "hmac-5ecret-abcdef"


@contextmanager
def raw_server(answer: Any) -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 whose `answer(conn)` writes whatever it wants; what arrived is recorded."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    received.append(conn.recv(65536))
                    answer(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def _deliver(rules: AlertRules) -> Dispatcher:
    dispatcher = Dispatcher(rules, build_notifiers(rules)[0])
    dispatcher.submit(_event(rules))
    dispatcher.close()
    return dispatcher


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed_nor_counted_as_delivered(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    with http_receiver() as elsewhere:

        def redirect(conn: socket.socket) -> None:
            conn.sendall(f"HTTP/1.1 {status} Moved\r\nLocation: {elsewhere.url}\r\nContent-Length: 0\r\n\r\n".encode())

        with raw_server(redirect) as (port, received):
            monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{port}/hook")
            monkeypatch.setenv("T_HOOK_SECRET", HMAC_SECRET)
            hook = {"type": "webhook", "url_env": "T_HOOK_URL", "hmac_secret_env": "T_HOOK_SECRET"}
            dispatcher = _deliver(_rules({"hook": hook}))
            assert len(received) == 1  # one attempt: a redirect is not worth retrying
        assert dispatcher.stats.sent == 0 and dispatcher.stats.failed == 1
        assert elsewhere.wait(1, timeout=0.5) == []  # neither the body nor its signature went to the other host


def test_a_dripping_receiver_hits_the_total_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def drip(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            conn.sendall(bytes([byte]))
            time.sleep(0.6)  # each byte well inside the per-read timeout, the whole far beyond it

    with raw_server(drip) as (port, _):
        monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{port}/hook")
        rules = _rules({"hook": {"type": "webhook", "url_env": "T_HOOK_URL"}}, defaults={"timeout": 1, "retries": 0})
        started = time.monotonic()
        dispatcher = _deliver(rules)
        elapsed = time.monotonic() - started
    assert dispatcher.stats.failed == 1 and dispatcher.stats.sent == 0
    assert elapsed < 3, elapsed


def test_no_secret_in_any_log_line(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Every failure mode of every HTTP notifier, with secrets in path and query: none appears in the logs."""
    slack_path = "/services/T000/B000/" + SECRET_TOKEN

    def fail(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\noops")

    with caplog.at_level(logging.DEBUG), raw_server(fail) as (port, _):
        closed = socket.create_server(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
        closed.close()
        monkeypatch.setenv("T_SLACK", f"http://127.0.0.1:{port}{slack_path}")
        monkeypatch.setenv("T_HOOK", f"http://127.0.0.1:{dead_port}/hook?token={SECRET_TOKEN}")
        monkeypatch.setenv("T_HOOK_SECRET", HMAC_SECRET)
        notifiers = {
            "slack": {"type": "slack", "url_env": "T_SLACK"},
            "hook": {"type": "webhook", "url_env": "T_HOOK", "hmac_secret_env": "T_HOOK_SECRET"},
        }
        dispatcher = _deliver(_rules(notifiers, defaults={"timeout": 1, "retries": 1}))
    assert dispatcher.stats.failed == 2
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "not delivered" in text
    for secret in (SECRET_TOKEN, HMAC_SECRET, "/services/T000"):
        assert secret not in text
