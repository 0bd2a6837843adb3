"""FIX 4.2 / 4.4 / 5.0SP2 ExecutionReports (35=8) → fill-contract records, from logs or a live session.

A log line holds one or more messages, each starting at `8=FIX`, fields separated by SOH, `|` or
`^A`; anything before the first `8=` (a timestamp, "incoming:", a QuickFIX prefix) is ignored.
Checksums are not verified: logs often replace SOH by `|`, which changes them.

Trades: ExecType(150) F (4.4, 5.0), or 150=1/2 with ExecTransType(20)=0 (4.2). Busts: 150=H
(4.4+) or 20=1 (4.2); corrections: 150=G or 20=2; both reference ExecRefID(19). Every other
ExecutionReport (new, canceled, replaced, rejected, pending, status …) and every other message
type is a skip: counted, not dead-lettered.

Fields: ExecID(17) → fill_id, Account(1) → account, Symbol(55) → symbol (with
MaturityMonthYear(200) appended as `ES.202403`, since two contract months are two positions),
Side(54) → side, LastQty(32; LastShares in 4.2) → qty, LastPx(31) → price, TransactTime(60) → ts,
Commission(12) with CommType(13) → fee, OrderID(37) → order_id (ClOrdID(11) when absent),
LastMkt(30) → venue, ContractMultiplier(231) → multiplier, Price(44), else StopPx(99) →
arrival_price. SecurityType(167), CFICode(461), AvgPx(6) and ClOrdID(11) are kept in the record
under their names (counted as extra fields).
FIX has no strategy: it comes from a configured tag, else the `strategy` default.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector.model import NS
from collector.sources.records import RawRecord

# 3 buy minus, 4 sell plus, 5/6 sell short (exempt)
_SIDES = {"1": "buy", "3": "buy", "2": "sell", "4": "sell", "5": "sell", "6": "sell"}
_TRADE_42 = {"1", "2"}  # partial fill, fill (ExecTransType 20 says new / cancel / correct)
_ACTION_42: dict[str | None, str | None] = {"0": None, "1": "cancel", "2": "correct"}
_OLD_VERSIONS = ("FIX.4.0", "FIX.4.1", "FIX.4.2")
_ACTION = {"F": None, "H": "cancel", "G": "correct"}
_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_BEGIN = re.compile(r"(?<![0-9=])8=FIX")  # not inside a field: 58=8=FIX… in a Text, or 1058=FIX…
_EXTRA = {"167": "security_type", "461": "cfi_code", "6": "avg_px", "11": "cl_ord_id", "35": "msg_type"}


@dataclass
class FixFields:
    """Where the fields FIX lacks come from."""

    strategy_tag: int | None = None
    defaults: dict[str, str] = field(default_factory=lambda: {"strategy": "fix"})


def split_messages(line: bytes) -> list[list[tuple[str, str]]]:
    """The messages of one log line as (tag, value) lists."""
    text = line.decode("utf-8", "replace")
    starts = [m.start() for m in _BEGIN.finditer(text)]
    messages = []
    for i, start in enumerate(starts):
        body = text[start : starts[i + 1] if i + 1 < len(starts) else len(text)]
        sep = "\x01" if "\x01" in body else ("^A" if "^A" in body else "|")
        pairs = []
        for part in body.split(sep):
            tag, eq, value = part.strip().partition("=")
            if eq and tag.isdigit():
                pairs.append((tag, value))
        messages.append(pairs)
    return messages


def fix_time(text: str) -> int:
    """UTCTimestamp YYYYMMDD-HH:MM:SS[.sss…] → epoch ns; ValueError when it is not one."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"TransactTime(60) {text!r} is not YYYYMMDD-HH:MM:SS[.sss]")
    year, month, day, hour, minute, second, frac = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    return calendar.timegm(moment.timetuple()) * NS + (int(frac.ljust(9, "0")) if frac else 0)


class Classified:
    """What one ExecutionReport is: a record for the contract, or why it is skipped."""

    __slots__ = ("record", "skip")

    def __init__(self, record: dict[str, Any] | None = None, skip: str | None = None) -> None:
        self.record = record
        self.skip = skip


