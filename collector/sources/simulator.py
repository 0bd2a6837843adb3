"""`simulator` source: a desk of 31 named strategies trading random-walk markets across N accounts.

Each strategy follows an archetype (trend, mean reversion, market making, stat-arb, breakout, ...)
with its own trade frequency, holding time, costs and latency. Its edge is a better exit than the
market (the book's own fair value at the exit, so slippage against the arrival price stays a
cost); market moves during the holding time are the noise. Regimes switch at random: a decayed
strategy loses its edge for a while (some archetypes decay more easily), so alerts and the
optimizer have something real to find.

Calibration (`calibration`): `realistic` gives every strategy a healthy-regime annualized Sharpe
drawn from [0.5, 2.5] — the edge per round trip is solved from the archetype's trade rate, holding
time, costs and the volatility of its symbols: net edge = SR/√252 · σ_rt / √(round trips per day);
`null` gives none an edge (gross edge = costs, in every regime) with the same volatility, regimes
and fills, to measure what an optimizer does when there is nothing to find. The Sharpe is the
strategy's, over all its accounts: each book's is SR · √(A + A(A − 1)ρ) / A for A accounts.

Correlation (`correlation` ρ, default 0): a share ρ of every book's daily PnL variance is one shock
common to the whole desk that day (a pure function of the seed and the day), as strategies of one
desk share factor exposures; with ρ = 0 the books are independent and a desk of many strategies
shows a Sharpe no real desk has (31 strategies at 1.5 each: ~8).

Common random numbers: markets and regimes draw from one generator, every book from its own, and a
book draws the same numbers whatever its size (all of an entry's draws, its exit's included, are
made when the entry is considered), so two runs of a seed with different sizes see the same trades,
scaled. Quantities are multiples of 1/64 lot, so partial fills add up exactly. Everything is
deterministic for a seed; the state is plain data (the checkpoint token).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.config import SimulatorSourceConfig
from collector.errors import UserError
from collector.model import NS, Fill, Mark
from collector.optimize.store import ParameterStore
from collector.sources.base import Batch, Checker, Event, Outlet, Source

DAY_S = 86_400.0
YEAR_S = 365.0 * DAY_S
TRADING_DAYS = 252.0
LOT = 64.0  # quantities are multiples of 1/LOT: exact in binary floating point
FEE_RATE = 0.00002  # of notional, per fill
HEALTHY_SHARPE = (0.5, 2.5)  # annualized, healthy regime, `realistic` calibration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archetype:
    trades_per_day: float  # entry attempts per simulated day per book-symbol, before `activity`
    hold_s: float  # mean holding time
    slippage_bps: float  # mean cost vs arrival price per fill
    latency_ms: float  # median order-to-fill latency
    decay_per_day: float  # hazard of losing the edge
    symbols: int  # symbols each book trades


@dataclass(frozen=True)
class Tunable:
    """A strategy parameter whose best value drifts: `healthy` in the normal regime, `decayed` in the other.

    The edge scales with how close the parameter is to the regime's best value: at it, the full
    edge; `width` or further away, the decayed regime's losing edge. So a decayed regime is partly
    a stale parameter, which retuning can recover.
    """

    name: str
    healthy: float
    decayed: float
    width: float

    def fit(self, value: float, decayed: bool) -> float:
        best = self.decayed if decayed else self.healthy
        return max(0.0, 1.0 - abs(value - best) / self.width)


TUNABLE: dict[str, Tunable] = {
    "trend": Tunable("lookback", 50, 90, 40),
    "momentum": Tunable("lookback", 50, 90, 40),
    "breakout": Tunable("lookback", 50, 90, 40),
    "meanrev": Tunable("entry_z", 2.0, 3.0, 1.0),
    "pairs": Tunable("entry_z", 2.0, 3.0, 1.0),
    "statarb": Tunable("entry_z", 2.0, 3.0, 1.0),
}


@dataclass(frozen=True)
class Controls:
    """What the desk is told to do (the optimizer's parameter store): size, on/off, strategy parameters."""

    size: float = 1.0
    enabled: bool = True
    params: dict[str, float] = field(default_factory=dict)


ARCHETYPES: dict[str, Archetype] = {
    "trend": Archetype(6, 4 * 3600, 1.5, 40, 0.008, 2),
    "meanrev": Archetype(30, 1800, 1.0, 25, 0.012, 2),
    "mm": Archetype(300, 90, 0.2, 3, 0.005, 1),
    "statarb": Archetype(60, 1200, 0.8, 12, 0.015, 3),
    "breakout": Archetype(8, 2 * 3600, 2.0, 50, 0.02, 2),
    "momentum": Archetype(12, 5400, 1.2, 35, 0.012, 2),
    "pairs": Archetype(20, 3600, 0.9, 20, 0.01, 2),
    "carry": Archetype(2, 12 * 3600, 1.0, 80, 0.005, 1),
    "news": Archetype(5, 900, 4.0, 8, 0.025, 3),
    "volarb": Archetype(15, 2700, 1.1, 30, 0.01, 2),
}

# (strategy name, archetype): 31 strategies, as on the desk.
STRATEGIES: tuple[tuple[str, str], ...] = (
    ("trend_es", "trend"),
    ("trend_nq", "trend"),
    ("trend_cl", "trend"),
    ("trend_gc", "trend"),
    ("trend_fx", "trend"),
    ("meanrev_spx", "meanrev"),
    ("meanrev_ndx", "meanrev"),
    ("meanrev_rates", "meanrev"),
    ("meanrev_energy", "meanrev"),
    ("mm_es", "mm"),
    ("mm_nq", "mm"),
    ("mm_single_names", "mm"),
    ("statarb_tech", "statarb"),
    ("statarb_banks", "statarb"),
    ("statarb_energy", "statarb"),
    ("breakout_es", "breakout"),
    ("breakout_metals", "breakout"),
    ("breakout_fx", "breakout"),
    ("momentum_xsec", "momentum"),
    ("momentum_sector", "momentum"),
    ("momentum_intraday", "momentum"),
    ("pairs_tech", "pairs"),
    ("pairs_energy", "pairs"),
    ("pairs_rates", "pairs"),
    ("carry_fx", "carry"),
    ("carry_rates", "carry"),
    ("news_earnings", "news"),
    ("news_macro", "news"),
    ("volarb_index", "volarb"),
    ("volarb_single", "volarb"),
    ("trend_agri", "trend"),
)

STYLE_OF = dict(STRATEGIES)

# (symbol, start price, annual volatility, contract multiplier)
MARKETS: tuple[tuple[str, float, float, float], ...] = (
    ("ES", 5100.0, 0.16, 50.0),
    ("NQ", 18000.0, 0.22, 20.0),
    ("YM", 39000.0, 0.15, 5.0),
    ("RTY", 2050.0, 0.24, 50.0),
    ("CL", 78.0, 0.35, 1000.0),
    ("NG", 2.4, 0.60, 10000.0),
    ("GC", 2150.0, 0.15, 100.0),
    ("SI", 25.0, 0.28, 5000.0),
    ("HG", 4.1, 0.24, 25000.0),
    ("ZN", 110.0, 0.06, 1000.0),
    ("ZB", 118.0, 0.12, 1000.0),
    ("6E", 1.08, 0.07, 125000.0),
    ("6J", 0.0067, 0.10, 12500000.0),
    ("6B", 1.26, 0.08, 62500.0),
    ("AAPL", 185.0, 0.25, 1.0),
    ("MSFT", 410.0, 0.24, 1.0),
    ("NVDA", 880.0, 0.50, 1.0),
    ("AMZN", 178.0, 0.32, 1.0),
    ("GOOG", 150.0, 0.30, 1.0),
    ("META", 490.0, 0.38, 1.0),
    ("JPM", 195.0, 0.22, 1.0),
    ("XOM", 115.0, 0.26, 1.0),
    ("BAC", 37.0, 0.27, 1.0),
    ("TSLA", 175.0, 0.60, 1.0),
)

TARGET_NOTIONAL = 250_000.0  # per entry, before the account's scale


def market(index: int) -> tuple[str, float, float, float]:
    if index < len(MARKETS):
        return MARKETS[index]
    return (f"SYM{index:03d}", 20.0 + 7.0 * (index % 40), 0.2 + 0.01 * (index % 30), 1.0)


@dataclass
class _Open:
    """An open position and everything its exit needs (drawn when it was entered)."""

    direction: int  # +1 long, -1 short
    qty: float
    exit_ns: int
    order: str
    exit_slip_bps: float
    exit_latency_ns: int


@dataclass
class _Book:
    account: str
    strategy: str
    style: str
    symbols: list[int]
    scale: float
    net_edge_bps: float  # healthy-regime edge per round trip after costs
    cost_bps: float  # expected costs per round trip (slippage both ways + fees)
    rng: random.Random
    open: dict[int, _Open] = field(default_factory=dict)
    factor_bps: float = 0.0  # a round trip's loading on the desk's daily shock (config `correlation`)


def round_trips_per_day(style: Archetype, activity: float, step_s: float) -> float:
    """Round trips per day of one book-symbol when the simulation advances in steps of `step_s`.

    A position closes at the first step after its exit time, and a new entry is tried once per step
    after that with probability p = 1 − exp(−rate·step): a cycle takes max(1, ½ + hold/step) + 1/p steps.
    """
    rate = style.trades_per_day * activity / DAY_S
    p = 1 - math.exp(-rate * step_s)
    return DAY_S / (step_s * (max(1.0, 0.5 + style.hold_s / step_s) + 1 / p))


class Simulation:
    """The pure simulation: `step(dt)` advances the clock and returns the fills and marks it produced.

    `step_s` is the step the calibration assumes (the trade rate depends on it); by default the
    source's `tick × speed`, between 1 s and 1 h.
    """

    def __init__(self, config: SimulatorSourceConfig, start_ns: int, step_s: float | None = None) -> None:
        self.config = config
        rng = random.Random(config.seed)
        calibration = random.Random(f"{config.seed}-calibration")
        self.markets = [market(i) for i in range(config.symbols)]
        strategies = STRATEGIES[: config.strategies]
        step = step_s if step_s is not None else min(max(config.tick * config.speed, 1.0), 3600.0)
        sharpe = {name: calibration.uniform(*HEALTHY_SHARPE) for name, _ in strategies}
        self.books: list[_Book] = []
        for a in range(config.accounts):
            account = f"ACC{a + 1:02d}"
            scale = 0.5 + 1.5 * rng.random()
            for name, style_name in strategies:
                style = ARCHETYPES[style_name]
                symbols = rng.sample(range(config.symbols), min(style.symbols, config.symbols))
                cost = 2 * style.slippage_bps + 2 * FEE_RATE * 10_000
                # σ of one round trip in bps: the market's move over the holding time, RMS over the book's symbols
                sigma_rt = 10_000 * math.sqrt(
                    sum(self.markets[s][2] ** 2 for s in symbols) / len(symbols) * style.hold_s / YEAR_S
                )
                trips = round_trips_per_day(style, config.activity, step) * len(symbols)
                # a share ρ of the book's daily PnL variance is one shock common to the desk each day:
                # n trips a day load F = σ_rt·√(ρ / ((1 − ρ)·n)) each, so var = n·σ_rt² / (1 − ρ), and the edge
                # grows by 1/√(1 − ρ) to keep the book's Sharpe at its draw
                # and the strategy (its books in every account, correlated by ρ) is what has the drawn Sharpe:
                # SR_strategy = SR_book · A / √(A + A(A − 1)·ρ) for A accounts of equal size
                rho, n = config.correlation, config.accounts
                book_sharpe = sharpe[name] * math.sqrt(n + n * (n - 1) * rho) / n
                edge = book_sharpe / math.sqrt(TRADING_DAYS) * sigma_rt / math.sqrt(trips) / math.sqrt(1 - rho)
                if config.calibration == "null":
                    edge = 0.0
                book_rng = random.Random(f"{config.seed}-{account}-{name}")
                book = _Book(account, name, style_name, symbols, scale, edge, cost, book_rng)
                book.factor_bps = sigma_rt * math.sqrt(rho / ((1 - rho) * trips)) if trips > 0 else 0.0
                self.books.append(book)
        self.healthy_sharpe = sharpe
        self.clock_ns = start_ns
        self.prices = [m[1] for m in self.markets]
        self.decayed = {name: False for name, _ in strategies}
        self.seq = 0
        # markets and regimes draw from their own generator, so what the desk does (e.g. a closed
        # loop changing sizes) never changes the market it trades in
        self.market_rng = random.Random(f"{config.seed}-market")
        self._shock = (-1, 0.0)  # (UTC day, the desk's common shock that day), derived from the seed and the day
        # closed loop: (strategy, account) → what the parameter store says, e.g. size and parameters
        self.controls: Callable[[str, str], Controls] | None = None

    def expected_fills_per_sim_second(self) -> float:
        """A book-symbol waits 1/rate flat, then holds: 1 / (1/rate + hold) round trips per second,
        at about 2.6 fills each (entries are sometimes split)."""
        total = 0.0
        for book in self.books:
            style = ARCHETYPES[book.style]
            rate = style.trades_per_day * self.config.activity / DAY_S
            total += len(book.symbols) / (1 / rate + style.hold_s)
        return total * 2.6

    def token(self) -> dict[str, Any]:
        """The whole state as plain data (JSON-able): clock, prices, regimes, open positions, generators."""
        return {
            "clock_ns": self.clock_ns,
            "prices": list(self.prices),
            "decayed": dict(self.decayed),
            "seq": self.seq,
            "market_rng": _rng_state(self.market_rng),
            "books": [
                {
                    "rng": _rng_state(book.rng),
                    "open": [[sym, *_open_fields(o)] for sym, o in book.open.items()],
                }
                for book in self.books
            ],
        }

    def restore(self, token: dict[str, Any]) -> None:
        """Continue from `token()`; raises ValueError when it does not fit this configuration."""
        try:
            books = token["books"]
            if len(books) != len(self.books) or set(token["decayed"]) != set(self.decayed):
                raise ValueError("the simulator checkpoint is of another desk (accounts or strategies differ)")
            prices = [float(p) for p in token["prices"]]
            if len(prices) != len(self.prices):
                raise ValueError("the simulator checkpoint has another number of symbols")
            for book, saved in zip(self.books, books, strict=True):
                book.rng.setstate(_rng_from(saved["rng"]))
                book.open = {
                    int(row[0]): _Open(int(row[1]), float(row[2]), int(row[3]), str(row[4]), float(row[5]), int(row[6]))
                    for row in saved["open"]
                }
            self.market_rng.setstate(_rng_from(token["market_rng"]))
            self.prices = prices
            self.decayed = {str(k): bool(v) for k, v in token["decayed"].items()}
            self.clock_ns, self.seq = int(token["clock_ns"]), int(token["seq"])
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"the simulator checkpoint is damaged: {exc!r}") from exc

    def step(self, dt_s: float) -> list[Event]:
        market = self.market_rng
        start = self.clock_ns
        end = start + int(dt_s * NS)
        events: list[Event] = []
        for name in self.decayed:  # regime switches
            hazard = ARCHETYPES[STYLE_OF[name]].decay_per_day
            rate = 0.15 if self.decayed[name] else hazard  # decayed strategies recover slowly
            if market.random() < 1 - math.exp(-rate * dt_s / DAY_S):
                self.decayed[name] = not self.decayed[name]
        for i, (symbol, _, vol, _) in enumerate(self.markets):
            sigma = vol * math.sqrt(dt_s / YEAR_S)
            self.prices[i] *= math.exp(sigma * market.gauss(0, 1) - 0.5 * sigma * sigma)
            events.append(Mark(ts=end, symbol=symbol, price=_tick(self.prices[i])))
        day = start // (86_400 * NS)
        if self._shock[0] != day:  # a pure function of (seed, day): a restored simulation continues exactly
            self._shock = (day, random.Random(f"{self.config.seed}-shock-{day}").gauss(0, 1))
        for book in self.books:
            self._trade(book, start, end, dt_s, events)
        self.clock_ns = end
        events.sort(key=lambda e: e.ts)
        return events

    def _trade(self, book: _Book, start: int, end: int, dt_s: float, out: list[Event]) -> None:
        rng = book.rng
        style = ARCHETYPES[book.style]
        rate = style.trades_per_day * self.config.activity / DAY_S
        for sym in book.symbols:
            position = book.open.get(sym)
            if position is not None:
                if position.exit_ns <= end:
                    ts = max(start, position.exit_ns)
                    # the book's fair value at the exit: the market moved by its edge in its favour
                    improvement = book.cost_bps + book.net_edge_bps * self._edge_factor(book)
                    improvement += book.factor_bps * self._shock[1]
                    arrival = _tick(self.prices[sym] * (1 + position.direction * improvement / 10_000))
                    out.append(
                        self._fill(
                            book,
                            sym,
                            -position.direction,
                            position.qty,
                            ts,
                            arrival,
                            position.order,
                            position.exit_slip_bps,
                            position.exit_latency_ns,
                        )
                    )
                    del book.open[sym]
                continue
            if rng.random() >= 1 - math.exp(-rate * dt_s):
                continue
            # every draw of this entry and its exit, whatever the size (common random numbers)
            direction = 1 if rng.random() < 0.5 else -1
            offset = rng.random()
            hold_ns = int(rng.expovariate(1 / style.hold_s) * NS) + 1
            parts = 1 if rng.random() < 0.6 else rng.randint(2, 3)  # partial fills of one order
            slips = [self._slip(rng, style) for _ in range(parts + 1)]
            latencies = [int(rng.lognormvariate(math.log(style.latency_ms), 0.6) * 1e6) for _ in range(parts + 1)]
            controls = self.controls(book.strategy, book.account) if self.controls else Controls()
            size, multiplier = controls.size, self.markets[sym][3]
            lots = math.floor(TARGET_NOTIONAL * book.scale * size / (self.prices[sym] * multiplier) * LOT + 0.5)
            if not controls.enabled or lots < parts:
                continue  # the draws above still happened, so later trades do not depend on controls
            ts = start + int(offset * (end - start))
            order = f"{book.account}-{book.strategy}-{self.seq}"
            part_lots = lots // parts
            arrival = _tick(self.prices[sym])
            for part in range(parts):
                part_qty = (lots - part_lots * (parts - 1) if part == parts - 1 else part_lots) / LOT
                out.append(
                    self._fill(
                        book,
                        sym,
                        direction,
                        part_qty,
                        ts + part * 1_000_000,
                        arrival,
                        order,
                        slips[part],
                        latencies[part],
                    )
                )
            book.open[sym] = _Open(direction, lots / LOT, ts + hold_ns, order, slips[-1], latencies[-1])

    @staticmethod
    def _slip(rng: random.Random, style: Archetype) -> float:
        return rng.gauss(style.slippage_bps, abs(style.slippage_bps) * 0.8 + 0.3)

    def _edge_factor(self, book: _Book) -> float:
        """+1 = the full edge, −0.6 = the decayed regime's loss; tunable strategies in between by fit."""
        decayed = self.decayed[book.strategy]
        tunable = TUNABLE.get(book.style)
        if tunable is None:
            return -0.6 if decayed else 1.0
        controls = self.controls(book.strategy, book.account) if self.controls else Controls()
        value = controls.params.get(tunable.name, tunable.healthy)
        return tunable.fit(value, decayed) * 1.6 - 0.6

    def _fill(
        self,
        book: _Book,
        sym: int,
        direction: int,
        qty: float,
        ts: int,
        arrival: float,
        order: str,
        slip_bps: float,
        latency_ns: int,
    ) -> Fill:
        symbol, _, _, multiplier = self.markets[sym]
        price = _tick(arrival * (1 + direction * slip_bps / 10_000))
        self.seq += 1
        return Fill(
            ts=ts,
            account=book.account,
            strategy=book.strategy,
            symbol=symbol,
            side="buy" if direction > 0 else "sell",
            qty=qty,
            price=price,
            fill_id=f"sim-{self.seq}",
            fee=round(qty * price * multiplier * FEE_RATE, 4),
            order_id=order,
            venue="SIM",
            arrival_price=arrival,
            order_ts=ts - latency_ns,
            multiplier=multiplier,
        )


