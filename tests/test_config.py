"""Settings: YAML + environment, and one clear line per mistake (exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.config import FileSourceConfig, HttpSourceConfig, Settings, SimulatorSourceConfig, load_settings
from collector.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STRATMON_"):
            monkeypatch.delenv(name)


def test_example_file_documents_every_key_and_holds_the_defaults() -> None:
    example = load_settings(ROOT / "stratmon.example.yaml")
    defaults = Settings()
    assert example.model_copy(update={"sources": []}) == defaults
    assert [source.type for source in example.sources] == ["simulator"]
    assert example.sources[0] == SimulatorSourceConfig(type="simulator")
    text = (ROOT / "stratmon.example.yaml").read_text()
    for kind in (FileSourceConfig, HttpSourceConfig, SimulatorSourceConfig):  # the other kinds: commented out
        for key in kind.model_fields:
            assert f" {key}:" in text, (kind.__name__, key)
    raw = yaml.safe_load(text)
    for section, model in Settings.model_fields.items():
        assert section in raw, section
        annotation = model.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            assert set(raw[section]) == set(annotation.model_fields), section


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("influx:\n  url: http://file:8086\n  database: fromfile\n  batch_size: 10\n")
    monkeypatch.setenv("STRATMON_INFLUX_URL", "http://env:8086/")
    monkeypatch.setenv("STRATMON_INFLUX_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("STRATMON_INFLUX_ORG", "desk")
    settings = load_settings(path)
    assert settings.influx.url == "http://env:8086"
    assert settings.influx.database == "fromfile" and settings.influx.batch_size == 10
    assert settings.influx.token is not None and settings.influx.token.get_secret_value() == "s3cr3t-value"
    assert settings.influx.org == "desk"
    assert "s3cr3t-value" not in repr(settings)  # secrets never show up in logs


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("influx:\n  database: viaenv\n")
    monkeypatch.setenv("STRATMON_CONFIG", str(path))
    assert load_settings().influx.database == "viaenv"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "influx:\n  url: http://x:1\n  batch_size: lots\n",
            "s.yaml:3: influx.batch_size: got 'lots'; expected: Input should be a valid integer",
        ),
        (
            "influx:\n  url: ftp://x\n",
            "s.yaml:2: influx.url: got 'ftp://x'; expected: Value error, an http:// or https://",
        ),
        ("influx:\n  databse: x\n", "s.yaml:2: influx.databse: unknown key"),
        (
            "spool:\n  max_bytes: 10\n",
            "s.yaml:2: spool.max_bytes: got 10; expected: Input should be greater than or equal to 1048576",
        ),
        ("influx: [1, 2\n", "s.yaml:2: invalid YAML"),
        ("- just\n- a list\n", "s.yaml:1: expected a mapping of sections"),
    ],
)
def test_bad_config_names_line_key_value_and_expectation(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_settings(path)
    assert str(info.value).startswith(str(tmp_path / message.split(":", 1)[0]) + ":" + message.split(":", 1)[1])


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATMON_INFLUX_BATCH_SIZE", "0")
    with pytest.raises(UserError, match=r"^environment STRATMON_INFLUX_BATCH_SIZE: influx.batch_size: got '0'"):
        load_settings()


def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("influx:\n  timeout: -3\n")
    done = subprocess.run(
        [sys.executable, "-m", "collector", "query", "SHOW DATABASES", "--config", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"stratmon: error: {path}:2: influx.timeout: got -3; expected: Input should be greater than 0"
    ]


def test_source_mistakes_name_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("sources:\n  - type: simulator\n    speed: fast\n")
    with pytest.raises(UserError) as error:
        load_settings(path)
    assert f"{path}:3" in str(error.value) and "speed" in str(error.value)
    path.write_text("sources:\n  - type: kafka\n")
    with pytest.raises(UserError, match=r"file|http|simulator"):
        load_settings(path)
    path.write_text("sources:\n  - {type: http, host: 0.0.0.0, auth: none}\n")
    with pytest.raises(UserError, match="only allowed"):
        load_settings(path)
    path.write_text("sources:\n  - {type: simulator}\n  - {type: simulator}\n")
    with pytest.raises(UserError, match="unique"):
        load_settings(path)


def test_run_without_sources_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"state_dir: {tmp_path}\n")
    done = subprocess.run(
        [sys.executable, "-m", "collector", "run", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "no sources" in done.stderr and "Traceback" not in done.stderr
