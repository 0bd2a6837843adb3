"""The one settings model: a YAML file (`--config` or STRATMON_CONFIG) plus STRATMON_* overrides.

Environment names map onto keys with one underscore after the section, e.g.
STRATMON_INFLUX_URL → influx.url, STRATMON_INFLUX_BATCH_SIZE → influx.batch_size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collector.errors import UserError
from collector.yamlfile import Loc, YamlDocument, describe_validation_error, load_yaml

ENV_PREFIX = "STRATMON_"
CONFIG_ENV = "STRATMON_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class CapitalConfig(_Section):
    default: float = Field(1_000_000.0, gt=0, description="capital base of an account not listed below")
    accounts: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="capital base per account (returns = equity change / base)"
    )


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
        return Settings(**data)
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, doc, _env_names())) from None
