"""Every generated dashboard type-checks against Grafana's published schema, @grafana/schema 11.6.0.

Each dashboard becomes a TypeScript module that assigns its JSON, as object literals (so unknown keys
are errors too), to the package's `Dashboard`, `VariableModel` and `AnnotationQuery` types, and each
panel's `options` and `fieldConfig.defaults.custom` to its panel plugin's generated `Options` and
`FieldConfig` (tests/grafana/tscheck/support.ts). `tsc --noEmit --strict` must report 0 errors.
The compiler and the schema come from tests/grafana/tscheck/package-lock.json (`npm ci`, run by
scripts/ensure-node.sh from `make test`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector.grafana.dashboards import dashboard_json
from collector.grafana.names import DASHBOARDS

TSCHECK = Path(__file__).resolve().parent / "tscheck"
TSC = TSCHECK / "node_modules" / "typescript" / "bin" / "tsc"
RAW = "@grafana/schema/dist/esm/raw/composable"
# panel type → (module of its generated types, Options, FieldConfig); alertlist has none in 11.6.0
PANEL_TYPES = {
    "timeseries": ("timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen", "Options", "FieldConfig"),
    "stat": ("stat/panelcfg/x/StatPanelCfg_types.gen", "Options", None),
    "table": ("table/panelcfg/x/TablePanelCfg_types.gen", "Options", "FieldConfig"),
    "state-timeline": ("statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen", "Options", "FieldConfig"),
    "heatmap": ("heatmap/panelcfg/x/HeatmapPanelCfg_types.gen", "Options", "FieldConfig"),
    "barchart": ("barchart/panelcfg/x/BarChartPanelCfg_types.gen", "Options", "FieldConfig"),
}


@pytest.fixture(autouse=True)
def _typescript_installed() -> None:
    assert shutil.which("node") and TSC.exists(), (
        "TypeScript is not installed: run scripts/ensure-node.sh (make test does)"
    )


def _alias(kind: str) -> str:
    return re.sub(r"\W", "_", kind)


def typescript_module(model: dict[str, Any]) -> str:
    """A module whose only possible errors are places where `model` disagrees with the schema."""
    used = sorted({panel["type"] for panel in model.get("panels", []) if panel["type"] in PANEL_TYPES})
    lines = ["import type { Annotation, DashboardModel, Row, TypedPanel, UntypedPanel, Variable } from './support';"]
    lines += [f"import type * as {_alias(kind)} from '{RAW}/{PANEL_TYPES[kind][0]}.d.ts';" for kind in used]
    names = []
    for index, panel in enumerate(model.get("panels", [])):
        kind = panel["type"]
        if kind == "row":
            annotation = "Row"
        elif kind in PANEL_TYPES:
            _, options, custom = PANEL_TYPES[kind]
            custom_type = f"{_alias(kind)}.{custom}" if custom else "Record<string, never>"
            annotation = f"TypedPanel<{_alias(kind)}.{options}, {custom_type}>"
        else:
            annotation = "UntypedPanel"
        name = f"panel{index}"
        names.append(name)
        lines.append(f"const {name}: {annotation} = {json.dumps(panel, indent=2)};")
    variables = (model.get("templating") or {}).get("list", [])
    annotations = (model.get("annotations") or {}).get("list", [])
    lines.append(f"const variables: Variable[] = {json.dumps(variables, indent=2)};")
    lines.append(f"const annotations: Annotation[] = {json.dumps(annotations, indent=2)};")
    rest = {key: value for key, value in model.items() if key not in ("panels", "templating", "annotations")}
    body = json.dumps(rest, indent=2)[:-2]
    lines.append(
        f"export const dashboard: DashboardModel = {body},\n  panels: [{', '.join(names)}],\n"
        "  templating: { list: variables },\n  annotations: { list: annotations },\n};"
    )
    return "\n".join(lines) + "\n"


def type_check(models: dict[str, dict[str, Any]], directory: Path) -> list[str]:
    """tsc's error lines for the models (file name = key)."""
    for name in ("support.ts", "tsconfig.json"):
        shutil.copy(TSCHECK / name, directory / name)
    link = directory / "node_modules"
    if not link.exists():
        link.symlink_to(TSCHECK / "node_modules")
    for key, model in models.items():
        (directory / f"{key}.ts").write_text(typescript_module(model), encoding="utf-8")
    result = subprocess.run(
        ["node", str(TSC), "-p", str(directory / "tsconfig.json"), "--pretty", "false", "--noErrorTruncation"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NODE_OPTIONS": ""},
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error TS" in line]
    assert errors or result.returncode == 0, result.stdout + result.stderr
    return errors


def test_the_schema_is_the_pinned_one() -> None:
    lock = json.loads((TSCHECK / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@grafana/schema"]["version"] == "11.6.0"
    installed = json.loads((TSCHECK / "node_modules" / "@grafana" / "schema" / "package.json").read_text())
    assert installed["version"] == "11.6.0"


def test_every_dashboard_type_checks_with_zero_errors(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"  # what Grafana reads
    models = {uid: json.loads((committed / f"{uid}.json").read_text()) for uid in DASHBOARDS.values()}
    assert models and all(model["panels"] for model in models.values())
    assert type_check(models, tmp_path) == []


@pytest.mark.parametrize(
    ("key", "change", "expected"),
    [
        ("fills", lambda m: m["templating"]["list"][0].update(auto=False), "'\"auto\"' does not exist"),
        ("fills", lambda m: _first(m, "table")["fieldConfig"]["defaults"]["custom"].pop("cellOptions"), "cellOptions"),
        ("portfolio", lambda m: _first(m, "timeseries")["options"]["legend"].update(displayMode="big"), '"big"'),
        (
            "portfolio",
            lambda m: m["annotations"]["list"][0].update(tagsColumn="rule"),
            "'\"tagsColumn\"' does not exist",
        ),
        ("portfolio", lambda m: _first(m, "stat")["options"].update(colour="red"), "'\"colour\"' does not exist"),
        ("portfolio", lambda m: _first(m, "stat")["options"].pop("reduceOptions"), "reduceOptions"),
    ],
)
def test_the_type_check_catches_schema_violations(tmp_path: Path, key: str, change: Any, expected: str) -> None:
    model = dashboard_json(key)
    change(model)
    errors = type_check({"broken": model}, tmp_path)
    assert any(expected in error for error in errors), errors
    assert dashboard_json(key) != model  # the change stayed in this model: builds share no defaults


def _first(model: dict[str, Any], kind: str) -> dict[str, Any]:
    panel: dict[str, Any] = next(p for p in model["panels"] if p["type"] == kind)
    return panel
