"""FIFO rules and round trips (the kernel, collector/engine/kernel.py, applies them per position).

A round trip runs from flat to flat: it is emitted when the position returns to flat, or when a
fill crosses zero (the crossing fill closes the old position and opens the rest on the other
side). Fees are allocated pro rata to the quantity a fill closes and the quantity it opens.

Float tolerance: a lot left with at most QTY_TOL × its original size is closed (the error of
100000.3 − 100000.2 grows with the lot, not with the closing fill), and a round trip whose net PnL
is within PNL_TOL × its traded notional counts as break-even (net_pnl = 0): neither win nor loss.
"""

from __future__ import annotations

from dataclasses import dataclass

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
