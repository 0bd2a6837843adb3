"""Files stratmon ships: the default rules, the example config and the broker/OMS column maps.

In an installed wheel they are package data under `collector/data/` (pyproject.toml maps the
repository's top-level `rules/`, `examples/maps/` and `stratmon.example.yaml` there at build time);
in a source checkout (editable install) they are read where they live in the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Shipped = Literal["rules", "maps", "stratmon.example.yaml"]

_PACKAGE = Path(__file__).resolve().parent
# name under collector/data/ in a wheel → the same file in a source checkout
_CHECKOUT = {"rules": "rules", "maps": "examples/maps", "stratmon.example.yaml": "stratmon.example.yaml"}


def shipped(name: Shipped) -> Path:
    """Path of a shipped file or directory: the wheel's copy, else the source checkout's."""
    packaged = _PACKAGE / "data" / name
    return packaged if packaged.exists() else _PACKAGE.parent / _CHECKOUT[name]


def default_rules(name: str) -> Path:
    """`rules/NAME` of the working directory when it exists (a deployment), else the shipped default."""
    local = Path("rules") / name
    return local if local.exists() else shipped("rules") / name


def shipped_map(name: str) -> Path | None:
    """A shipped column-map profile by bare name (`ibkr-activity` or `ibkr-activity.yaml`), if there is one."""
    if Path(name).name != name:
        return None
    path = shipped("maps") / (name if name.endswith(".yaml") else f"{name}.yaml")
    return path if path.is_file() else None


def shipped_maps() -> list[str]:
    """Names of the shipped column-map profiles."""
    return sorted(p.stem for p in shipped("maps").glob("*.yaml"))
