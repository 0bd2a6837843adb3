"""Intake abuse on a real uvicorn server: idle and slow sockets, slow bodies, unauthenticated bodies, deep JSON."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from collector.config import Settings
from collector.run.collector import Collector
from collector.sources.http import HttpSource
from tests.helpers import fill
from tests.run.conftest import running, with_sources

TOKEN = "abuse-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADER_TIMEOUT = 0.8


@pytest.fixture
def intake(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", TOKEN)
    source = {
        "type": "http",
        "port": 0,
        "header_timeout": HEADER_TIMEOUT,
        "body_timeout": 1.0,
        "max_connections": 30,
        "max_connections_per_client": 10,
    }
    collector = Collector(with_sources(settings, source))
    with running(collector):
        http = collector.sources[0]
        assert isinstance(http, HttpSource)
        yield f"http://127.0.0.1:{http.port}", http.port


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_sockets_are_closed_and_do_not_lock_others_out(intake: tuple[str, int]) -> None:
    url, port = intake
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        closed = sum(_closed_by_server(s, HEADER_TIMEOUT + 2) for s in idle)
        assert closed == 40  # over the per-client cap at once, the rest after the header deadline
        answer = requests.post(f"{url}/v1/fills", json=[fill(fill_id="after-idle")], headers=AUTH, timeout=5)
        assert answer.status_code == 200
    finally:
        for s in idle:
            s.close()


def test_headers_dripping_one_byte_at_a_time_are_cut_off(intake: tuple[str, int]) -> None:
    _, port = intake
    sock = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    try:
        for byte in b"POST /v1/fills HTTP/1.1\r\nHost: x\r\n":
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            if time.monotonic() - started > HEADER_TIMEOUT + 2:
                break
        assert _closed_by_server(sock, 2)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3
    finally:
        sock.close()


def test_a_body_dripping_in_gets_408(intake: tuple[str, int]) -> None:
    _, port = intake
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        head = f"POST /v1/fills HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b"[")
        sock.settimeout(5)
        answer = b""
        for _ in range(20):
            try:
                sock.send(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(4096)
            sock.setblocking(True)
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    finally:
        sock.close()


def test_an_unauthenticated_body_is_never_read(intake: tuple[str, int]) -> None:
    _, port = intake
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(b"POST /v1/fills HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")  # and no body
        sock.settimeout(3)
        assert sock.recv(4096).startswith(b"HTTP/1.1 401")
    finally:
        sock.close()


def test_deeply_nested_json_is_400(intake: tuple[str, int]) -> None:
    url, _ = intake
    for depth in (300, 1000, 5000):
        body = "[" * depth + "]" * depth
        answer = requests.post(f"{url}/v1/fills", data=body, headers=AUTH | {"Content-Type": "application/json"})
        assert answer.status_code == 400, (depth, answer.text)
    deep_field = '{"x": ' + "[" * 1000 + "]" * 1000 + "}"
    answer = requests.post(f"{url}/v1/fills", data=deep_field, headers=AUTH | {"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 0  # one record, rejected with its reason


def test_an_unwritable_dead_letter_file_is_503_not_500(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRATMON_HTTP_TOKEN", TOKEN)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the dead-letter directory belongs")
    collector = Collector(
        with_sources(settings, {"type": "http", "port": 0}, ingest={"dead_letter": str(blocked / "dead.jsonl")})
    )
    with running(collector):
        http = collector.sources[0]
        assert isinstance(http, HttpSource)
        url = f"http://127.0.0.1:{http.port}/v1/fills"
        answer = requests.post(url, json=[fill(fill_id="ok"), {"ts": "bad"}], headers=AUTH)
        assert answer.status_code == 503 and "dead-letter" in answer.json()["detail"]
        blocked.unlink()
        answer = requests.post(url, json=[fill(fill_id="ok"), {"ts": "bad"}], headers=AUTH)
        assert answer.status_code == 200 and answer.json()["accepted"] == 1
