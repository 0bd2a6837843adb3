"""Column mapping: a broker's or OMS's CSV/JSON records → the fill contract (`--map PROFILE.yaml`, `map:`).

A profile names, per contract field, the input column (or columns joined by a space, e.g. a date
and a time column), how to read timestamps (`ts_format`, strptime; `timezone` for zone-less
local times), which side words mean buy and sell, whether quantities are signed (negative =
sell) and commissions negative, defaults for fields the input lacks (`strategy: manual`), and
contract multipliers per symbol or glob. `section`/`keep` pick the trade rows out of a
multi-section statement (IBKR activity CSVs). Examples: examples/maps/.

Every mapped column must be in the header: a file without them fails at once, naming what was
expected and what was found, instead of one dead letter per row. A sectioned file without its
section fails the same way, and a row without a `keep` column is skipped saying which is missing.
"""

from __future__ import annotations

import calendar
import fnmatch
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from collector.errors import UserError
from collector.model import KNOWN_FIELDS, NS, REQUIRED_FIELDS, RejectedRecord
from collector.sources.records import CsvDecoder, RawRecord
from collector.yamlfile import load_model

DEFAULT_BUY = ("buy", "b", "bot", "bought", "by", "bc", "buy to cover", "cover")
DEFAULT_SELL = ("sell", "s", "sld", "sold", "ss", "sell short", "short", "sh")
_ZONELESS = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?")
_TIME_FIELDS = ("ts", "order_ts")
_NUMBER_FIELDS = ("qty", "price", "fee", "arrival_price", "multiplier")


class SideValues(BaseModel):
    model_config = ConfigDict(extra="forbid")
    buy: list[str] = Field(default_factory=lambda: list(DEFAULT_BUY))
    sell: list[str] = Field(default_factory=lambda: list(DEFAULT_SELL))


