"""FIFO lots per (account, strategy, symbol), realized PnL per fill, and round trips.

A round trip runs from flat to flat: it is emitted when the position returns to flat, or when a
fill crosses zero (the crossing fill closes the old position and opens the rest on the other
side). Fees are allocated pro rata to the quantity a fill closes and the quantity it opens.

Float tolerance: a lot left with at most QTY_TOL × its original size is closed (the error of
100000.3 − 100000.2 grows with the lot, not with the closing fill), and a round trip whose net PnL
is within PNL_TOL × its traded notional counts as break-even (net_pnl = 0): neither win nor loss.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from collector.model import Fill

# Quantities within this relative tolerance of zero count as zero (float fills like 0.1 + 0.2).
QTY_TOL = 1e-12
# |net PnL| ≤ PNL_TOL × (entry + exit notional) is float noise: the trip broke even.
PNL_TOL = 1e-12


@dataclass(slots=True)
class RoundTrip:
    account: str
    strategy: str
    symbol: str
    direction: int  # +1 long, -1 short
    entry_ts: int
    exit_ts: int
    entry_price: float  # quantity-weighted average of the opening fills
    exit_price: float  # quantity-weighted average of the closing fills
    qty: float
    gross_pnl: float
    fees: float
    net_pnl: float

    @property
    def holding_ns(self) -> int:
        return self.exit_ts - self.entry_ts


@dataclass(slots=True)
class _Cycle:
    """A round trip being built."""

    direction: int
    entry_ts: int
    entry_qty: float = 0.0
    entry_notional: float = 0.0
    exit_qty: float = 0.0
    exit_notional: float = 0.0
    gross: float = 0.0
    fees: float = 0.0


class Position:
    """Open lots of one book in one symbol. `q` = signed Σ qty·multiplier, `c` = signed Σ qty·price·multiplier."""

    __slots__ = ("_cycle", "c", "direction", "lots", "q")

    def __init__(self) -> None:
        # [qty, price, multiplier, original qty], all on `direction`'s side
        self.lots: deque[list[float]] = deque()
        self.direction = 0
        self.q = 0.0
        self.c = 0.0
        self._cycle: _Cycle | None = None

    def apply(self, fill: Fill) -> tuple[float, RoundTrip | None]:
        """Book the fill; returns its realized PnL (gross of fees) and the round trip it completed."""
        sign = 1 if fill.side == "buy" else -1
        qty, price, fee = fill.qty, fill.price, fill.fee
        realized = 0.0
        trip = None
        remaining = qty
        if self.direction == -sign:
            remaining, realized, closed = self._close(qty, price)
            cycle = self._cycle
            assert cycle is not None
            cycle.exit_qty += closed
            cycle.exit_notional += closed * price
            cycle.gross += realized
            cycle.fees += fee * closed / qty
            if not self.lots:
                trip = self._finish(fill)
        if remaining > 0:
            if self.direction == 0:
                self.direction = sign
                self._cycle = _Cycle(sign, fill.ts)
            cycle = self._cycle
            assert cycle is not None
            mult = fill.multiplier
            self.lots.append([remaining, price, mult, remaining])
            self.q += sign * remaining * mult
            self.c += sign * remaining * price * mult
            cycle.entry_qty += remaining
            cycle.entry_notional += remaining * price
            cycle.fees += fee * remaining / qty
        return realized, trip

    def _close(self, qty: float, price: float) -> tuple[float, float, float]:
        """Close up to `qty` FIFO; returns (quantity left over, realized PnL, quantity closed).

        The closed quantity is summed from the lots, not taken as qty − left over: closing a 1e-9 lot
        with a 1e8 fill leaves 1e8 over in float, which would make the closed quantity 0.
        """
        lots, direction = self.lots, self.direction
        remaining, realized, closed = qty, 0.0, 0.0
        while lots and remaining > 0:
            lot = lots[0]
            lot_qty, lot_price, mult, original = lot
            take = remaining
            if lot_qty <= remaining * (1 + QTY_TOL) or lot_qty - remaining <= original * QTY_TOL:
                take = lot_qty
            realized += (price - lot_price) * take * mult * direction
            self.q -= direction * take * mult
            self.c -= direction * take * lot_price * mult
            remaining -= take
            closed += take
            if take == lot_qty:
                lots.popleft()
            else:
                lot[0] = lot_qty - take
        closed = min(closed, qty)  # a dust lot closed whole: its fee share stays at most the fill's fee
        if remaining <= qty * QTY_TOL:
            remaining = 0.0
        if not lots:
            self.q = self.c = 0.0  # exactly flat: no float residue in unrealized PnL
        return remaining, realized, closed

    def _finish(self, fill: Fill) -> RoundTrip:
        cycle = self._cycle
        assert cycle is not None
        self.direction = 0
        self._cycle = None
        net = cycle.gross - cycle.fees
        if abs(net) <= PNL_TOL * (cycle.entry_notional + cycle.exit_notional) * fill.multiplier:
            net = 0.0
        return RoundTrip(
            account=fill.account,
            strategy=fill.strategy,
            symbol=fill.symbol,
            direction=cycle.direction,
            entry_ts=cycle.entry_ts,
            exit_ts=fill.ts,
            entry_price=cycle.entry_notional / cycle.entry_qty,
            exit_price=cycle.exit_notional / cycle.exit_qty,
            qty=cycle.entry_qty,
            gross_pnl=cycle.gross,
            fees=cycle.fees,
            net_pnl=net,
        )
