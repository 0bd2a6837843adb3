"""InfluxQL reads over `/query` (portable across 1.x, 2.x via DBRP, and 3 Core) into pandas."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import requests

from collector.errors import QueryError as QueryError  # re-exported: callers import it from here
from collector.store.transport import Endpoint

if TYPE_CHECKING:
    import pandas as pd


def _parse_int(text: str) -> int | float:
    """InfluxDB's JSON prints large integral floats without a decimal point (2**64 → 18446744073709552000).

    Beyond the int64 range such digits can only be a float field, so they are read back as the
    float they denote; within it they stay exact integers (timestamps, counters).
    """
    value = int(text)
    return value if -(2**63) <= value < 2**63 else float(text)


def escape_string(value: str) -> str:
    """An InfluxQL single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def escape_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Reader:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.session = requests.Session()
        auth = endpoint.basic_auth
        if auth is not None:
            self.session.auth = auth

    def raw(self, statement: str) -> list[dict[str, Any]]:
        """The `results` list of the JSON answer, after checking every statement for errors."""
        try:
            answer = self.session.post(
                f"{self.endpoint.url}/query",
                data={"db": self.endpoint.database, "q": statement, "epoch": "ns"},
                timeout=self.endpoint.timeout,
            )
        except requests.RequestException as exc:
            raise QueryError(f"cannot reach InfluxDB at {self.endpoint.url}: {exc}") from None
        try:
            payload = json.loads(answer.text, parse_int=_parse_int)
        except ValueError:
            raise QueryError(f"HTTP {answer.status_code} from InfluxDB: {answer.text[:300]}") from None
        if "error" in payload:
            raise QueryError(f"InfluxDB: {payload['error']}")
        results: list[dict[str, Any]] = payload.get("results", [])
        for result in results:
            if "error" in result:
                raise QueryError(f"InfluxDB: {result['error']} (query: {statement})")
        return results

    def query(self, statement: str) -> pd.DataFrame:
        """All series of the statement in one frame: a UTC `time` index when present, tags as columns."""
        import pandas as pd  # here, not at import: `stratmon ingest` reads raw results only (start-up time)

        results = self.raw(statement)
        frames = []
        for result in results:
            for series in result.get("series", []):
                frame = pd.DataFrame(series.get("values", []), columns=series["columns"])
                for tag, value in (series.get("tags") or {}).items():
                    frame[tag] = value
                frames.append(frame)
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if "time" in frame.columns:
            frame["time"] = pd.to_datetime(frame["time"].astype("int64"), unit="ns", utc=True)
            frame = frame.set_index("time")
        return frame

    def close(self) -> None:
        self.session.close()
