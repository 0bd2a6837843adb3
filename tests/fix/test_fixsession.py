"""The live FIX drop-copy source against a real TCP acceptor on 127.0.0.1: logon, a disconnect
mid-stream, a sequence gap after the reconnect answered by a resend (with a duplicate), gap fill,
test requests; every fill once, the same fills as the log, sequence numbers in the checkpoint."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import simplefix

from collector.config import Settings
from collector.run.collector import Collector
from collector.store.reader import Reader
from tests.fix.messages import desk_bodies, execution_report
from tests.fix.test_fixlog import expected_stored, stored_fills
from tests.run.conftest import running, scalar, wait_for, with_sources


def _admin(msg_type: str, seq: int, fields: list[tuple[int, str]]) -> bytes:
    message = simplefix.FixMessage()
    for tag, value in [(8, "FIX.4.4"), (35, msg_type), (49, "BROKER"), (56, "DESK"), (34, str(seq))]:
        message.append_pair(tag, value)
    message.append_pair(52, "20240304-16:00:00.000")
    for tag, value in fields:
        message.append_pair(tag, value)
    encoded: bytes = message.encode()
    return encoded


class Acceptor:
    """The broker's side: first connection delivers part of the day then drops; messages sent while the
    line is down are lost; the second connection's Logon jumps ahead, and the resend request is answered
    with the lost messages (plus one already delivered, as PossDup), a gap fill for the Logon, then the rest."""

    def __init__(self, split: int, lost: int) -> None:
        self.bodies = desk_bodies("FIX.4.4")
        self.split, self.lost = split, lost
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received: list[dict[int, str]] = []
        self.seq = 0  # the acceptor's next MsgSeqNum for heartbeats, once the day is sent
        self.done = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn: socket.socket, parser: Any) -> dict[int, str] | None:
        while not self.stop.is_set():
            message = parser.get_message()
            if message is not None:
                fields = {int(t): bytes(v).decode() for t, v in message.pairs}
                self.received.append(fields)
                if fields[35] == "1":  # TestRequest → Heartbeat, with the next sequence number
                    conn.sendall(_admin("0", self.seq, [(112, fields[112])]))
                    self.seq += 1
                return fields
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return None
            parser.append_buffer(data)
        return None

    def _app(self, index: int, extra: list[tuple[int, str]] | None = None) -> bytes:
        return execution_report("FIX.4.4", [*(extra or []), *self.bodies[index]], index + 2)

    def _serve(self) -> None:
        first, _ = self.server.accept()
        first.settimeout(0.2)
        parser = simplefix.FixParser()
        assert (self._read(first, parser) or {}).get(35) == "A"
        first.sendall(_admin("A", 1, [(98, "0"), (108, "1")]))
        for i in range(self.split):
            first.sendall(self._app(i))
        first.close()  # the line drops mid-stream; messages split .. split+lost−1 go nowhere
        logon_seq = self.split + self.lost + 2
        second, _ = self.server.accept()
        second.settimeout(0.2)
        parser = simplefix.FixParser()
        assert (self._read(second, parser) or {}).get(35) == "A"
        second.sendall(_admin("A", logon_seq, [(98, "0"), (108, "1")]))
        while (request := self._read(second, parser)) is not None and request[35] != "2":
            pass
        assert request is not None and int(request[7]) == self.split + 2
        second.sendall(self._app(self.split - 1, [(43, "Y")]))  # a duplicate of what already came
        for i in range(self.split, self.split + self.lost):
            second.sendall(self._app(i, [(43, "Y"), (122, "20240304-16:00:00.000")]))
        second.sendall(_admin("4", logon_seq, [(43, "Y"), (123, "Y"), (36, str(logon_seq + 1))]))
        seq = logon_seq + 1
        for i in range(self.split + self.lost, len(self.bodies)):
            second.sendall(execution_report("FIX.4.4", self.bodies[i], seq))
            seq += 1
        self.seq = seq
        self.done.set()
        while self._read(second, parser) is not None:  # heartbeats, test requests, the Logout
            pass
        second.close()


def test_live_session_gives_the_same_fills_as_the_log(settings: Settings, reader: Reader) -> None:
    acceptor = Acceptor(split=3, lost=3)
    source = {
        "type": "fix",
        "port": acceptor.port,
        "sender_comp_id": "DESK",
        "target_comp_id": "BROKER",
        "heartbeat_interval": 1,
    }
    collector = Collector(with_sources(settings, source))
    fix = collector.sources[0]
    try:
        with running(collector):
            wait_for(acceptor.done.is_set, 30, "the acceptor to send the whole day")
            wait_for(lambda: scalar(reader, "SELECT count(qty) FROM fills") == 4, 30, "four fills stored")
            time.sleep(2.5)  # idle: heartbeats and a test request go both ways
        assert fix.logons == 2  # type: ignore[attr-defined]
        assert stored_fills(reader) == expected_stored()
        types = [m[35] for m in acceptor.received]
        assert types.count("A") == 2 and types.count("2") == 1 and "0" in types and types[-1] == "5"
        logons = [m for m in acceptor.received if m[35] == "A"]
        assert int(logons[1][34]) > int(logons[0][34])  # the sequence continues over the reconnect
        token = collector.state.tokens["fix"]
        # plain JSON data: the next incoming seq is the acceptor's next, the outgoing one counts what we sent
        sent = sum(1 for _ in acceptor.received)  # everything we sent arrived (the Logout included)
        assert json.loads(json.dumps(token)) == token == {"in": acceptor.seq, "out": sent + 1}
    finally:
        acceptor.stop.set()
        acceptor.server.close()


def test_sequence_numbers_survive_a_restart_through_the_checkpoint(settings: Settings, reader: Reader) -> None:
    """A restarted collector logs on with the persisted outgoing seq and expects the persisted incoming one."""
    acceptor = Acceptor(split=3, lost=3)
    source = {"type": "fix", "port": acceptor.port, "sender_comp_id": "DESK", "target_comp_id": "BROKER"}
    run_settings = with_sources(settings, source)
    try:
        with running(Collector(run_settings)) as first:
            wait_for(lambda: scalar(reader, "SELECT count(qty) FROM fills") == 4, 30, "four fills stored")
        saved = first.state.tokens["fix"]
    finally:
        acceptor.stop.set()
        acceptor.server.close()
    server = socket.create_server(("127.0.0.1", 0))
    logons: list[dict[int, str]] = []

    def accept_once() -> None:
        conn, _ = server.accept()
        conn.settimeout(5)
        parser = simplefix.FixParser()
        while (message := parser.get_message()) is None:
            parser.append_buffer(conn.recv(65536))
        logons.append({int(t): bytes(v).decode() for t, v in message.pairs})
        conn.sendall(_admin("A", saved["in"], [(98, "0"), (108, "30")]))  # no gap: nothing to resend
        while conn.recv(65536):
            pass
        conn.close()

    thread = threading.Thread(target=accept_once, daemon=True)
    thread.start()
    data = run_settings.model_dump()
    data["sources"][0]["port"] = server.getsockname()[1]
    second = Collector(Settings(**data))
    try:
        with running(second):
            wait_for(lambda: second.sources[0].logons == 1, 30, "the logon after the restart")  # type: ignore[attr-defined]
            assert second.sources[0].next_in == saved["in"] + 1  # type: ignore[attr-defined]
        assert logons[0][35] == "A" and int(logons[0][34]) == saved["out"]
        assert scalar(reader, "SELECT count(qty) FROM fills") == 4  # nothing booked twice
    finally:
        server.close()
