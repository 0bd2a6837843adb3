"""`http` source: an intake API (FastAPI on uvicorn) for fills and marks.

POST /v1/fills and /v1/marks take a JSON array or NDJSON. Each record is validated on arrival;
the answer lists what was accepted and every rejected record's index and reason (rejects also
go to the dead-letter file). A 200 means "validated and durable": the accepted records are in
the fsynced intake journal (`collector.sources.journal`) before the answer is sent, and the
journal is replayed from the checkpointed position at start, so an acknowledged record survives
kill -9 and the engine sees it exactly once. Duplicates are dropped later by the engine, so a
client that is unsure whether a request landed simply sends it again. When the journal cannot be
written (disk full) or the engine cannot take more, the answer is 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from collector.config import HttpSourceConfig
from collector.errors import UserError
from collector.model import Fill, Mark
from collector.sources.base import Batch, Checker, Event, Outlet, Source
from collector.sources.colmap import Mapper, load_map
from collector.sources.guard import guarded_protocol
from collector.sources.journal import IntakeJournal, Position
from collector.sources.records import RawRecord, decode_json_line

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
RETRY_AFTER_S = "1"

_RECORDS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one JSON object per line"}},
        },
    },
    "responses": {
        "401": {"description": "missing or wrong bearer token"},
        "400": {"description": "the body as a whole is unreadable (not JSON/NDJSON, nested too deeply)"},
        "408": {"description": "the body did not arrive within body_timeout"},
        "413": {"description": "body or record count over the limit"},
        "503": {"description": "intake busy, replaying or out of disk: retry after the Retry-After seconds"},
    },
}


def resolve_token(config: HttpSourceConfig) -> str | None:
    """The bearer token from the environment or a secret file; None only for `auth: none`."""
    if config.auth == "none":
        return None
    token = os.environ.get(config.token_env, "").strip()
    if not token and config.token_file is not None:
        try:
            token = config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"sources.{config.name}.token_file: cannot read {config.token_file}: {exc}") from None
    if not token:
        raise UserError(
            f"sources.{config.name}: the HTTP intake needs a bearer token: set {config.token_env} or token_file "
            "(or auth: none on a loopback host)"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise UserError(f"sources.{config.name}: the bearer token is shorter than {MIN_TOKEN_LENGTH} characters")
    return token


class _TooLarge(Exception):
    pass


class HttpSource(Source):
    def __init__(self, config: HttpSourceConfig) -> None:
        self.name = config.name
        self.config = config
        self.token = resolve_token(config)
        self.mapper = Mapper(load_map(config.map), str(config.map)) if config.map is not None else None
        self.accepted = 0
        self.journal: IntakeJournal | None = None
        self._position: Position | None = None
        self._commit = threading.Lock()  # journal order = queue order
        self.replaying = threading.Event()
        self.journal_failing = False  # reported once until a write succeeds again
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._replayer: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.servers, "not started"
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def use_state_dir(self, directory: Path) -> None:
        self.journal = IntakeJournal(directory / "intake", self.name)

    def restore(self, token: Any) -> None:
        if isinstance(token, list) and len(token) == 2 and all(type(x) is int and x >= 0 for x in token):
            self._position = (token[0], token[1])

    def start(self, outlet: Outlet, checker: Checker) -> None:
        if self.journal is None:
            raise RuntimeError("the HTTP intake needs use_state_dir() for its journal before start()")
        self.replaying.set()  # requests wait (503) until the journal has been handed to the engine
        pending = list(self.journal.replay(self._position))
        self._replayer = threading.Thread(
            target=self._replay, args=(pending, outlet, checker), name=f"source-{self.name}-replay", daemon=True
        )
        self._replayer.start()
        app = build_app(self, outlet, checker)
        config = uvicorn.Config(
            app,
            host=self.config.host,
            port=self.config.port,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through stratmon's handler: UTC times, --log-format json
            access_log=False,
            lifespan="off",
            limit_concurrency=self.config.max_connections,
            http=guarded_protocol(self.config.header_timeout, self.config.max_connections_per_client),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"source-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UserError(f"sources.{self.name}: cannot listen on {self.config.host}:{self.config.port}")
            time.sleep(0.01)
        log.info("HTTP intake listening on http://%s:%d", self.config.host, self.port)

    def check_fill(self, checker: Checker, record: RawRecord, now_ns: int) -> Fill | str | None:
        """The fill (through the column map, if any), the rejection reason, or None for a skipped row."""
        if self.mapper is not None and self.mapper.map_record(record).skipped is not None:
            return None
        return checker.fill(record, now_ns)

    def _replay(self, pending: list[tuple[dict[str, Any], Position]], outlet: Outlet, checker: Checker) -> None:
        """Acknowledged requests after the checkpoint, validated again exactly as when they arrived."""
        try:
            records = 0
            for entry, position in pending:
                events: list[Event] = []
                now, raws = entry.get("now"), entry.get("raw")
                if not isinstance(now, int) or not isinstance(raws, list):
                    log.error("intake %s: skipped a journal entry of the wrong shape at %s", self.name, position)
                    now, raws = 0, []
                for i, raw in enumerate(raws):
                    record = decode_json_line(str(raw).encode(), f"{entry.get('client', self.name)}#{i} (journal)")
                    result = (
                        self.check_fill(checker, record, now)
                        if entry.get("kind") == "fills"
                        else checker.mark(record, now)
                    )
                    if result is not None and not isinstance(result, str):
                        events.append(result)
                if not outlet.put(Batch(self.name, events, token=list(position))):
                    return
                records += len(events)
            if pending:
                log.info("intake %s: replayed %d acknowledged records from the journal", self.name, records)
        finally:
            self.replaying.clear()

    def commit(
        self, outlet: Outlet, kind: str, now_ns: int, client: str, records: list[RawRecord], events: list[Event]
    ) -> str | None:
        """Journal (fsync) then queue the accepted records; None when durable, else why not (→ 503)."""
        assert self.journal is not None
        with self._commit:
            if outlet.queue.full():
                return "intake queue is full; retry later"
            entry = {"kind": kind, "now": now_ns, "client": client, "raw": [r.raw.decode() for r in records]}
            try:
                position = self.journal.append(entry)
            except OSError as exc:
                if not self.journal_failing:
                    log.error("intake %s: cannot write the journal (%s); answering 503", self.name, exc.strerror)
                self.journal_failing = True
                return f"cannot make the records durable ({exc.strerror}); retry later"
            if self.journal_failing:
                log.info("intake %s: the journal is writable again", self.name)
                self.journal_failing = False
            outlet.put(Batch(self.name, events, token=list(position)))  # False only when stopping: replayed then
        self.accepted += len(events)
        return None

    def checkpointed(self, token: Any) -> None:
        if self.journal is not None and isinstance(token, list):
            self.journal.release((int(token[0]), int(token[1])))

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._replayer is not None:
            self._replayer.join(timeout=10)
        if self.journal is not None:
            self.journal.close()

    def ready(self) -> bool:
        return self._server is not None and self._server.started

    def problem(self) -> str | None:
        if self.replaying.is_set():
            return "replaying the intake journal"
        return "cannot write the intake journal (503 to every request)" if self.journal_failing else None


def build_app(source: HttpSource, outlet: Outlet, checker: Checker) -> FastAPI:
    config = source.config
    app = FastAPI(title="stratmon intake", version="1", docs_url=None, redoc_url=None)

    def unauthorized(request: Request) -> Response | None:
        if source.token is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), source.token.encode()):
            return JSONResponse(
                {"detail": "missing or wrong bearer token"}, 401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > config.max_body_bytes:
            raise _TooLarge
        chunks, size = [], 0
        async with asyncio.timeout(config.body_timeout):  # a body dripping in holds no slot forever
            async for chunk in request.stream():
                size += len(chunk)
                if size > config.max_body_bytes:
                    raise _TooLarge
                chunks.append(chunk)
        return b"".join(chunks)

    def split_records(body: bytes, client: str) -> list[RawRecord] | str:
        """Records of a JSON array or of NDJSON, or the reason the body as a whole is unreadable."""
        text = body.lstrip()
        if text.startswith(b"["):
            try:
                items = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                return f"invalid JSON array: {exc}"
            if not isinstance(items, list):
                return "expected a JSON array or NDJSON"
            try:
                return [RawRecord(f"{client}#{i}", orjson.dumps(item), item) for i, item in enumerate(items)]
            except orjson.JSONEncodeError:
                return "JSON nested too deeply"
        lines = [line.strip() for line in body.split(b"\n")]
        return [decode_json_line(line, f"{client}#{i}") for i, line in enumerate(line for line in lines if line)]

    async def intake(request: Request, kind: str) -> Response:
        denied = unauthorized(request)  # before a byte of the body is read
        if denied is not None:
            return denied
        if outlet.queue.full() or outlet.stopping.is_set() or source.replaying.is_set():
            return _busy("intake queue is full; retry later")
        try:
            body = await read_body(request)
        except _TooLarge:
            return JSONResponse({"detail": f"body over {config.max_body_bytes} bytes"}, 413)
        except TimeoutError:
            return JSONResponse({"detail": f"body not received within {config.body_timeout:g} s"}, 408)
        client = f"{source.name}:{request.client.host if request.client else '?'}"
        records = split_records(body, client)
        if isinstance(records, str):
            return JSONResponse({"detail": records}, 400)
        if len(records) > config.max_records:
            return JSONResponse({"detail": f"{len(records)} records; at most {config.max_records} per request"}, 413)
        events: list[Event] = []
        accepted: list[RawRecord] = []
        rejected: list[dict[str, Any]] = []
        now_ns = time.time_ns()
        try:
            for index, record in enumerate(records):
                result: Fill | Mark | str | None = (
                    source.check_fill(checker, record, now_ns) if kind == "fills" else checker.mark(record, now_ns)
                )
                if result is None:
                    continue  # not a fill (a row the column map skips)
                if isinstance(result, str):
                    rejected.append({"index": index, "error": result})
                else:
                    events.append(result)
                    accepted.append(record)
        except OSError as exc:  # a reject's dead letter could not be written (disk full): nothing accepted
            return _busy(f"cannot write the dead-letter file ({exc.strerror}); retry later")
        if events and (busy := await run_in_threadpool(source.commit, outlet, kind, now_ns, client, accepted, events)):
            return _busy(busy)
        return JSONResponse({"accepted": len(events), "rejected": rejected, "errors": bool(rejected)})

    @app.post("/v1/fills", openapi_extra=_RECORDS_BODY, summary="Submit fills (JSON array or NDJSON)")
    async def post_fills(request: Request) -> Response:
        return await intake(request, "fills")

    @app.post("/v1/marks", openapi_extra=_RECORDS_BODY, summary="Submit mark prices (JSON array or NDJSON)")
    async def post_marks(request: Request) -> Response:
        return await intake(request, "marks")

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Ready to take fills: engine running, queue not full, InfluxDB writes healthy")
    async def readyz() -> Response:
        problem = outlet.problem() or ("intake queue full" if outlet.queue.full() else None)
        if problem:
            return JSONResponse({"status": "unavailable", "reason": problem}, 503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready"})

    return app


def _busy(detail: str) -> Response:
    return JSONResponse({"detail": detail}, 503, headers={"Retry-After": RETRY_AFTER_S})
