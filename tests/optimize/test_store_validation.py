"""Hand-edited parameters.json and changes.jsonl: clear errors, defaults for bad values, never NaN written."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from collector.errors import UserError
from collector.optimize.store import AuditLog, ChangeRecord, ParameterStore


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"version": 1, "parameters": {"trend_es": {"*": {"size_multiplier": 1.5}}', ":1: invalid JSON"),
        ('{"version": 1, "parameters": {"trend_es": {"*": {"size_multiplier": NaN}}}}', "NaN"),
        ('{"version": 1, "parameters": {"trend_es": {"*": {"lots": Infinity}}}}', "Infinity"),
        ('["not", "a", "store"]', "not a parameter store"),
        ('{"version": "two", "parameters": {}}', "not a parameter store"),
        ('{"version": 1, "parameters": {"trend_es": ["x"]}}', "not a parameter store"),
    ],
)
def test_a_broken_store_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "parameters.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        ParameterStore(path)
    assert str(error.value).startswith(str(path))


def test_values_of_the_wrong_type_fall_back_and_are_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "parameters.json"
    values = {"size_multiplier": "big", "allocation": None, "enabled": 1, "lookback": True, "good": 1.25}
    path.write_text(json.dumps({"version": 3, "parameters": {"trend_es": {"*": values}}}))
    store = ParameterStore(path)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert store.get("trend_es", "A1", "size_multiplier", 1.0) == 1.0
            assert store.get("trend_es", "A1", "allocation", 1.0) == 1.0
            assert store.get("trend_es", "A1", "enabled", True) is True
            assert store.get("trend_es", "A1", "lookback", 50.0) == 50.0
            assert store.get("trend_es", "A1", "good", 1.0) == 1.25
    assert len(caplog.records) == 4  # once per bad value


def test_nan_is_never_written(tmp_path: Path) -> None:
    store = ParameterStore(tmp_path / "parameters.json")
    with pytest.raises(ValueError, match="refusing"):
        store.set("trend_es", "*", "size_multiplier", math.nan)
    store.set("trend_es", "*", "size_multiplier", 1.5)
    assert "NaN" not in (tmp_path / "parameters.json").read_text()


def test_broken_audit_lines_are_skipped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(tmp_path / "changes.jsonl")
    audit.append(ChangeRecord("trend_es", "*", "size_multiplier", 1.0, 1.25, "apply", "r", "why"))
    with open(audit.path, "a") as handle:
        handle.write('{"half a record\n[1, 2]\n{"strategy": "x"}\n\xff\n')
    audit.append(ChangeRecord("trend_es", "*", "size_multiplier", 1.25, 1.5, "apply", "r", "why"))
    with caplog.at_level(logging.WARNING):
        records = audit.records()
    assert [r.new for r in records] == [1.25, 1.5]
    assert "skipped 4 unreadable line(s): 2, 3, 4, 5" in caplog.text
