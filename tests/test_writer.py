"""Writer error handling, status by status, against real HTTP servers on 127.0.0.1.

Real InfluxDB cannot be made to answer 503 or 400 on demand, so a small HTTP server plays
the server's answers here; the outage tests in test_outage.py use the real influxd.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from collector.config import InfluxConfig
from collector.store.errors import SpoolFullError, WriteError, classify_status
from collector.store.spool import Spool
from collector.store.transport import Endpoint, V1Transport, V2Transport
from collector.store.writer import Writer


class Answers:
    """Status codes to answer in turn (the last one repeats) and the bodies received."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []

    def next(self) -> int:
        return self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]


@pytest.fixture
def server() -> Iterator[tuple[str, Answers]]:
    answers = Answers(204)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            answers.bodies.append(self.rfile.read(length))
            answers.paths.append(self.path)
            answers.auth.append(self.headers.get("Authorization"))
            code = answers.next()
            body = b'{"error":"partial write: field type conflict"}' if code == 400 else b""
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    httpd.shutdown()
    httpd.server_close()


def _endpoint(url: str) -> Endpoint:
    return Endpoint(url=url, database="db", username="u", secret="s3cret", gzip=False)


@pytest.mark.parametrize("transport_class", [V1Transport, V2Transport])
def test_write_drops_batch_on_400(server: tuple[str, Answers], transport_class: type, tmp_path: Path) -> None:
    url, answers = server
    answers.codes = [400, 204]
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Writer(transport_class(_endpoint(url)), batch_size=2, spool=spool, drain_timeout=0)
    writer.write_lines(["m v=1 1", "m v=2 2", "m v=3 3", "m v=4 4"])
    writer.close()
    assert writer.stats.failed == 2 and writer.stats.written == 2
    assert len(spool) == 0
    assert len(answers.bodies) == 2  # the bad batch was sent once, never retried


@pytest.mark.parametrize("transport_class", [V1Transport, V2Transport])
def test_write_retries_on_503(server: tuple[str, Answers], transport_class: type, tmp_path: Path) -> None:
    url, answers = server
    answers.codes = [503, 503, 204]
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Writer(transport_class(_endpoint(url)), batch_size=3, spool=spool, drain_timeout=10)
    writer.write_lines(["m v=1 1", "m v=2 2", "m v=3 3"])
    writer.close()
    assert writer.stats.spooled == 3 and writer.stats.replayed == 3 and writer.stats.failed == 0
    assert len(spool) == 0
    assert answers.bodies[-1] == b"m v=1 1\nm v=2 2\nm v=3 3"


def test_v1_sends_basic_auth_and_database(server: tuple[str, Answers]) -> None:
    url, answers = server
    V1Transport(_endpoint(url)).send(b"m v=1 1")
    assert answers.paths == ["/write?db=db"]  # no precision parameter: ns integers
    assert answers.auth == ["Basic dTpzM2NyZXQ="]  # base64("u:s3cret")


def test_v2_writes_to_api_v2_with_bucket(server: tuple[str, Answers]) -> None:
    url, answers = server
    V2Transport(_endpoint(url)).send(b"m v=1 1")
    assert answers.paths[0].startswith("/api/v2/write?")
    assert "bucket=db" in answers.paths[0] and "precision=ns" in answers.paths[0]


def test_spool_keeps_order_across_outage(server: tuple[str, Answers], tmp_path: Path) -> None:
    url, answers = server
    answers.codes = [503, 503, 503, 204]
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Writer(V1Transport(_endpoint(url)), batch_size=1, spool=spool, drain_timeout=10)
    for i in range(5):
        writer.write(f"m v={i} {i}")
        writer.flush()
    writer.close()
    delivered = [body for body in answers.bodies[3:]]
    assert delivered == [f"m v={i} {i}".encode() for i in range(5)]
    assert writer.stats.written + writer.stats.replayed == 5


def test_spool_full_fails_the_run(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.max_bytes = 20  # a tiny cap to hit quickly
    writer = Writer(V1Transport(_endpoint("http://127.0.0.1:9")), batch_size=1, spool=spool, drain_timeout=0)
    writer.write("m v=1 1")
    with pytest.raises(SpoolFullError):
        for i in range(5):
            writer.write(f"m value={i} {i}")
            writer.flush()
    assert len(spool) >= 1  # what fitted is still on disk


def test_no_spool_gives_up_after_drain_timeout(tmp_path: Path) -> None:
    writer = Writer(V1Transport(_endpoint("http://127.0.0.1:9")), batch_size=1, spool=None, drain_timeout=0.3)
    writer.write("m v=1 1")
    with pytest.raises(WriteError, match="spool is disabled"):
        writer.close()


def test_spool_survives_restart_and_drops_partial_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", 1 << 20)
    spool.append(b"a v=1 1")
    spool.append(b"a v=2 2")
    (tmp_path / "s" / "000000000009.tmp").write_bytes(b"half a bat")
    again = Spool(tmp_path / "s", 1 << 20)
    assert len(again) == 2 and again.size_bytes == 14
    assert not list((tmp_path / "s").glob("*.tmp"))
    oldest = again.oldest()
    assert oldest is not None and oldest[1] == b"a v=1 1"
    again.append(b"a v=3 3")
    assert [p.name for p in sorted((tmp_path / "s").glob("*.lp"))][-1].startswith("000000000002-")


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (400, "unable to parse", False),
        (401, "authorization failed", True),
        (404, "database not found", True),
        (413, "too large", False),
        (422, "unprocessable", False),
        (429, "slow down", True),
        (500, "timeout", True),
        (500, "max series per database exceeded", False),
        (503, "", True),
    ],
)
def test_status_classification(status: int, body: str, retryable: bool) -> None:
    assert classify_status(status, body).retryable is retryable


