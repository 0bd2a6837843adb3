"""How line-protocol batches reach the server: v2 API via influxdb-client, or the v1 `/write` endpoint.

Servers with `/api/v2/write` (InfluxDB ≥ 1.8, 2.x, 3.x) get influxdb-client's WriteApi; older 1.x
(Debian ships 1.6.7) gets a plain POST to `/write`. Both send integer-ns timestamps with no
precision parameter, because 1.6.7 silently treats `precision=us` as nanoseconds.
"""

from __future__ import annotations

import gzip
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import requests
from pydantic import SecretStr

from collector.config import InfluxConfig
from collector.errors import UserError
from collector.store.errors import WriteError, classify_status

log = logging.getLogger(__name__)


class Transport(Protocol):
    """Sends one batch of newline-separated line protocol; raises `WriteError`."""

    name: str

    def send(self, body: bytes) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to talk to InfluxDB."""

    url: str
    database: str
    username: str | None = None
    secret: str | None = None
    org: str | None = None
    timeout: float = 10.0
    gzip: bool = True

    @classmethod
    def from_config(cls, cfg: InfluxConfig, url: str) -> Endpoint:
        # 1.x: user/password; 2.x and 3 Core: any username with the token as password.
        secret = cfg.password or cfg.token
        parts = urlparse(url)
        username = cfg.username
        if parts.username is not None or parts.password is not None:  # user:pass@ in the URL: never logged
            username = username or unquote(parts.username or "")
            secret = secret or (SecretStr(unquote(parts.password)) if parts.password else None)
            url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        host = parts.hostname or ""
        use_gzip = cfg.gzip if cfg.gzip != "auto" else host not in ("localhost", "::1") and not host.startswith("127.")
        return cls(
            url=url.rstrip("/"),
            database=cfg.database,
            username=username or ("stratmon" if secret else None),
            secret=secret.get_secret_value() if secret else None,
            org=cfg.org,
            timeout=cfg.timeout,
            gzip=use_gzip,
        )

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.secret is None or self.username is None:
            return None
        return (self.username, self.secret)


def parse_version(text: str) -> tuple[int, int]:
    match = re.search(r"(\d+)\.(\d+)", text or "")
    if match is None:
        return (0, 0)
    return (int(match.group(1)), int(match.group(2)))


def server_version(endpoint: Endpoint) -> str:
    """The X-Influxdb-Version header of `/ping` ("unknown" without one), read as influxdb-client's `version()` does."""
    headers = {"Authorization": f"Token {endpoint.secret}"} if endpoint.secret else {}
    try:
        answer = requests.get(f"{endpoint.url}/ping", headers=headers, timeout=endpoint.timeout)
    except requests.RequestException as exc:
        raise WriteError(f"InfluxDB at {endpoint.url} did not answer /ping: {exc}", retryable=True) from None
    if answer.status_code // 100 != 2:
        raise WriteError(
            f"InfluxDB at {endpoint.url} did not answer /ping: HTTP {answer.status_code}", retryable=True
        ) from None
    return str(answer.headers.get("X-Influxdb-Version", "unknown"))


def has_v2_write(version: str) -> bool:
    return parse_version(version) >= (1, 8)


class V1Transport:
    """POST /write?db=…; Basic auth works on 1.x (user/pass), 2.x and 3 Core (token as password)."""

    name = "v1"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.session = requests.Session()
        auth = endpoint.basic_auth
        if auth is not None:
            self.session.auth = auth
        self.url = f"{endpoint.url}/write"
        self.params = {"db": endpoint.database}

    def send(self, body: bytes) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.endpoint.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            answer = self.session.post(
                self.url, params=self.params, data=body, headers=headers, timeout=self.endpoint.timeout
            )
        except requests.RequestException as exc:
            raise WriteError(f"cannot reach {self.endpoint.url}: {exc}", retryable=True) from None
        if answer.status_code // 100 != 2:
            raise classify_status(answer.status_code, answer.text)

    def close(self) -> None:
        self.session.close()


class V2Transport:
    """influxdb-client's synchronous WriteApi on /api/v2/write; its own retries are off, ours spool."""

    name = "v2"

    def __init__(self, endpoint: Endpoint) -> None:
        # imported here: influxdb-client takes ~0.3 s to import, and 1.x servers before 1.8 never need it
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.endpoint = endpoint
        token = endpoint.secret or ""
        if endpoint.username and endpoint.secret and endpoint.username != "stratmon":
            token = f"{endpoint.username}:{endpoint.secret}"  # 1.8's v2 API takes user:password
        self.client = InfluxDBClient(
            url=endpoint.url,
            token=token,
            org=endpoint.org or "-",
            timeout=int(endpoint.timeout * 1000),
            enable_gzip=endpoint.gzip,
            retries=False,
        )
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)

    def send(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        try:
            self.write_api.write(bucket=self.endpoint.database, org=self.endpoint.org or "-", record=body)
        except ApiException as exc:
            raise classify_status(int(exc.status or 0), str(exc.body or exc.reason)) from None
        except Exception as exc:  # urllib3 connection/timeouts surface as several exception types
            raise WriteError(f"cannot reach {self.endpoint.url}: {exc}", retryable=True) from None

    def close(self) -> None:
        self.write_api.close()
        self.client.close()


def create_database(endpoint: Endpoint) -> None:
    """1.x only: CREATE DATABASE is idempotent there; 2.x buckets and 3 Core databases exist otherwise."""
    run_statement(endpoint, f'CREATE DATABASE "{endpoint.database}"')


def run_statement(endpoint: Endpoint, statement: str) -> Any:
    """POST an InfluxQL statement to /query; server errors become `WriteError`."""
    try:
        answer = requests.post(
            f"{endpoint.url}/query",
            data={"q": statement},
            auth=endpoint.basic_auth,
            timeout=endpoint.timeout,
        )
    except requests.RequestException as exc:
        raise WriteError(f"cannot reach {endpoint.url}: {exc}", retryable=True) from None
    if answer.status_code // 100 != 2:
        raise classify_status(answer.status_code, answer.text)
    return answer.json()


def open_transport(cfg: InfluxConfig, url: str) -> Transport:
    """Pick the write path from config (`api: v1|v2`) or, with `auto`, from the server version."""
    endpoint = Endpoint.from_config(cfg, url)
    api = cfg.api
    version = ""
    if api == "auto" or api == "v1":
        version = server_version(endpoint)
        if api == "auto":
            api = "v2" if has_v2_write(version) else "v1"
    if parse_version(version)[0] == 1:
        create_database(endpoint)
    if api == "v2":
        if parse_version(version)[0] == 2 and not cfg.org:
            raise UserError("influx.org: InfluxDB 2.x needs an organization; set STRATMON_INFLUX_ORG")
        log.info("writing through /api/v2/write (server %s)", version or "unknown")
        return V2Transport(endpoint)
    log.info("writing through /write (server %s)", version or "unknown")
    return V1Transport(endpoint)


class AutoTransport:
    """Defers version detection to the first send, so a collector started during an outage still spools."""

    name = "auto"

    def __init__(self, cfg: InfluxConfig, url: str) -> None:
        self.cfg = cfg
        self.url = url
        self.inner: Transport | None = None

    def send(self, body: bytes) -> None:
        if self.inner is None:
            self.inner = open_transport(self.cfg, self.url)
            self.name = self.inner.name
        self.inner.send(body)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
