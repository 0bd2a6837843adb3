"""`simulator` source: a desk of 31 named strategies trading random-walk markets across N accounts.

Each strategy follows an archetype (trend, mean reversion, market making, stat-arb, breakout, ...)
with its own trade frequency, holding time, edge, slippage and latency. Edge shows up as a
better-than-market exit price; market moves during the holding time are the noise. Regimes
switch at random: a decayed strategy loses its edge (some archetypes decay more easily), so
alerts and the optimizer have something real to find. Marks for every symbol are emitted each
step. Everything is deterministic for a seed; the whole state is the checkpoint token.
"""

from __future__ import annotations

import math
import pickle
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.config import SimulatorSourceConfig
from collector.model import NS, Fill, Mark
from collector.optimize.store import ParameterStore
from collector.sources.base import Batch, Checker, Event, Outlet, Source

DAY_S = 86_400.0
YEAR_S = 365.0 * DAY_S


@dataclass(frozen=True)
class Archetype:
    trades_per_day: float  # round trips per simulated day per book, before `activity`
    hold_s: float  # mean holding time
    edge_bps: float  # exit price improvement vs market when healthy
    slippage_bps: float  # mean cost vs arrival price per fill (negative = earns the spread)
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
    "trend": Archetype(6, 4 * 3600, 8.0, 1.5, 40, 0.008, 2),
    "meanrev": Archetype(30, 1800, 3.5, 1.0, 25, 0.012, 2),
    "mm": Archetype(300, 90, 1.0, -0.4, 3, 0.005, 1),
    "statarb": Archetype(60, 1200, 2.5, 0.8, 12, 0.015, 3),
    "breakout": Archetype(8, 2 * 3600, 7.0, 2.0, 50, 0.02, 2),
    "momentum": Archetype(12, 5400, 5.0, 1.2, 35, 0.012, 2),
    "pairs": Archetype(20, 3600, 3.0, 0.9, 20, 0.01, 2),
    "carry": Archetype(2, 12 * 3600, 10.0, 1.0, 80, 0.005, 1),
    "news": Archetype(5, 900, 10.0, 4.0, 8, 0.025, 3),
    "volarb": Archetype(15, 2700, 3.5, 1.1, 30, 0.01, 2),
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
    direction: int  # +1 long, -1 short
    qty: float
    exit_ns: int
    order: str


@dataclass
class _Book:
    account: str
    strategy: str
    style: str
    symbols: list[int]
    scale: float
    open: dict[int, _Open] = field(default_factory=dict)


@dataclass
class SimState:
    """Everything the simulation needs to continue exactly: the checkpoint token (pickled)."""

    clock_ns: int
    prices: list[float]
    books: list[_Book]
    decayed: dict[str, bool]
    seq: int = 0
    rng_state: object = None
    market_rng_state: object = None


