"""Random but valid fills for the sample file, tests and benchmarks (the live simulator is separate)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from collector.model import NS


def synthetic_fills(
    count: int,
    *,
    seed: int = 1,
    start_ns: int = 1_700_000_000 * NS,
    accounts: int = 4,
    strategies: int = 31,
    symbols: int = 50,
    step_ns: int = 1_000_000,
) -> Iterator[dict[str, Any]]:
    """`count` fill records as JSON-ready dicts; every 7th carries arrival price and order time."""
    rng = random.Random(seed)
    prices = [rng.uniform(5, 500) for _ in range(symbols)]
    ts = start_ns
    for i in range(count):
        ts += rng.randint(1, 2 * step_ns)
        sym = rng.randrange(symbols)
        prices[sym] *= 1 + rng.gauss(0, 0.001)
        price = round(prices[sym], 4)
        record: dict[str, Any] = {
            "ts": ts,
            "account": f"ACC{rng.randrange(accounts) + 1:02d}",
            "strategy": f"strat_{rng.randrange(strategies) + 1:02d}",
            "symbol": f"SYM{sym:03d}",
            "side": rng.choice(("buy", "sell")),
            "qty": float(rng.randint(1, 50) * 10),
            "price": price,
            "fill_id": f"F{seed}-{i}",
            "fee": round(price * 0.0001 * 10, 6),
            "order_id": f"O{seed}-{i // 2}",
        }
        if i % 7 == 0:
            record["arrival_price"] = round(price * (1 + rng.gauss(0, 0.0005)), 4)
            record["order_ts"] = ts - rng.randint(100_000, 5_000_000)
        yield record


def write_jsonl(path: str, records: Iterator[dict[str, Any]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
            count += 1
    return count