def _open_fields(position: _Open) -> list[Any]:
    return [
        position.direction,
        position.qty,
        position.exit_ns,
        position.order,
        position.exit_slip_bps,
        position.exit_latency_ns,
    ]


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def _rng_from(saved: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss_next = saved
    return (int(version), tuple(int(x) for x in internal), None if gauss_next is None else float(gauss_next))


def store_controls(store: ParameterStore) -> Callable[[str, str], Controls]:
    """Controls read from the optimizer's parameter store (size × allocation, enabled, parameters)."""

    def controls(strategy: str, account: str) -> Controls:
        size = float(store.get(strategy, account, "size_multiplier", 1.0))
        allocation = float(store.get(strategy, account, "allocation", 1.0))
        tunable = TUNABLE.get(STYLE_OF.get(strategy, ""))
        params = {}
        if tunable is not None:
            params[tunable.name] = float(store.get(strategy, account, tunable.name, tunable.healthy))
        return Controls(size * allocation, bool(store.get(strategy, account, "enabled", True)), params)

    return controls


def _tick(price: float) -> float:
    """Round to 6 significant digits, like a venue's tick grid."""
    return float(f"{price:.6g}")


class SimulatorSource(Source):
    """Runs a `Simulation` in wall-clock steps; the clock runs `speed`× and never passes real time."""

    def __init__(self, config: SimulatorSourceConfig) -> None:
        self.name = config.name
        self.config = config
        self.sim = Simulation(config, time.time_ns() - int(config.backfill * NS))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._parameters_mtime = 0
        per_sim_second = self.sim.expected_fills_per_sim_second()
        self.speed = min(config.speed, config.max_rate / per_sim_second) if per_sim_second else config.speed

    def restore(self, token: object) -> None:
        if not isinstance(token, dict):
            return
        try:
            self.sim.restore(token)
        except ValueError as exc:
            log.warning("simulator %s starts afresh: %s", self.name, exc)

    def _read_parameters(self) -> None:
        """Closed loop: sizes, allocation and on/off from the optimizer's parameter store, when it changes."""
        path = self.config.parameters_file
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._parameters_mtime:
            return
        self._parameters_mtime = mtime
        try:
            store = ParameterStore(path)
        except UserError as exc:  # a hand-edited store: keep trading on the last good one
            log.warning("simulator %s keeps its previous parameters: %s", self.name, exc)
            return
        self.sim.controls = store_controls(store)

    def start(self, outlet: Outlet, checker: Checker) -> None:
        self._thread = threading.Thread(target=self._run, args=(outlet,), name=f"source-{self.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, outlet: Outlet) -> None:
        tick = self.config.tick
        next_step = time.monotonic()
        while not self._stop.is_set():
            self._read_parameters()
            now_ns = time.time_ns()
            behind_s = (now_ns - self.sim.clock_ns) / NS
            dt = min(tick * self.speed, behind_s)  # catch up at `speed`, then run in real time
            if dt > 0:
                events = self.sim.step(dt)
                if not outlet.put(Batch(self.name, events, token=self.sim.token())):
                    return
            next_step += tick
            self._stop.wait(max(0.0, next_step - time.monotonic()))