class ColumnMap(BaseModel):
    """One mapping profile (YAML)."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str | list[str]] = Field(description="stratmon field → input column (or columns, space-joined)")
    ts_format: str | None = Field(None, description="strptime pattern of ts/order_ts; default RFC 3339 / epoch ns")
    timezone: str | None = Field(None, description="IANA zone of zone-less times (DST handled)")
    side_values: SideValues = SideValues()
    signed_qty: bool = Field(False, description="negative quantity = sell")
    fee_sign: Literal["positive", "negative"] = Field("positive", description="negative: commissions are < 0")
    defaults: dict[str, str | float] = Field(default_factory=dict, description="values of fields the input lacks")
    multipliers: dict[str, float] = Field(default_factory=dict, description="symbol or glob → contract multiplier")
    thousands: str | None = Field(None, max_length=1, description="thousands separator in numbers, e.g. ','")
    fill_id_from: list[str] = Field(
        default_factory=list, description="columns whose values identify a fill when the input has no id"
    )
    section: str | None = Field(None, description="multi-section CSV: rows whose first column is this name")
    keep: dict[str, list[str]] = Field(default_factory=dict, description="only rows whose column has one of the values")
    delimiter: str = Field(",", min_length=1, max_length=1)
    _origin: str = PrivateAttr("the map")

    @property
    def origin(self) -> str:
        """How messages name this profile: `map PATH` when loaded from a file."""
        return self._origin

    @field_validator("columns", "defaults")
    @classmethod
    def _known_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - KNOWN_FIELDS)
        if unknown:
            raise ValueError(f"unknown stratmon field(s) {unknown}; expected some of {sorted(KNOWN_FIELDS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {value!r} (e.g. America/New_York)") from None
        return value

    @field_validator("multipliers")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"multipliers must be > 0, got {bad}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ColumnMap:
        have = set(self.columns) | set(self.defaults)
        if self.fill_id_from:
            have.add("fill_id")
        if self.signed_qty:
            have.add("side")
        missing = [name for name in REQUIRED_FIELDS if name not in have]
        if missing:
            raise ValueError(f"no column or default for required field(s) {missing}")
        return self


def load_map(path: str | Path) -> ColumnMap:
    profile = load_model(path, ColumnMap, "columns, ts_format, timezone, side_values, ...")
    profile._origin = f"map {path}"
    return profile


class Mapper:
    """Applies one profile to the records of one input (fill_id_from counts repeats per input)."""

    def __init__(self, profile: ColumnMap, label: str | None = None) -> None:
        self.profile = profile
        self.label = label or profile.origin
        self.zone = ZoneInfo(profile.timezone) if profile.timezone else None
        self._buy = {v.strip().lower() for v in profile.side_values.buy}
        self._sell = {v.strip().lower() for v in profile.side_values.sell}
        self._globs = [(k, v) for k, v in profile.multipliers.items() if any(c in k for c in "*?[")]
        self._repeats: Counter[str] = Counter()

    # ---- header --------------------------------------------------------------------------------
    def expected_columns(self) -> list[str]:
        names: list[str] = []
        for column in self.profile.columns.values():
            names.extend([column] if isinstance(column, str) else column)
        names.extend(self.profile.keep)
        names.extend(self.profile.fill_id_from)
        return list(dict.fromkeys(names))

    def check_header(self, header: list[str], source: str) -> None:
        missing = [c for c in self.expected_columns() if c not in header]
        if missing:
            raise UserError(
                f"{source}: the header lacks column(s) {missing} that {self.label} maps; "
                f"expected {self.expected_columns()}, found {header}"
            )

    # ---- records -------------------------------------------------------------------------------
    def skip_reason(self, row: Mapping[str, Any]) -> str | None:
        """Why a row is not a fill (a subtotal, a closed-lot line), or None to map it."""
        for column, values in self.profile.keep.items():
            if column not in row:  # a file of another layout: say everything it lacks
                missing = [c for c in self.expected_columns() if c not in row]
                return f"the record lacks column(s) {missing} that the map expects"
            if str(row[column]).strip() not in values:
                return f"{column} is {row.get(column)!r}, not one of {values}"
        return None

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The contract record of one input row; RejectedRecord names what is wrong."""
        profile = self.profile
        out: dict[str, Any] = {}
        for name, column in profile.columns.items():
            value = row.get(column) if isinstance(column, str) else _join(row, column)
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                continue
            out[name] = value
        for name, value in profile.defaults.items():
            out.setdefault(name, value)
        for name in _NUMBER_FIELDS:
            if isinstance(out.get(name), str) and profile.thousands:
                out[name] = out[name].replace(profile.thousands, "")
        for name in _TIME_FIELDS:
            if name in out:
                out[name] = self._time(out[name], name)
        if "fill_id" not in out and profile.fill_id_from:
            out["fill_id"] = self._derived_id(row)
        self._side_and_qty(out)
        if "fee" in out and profile.fee_sign == "negative":
            out["fee"] = -_to_float(out["fee"], "fee")
        if "multiplier" not in out and profile.multipliers and isinstance(out.get("symbol"), str):
            multiplier = self._multiplier(out["symbol"])
            if multiplier is not None:
                out["multiplier"] = multiplier
        return out

    def map_record(self, record: RawRecord) -> RawRecord:
        """The record with contract data, or its error, or marked skipped (in place)."""
        if record.error is None and record.skipped is None:
            if not isinstance(record.data, Mapping):
                record.error = f"expected an object, got {type(record.data).__name__}"
            elif (reason := self.skip_reason(record.data)) is not None:
                record.skipped = reason
            else:
                try:
                    record.data = self.apply(record.data)
                except RejectedRecord as exc:
                    record.error = str(exc)
        return record

    def csv_decoder(self, name: str) -> CsvDecoder:
        """A CSV decoder for this profile's layout (delimiter, section) that checks the header against it."""
        return CsvDecoder(name, self.check_header, self.profile.delimiter, self.profile.section, self.label)

    def _side_and_qty(self, out: dict[str, Any]) -> None:
        side = out.get("side")
        if isinstance(side, str):
            word = side.strip().lower()
            if word in self._buy:
                out["side"] = "buy"
            elif word in self._sell:
                out["side"] = "sell"
            else:
                raise RejectedRecord(
                    f"side {side!r} is not one of buy {sorted(self._buy)} or sell {sorted(self._sell)} ({self.label})"
                )
        if not self.profile.signed_qty or "qty" not in out:
            return
        qty = _to_float(out["qty"], "qty")
        if qty == 0:
            raise RejectedRecord("qty must be > 0, got 0.0")
        by_sign = "buy" if qty > 0 else "sell"
        if "side" in out and out["side"] != by_sign:
            raise RejectedRecord(f"side {side!r} disagrees with the signed quantity {out['qty']!r}")
        out["side"], out["qty"] = by_sign, abs(qty)

    def _time(self, value: Any, key: str) -> Any:
        """Epoch ns from ts_format and/or the profile's zone; other values go to the contract's parser."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        fmt = self.profile.ts_format
        if fmt is not None:
            try:
                moment = datetime.strptime(text, fmt)
            except ValueError:
                raise RejectedRecord(f"{key} {text!r} does not match ts_format {fmt!r}") from None
        else:
            match = _ZONELESS.fullmatch(text)
            if match is None:
                return text  # RFC 3339 with a zone, or epoch ns: the contract reads it
            if self.zone is None:
                raise RejectedRecord(
                    f"{key} {text!r} has no time zone; add Z or ±HH:MM, or set timezone: in {self.label}"
                )
            year, month, day, hour, minute, second, frac = match.groups()
            try:
                moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
            except ValueError as exc:
                raise RejectedRecord(f"{key} {text!r} is not a valid date/time: {exc}") from None
            moment = moment.replace(microsecond=0)
            return self._to_ns(moment, key, text) + (int(frac.ljust(9, "0")) if frac else 0)
        return self._to_ns(moment, key, text)

    def _to_ns(self, moment: datetime, key: str, text: str) -> int:
        fraction_ns = moment.microsecond * 1000
        moment = moment.replace(microsecond=0)
        if moment.tzinfo is None:
            if self.zone is None:
                raise RejectedRecord(f"{key} {text!r} has no time zone; set timezone: in {self.label}")
            local = moment.replace(tzinfo=self.zone)  # fold=0: an ambiguous fall-back time is the first one
            back = local.astimezone(ZoneInfo("UTC")).astimezone(self.zone).replace(tzinfo=None)
            if back != moment:
                raise RejectedRecord(f"{key} {text!r} does not exist in {self.profile.timezone} (a DST gap)")
            offset = local.utcoffset() or timedelta(0)
            seconds = calendar.timegm(moment.timetuple()) - int(offset.total_seconds())
        else:
            seconds = calendar.timegm(moment.utctimetuple())
        return seconds * NS + fraction_ns

    def _derived_id(self, row: Mapping[str, Any]) -> str:
        """A stable id from the identifying columns; the n-th identical row of an input gets #n."""
        key = "\x1f".join(str(row.get(c, "")).strip() for c in self.profile.fill_id_from)
        self._repeats[key] += 1
        digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:20]
        return f"{digest}#{self._repeats[key]}"

    def _multiplier(self, symbol: str) -> float | None:
        exact = self.profile.multipliers.get(symbol)
        if exact is not None:
            return exact
        return next((value for pattern, value in self._globs if fnmatch.fnmatchcase(symbol, pattern)), None)


def _join(row: Mapping[str, Any], columns: list[str]) -> str | None:
    parts = [str(row[c]).strip() for c in columns if row.get(c) not in (None, "")]
    return " ".join(parts) if parts else None


def _to_float(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RejectedRecord(f"{key} must be a number, got {value!r}") from None


def map_records(records: Iterable[RawRecord], mapper: Mapper) -> Iterator[RawRecord]:
    """Decoded records through the mapping; a row that is not a fill is marked skipped."""
    for record in records:
        yield mapper.map_record(record)
