"""Hostile or broken YAML in all three files (config, alert rules, optimizer rules): one clear line each."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.alerts.rules import load_rules
from collector.config import load_settings
from collector.errors import UserError
from collector.optimize.guardrails import bounded
from collector.optimize.rules import Parameter, load_optimization

ROOT = Path(__file__).resolve().parents[1]
LOADERS: dict[str, Callable[[Path], Any]] = {
    "config": load_settings,
    "alerts": load_rules,
    "optimization": load_optimization,
}
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LAUGHS.encode(), "aliases"),
        (b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested deeper than 64"),
        (b"a: 1\nb: caf\xe9\n", ":2: not UTF-8"),
    ],
    ids=["billion-laughs", "deep", "latin-1"],
)
def test_hostile_yaml_is_refused_at_once(tmp_path: Path, kind: str, text: bytes, message: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(text)
    started = time.monotonic()
    with pytest.raises(UserError, match=message) as error:
        LOADERS[kind](path)
    assert time.monotonic() - started < 5
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def _edited(source: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(source.read_text())
    edit(data)
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["rules"][0].update(threshold=float("nan")), "finite number"),
        (lambda d: d["rules"][0].update(threshold=float("inf")), "finite number"),
        (lambda d: d["rules"][0].update({"for": "99999999999d"}), "between 0 and 366d"),
    ],
    ids=["nan-threshold", "inf-threshold", "huge-for"],
)
def test_alert_rule_values_out_of_range(tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_rules(_edited(ROOT / "rules" / "alerts.yaml", tmp_path, edit))


def _param(name: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        next(p for p in data["parameters"] if p["name"] == name).update(values)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_param("size_multiplier", min=3.0, max=1.0, default=2.0), "above max"),
        (_param("size_multiplier", max=float("inf")), "finite"),
        (_param("lookback", max=200.5), "whole-number"),
        (_param("lookback", max_step=0.5), "max_step ≥ 1"),
    ],
    ids=["inverted", "infinite", "int-fractional", "int-step"],
)
def test_parameter_bounds_are_checked(tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_optimization(_edited(ROOT / "rules" / "optimization.yaml", tmp_path, edit))


def test_int_rounding_never_leaves_the_bounds() -> None:
    lots = Parameter.model_construct(name="lots", type="int", min=0.0, max=2.6, default=2.0, max_step=5.0)
    assert bounded(lots, 2.0, 2.6) == (2.0, "")  # 2.6 rounds to 3, outside [0, 2.6]: the nearest inside is 2
    assert bounded(lots, 2.0, 99.0)[0] == 2.0
    assert bounded(lots, 1.0, -7.0)[0] == 0.0
    step = Parameter.model_construct(name="n", type="int", min=0.0, max=100.0, default=10.0, max_step=2.5)
    assert bounded(step, 10.0, 20.0)[0] == 12.0  # whole steps only: 12.5 would be off the grid


def test_state_dir_that_is_a_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    config = tmp_path / "s.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "collector", "query", "SHOW DATABASES", "--config", str(config)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"stratmon: error: {config}:1: state_dir: got '{tmp_path / 'state'}'; expected: Value error, "
        f"{tmp_path / 'state'} is a file; expected a directory (or a path to create)"
    ]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("influx:\n  token: 98765432123\n", "98765432123"),
        ("influx:\n  password: [hunter2]\n", "hunter2"),
        ("influx:\n  url: ftp://admin:hunter2@db.example/x\n", "hunter2"),
    ],
)
def test_config_errors_never_echo_secrets(tmp_path: Path, text: str, secret: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        load_settings(path)
    assert secret not in str(error.value) and f"{path}:2" in str(error.value)


def test_influx_credentials_in_the_url_become_basic_auth_and_leave_the_url() -> None:
    from collector.config import InfluxConfig
    from collector.store.transport import Endpoint

    endpoint = Endpoint.from_config(InfluxConfig(), "http://reader:s%40cret@127.0.0.1:8086")
    assert endpoint.url == "http://127.0.0.1:8086" and endpoint.basic_auth == ("reader", "s@cret")
