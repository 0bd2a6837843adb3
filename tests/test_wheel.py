"""The installed wheel works outside the repository: init, alerts check, grafana build, report.

The wheel is built from a copy of the sources without build isolation, installed into a fresh venv
in a temp dir whose only link to the development venv is a .pth line naming its site-packages (the
dependencies) — not a site dir, so the editable install's finder never runs and `collector` can only
come from the wheel. Every command runs with its working directory outside the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.helpers import fill, write_jsonl

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["rules", "examples/maps", "stratmon.example.yaml", "README.md", "pyproject.toml"]


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert done.returncode == expect, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(venv, built wheel, environment for its commands)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(REPO / "collector", src / "collector", ignore=shutil.ignore_patterns("__pycache__"))
    for name in SHIPPED:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copyfile)(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATMON_", "PYTHON"))}
    env["HOME"] = str(root)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", src,
         cwd=root, env=env)  # fmt: skip
    (wheel,) = (root / "dist").glob("stratmon-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root, env=env)
    purelib = Path(sysconfig.get_paths()["purelib"])  # the development venv's dependencies
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "dev-dependencies.pth").write_text(f"{purelib}\n", encoding="utf-8")
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", "-q",
         wheel, cwd=root, env=env)  # fmt: skip
    return venv, wheel, env


def test_wheel_holds_every_module_and_the_shipped_files(installed: tuple[Path, Path, dict[str, str]]) -> None:
    _, wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "collector").rglob("*.py")}
    assert modules - names == set(), "packages missing from [tool.setuptools] packages in pyproject.toml"
    data = {n for n in names if n.startswith("collector/data/")}
    expected = {"collector/data/stratmon.example.yaml"}
    expected |= {f"collector/data/rules/{p.name}" for p in (REPO / "rules").glob("*.yaml")}
    expected |= {f"collector/data/maps/{p.name}" for p in (REPO / "examples" / "maps").iterdir() if p.is_file()}
    assert data == expected


def test_installed_commands_work_outside_the_repository(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, _, env = installed
    stratmon, python = venv / "bin" / "stratmon", venv / "bin" / "python"
    site = next((venv / "lib").glob("python3*/site-packages")).resolve()

    # the wheel's own files, not the repository's
    where = _run(python, "-c", "import collector, collector.packaged as p; print(collector.__file__);"
                 "print(p.shipped('rules'))", cwd=tmp_path, env=env).stdout.split()  # fmt: skip
    assert [Path(p).resolve().is_relative_to(site) for p in where] == [True, True], where

    # a new deployment, and no silent overwrite of it
    deploy = tmp_path / "desk"
    written = _run(stratmon, "init", deploy, cwd=tmp_path, env=env).stdout.split()
    names = {Path(p).relative_to(deploy).as_posix() for p in written}
    assert names >= {"stratmon.yaml", "rules/alerts.yaml", "rules/optimization.yaml", ".env.example", "README.md"}
    assert (deploy / "rules" / "alerts.yaml").read_bytes() == (REPO / "rules" / "alerts.yaml").read_bytes()
    env_lines = [line for line in (deploy / ".env.example").read_text().splitlines() if line and line[0] != "#"]
    secrets = [line for line in env_lines if any(w in line for w in ("TOKEN", "PASSWORD", "SECRET", "URL"))]
    assert len(secrets) >= 6 and all(line.endswith("=") for line in secrets), secrets
    assert "STRATMON_SLACK_WEBHOOK_URL=" in env_lines  # named by the rules' notifiers
    (deploy / "README.md").write_text("mine\n")
    refused = _run(stratmon, "init", deploy, cwd=tmp_path, env=env, expect=2)
    assert "not overwriting" in refused.stderr and "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert (deploy / "README.md").read_text() == "mine\n"  # --force: tests/test_cli.py

    # the deployment's config and rules
    listed = _run(stratmon, "--config", "stratmon.yaml", "alerts", "check", cwd=deploy, env=env).stdout
    assert "rules/alerts.yaml" in listed and "portfolio" in listed

    # outside any deployment: the packaged default rules
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = _run(stratmon, "alerts", "check", cwd=elsewhere, env=env).stdout
    assert "site-packages" in listed and "collector/data/rules/alerts.yaml" in listed.replace("\n", "")
    built = _run(stratmon, "grafana", "build", "--out", "g", cwd=elsewhere, env=env)
    assert "provisioning files are valid" in built.stdout
    assert len(list((elsewhere / "g" / "dashboards").glob("*.json"))) >= 5
    assert list((elsewhere / "g" / "provisioning" / "alerting").glob("*.yaml"))

    fills = write_jsonl(
        elsewhere / "fills.jsonl",
        [
            fill(fill_id="a", side="buy", qty=2, price=100.0),
            fill(fill_id="b", side="sell", qty=2, price=103.0, ts="2024-03-01T15:00:00Z"),
            fill(fill_id="c", strategy="carry", symbol="NQ", qty=1, price=50.0, ts="2024-03-01T15:30:00Z"),
        ],
    )
    report = json.loads(_run(stratmon, "report", fills, "--format", "json", cwd=elsewhere, env=env).stdout)
    (portfolio,) = report["levels"]["portfolio"]
    assert portfolio["fills"] == 3 and portfolio["realized_pnl"] == pytest.approx(2 * 3.0)

    # a shipped column map by name, on the shipped sample export
    sample = site / "collector" / "data" / "maps" / "ibkr-flex-trades.csv"
    mapped = _run(stratmon, "report", sample, "--map", "ibkr-flex-trades", "--format", "json", cwd=elsewhere, env=env)
    assert report_fills(json.loads(mapped.stdout)) > 0 and "rejected" not in mapped.stderr


def report_fills(report: dict[str, dict[str, list[dict[str, float]]]]) -> float:
    return report["levels"]["portfolio"][0]["fills"]


def test_the_docker_image_copies_what_the_package_ships_before_installing_it() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    needed = [d for d in config["package-dir"].values() if d != "."]
    needed += [f for package, files in config["package-data"].items() if config["package-dir"][package] == "."
               for f in files]  # fmt: skip
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    before_install = dockerfile[: dockerfile.index("RUN pip install .")]
    copied = {name for line in re.findall(r"^COPY (.+) \S+$", before_install, re.M) for name in line.split()}
    assert set(needed) <= copied, f"Dockerfile: COPY {sorted(set(needed) - copied)} before `pip install .`"