class Simulation:
    """The pure simulation: `step(dt)` advances the clock and returns the fills and marks it produced."""

    def __init__(self, config: SimulatorSourceConfig, start_ns: int) -> None:
        self.config = config
        rng = random.Random(config.seed)
        self.markets = [market(i) for i in range(config.symbols)]
        strategies = STRATEGIES[: config.strategies]
        books = []
        for a in range(config.accounts):
            account = f"ACC{a + 1:02d}"
            scale = 0.5 + 1.5 * rng.random()
            for name, style in strategies:
                count = min(ARCHETYPES[style].symbols, config.symbols)
                books.append(_Book(account, name, style, rng.sample(range(config.symbols), count), scale))
        self.state = SimState(
            clock_ns=start_ns,
            prices=[m[1] for m in self.markets],
            books=books,
            decayed={name: False for name, _ in strategies},
        )
        self.rng = rng
        # markets and regimes draw from their own generator, so what the desk does (e.g. a closed
        # loop changing sizes) never changes the market it trades in
        self.market_rng = random.Random(f"{config.seed}-market")
        self.state.rng_state = rng.getstate()
        # closed loop: (strategy, account) → what the parameter store says, e.g. size and parameters
        self.controls: Callable[[str, str], Controls] | None = None

    def expected_fills_per_sim_second(self) -> float:
        """A book-symbol waits 1/rate flat, then holds: 1 / (1/rate + hold) round trips per second,
        at about 2.6 fills each (entries are sometimes split)."""
        total = 0.0
        for book in self.state.books:
            style = ARCHETYPES[book.style]
            rate = style.trades_per_day * self.config.activity / DAY_S
            total += len(book.symbols) / (1 / rate + style.hold_s)
        return total * 2.6

    def token(self) -> bytes:
        self.state.rng_state = self.rng.getstate()
        self.state.market_rng_state = self.market_rng.getstate()
        return pickle.dumps(self.state)

    def restore(self, token: bytes) -> None:
        state = pickle.loads(token)
        if not isinstance(state, SimState):
            raise TypeError("simulator checkpoint is not a SimState")
        self.state = state
        self.rng.setstate(state.rng_state)  # type: ignore[arg-type]
        self.market_rng.setstate(state.market_rng_state)  # type: ignore[arg-type]

    def step(self, dt_s: float) -> list[Event]:
        state, market = self.state, self.market_rng
        start = state.clock_ns
        end = start + int(dt_s * NS)
        events: list[Event] = []
        for name in state.decayed:  # regime switches
            hazard = ARCHETYPES[STYLE_OF[name]].decay_per_day
            rate = 0.15 if state.decayed[name] else hazard  # decayed strategies recover slowly
            if market.random() < 1 - math.exp(-rate * dt_s / DAY_S):
                state.decayed[name] = not state.decayed[name]
        for i, (symbol, _, vol, _) in enumerate(self.markets):
            sigma = vol * math.sqrt(dt_s / YEAR_S)
            state.prices[i] *= math.exp(sigma * market.gauss(0, 1) - 0.5 * sigma * sigma)
            events.append(Mark(ts=end, symbol=symbol, price=_tick(state.prices[i])))
        for book in state.books:
            self._trade(book, start, end, dt_s, events)
        state.clock_ns = end
        events.sort(key=lambda e: e.ts)
        return events

    def _trade(self, book: _Book, start: int, end: int, dt_s: float, out: list[Event]) -> None:
        rng, state = self.rng, self.state
        style = ARCHETYPES[book.style]
        for sym in book.symbols:
            position = book.open.get(sym)
            if position is not None:
                if position.exit_ns <= end:
                    ts = max(start, position.exit_ns)
                    edge = style.edge_bps * self._edge_factor(book)
                    out.append(self._fill(book, sym, -position.direction, position.qty, ts, edge, position.order))
                    del book.open[sym]
                continue
            rate = style.trades_per_day * self.config.activity / DAY_S
            if rng.random() >= 1 - math.exp(-rate * dt_s):
                continue
            direction = 1 if rng.random() < 0.5 else -1
            controls = self.controls(book.strategy, book.account) if self.controls else Controls()
            size = controls.size
            multiplier = self.markets[sym][3]
            if not controls.enabled or size <= 0:
                continue  # the draws above still happened, so the market path does not depend on controls
            qty = max(1.0, float(round(TARGET_NOTIONAL * book.scale * size / (state.prices[sym] * multiplier))))
            ts = start + int(rng.random() * (end - start))
            order = f"{book.account}-{book.strategy}-{state.seq}"
            book.open[sym] = _Open(direction, qty, ts + int(rng.expovariate(1 / style.hold_s) * NS) + 1, order)
            parts = 1 if qty < 3 or rng.random() < 0.6 else rng.randint(2, 3)  # partial fills of one order
            left = qty
            for part in range(parts):
                part_qty = left if part == parts - 1 else float(max(1, round(qty / parts)))
                left -= part_qty
                out.append(self._fill(book, sym, direction, part_qty, ts + part * 1_000_000, 0.0, order))

    def _edge_factor(self, book: _Book) -> float:
        """+1 = the full edge, −0.6 = the decayed regime's loss; tunable strategies in between by fit."""
        decayed = self.state.decayed[book.strategy]
        tunable = TUNABLE.get(book.style)
        if tunable is None:
            return -0.6 if decayed else 1.0
        controls = self.controls(book.strategy, book.account) if self.controls else Controls()
        value = controls.params.get(tunable.name, tunable.healthy)
        return tunable.fit(value, decayed) * 1.6 - 0.6

    def _fill(self, book: _Book, sym: int, direction: int, qty: float, ts: int, edge_bps: float, order: str) -> Fill:
        rng, state = self.rng, self.state
        style = ARCHETYPES[book.style]
        symbol, _, _, multiplier = self.markets[sym]
        arrival = _tick(state.prices[sym])
        slip = rng.gauss(style.slippage_bps, abs(style.slippage_bps) * 0.8 + 0.3) - edge_bps
        price = _tick(arrival * (1 + direction * slip / 10_000))
        state.seq += 1
        latency_ns = int(rng.lognormvariate(math.log(style.latency_ms), 0.6) * 1e6)
        return Fill(
            ts=ts,
            account=book.account,
            strategy=book.strategy,
            symbol=symbol,
            side="buy" if direction > 0 else "sell",
            qty=qty,
            price=price,
            fill_id=f"sim-{state.seq}",
            fee=round(qty * price * multiplier * 0.00002, 4),
            order_id=order,
            venue="SIM",
            arrival_price=arrival,
            order_ts=ts - latency_ns,
            multiplier=multiplier,
        )


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
        if isinstance(token, bytes):
            self.sim.restore(token)

    def _read_parameters(self) -> None:
        """Closed loop: sizes, allocation and on/off from the optimizer's parameter store, when it changes."""
        path = self.config.parameters_file
        if path is None:
            return
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._parameters_mtime:
            return
        self._parameters_mtime = mtime
        store = ParameterStore(path)

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
            behind_s = (now_ns - self.sim.state.clock_ns) / NS
            dt = min(tick * self.speed, behind_s)  # catch up at `speed`, then run in real time
            if dt > 0:
                events = self.sim.step(dt)
                if not outlet.put(Batch(self.name, events, token=self.sim.token())):
                    return
            next_step += tick
            self._stop.wait(max(0.0, next_step - time.monotonic()))
