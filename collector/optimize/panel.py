"""Daily PnL panels: one row per day, one column per strategy, PnL at today's size (the "unit" size).

The optimizer's statistics and its walk-forward replay work on this panel. It comes from a CSV
(`date,strategy,pnl` plus optional `account,trades,wins,capital`), from fills (through the
engine: the day's change of each book's equity, summed per strategy), or from `perf_1d`. Days a
strategy has no row are NaN (not trading yet, or paused): statistics skip them, the portfolio
counts them as 0.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from collector.engine.engine import Engine
from collector.errors import UserError
from collector.model import Fill, Mark

Array = npt.NDArray[np.float64]
DAY_NS = 86_400 * 1_000_000_000
EPOCH = date(1970, 1, 1)
DEFAULT_CAPITAL = 1_000_000.0
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class Panel:
    days: npt.NDArray[np.int64]  # epoch days, ascending, unique
    strategies: list[str]
    pnl: Array  # (days, strategies), NaN = no row
    trades: Array
    wins: Array
    capital: Array  # (strategies,)
    accounts: dict[str, dict[str, Array]] = field(default_factory=dict)  # strategy → account → its pnl column

    @property
    def returns(self) -> Array:
        """PnL ÷ capital base."""
        out: Array = self.pnl / self.capital
        return out

    def head(self, rows: int) -> Panel:
        """The first `rows` days (look-ahead checks: decisions on a prefix must not change)."""
        return Panel(
            self.days[:rows],
            self.strategies,
            self.pnl[:rows],
            self.trades[:rows],
            self.wins[:rows],
            self.capital,
            {s: {a: col[:rows] for a, col in acc.items()} for s, acc in self.accounts.items()},
        )

    def with_pnl(self, pnl: Array) -> Panel:
        return Panel(self.days, self.strategies, pnl, self.trades, self.wins, self.capital, {})


def epoch_day(text: str) -> int:
    """Days since 1970-01-01 of a YYYY-MM-DD date (only that form: 20240102 is refused, not guessed)."""
    if not DATE.fullmatch(text):
        raise ValueError(text)
    return (date.fromisoformat(text) - EPOCH).days


def day_text(day: int) -> str:
    return date.fromordinal(EPOCH.toordinal() + int(day)).isoformat()


def build(rows: Iterable[tuple[int, str, str, float, float, float]], capital: dict[str, float] | None = None) -> Panel:
    """A panel from (epoch day, strategy, account, pnl, trades, wins) rows; accounts are summed per strategy."""
    data: dict[tuple[int, str, str], tuple[float, float, float]] = {}
    for day, strategy, account, *values in rows:
        key = (day, strategy, account)
        old = data.get(key, (0.0, 0.0, 0.0))
        data[key] = (old[0] + values[0], old[1] + values[1], old[2] + values[2])
    days = np.array(sorted({k[0] for k in data}), dtype=np.int64)
    strategies = sorted({k[1] for k in data})
    if not len(days) or not strategies:
        raise UserError("the history has no rows")
    row_of = {int(d): i for i, d in enumerate(days)}
    col_of = {s: j for j, s in enumerate(strategies)}
    shape = (len(days), len(strategies))
    pnl, trades, wins = np.full(shape, np.nan), np.zeros(shape), np.zeros(shape)
    accounts: dict[str, dict[str, Array]] = {}
    for (day, strategy, account), (day_pnl, day_trades, day_wins) in data.items():
        i, j = row_of[day], col_of[strategy]
        pnl[i, j] = (0.0 if math.isnan(pnl[i, j]) else pnl[i, j]) + day_pnl
        trades[i, j] += day_trades
        wins[i, j] += day_wins
        column = accounts.setdefault(strategy, {}).setdefault(account, np.full(len(days), np.nan))
        column[i] = day_pnl
    caps = np.array([(capital or {}).get(s, DEFAULT_CAPITAL) for s in strategies])
    return Panel(days, strategies, pnl, trades, wins, caps, accounts)


REQUIRED = ("date", "strategy", "pnl")


def from_csv(path: Path) -> Panel:
    """`date,strategy,pnl[,account,trades,wins,capital]` (other columns ignored); errors name file:line."""
    try:
        return _read_csv(path)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8") from None


def _read_csv(path: Path) -> Panel:
    rows: list[tuple[int, str, str, float, float, float]] = []
    book_capital: dict[tuple[str, str], float] = {}  # the latest capital of each strategy × account
    seen: set[tuple[int, str, str]] = set()
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}")
        reader.fieldnames = header
        for line, record in enumerate(reader, start=2):
            try:
                day = epoch_day((record["date"] or "").strip())
            except ValueError:
                raise UserError(f"{path}:{line}: date {record['date']!r}; expected YYYY-MM-DD") from None
            strategy = (record["strategy"] or "").strip()
            account = (record.get("account") or "").strip() or "*"
            if not strategy:
                raise UserError(f"{path}:{line}: strategy is empty")
            if (day, strategy, account) in seen:
                raise UserError(f"{path}:{line}: a second row for {strategy}/{account} on {record['date']}")
            seen.add((day, strategy, account))
            pnl, trades, wins = (_number(path, line, record, key) for key in ("pnl", "trades", "wins"))
            if pnl is None:
                raise UserError(f"{path}:{line}: pnl is empty")
            if (trades or 0) < 0 or (wins or 0) < 0 or (trades is not None and (wins or 0) > trades):
                raise UserError(f"{path}:{line}: trades {trades} / wins {wins}; expected 0 ≤ wins ≤ trades")
            cap = _number(path, line, record, "capital")
            if cap is not None:
                if cap <= 0:
                    raise UserError(f"{path}:{line}: capital must be > 0, got {cap}")
                book_capital[(strategy, account)] = cap
            rows.append((day, strategy, account, pnl, trades or 0.0, wins or 0.0))
    if not rows:
        raise UserError(f"{path}: no data rows")
    capital: dict[str, float] = {}
    for (strategy, _), cap in book_capital.items():
        capital[strategy] = capital.get(strategy, 0.0) + cap
    return build(rows, capital or None)


def _number(path: Path, line: int, record: dict[str, str | None], key: str) -> float | None:
    text = (record.get(key) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}:{line}: {key} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{path}:{line}: {key} {text!r} is not finite")
    return value


def from_fills(events: Sequence[Fill | Mark], engine: Engine) -> Panel:
    """Daily PnL per book from the engine: the change of each book's equity over each UTC day."""
    rows: list[tuple[int, str, str, float, float, float]] = []
    last: dict[tuple[str, str], tuple[float, int, int]] = {}
    day: int | None = None

    def close(day_index: int) -> None:
        for key, series in engine.series.items():
            if key[0] != "book":
                continue
            book = (series.strategy, series.account)
            equity, trades, wins = last.get(book, (0.0, 0, 0))
            rows.append(
                (day_index, book[0], book[1], series.equity - equity, series.trades - trades, series.wins - wins)
            )
            last[book] = (series.equity, series.trades, series.wins)

    start = 0  # events of one UTC day are booked in one engine call
    for index, event in enumerate(events):
        if day is not None and event.ts // DAY_NS > day:
            engine.on_events(events[start:index])
            start = index
            close(day)
        day = event.ts // DAY_NS
    engine.on_events(events[start:])
    if day is None:
        raise UserError("no fills were accepted")
    close(day)
    capital: dict[str, float] = {}
    for strategy, account in last:
        capital[strategy] = capital.get(strategy, 0.0) + engine.capital_by_account.get(account, engine.default_capital)
    return build(rows, capital)
