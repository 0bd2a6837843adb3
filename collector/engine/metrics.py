"""One pure function per metric (definitions in docs/metrics.md). `None` = undefined, never NaN/inf.

Trade metrics take round-trip aggregates; Sharpe/Sortino take the moments of daily equity
changes, which `DailyMoments` maintains incrementally. Conventions follow empyrical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRADING_DAYS = 252
# Daily-return volatility below this (a ten-billionth of capital) is float rounding, not risk.
NOISE_FLOOR = 1e-10


@dataclass(frozen=True, slots=True)
class MinSample:
    """The sample an estimate needs before it is reported (config `metrics.min_days`, `metrics.min_round_trips`).

    Sharpe and Sortino need `days` periods of the day basis; the trade statistics (win rate, profit
    factor, expectancy, average win/loss, payoff ratio) need `round_trips` closed round trips.
    Below that they are None: a Sharpe of 30 after five days or a profit factor of 155 on five
    trades says nothing about the strategy. 0 reports them as soon as they are defined.
    """

    days: int = 20
    round_trips: int = 30

    def enough_days(self, days: int) -> bool:
        return days >= self.days

    def enough_trips(self, trips: int) -> bool:
        return trips >= self.round_trips


def equity(realized_pnl: float, unrealized_pnl: float, fees: float) -> float:
    """equity = realized_pnl + unrealized_pnl − fees (fees cumulative, positive)."""
    return realized_pnl + unrealized_pnl - fees


def win_rate(wins: int, trades: int) -> float | None:
    """wins / trades over closed round trips; None without trades."""
    return wins / trades if trades else None


def profit_factor(gross_wins: float, gross_losses: float) -> float | None:
    """Σ winning net PnL / |Σ losing net PnL|; None without losses."""
    return gross_wins / -gross_losses if gross_losses < 0 else None


def expectancy(net_pnl_sum: float, trades: int) -> float | None:
    """Mean net PnL per closed round trip (currency)."""
    return net_pnl_sum / trades if trades else None


def average_win(gross_wins: float, wins: int) -> float | None:
    """Mean net PnL of winning round trips (≥ 0)."""
    return gross_wins / wins if wins else None


def average_loss(gross_losses: float, losses: int) -> float | None:
    """Mean net PnL of losing round trips (≤ 0)."""
    return gross_losses / losses if losses else None


def payoff_ratio(avg_win: float | None, avg_loss: float | None) -> float | None:
    """avg_win / |avg_loss|; None when either is undefined."""
    if avg_win is None or avg_loss is None or avg_loss == 0:
        return None
    return avg_win / -avg_loss


def nav(equity_now: float, capital_base: float) -> float | None:
    """Net asset value = capital base + equity (cumulative PnL net of fees); None without a capital base."""
    return capital_base + equity_now if capital_base > 0 else None


def drawdown_pct(drawdown: float, capital_base: float, peak: float) -> float | None:
    """drawdown / peak NAV = (peak − equity) / (capital base + peak) (a fraction: 0.02 = 2% below the peak).

    `peak` is the peak equity (≥ 0: equity starts at 0), so capital base + peak is the highest NAV so far.
    """
    top = capital_base + peak
    return drawdown / top if capital_base > 0 and top > 0 else None


def return_cum(equity_now: float, capital_base: float) -> float | None:
    """equity / capital base."""
    return equity_now / capital_base if capital_base > 0 else None


def sharpe_ratio(mean: float, std: float, n: int, periods_per_year: int = TRADING_DAYS) -> float | None:
    """mean(r) / std(r, ddof=1) · √periods_per_year, risk-free 0 (empyrical `sharpe_ratio`).

    `mean` and `std` are of the n daily returns; None with fewer than 2 days or no volatility.
    """
    if n < 2 or not std > NOISE_FLOOR:
        return None
    return mean / std * math.sqrt(periods_per_year)


def sortino_ratio(mean: float, downside: float, n: int, periods_per_year: int = TRADING_DAYS) -> float | None:
    """mean(r) / downside · √periods_per_year, downside = sqrt(mean(min(r, 0)²)) (empyrical, MAR 0).

    The downside deviation averages over all n periods, positive ones counting as 0.
    None with fewer than 2 days or no downside.
    """
    if n < 2 or not downside > NOISE_FLOOR:
        return None
    return mean / downside * math.sqrt(periods_per_year)


def weighted_mean(weighted_sum: float, weight: float) -> float | None:
    """Σ wᵢxᵢ / Σ wᵢ (e.g. notional-weighted slippage in bps); None without weight."""
    return weighted_sum / weight if weight > 0 else None


def finite_or_none(value: float | None) -> float | None:
    """The edge guard: metrics leave the engine as finite floats or None."""
    return value if value is not None and math.isfinite(value) else None