def test_gzip_auto_is_off_on_loopback_only() -> None:
    cfg = InfluxConfig()
    assert Endpoint.from_config(cfg, "http://127.0.0.1:8086").gzip is False
    assert Endpoint.from_config(cfg, "https://influx.example.net").gzip is True
    assert Endpoint.from_config(InfluxConfig(gzip=True), "http://localhost:1").gzip is True


# ---- a full spool (max_bytes, or the disk itself) holds the producers back; damage is moved aside ----
def _flush_in_thread(writer: Writer, lines: list[str]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for line in lines:
                writer.write(line)
                writer.flush()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    return thread, errors


def _wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_spool_at_max_bytes_blocks_then_resumes_in_order(server: tuple[str, Answers], tmp_path: Path) -> None:
    url, answers = server
    answers.codes = [503]
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.max_bytes = 20  # two batches fit
    writer = Writer(V1Transport(_endpoint(url)), batch_size=1, spool=spool, block_when_full=True, max_backoff=0.2)
    lines = [f"m v={i} {i}" for i in range(5)]
    thread, errors = _flush_in_thread(writer, lines)
    _wait(lambda: writer.problem is not None)
    assert "full" in str(writer.problem) and thread.is_alive()  # the producer waits; nothing dropped
    answers.codes = [204]  # InfluxDB is back
    thread.join(10)
    assert not thread.is_alive() and not errors
    writer.close()
    assert writer.problem is None
    delivered = [line for body in answers.bodies if body for line in body.decode().split("\n")]
    assert sorted(set(delivered), key=delivered.index) == lines  # every point, oldest first
    assert writer.stats.failed == 0 and len(spool) == 0


def test_abandon_while_waiting_fails_the_flush(server: tuple[str, Answers], tmp_path: Path) -> None:
    url, answers = server
    answers.codes = [503]
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.max_bytes = 10
    writer = Writer(V1Transport(_endpoint(url)), batch_size=1, spool=spool, block_when_full=True, max_backoff=0.2)
    thread, errors = _flush_in_thread(writer, [f"m v={i} {i}" for i in range(3)])
    _wait(lambda: writer.problem is not None)
    writer.abandon()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], WriteError) and "waited for room" in str(errors[0])


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real ENOSPC (needs the right to mount; skipped where that is refused)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_blocks_instead_of_losing(server: tuple[str, Answers], tiny_disk: Path) -> None:
    url, answers = server
    answers.codes = [503]
    spool = Spool(tiny_disk / "spool", 1 << 30)  # max_bytes far above what the disk holds
    writer = Writer(V1Transport(_endpoint(url)), batch_size=1, spool=spool, block_when_full=True, max_backoff=0.2)
    lines = [f'm v={i},pad="{"x" * 3000}" {i}' for i in range(60)]  # ~180 KiB: more than the disk
    thread, errors = _flush_in_thread(writer, lines)
    _wait(lambda: writer.problem is not None)
    assert "No space left" in str(writer.problem)
    assert not list((tiny_disk / "spool").glob("*.tmp"))  # a failed append leaves no half batch
    answers.codes = [204]
    thread.join(20)
    assert not errors and not thread.is_alive()
    writer.close()
    delivered = {line for body in answers.bodies if body for line in body.decode().split("\n")}
    assert delivered == set(lines)


def test_stray_and_damaged_spool_files_are_moved_aside(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, 1 << 20)
    spool.append(b"a v=1 1\na v=2 2\na v=3 3")
    spool.append(b"a v=4 4")
    (directory / "notes.txt").write_text("someone's file")
    first = sorted(directory.glob("*.lp"))[0]
    first.write_bytes(first.read_bytes()[:-3])  # truncated: the last line is cut
    again = Spool(directory, 1 << 20)
    assert len(list(directory.glob("notes.txt.damaged-*"))) == 1
    oldest = again.oldest()
    assert oldest is not None and oldest[1] == b"a v=1 1\na v=2 2"  # the intact lines, not the cut one
    again.remove(oldest[0])
    nxt = again.oldest()
    assert nxt is not None and nxt[1] == b"a v=4 4"
    assert len(list(directory.glob("*.damaged-*"))) == 2


def test_a_file_where_the_spool_directory_belongs_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("not a directory")
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.append(b"a v=1 1")
    assert len(spool) == 1 and len(list(tmp_path.glob("spool.damaged-*"))) == 1
