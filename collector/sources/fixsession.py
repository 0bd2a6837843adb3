"""`fix` source: a FIX drop-copy initiator session (simplefix codec) feeding ExecutionReports to the engine.

Session layer: Logon (35=A, HeartBtInt, optional Username/Password 553/554), Heartbeat (35=0)
every HeartBtInt of silence, TestRequest (35=1) after 1.5 × HeartBtInt without input (answered
by a Heartbeat echoing TestReqID), ResendRequest (35=2) when an incoming MsgSeqNum skips ahead,
SequenceReset (35=4) gap fills and resets, PossDup resends; our own resend requests are answered
with one SequenceReset-GapFill (a drop copy sends no application messages). A lost connection
reconnects with exponential backoff (1 s doubling to 30 s).

Checkpoint token: plain JSON data, `{"in": next expected incoming seq, "out": next outgoing seq + 1}`,
handed over whenever either moves; after a restart the session logs on with these and
asks for anything it missed. A message below the expected seq that is not a PossDup resend is a
session error (FIX: "MsgSeqNum too low"): the connection is dropped and tried again; a Logon with
ResetSeqNumFlag(141)=Y starts both sides at 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import simplefix

from collector.config import FixSourceConfig
from collector.sources.base import Batch, Checker, Event, Outlet, Source
from collector.sources.fixlog import FixFields, classify
from collector.sources.records import RawRecord

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def _text(message: Any, tag: int) -> str | None:
    value = message.get(tag)
    return None if value is None else bytes(value).decode("utf-8", "replace")


class FixSession(Source):
    def __init__(self, config: FixSourceConfig) -> None:
        self.name = config.name
        self.config = config
        self.fields = FixFields(config.strategy_tag, {"strategy": config.strategy, **config.defaults})
        self.next_in = 1
        self.next_out = 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self.connected = threading.Event()
        self.logons = 0
        self._asked_from: int | None = None  # the seq our pending ResendRequest started at
        self._handed: dict[str, int] = {}  # the token of the last batch handed over
        self.error: BaseException | None = None

    # ---- Source ------------------------------------------------------------------------------
    def restore(self, token: Any) -> None:
        if isinstance(token, dict) and isinstance(token.get("in"), int) and isinstance(token.get("out"), int):
            self.next_in, self.next_out = max(1, token["in"]), max(1, token["out"])
            self._handed = self.token()

    def token(self) -> dict[str, int]:
        """Plain JSON data. "out" leaves room for a Logout sent after the last batch: one seq too many is a
        gap the acceptor asks us to fill (we answer with a gap fill), one too few would be a session error."""
        return {"in": self.next_in, "out": self.next_out + 1}

    def start(self, outlet: Outlet, checker: Checker) -> None:
        self._thread = threading.Thread(target=self._run, args=(outlet, checker), name=f"source-{self.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                self._send("5", [])  # Logout
            sock.close()
        if self._thread is not None:
            self._thread.join()

    def problem(self) -> str | None:
        return None if self.connected.is_set() else f"FIX session {self.name} is not logged on"

    # ---- connection loop ---------------------------------------------------------------------
    def _run(self, outlet: Outlet, checker: Checker) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.config.host, self.config.port), timeout=10) as sock:
                    self._sock = sock
                    backoff = 1.0
                    self._session(sock, outlet, checker)
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("FIX session %s: %s; reconnecting in %.0f s", self.name, exc, backoff)
            except BaseException as exc:
                self.error = exc
                log.exception("FIX session %s stopped", self.name)
                return
            finally:
                self._sock = None
                self.connected.clear()
            self._stop.wait(backoff)
            backoff = min(MAX_BACKOFF_S, backoff * 2)

    def _send(self, msg_type: str, fields: list[tuple[int, str]], seq: int | None = None) -> None:
        """One message; `seq` re-uses an old sequence number (a gap fill) instead of taking the next."""
        sock = self._sock
        if sock is None:
            return
        message = simplefix.FixMessage()
        message.append_pair(8, self.config.begin_string, header=True)
        message.append_pair(35, msg_type, header=True)
        message.append_pair(49, self.config.sender_comp_id, header=True)
        message.append_pair(56, self.config.target_comp_id, header=True)
        with self._send_lock:
            message.append_pair(34, str(self.next_out if seq is None else seq), header=True)
            message.append_pair(52, _now(), header=True)
            for tag, value in fields:
                message.append_pair(tag, value)
            sock.sendall(message.encode())
            if seq is None:
                self.next_out += 1

    def _session(self, sock: socket.socket, outlet: Outlet, checker: Checker) -> None:
        interval = self.config.heartbeat_interval
        logon: list[tuple[int, str]] = [(98, "0"), (108, str(int(interval)))]
        if self.config.begin_string == "FIXT.1.1":
            logon.append((1137, "9"))  # DefaultApplVerID: FIX 5.0SP2
        if self.config.username:
            logon.append((553, self.config.username))
        if self.config.password_env:
            password = os.environ.get(self.config.password_env)
            if password:
                logon.append((554, password))
        self._asked_from = None
        self._send("A", logon)
        parser = simplefix.FixParser()
        sock.settimeout(0.2)
        last_in = last_out = time.monotonic()
        test_sent: float | None = None
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            now = time.monotonic()
            if data == b"":
                raise ConnectionError("counterparty closed the connection")
            events: list[Event] = []
            if data:
                last_in, test_sent = now, None
                parser.append_buffer(data)
                while (message := parser.get_message()) is not None:
                    self._on_message(message, events, checker)
            if now - last_out >= interval:
                self._send("0", [])
                last_out = now
            if test_sent is None and now - last_in >= 1.5 * interval:
                self._send("1", [(112, f"T{int(now)}")])
                test_sent = now
            elif test_sent is not None and now - test_sent >= interval:
                raise ConnectionError("no answer to a TestRequest")
            if events or self.token() != self._handed:  # fills, or admin traffic that moved the sequence numbers
                self._handed = self.token()
                if not outlet.put(Batch(self.name, events, token=self._handed)):
                    return

    def _on_message(self, message: Any, events: list[Event], checker: Checker) -> None:
        msg_type = _text(message, 35)
        seq = int(_text(message, 34) or "0")
        poss_dup = _text(message, 43) == "Y"
        gap_fill = _text(message, 123) == "Y"
        if msg_type == "4" and not gap_fill:  # SequenceReset-Reset: NewSeqNo(36) is next, whatever came before
            self.next_in = int(_text(message, 36) or "1")
            return
        if seq > self.next_in:  # a gap: ask once, drop what comes until the resend fills it, in order
            if self._asked_from != self.next_in:
                log.info("FIX session %s: gap %d..%d, asking for a resend", self.name, self.next_in, seq - 1)
                self._send("2", [(7, str(self.next_in)), (16, "0")])
                self._asked_from = self.next_in
            if msg_type == "A":
                self._logged_on()
            return
        if msg_type == "A" and _text(message, 141) == "Y":  # ResetSeqNumFlag: both sides start again at 1
            self.next_in, self.next_out = seq, 2 if self.next_out > 1 else self.next_out
        elif seq < self.next_in:
            if poss_dup:
                return  # already processed
            raise ConnectionError(f"MsgSeqNum {seq} is below the expected {self.next_in} (not a PossDup resend)")
        if msg_type == "4":  # SequenceReset-GapFill, in order: skip to NewSeqNo
            self.next_in = max(seq + 1, int(_text(message, 36) or "0"))
            return
        self.next_in = seq + 1
        if msg_type == "A":
            self._logged_on()
        elif msg_type == "1":
            self._send("0", [(112, _text(message, 112) or "")])
        elif msg_type == "2":  # their resend request: we sent only admin messages, so one gap fill covers it
            begin = int(_text(message, 7) or "1")
            self._send("4", [(43, "Y"), (123, "Y"), (36, str(self.next_out))], seq=begin)
        elif msg_type == "5":
            self._send("5", [])
            raise ConnectionError(f"logout: {_text(message, 58) or 'no reason given'}")
        elif msg_type == "8":
            self._execution_report(message, events, checker)

    def _logged_on(self) -> None:
        self.logons += 1
        self.connected.set()
        log.info("FIX session %s logged on (next incoming %d, outgoing %d)", self.name, self.next_in, self.next_out)

    def _execution_report(self, message: Any, events: list[Event], checker: Checker) -> None:
        tags = {bytes(tag).decode(): bytes(value).decode("utf-8", "replace") for tag, value in message.pairs}
        raw = message.encode(raw=True)
        result = classify(tags, self.fields)
        if result.record is None:
            return
        record = RawRecord(f"{self.name}:{tags.get('34', '?')}", raw, result.record)
        fill = checker.fill(record, time.time_ns())
        if not isinstance(fill, str):
            events.append(fill)
