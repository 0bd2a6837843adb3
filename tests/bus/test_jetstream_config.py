"""The `bus:` section: off by default, and every mistake is one line naming the file, line and key,
with no secret in it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from collector.bus.base import BusError
from collector.bus.jetstream import JetStreamBus
from collector.config import JetStreamBusConfig, Settings, load_settings
from collector.errors import UserError
from collector.store.influxd import free_port


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STRATMON_"):
            monkeypatch.delenv(name)


def test_the_bus_is_off_unless_configured(tmp_path: Path) -> None:
    assert Settings().bus is None
    path = tmp_path / "s.yaml"
    path.write_text("bus:\n  kind: jetstream\n  urls: [nats://10.0.0.1:4222, tls://nats.example:4222]\n")
    bus = load_settings(path).bus
    assert bus == JetStreamBusConfig(kind="jetstream", urls=["nats://10.0.0.1:4222", "tls://nats.example:4222"])
    assert (bus.partitions, bus.replicas, bus.token_env) == (4, 3, "STRATMON_NATS_TOKEN")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bus:\n  kind: kafka\n", "s.yaml:2: bus.kind: got 'kafka'; expected: Input should be 'jetstream'"),
        ("bus:\n  urls: [nats://h:4222]\n", "s.yaml:1: bus.kind: missing; a value is required"),
        (
            "bus:\n  kind: jetstream\n  partitions: 0\n",
            "s.yaml:3: bus.partitions: got 0; expected: Input should be greater than or equal to 1",
        ),
        ("bus:\n  kind: jetstream\n  partition: 2\n", "s.yaml:3: bus.partition: unknown key"),
        (
            "bus:\n  kind: jetstream\n  urls:\n    - nats://h:4222\n    - http://h:8222\n",
            "s.yaml:5: bus.urls.1: got 'http://h:8222'; expected: Value error, nats://host:port or tls://host:port",
        ),
        (
            "bus:\n  kind: jetstream\n  urls: ['nats://ops:hunter2@h:4222']\n",
            "s.yaml:3: bus.urls.0: got 'nats://***@h:4222'; expected: Value error, no credentials in a URL",
        ),
        ("bus:\n  kind: jetstream\n  stream: a.b\n", "s.yaml:3: bus.stream: got 'a.b'; expected: String should match"),
    ],
)
def test_a_bad_bus_section_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{tmp_path}/{message}"), str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_refused_connection_names_the_servers_not_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATMON_NATS_TOKEN", "hunter2")
    url = f"nats://127.0.0.1:{free_port()}"  # nobody listens
    config = JetStreamBusConfig(kind="jetstream", urls=[url], publish_timeout=0.5)
    with pytest.raises(BusError) as info:
        asyncio.run(JetStreamBus.connect(config))
    assert url in str(info.value) and "hunter2" not in str(info.value)
