"""Which deployment a state directory belongs to, so a checkpoint is continued only by the one that wrote it.

`state_dir/collector/identity.json` holds the database and the config file (absolute path, or
null for settings from defaults and the environment) of the first run in that directory. A later
run with another database or another config file is refused with one line instead of merging,
say, a simulated desk's positions into real fills. The InfluxDB URL is not part of it (a private
influxd gets a new port at every start), nor is the config's content (capital edits apply to a
continued checkpoint by design). A state directory from before identities existed is adopted.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from collector.config import Settings
from collector.errors import UserError

FILE = "identity.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    database: str
    config: str | None  # resolved path of the config file

    @classmethod
    def of(cls, settings: Settings) -> Identity:
        path = settings.config_path
        return cls(settings.influx.database, None if path is None else str(Path(path).resolve()))

    def describe(self) -> str:
        return f"database {self.database!r}, config {self.config or '(none: defaults and environment)'}"


def read(directory: Path) -> Identity | None:
    """The recorded identity; None when there is none (or it is unreadable: it is written again)."""
    try:
        data = json.loads((directory / FILE).read_text(encoding="utf-8"))
        return Identity(str(data["database"]), None if data["config"] is None else str(data["config"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim(directory: Path, mine: Identity) -> None:
    """Record `mine` as the owner of `directory`, or raise UserError when another deployment owns it."""
    theirs = read(directory)
    if theirs is None:
        tmp = directory / (FILE + ".tmp")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(asdict(mine)) + "\n", encoding="utf-8")
            tmp.replace(directory / FILE)
        except OSError as exc:  # e.g. a full state disk: the run goes on, and the next start records it
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            log.warning("cannot record the state dir's owner in %s: %s", directory / FILE, exc.strerror)
        return
    if theirs != mine:
        raise UserError(
            f"{directory} holds the state of another deployment ({theirs.describe()}); this run has "
            f"{mine.describe()}, so its checkpoint is not continued: set another state_dir, or delete "
            f"{directory / FILE} to adopt that state"
        )