def classify(tags: Mapping[str, str], fields: FixFields) -> Classified:
    """A fill/bust/correction record, or the skip reason. Invalid values go on to the contract's checks."""
    msg_type = tags.get("35")
    if msg_type != "8":
        return Classified(skip=f"MsgType(35)={msg_type} is not an ExecutionReport")
    exec_type = tags.get("150")
    action: str | None
    if exec_type in _ACTION:
        action = _ACTION[exec_type]
    elif exec_type in _TRADE_42:
        trans = tags.get("20", "0" if tags.get("8", "") in _OLD_VERSIONS else None)
        if trans not in _ACTION_42:
            return Classified(skip=f"ExecType(150)={exec_type} with ExecTransType(20)={trans} is not a trade")
        action = _ACTION_42[trans]
    else:
        return Classified(skip=f"ExecType(150)={exec_type} is not a trade")
    return Classified(record=_record(tags, action, fields))


def _record(tags: Mapping[str, str], action: str | None, fields: FixFields) -> dict[str, Any]:
    record: dict[str, Any] = dict(fields.defaults)
    if (account := tags.get("1")) is not None:
        record["account"] = account
    if fields.strategy_tag is not None and (strategy := tags.get(str(fields.strategy_tag))):
        record["strategy"] = strategy
    if (symbol := tags.get("55")) is not None:
        maturity = tags.get("200")
        record["symbol"] = f"{symbol}.{maturity}" if maturity else symbol
    if (side := tags.get("54")) is not None:
        record["side"] = _SIDES.get(side, f"FIX Side(54)={side}")
    for tag, name in (("17", "fill_id"), ("32", "qty"), ("31", "price"), ("30", "venue"), ("231", "multiplier")):
        if (value := tags.get(tag)) is not None:
            record[name] = value
    order_id = tags.get("37") or tags.get("11")
    if order_id and order_id != "NONE":
        record["order_id"] = order_id
    arrival = tags.get("44") or tags.get("99")
    if arrival:
        record["arrival_price"] = arrival
    if (ts := tags.get("60")) is not None:
        try:
            record["ts"] = fix_time(ts)
        except ValueError:
            record["ts"] = ts  # the contract names the problem
    if (fee := _fee(tags)) is not None:
        record["fee"] = fee
    if action is not None:
        record["action"] = action
        if (ref := tags.get("19")) is not None:
            record["ref_fill_id"] = ref
    for tag, name in _EXTRA.items():
        if tag in tags:
            record[name] = tags[tag]
    return record


def _fee(tags: Mapping[str, str]) -> float | str | None:
    """Commission(12) by CommType(13): 1 per unit (× LastQty), 2 percent (a fraction of notional), 3 absolute."""
    commission = tags.get("12")
    if commission is None:
        return None
    try:
        value = float(commission)
        kind = tags.get("13", "3")
        if kind == "1":
            return value * float(tags.get("32", "0"))
        if kind == "2":
            return value * float(tags.get("32", "0")) * float(tags.get("31", "0"))
        return value
    except ValueError:
        return commission  # not a number: the contract rejects it with the reason


def iter_fix(lines: Iterable[bytes], name: str, fields: FixFields | None = None) -> Iterator[RawRecord]:
    """Records of a FIX log: fills (and busts/corrections) as data, everything else as skips."""
    options = fields or FixFields()
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        messages = split_messages(stripped)
        if not messages:
            yield RawRecord(f"{name}:{lineno}", stripped, skipped="no FIX message on this line")
            continue
        for n, pairs in enumerate(messages):
            source = f"{name}:{lineno}" if len(messages) == 1 else f"{name}:{lineno}#{n + 1}"
            result = classify(dict(pairs), options)
            yield RawRecord(source, stripped, result.record, skipped=result.skip)


def sniff_fix(head: bytes) -> bool:
    """True when the start of a file looks like a FIX log."""
    return b"8=FIX" in head and (b"\x0135=" in head or b"|35=" in head or b"^A35=" in head)
