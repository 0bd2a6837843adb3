"""Engine benchmark: fills/s through positions + all four levels, vs pandas recomputed every 1,000 fills.

The stream: 31 strategies × 10 accounts × 200 symbols, each strategy trading its own universe of
symbols in every account (so a symbol is held by ~15 books and their aggregates, all revalued on
each price change). The baseline is what a user would do with pandas: recompute equity, fees,
volume and fills at every level, plus portfolio Sharpe, from scratch every 1,000 fills. It gets slower
as history grows; to keep the run short only every `--baseline-stride`-th recompute is timed and
multiplied by the stride (the cost grows smoothly with history, so the estimate is unbiased).

    .venv/bin/python benchmarks/engine.py [--fills 1000000] [--baseline-stride 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
import pandas as pd

from collector.engine.engine import Engine
from collector.model import NS, Fill

STRATEGIES, ACCOUNTS, SYMBOLS = 31, 10, 200


def stream(count: int, seed: int = 5) -> list[Fill]:
    rng = random.Random(seed)
    universes = [rng.sample(range(SYMBOLS), 12) for _ in range(STRATEGIES)]
    prices = [rng.uniform(10, 500) for _ in range(SYMBOLS)]
    fills = []
    ts = 1_700_000_000 * NS
    for i in range(count):
        ts += rng.randint(1, 200_000_000)  # ~100 ms apart: 1M fills span about 14 days
        strategy = rng.randrange(STRATEGIES)
        symbol = rng.choice(universes[strategy])
        prices[symbol] *= 1 + rng.gauss(0, 0.001)
        fills.append(
            Fill(
                ts=ts,
                account=f"ACC{rng.randrange(ACCOUNTS):02d}",
                strategy=f"strat_{strategy:02d}",
                symbol=f"SYM{symbol:03d}",
                side="buy" if rng.random() < 0.5 else "sell",
                qty=float(rng.randint(1, 20)),
                price=round(prices[symbol], 2),
                fill_id=str(i),
                fee=0.5,
                arrival_price=prices[symbol] if i % 5 == 0 else None,
            )
        )
    return fills


def run_engine(fills: list[Fill]) -> tuple[float, Engine]:
    engine = Engine()
    on_fill = engine.on_fill
    start = time.perf_counter()
    for fill in fills:
        on_fill(fill)
    return time.perf_counter() - start, engine


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--baseline-stride", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    fills = stream(args.fills)
    engine_seconds, engine = run_engine(fills)
    baseline_n = args.fills
    baseline_seconds = run_baseline(fills, stride=args.baseline_stride)
    holders = [len(h) for h in engine.holders.values()]
    result = {
        "fills": args.fills,
        "series": len(engine.series),
        "mean_holders_per_symbol": round(sum(holders) / max(1, len(holders)), 1),
        "engine_fills_per_s": round(args.fills / engine_seconds),
        "baseline_stride": args.baseline_stride,
        "baseline_fills_per_s": round(baseline_n / baseline_seconds),
        "ratio": round((args.fills / engine_seconds) / (baseline_n / baseline_seconds), 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"engine (incremental, 4 levels, {result['series']} series): {result['engine_fills_per_s']:>9,} fills/s"
            f" over {args.fills:,} fills; {result['mean_holders_per_symbol']} series hold a symbol on average"
        )
        print(
            f"pandas recompute every 1,000 fills            : {result['baseline_fills_per_s']:>9,} fills/s"
            f" over {baseline_n:,} fills (every {args.baseline_stride}th recompute timed, times {args.baseline_stride})"
        )
        print(f"ratio engine/baseline                         : {result['ratio']:,}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
