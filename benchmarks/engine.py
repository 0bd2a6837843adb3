"""Engine benchmark: fills/s through positions + all four levels, against baselines measured in the same run.

Streams:
* desk: 31 strategies × 10 accounts × 200 symbols, each strategy trading its own universe of 12
  symbols in every account (a symbol is held by ~36 series, all revalued on each price change);
* wide: 300 strategies × 100 accounts × 1,000 symbols, same shape (~465 series hold a symbol once
  the desk's positions are open); the first `--wide-warmup` fills, which open most of its ~360k
  positions (interning their strings, a one-time cost per book and symbol), are booked untimed by
  the engine and the python loop alike.

The engine books the stream in batches of `--batch` events through `Engine.on_events` (what
`stratmon run` does per source batch); timings include turning Fill objects into arrays.
Baselines, each on the same stream in the same run:
* python loop: a pure-Python loop doing only FIFO lots + four-level counters (realized, fees,
  fills, volume) — no revaluation, drawdown, daily moments or exposures: a floor for any engine
  written in Python;
* reference: the pure-Python engine the kernel replaced (tests/engine/reference_engine.py), on
  the first `--check-fills` fills; the kernel's rows must equal its rows there (checked);
* pandas: recompute equity, fees, volume and fills at every level plus portfolio Sharpe from
  scratch every 1,000 fills (desk stream only); only every `--baseline-stride`-th recompute is
  timed and multiplied by the stride (the cost grows smoothly with history).
First call: a fresh process importing the engine and booking one fill, with numba's cache empty
(compiles the kernel) and then with the cache filled.

    .venv/bin/python benchmarks/engine.py [--fills 1000000] [--wide-fills 1000000] [--wide-warmup 500000]
        [--check-fills 50000] [--batch 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.engine import layout as L
from collector.engine.engine import Engine
from collector.model import NS, Fill
from tests.engine import reference_engine

DESK = (31, 10, 200)
WIDE = (300, 100, 1000)


def stream(count: int, seed: int = 5, shape: tuple[int, int, int] = DESK) -> list[Fill]:
    strategies, accounts, symbols = shape
    rng = random.Random(seed)
    universes = [rng.sample(range(symbols), 12) for _ in range(strategies)]
    prices = [rng.uniform(10, 500) for _ in range(symbols)]
    # one shared str per name, as FillValidator hands them on (its name and symbol memories)
    account_names = [f"ACC{a:02d}" for a in range(accounts)]
    strategy_names = [f"strat_{s:02d}" for s in range(strategies)]
    symbol_names = [f"SYM{y:03d}" for y in range(symbols)]
    fills = []
    ts = 1_700_000_000 * NS
    for i in range(count):
        ts += rng.randint(1, 200_000_000)  # ~100 ms apart: 1M fills span about 14 days
        strategy = rng.randrange(strategies)
        symbol = rng.choice(universes[strategy])
        prices[symbol] *= 1 + rng.gauss(0, 0.001)
        fills.append(
            Fill(
                ts=ts,
                account=account_names[rng.randrange(accounts)],
                strategy=strategy_names[strategy],
                symbol=symbol_names[symbol],
                side="buy" if rng.random() < 0.5 else "sell",
                qty=float(rng.randint(1, 20)),
                price=round(prices[symbol], 2),
                fill_id=str(i),
                fee=0.5,
                arrival_price=prices[symbol] if i % 5 == 0 else None,
            )
        )
    return fills


def run_engine(fills: list[Fill], batch: int, warmup: int = 0) -> tuple[float, Engine]:
    """Seconds for fills[warmup:] after fills[:warmup] were booked untimed (the desk's positions opened)."""
    engine = Engine()
    engine.on_events(fills[:1])  # compiled (or loaded from numba's cache) outside the timing
    engine = Engine()
    for i in range(0, warmup, batch):
        engine.on_events(fills[i : min(i + batch, warmup)])
    start = time.perf_counter()
    for i in range(warmup, len(fills), batch):
        engine.on_events(fills[i : i + batch])
    return time.perf_counter() - start, engine


def run_reference(fills: list[Fill]) -> tuple[float, reference_engine.Engine]:
    engine = reference_engine.Engine()
    on_fill = engine.on_fill
    start = time.perf_counter()
    for fill in fills:
        on_fill(fill)
    return time.perf_counter() - start, engine


def python_loop(fills: list[Fill], warmup: int = 0) -> float:
    """Seconds for FIFO lots per book and symbol plus realized/fees/fills/volume at four levels, in plain Python
    (fills[:warmup] untimed first)."""
    lots: dict[tuple[str, str, str], deque[list[float]]] = {}
    counters: dict[tuple[str, str, str], list[float]] = {}
    start = 0.0
    for index, fill in enumerate(fills):
        if index == warmup:
            start = time.perf_counter()
        book = (fill.account, fill.strategy, fill.symbol)
        queue = lots.get(book)
        if queue is None:
            queue = lots[book] = deque()
        signed = fill.qty if fill.side == "buy" else -fill.qty
        realized = 0.0
        while queue and signed and (queue[0][0] > 0) != (signed > 0):
            lot = queue[0]
            take = min(abs(signed), abs(lot[0]))
            direction = 1.0 if lot[0] > 0 else -1.0
            realized += (fill.price - lot[1]) * take * direction
            lot[0] -= direction * take
            signed += direction * take
            if not lot[0]:
                queue.popleft()
        if signed:
            queue.append([signed, fill.price])
        notional = fill.qty * fill.price
        for key in (
            ("book", fill.account, fill.strategy),
            ("strategy", "_all", fill.strategy),
            ("account", fill.account, "_all"),
            ("portfolio", "_all", "_all"),
        ):
            row = counters.get(key)
            if row is None:
                row = counters[key] = [0.0, 0.0, 0.0, 0.0]
            row[0] += realized
            row[1] += fill.fee
            row[2] += 1
            row[3] += notional
    return time.perf_counter() - start


def pandas_recompute(frame: pd.DataFrame) -> dict[str, object]:
    """Metrics from scratch: cash-flow equity per level, fees, volume, fills, portfolio daily Sharpe."""
    signed = np.where(frame["side"].to_numpy() == "buy", 1.0, -1.0) * frame["qty"].to_numpy()
    frame = frame.assign(
        signed=signed, cash=-signed * frame["price"].to_numpy(), notional=frame["qty"] * frame["price"]
    )
    last_price = frame.groupby("symbol")["price"].last()
    books = frame.groupby(["account", "strategy", "symbol"]).agg(
        position=("signed", "sum"),
        cash=("cash", "sum"),
        fees=("fee", "sum"),
        volume=("notional", "sum"),
        fills=("qty", "size"),
    )
    books["equity"] = (
        books["cash"]
        + books["position"] * last_price.reindex(books.index.get_level_values("symbol")).to_numpy()
        - books["fees"]
    )
    levels = {
        "book": books.groupby(level=["account", "strategy"]).sum(),
        "strategy": books.groupby(level="strategy").sum(),
        "account": books.groupby(level="account").sum(),
        "portfolio": books.sum(),
    }
    daily = (frame["cash"] - frame["fee"]).resample("D").sum()
    sharpe = daily.mean() / daily.std(ddof=1) * np.sqrt(252) if len(daily) > 1 else None
    return {"levels": levels, "sharpe": sharpe}


def run_baseline(fills: list[Fill], every: int = 1000, stride: int = 1) -> float:
    """Seconds for a recompute after every `every` fills; with stride k, every k-th one is timed ×k."""
    frame = pd.DataFrame(
        {
            "account": [f.account for f in fills],
            "strategy": [f.strategy for f in fills],
            "symbol": [f.symbol for f in fills],
            "side": [f.side for f in fills],
            "qty": [f.qty for f in fills],
            "price": [f.price for f in fills],
            "fee": [f.fee for f in fills],
        },
        index=pd.to_datetime([f.ts for f in fills], unit="ns", utc=True),
    )
    checkpoints = list(range(every, len(fills) + 1, every))
    total = 0.0
    for end in checkpoints[stride // 2 :: stride]:
        start = time.perf_counter()
        pandas_recompute(frame.iloc[:end])
        total += time.perf_counter() - start
    return total * stride


def first_call_seconds(cache_dir: str) -> float:
    """A fresh interpreter: import the engine and book one fill (numba compiles or loads the kernel)."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from collector.engine.engine import Engine\n"
        "from collector.model import Fill\n"
        "Engine().on_fill(Fill(1, 'A', 's', 'X', 'buy', 1.0, 100.0, '1'))\n"
        "print(time.perf_counter() - t)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def check(engine: Engine, fills: list[Fill], check_fills: int, batch: int) -> tuple[float, bool]:
    """Reference engine fills/s on the first check_fills fills, and whether the kernel's rows equal its rows."""
    part = fills[:check_fills]
    seconds, ref = run_reference(part)
    _, mine = run_engine(part, batch)
    return len(part) / seconds, mine.rows() == ref.rows()


def measure(fills: list[Fill], batch: int, check_fills: int, warmup: int = 0) -> dict[str, object]:
    seconds, engine = run_engine(fills, batch, warmup)
    loop = python_loop(fills, warmup)
    reference_rate, equal = check(engine, fills, check_fills, batch)
    timed = len(fills) - warmup
    holders = engine.yi[: engine.counts["symbols"], L.Y_COUNT]
    rate = timed / seconds
    return {
        "fills": len(fills),
        "warmup": warmup,
        "series": len(engine.series),
        "mean_holders_per_symbol": round(float(holders[holders > 0].mean()), 1),
        "engine_fills_per_s": round(rate),
        "python_loop_fills_per_s": round(timed / loop),
        "engine_vs_python_loop": round(rate / (timed / loop), 2),
        "reference_fills_per_s": round(reference_rate),
        "engine_vs_reference": round(rate / reference_rate, 1),
        "equal_to_reference": equal,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--wide-fills", type=int, default=1_000_000)
    parser.add_argument(
        "--wide-warmup", type=int, default=500_000, help="wide-stream fills booked untimed first (opening positions)"
    )
    parser.add_argument("--check-fills", type=int, default=50_000, help="fills the reference engine books")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--baseline-stride", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        cold, cached = first_call_seconds(cache), first_call_seconds(cache)
    fills = stream(args.fills)
    desk = measure(fills, args.batch, args.check_fills)
    pandas_seconds = run_baseline(fills, stride=args.baseline_stride)
    desk["pandas_fills_per_s"] = round(args.fills / pandas_seconds)
    desk["engine_vs_pandas"] = round(int(desk["engine_fills_per_s"]) / (args.fills / pandas_seconds), 1)  # type: ignore[call-overload]
    del fills
    wide_fills = stream(args.wide_fills, seed=7, shape=WIDE)
    wide = measure(wide_fills, args.batch, min(args.check_fills, args.wide_fills), args.wide_warmup)
    result = {"desk": desk, "wide": wide, "first_call_cold_s": round(cold, 2), "first_call_cached_s": round(cached, 2)}
    if args.json:
        print(json.dumps(result))
        return 0
    for name, r in (("desk", desk), ("wide", wide)):
        print(
            f"{name}: {r['series']:,} series, {r['mean_holders_per_symbol']} holders per symbol, {r['fills']:,} fills"
            f" in batches of {args.batch:,}, the first {r['warmup']:,} untimed"
        )
        print(f"  engine (kernel)                 : {r['engine_fills_per_s']:>10,} fills/s")
        print(
            f"  pure-Python FIFO + counters loop: {r['python_loop_fills_per_s']:>10,} fills/s"
            f"  -> engine/loop {r['engine_vs_python_loop']}"
        )
        print(
            f"  reference Python engine         : {r['reference_fills_per_s']:>10,} fills/s"
            f"  -> engine/reference {r['engine_vs_reference']}x"
            f" (first {min(args.check_fills, int(r['fills'])):,} fills; rows equal: {r['equal_to_reference']})"  # type: ignore[call-overload]
        )
        if "pandas_fills_per_s" in r:
            print(
                f"  pandas recompute every 1,000    : {r['pandas_fills_per_s']:>10,} fills/s"
                f"  -> engine/pandas {r['engine_vs_pandas']}x (every {args.baseline_stride}th recompute timed)"
            )
    print(
        f"first call in a fresh process (import + compile or load + one fill): cold {cold:.2f} s, cached {cached:.2f} s"
    )
    return 0 if desk["equal_to_reference"] and wide["equal_to_reference"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
