"""The one settings model: a YAML file (`--config` or STRATMON_CONFIG) plus STRATMON_* overrides.

Environment names map onto keys with one underscore after the section, e.g.
STRATMON_INFLUX_URL → influx.url, STRATMON_INFLUX_BATCH_SIZE → influx.batch_size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collector.engine.metrics import MinSample
from collector.errors import UserError
from collector.packaged import default_rules
from collector.yamlfile import Loc, YamlDocument, describe_validation_error, load_yaml

ENV_PREFIX = "STRATMON_"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
CONFIG_ENV = "STRATMON_CONFIG"
_CONFIG_PATH = "_config_path"  # kept beside the fields in a Settings' __dict__ (see Settings.config_path)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class InfluxConfig(_Section):
    url: str | None = Field(
        None, description="http(s)://host:port; empty → the private influxd of `stratmon influx start`"
    )
    database: str = Field("stratmon", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    org: str | None = None
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    api: Literal["auto", "v1", "v2"] = "auto"
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: float = Field(1.0, gt=0, le=60, description="seconds")
    gzip: bool | Literal["auto"] = Field(
        "auto",
        description="compress writes; auto = on except for loopback, where it costs more than it saves",
    )
    timeout: float = Field(10.0, gt=0, le=300, description="seconds per HTTP request")
    drain_timeout: float = Field(30.0, ge=0, le=3600, description="seconds close() retries the spool")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("an http:// or https:// URL with a host, e.g. http://127.0.0.1:8086")
        return value.rstrip("/")


class SpoolConfig(_Section):
    enabled: bool = True
    dir: Path = Path(".stratmon/spool")
    max_bytes: int = Field(1 << 30, ge=1 << 20, description="disk cap for points waiting for InfluxDB")


class IngestConfig(_Section):
    dead_letter: Path = Path(".stratmon/dead-letter.jsonl")
    max_future_skew: float = Field(5.0, ge=0, description="seconds a fill may lie in the future")
    dedupe_window: int = Field(5_000_000, ge=1000, description="fill ids remembered for duplicate checks")
    bust_window: int = Field(
        1000, ge=1, le=1_000_000, description="fills kept per book so a bust/correction can re-derive it"
    )


class CapitalConfig(_Section):
    default: float = Field(1_000_000.0, gt=0, description="capital base of an account not listed below")
    accounts: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="capital base per account (returns = equity change / base)"
    )


class MetricsConfig(_Section):
    day_basis: Literal["trading", "calendar"] = Field(
        "trading", description="Sharpe/Sortino periods: trading = Mon–Fri days, √252; calendar = every day, √365"
    )
    min_days: int = Field(20, ge=0, description="days (of day_basis) before Sharpe and Sortino are reported")
    min_round_trips: int = Field(
        30, ge=0, description="closed round trips before win rate, profit factor, expectancy, payoff are reported"
    )

    def sample(self) -> MinSample:
        return MinSample(self.min_days, self.min_round_trips)


class FileSourceConfig(_Section):
    type: Literal["file"]
    name: str = Field("file", pattern=r"^[A-Za-z0-9_.-]+$")
    paths: list[str] = Field(min_length=1, description="files or globs; new matches are picked up while running")
    format: Literal["auto", "jsonl", "csv"] = "auto"
    map: Path | None = Field(None, description="column map profile (YAML) for another CSV/JSON layout")
    poll_interval: float = Field(0.1, gt=0, le=60, description="seconds between looks for new data")
    batch_lines: int = Field(2000, ge=1, le=100_000, description="records per batch handed to the engine")


class HttpSourceConfig(_Section):
    type: Literal["http"]
    name: str = Field("http", pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535, description="0 picks a free port")
    auth: Literal["bearer", "none"] = Field("bearer", description="none is only allowed on a loopback host")
    token_env: str = Field("STRATMON_HTTP_TOKEN", description="environment variable holding the bearer token")
    token_file: Path | None = Field(None, description="file holding the bearer token (a mounted secret)")
    map: Path | None = Field(None, description="column map profile (YAML) for records of another layout")
    max_body_bytes: int = Field(8 << 20, ge=1024, description="larger requests get 413")
    max_records: int = Field(10_000, ge=1, description="records per request; more gets 413")
    max_connections: int = Field(256, ge=1, description="concurrent connections; more get 503")
    max_connections_per_client: int = Field(32, ge=1, description="connections from one address; more are closed")
    header_timeout: float = Field(10.0, gt=0, le=300, description="seconds to send the request headers")
    body_timeout: float = Field(30.0, gt=0, le=3600, description="seconds to send the request body (else 408)")

    @model_validator(mode="after")
    def _no_open_intake_off_loopback(self) -> HttpSourceConfig:
        if self.auth == "none" and self.host not in LOOPBACK_HOSTS:
            raise ValueError(f"auth: none is only allowed with host 127.0.0.1/::1/localhost, not {self.host!r}")
        return self


class SimulatorSourceConfig(_Section):
    type: Literal["simulator"]
    name: str = Field("simulator", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 7
    accounts: int = Field(4, ge=1, le=1000)
    strategies: int = Field(31, ge=1, le=31, description="how many of the 31 named strategies run")
    symbols: int = Field(24, ge=1, le=200)
    speed: float = Field(1.0, gt=0, le=1_000_000, description="simulated seconds per wall second")
    backfill: float = Field(
        0.0, ge=0, description="seconds of history to simulate first (the clock starts this far in the past)"
    )
    max_rate: float = Field(5000.0, gt=0, description="fills per wall second at most; the clock slows to keep it")
    activity: float = Field(1.0, gt=0, description="scales every strategy's trade frequency")
    calibration: Literal["realistic", "null"] = Field(
        "realistic", description="realistic: healthy Sharpe 0.5–2.5; null: no strategy has an edge (same fills)"
    )
    tick: float = Field(0.05, gt=0, le=5, description="wall seconds per simulation step")
    correlation: float = Field(
        0.0, ge=0, le=0.9, description="share of each book's daily PnL variance that is one shock common to the desk"
    )
    parameters_file: Path | None = Field(
        None, description="the optimizer's parameter store: sizes, allocation and on/off are read from it"
    )


class FixSourceConfig(_Section):
    type: Literal["fix"]
    name: str = Field("fix", pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = Field("127.0.0.1", description="the drop-copy acceptor")
    port: int = Field(ge=1, le=65535)
    sender_comp_id: str = Field(min_length=1, description="SenderCompID(49): us")
    target_comp_id: str = Field(min_length=1, description="TargetCompID(56): the broker")
    begin_string: Literal["FIX.4.2", "FIX.4.4", "FIXT.1.1"] = Field("FIX.4.4", description="FIXT.1.1 = FIX 5.0SP2")
    heartbeat_interval: float = Field(30.0, ge=1, le=300, description="HeartBtInt(108), seconds")
    username: str | None = Field(None, description="Username(553) in the Logon, if the acceptor wants one")
    password_env: str | None = Field(None, description="environment variable holding Password(554)")
    strategy: str = Field("fix", description="strategy of fills without a strategy tag")
    strategy_tag: int | None = Field(None, ge=1, description="a tag carrying the strategy (e.g. a custom 5000+ tag)")
    defaults: dict[str, str] = Field(default_factory=dict, description="fields FIX lacks, e.g. {account: ACC1}")


SourceConfig = Annotated[
    FileSourceConfig | HttpSourceConfig | SimulatorSourceConfig | FixSourceConfig, Field(discriminator="type")
]


class RunConfig(_Section):
    instance: str = Field("", description="`instance` tag of collector self-metrics; empty = host name")
    queue_batches: int = Field(
        64,
        ge=1,
        le=100_000,
        description="batches of ≤ 500 events between sources and engine (a bigger one counts as several)",
    )
    flush_interval: float = Field(
        0.25, gt=0, le=60, description="longest wait (seconds) before perf points of changed series are written"
    )
    flush_min_interval: float = Field(
        0.01, ge=0, le=60, description="shortest gap (seconds) between flushes: an idle engine flushes this soon"
    )
    heartbeat: float = Field(
        60.0, gt=0, le=86_400, description="event-time seconds after which an unchanged series gets a perf point again"
    )
    health_interval: float = Field(5.0, gt=0, le=3600, description="seconds between collector self-metric points")
    snapshot_interval: float = Field(5.0, gt=0, le=3600, description="seconds between engine checkpoints")
    timestamp_memory: int = Field(100_000, ge=1000, description="recent fill timestamps kept to keep them unique")
    stored_fill_keys: bool = Field(
        True, description="check fill point keys against InfluxDB (other writers); false: this process's memory only"
    )


RollupWidth = Literal["1m", "1h", "1d"]


def _all_rollups() -> list[RollupWidth]:
    return ["1m", "1h", "1d"]


class JobsConfig(_Section):
    enabled: bool = True
    rollups: list[RollupWidth] = Field(default_factory=_all_rollups, description="which perf_* rollups run")
    rollup_every: float = Field(30.0, gt=0, description="seconds between rollup runs")
    lateness: float = Field(
        60.0, ge=0, description="seconds a window stays open after the newest perf point passes its end"
    )
    max_windows_per_query: int = Field(1440, ge=1, description="windows computed per query while catching up")


class AlertsConfig(_Section):
    enabled: bool = True
    # rules/ of the working directory, else the defaults shipped in the package
    rules: Path = Field(
        default_factory=lambda: default_rules("alerts.yaml"), description="alert rules and notifiers (YAML)"
    )


class OptimizeConfig(_Section):
    enabled: bool = True
    rules: Path = Field(
        default_factory=lambda: default_rules("optimization.yaml"),
        description="parameters, guardrails and rules (YAML)",
    )
    every: float = Field(3600.0, gt=0, description="seconds between optimization runs inside `stratmon run`")


def _nats_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.username or parsed.password:
        # URLs end up in log lines and errors; secrets must not
        raise ValueError("no credentials in a URL: put the token in token_env's variable or use creds_file")
    if parsed.scheme not in ("nats", "tls") or not parsed.hostname:
        raise ValueError("nats://host:port or tls://host:port")
    return url


# one item at a time, so an error shows that URL (with any user:password@ masked), not the whole list
NatsUrl = Annotated[str, AfterValidator(_nats_url)]


class JetStreamBusConfig(_Section):
    """Bus mode on a NATS JetStream cluster (collector/bus/jetstream.py). Credentials are never in this file:
    a token comes from the environment variable named by `token_env`, or a NATS creds file by path."""

    kind: Literal["jetstream"]
    urls: list[NatsUrl] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1, description="the cluster's servers"
    )
    stream: str = Field(
        "STRATMON", pattern=r"^[A-Za-z0-9_-]+$", description="stream name; also its subjects' prefix and buckets'"
    )
    partitions: int = Field(4, ge=1, le=1024, description="books are spread over this many fills.<p> subjects")
    replicas: int = Field(3, ge=1, le=5, description="copies of the stream, leases and checkpoints (odd: quorum)")
    lease_ttl: float = Field(5.0, ge=1, le=3600, description="seconds a worker's lease lasts without a renewal")
    dedupe_window: float = Field(600.0, gt=0, le=86_400, description="seconds a message id is remembered")
    retention: float = Field(7 * 86_400.0, gt=0, description="seconds messages are kept (longest worker outage)")
    publish_timeout: float = Field(30.0, gt=0, le=3600, description="seconds a publish retries before failing")
    token_env: str = Field("STRATMON_NATS_TOKEN", min_length=1, description="environment variable of the token")
    creds_file: Path | None = Field(None, description="NATS credentials file (JWT + nkey seed)")


# One backend today; a second one becomes Annotated[JetStreamBusConfig | KafkaBusConfig, Field(discriminator="kind")]
BusConfig = JetStreamBusConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    state_dir: Path = Path(".stratmon")
    influx: InfluxConfig = InfluxConfig()
    spool: SpoolConfig = SpoolConfig()
    ingest: IngestConfig = IngestConfig()
    capital: CapitalConfig = CapitalConfig()
    metrics: MetricsConfig = MetricsConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    run: RunConfig = RunConfig()
    jobs: JobsConfig = JobsConfig()
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)  # rules paths depend on the working directory
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    bus: BusConfig | None = Field(None, description="off: one process; set: router, workers and aggregator")

    @property
    def config_path(self) -> Path | None:
        """The file `load_settings` read (run/identity.py): not a setting, so equality and dumps ignore it."""
        path = self.__dict__.get(_CONFIG_PATH)
        return path if isinstance(path, Path) else None

    @field_validator("state_dir")
    @classmethod
    def _state_dir_is_a_directory(cls, path: Path) -> Path:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file; expected a directory (or a path to create)")
        return path

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [source.name for source in sources]
        if dupes := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"source names must be unique (checkpoints are kept per name): {', '.join(dupes)}")
        return sources

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the YAML file (passed as init kwargs): deployments override files.
        return (env_settings, init_settings)


def _env_names() -> dict[Loc, str]:
    """Locations set from the environment, so errors can name the variable."""
    names: dict[Loc, str] = {}
    for name in os.environ:
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV:
            rest = name[len(ENV_PREFIX) :].lower()
            section, _, key = rest.partition("_")
            if section in Settings.model_fields and key:
                names[(section, key)] = name
            names[(rest,)] = name
    return names


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings once; every mistake becomes a `UserError` naming file:line, key and expectation."""
    path = path or os.environ.get(CONFIG_ENV) or None
    doc: YamlDocument | None = None
    data: dict[str, Any] = {}
    if path:
        doc = load_yaml(path)
        if not isinstance(doc.data, dict):
            raise UserError(f"{doc.path}:1: expected a mapping of sections (influx:, spool:, ingest:, ...)")
        data = doc.data
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, doc, _env_names())) from None
    if path:
        settings.__dict__[_CONFIG_PATH] = Path(path)
    return settings
