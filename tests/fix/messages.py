"""FIX ExecutionReports built with simplefix (real checksums), shared by the log and live-session tests."""

from __future__ import annotations

from typing import Any

import simplefix

TRADE_DAY = "20240304"


def execution_report(begin: str, fields: list[tuple[int, str]], seq: int = 1) -> bytes:
    """One ExecutionReport (35=8) with a standard header; 5.0SP2 goes over FIXT.1.1 with ApplVerID 9."""
    message = simplefix.FixMessage()
    message.append_pair(8, begin)
    message.append_pair(35, "8")
    message.append_pair(49, "BROKER")
    message.append_pair(56, "DESK")
    message.append_pair(34, str(seq))
    message.append_pair(52, f"{TRADE_DAY}-14:31:12.500")
    if begin == "FIXT.1.1":
        message.append_pair(1128, "9")
    for tag, value in fields:
        message.append_pair(tag, value)
    encoded: bytes = message.encode()
    return encoded


def trade(exec_id: str, side: str, qty: str, price: str, time: str, **extra: str) -> list[tuple[int, str]]:
    """The body of a trade (ExecType F) in account ACC1, symbol ES with maturity 202403."""
    fields = [
        (37, extra.get("order_id", "O-1")),
        (11, "C-1"),
        (17, exec_id),
        (150, extra.get("exec_type", "F")),
        (39, "2"),
        (1, "ACC1"),
        (55, "ES"),
        (167, "FUT"),
        (200, "202403"),
        (231, "50"),
        (54, side),
        (38, qty),
        (44, extra.get("limit", "5120.00")),
        (32, qty),
        (31, price),
        (30, "XCME"),
        (6, price),
        (60, f"{TRADE_DAY}-{time}"),
        (12, extra.get("commission", "2.10")),
        (13, extra.get("comm_type", "3")),
    ]
    if "ref" in extra:
        fields.append((19, extra["ref"]))
    return fields


_EXEC_TYPE_42 = {"F": ("2", "0"), "H": ("2", "1"), "G": ("2", "2")}  # ExecType, ExecTransType in FIX 4.2


def _as_42(body: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """FIX 4.2 has no ExecType F/H/G: a fill is 150=2 and ExecTransType(20) says new, cancel or correct."""
    out = []
    for tag, value in body:
        if tag == 150:
            exec_type, trans = _EXEC_TYPE_42.get(value, (value, "0"))
            out += [(20, trans), (150, exec_type)]
        else:
            out.append((tag, value))
    return out


def desk_session(begin: str = "FIX.4.4") -> list[bytes]:
    """A drop copy's day as encoded messages (MsgSeqNum from 2: 1 is the Logon)."""
    return [execution_report(begin, body, seq) for seq, body in enumerate(desk_bodies(begin), 2)]


def desk_bodies(begin: str = "FIX.4.4") -> list[list[tuple[int, str]]]:
    """A drop copy's day: trades, a partial fill, non-trade reports, a bust and a correction."""
    new_order = [
        (37, "O-1"),
        (11, "C-1"),
        (17, "N-1"),
        (150, "0"),
        (39, "0"),
        (55, "ES"),
        (54, "1"),
        (60, f"{TRADE_DAY}-14:30:00"),
    ]
    bodies = [
        new_order,
        trade("E-1", "1", "3", "5120.25", "14:31:12.250"),
        trade("E-2", "1", "2", "5120.50", "14:31:12.250"),
        trade("E-3", "2", "5", "5131.00", "15:05:40.125", order_id="O-2", comm_type="1", commission="0.85"),
        [
            (37, "O-3"),
            (11, "C-3"),
            (17, "X-1"),
            (150, "4"),
            (39, "4"),
            (55, "ES"),
            (54, "2"),
            (60, f"{TRADE_DAY}-15:10:00"),
        ],
        trade("E-4", "5", "1", "5140.00", "15:20:00", order_id="O-4"),  # sell short
        trade("E-5", "1", "1", "5141.00", "15:21:00", order_id="O-5"),
        trade("B-1", "1", "1", "5141.00", "15:30:00", order_id="O-5", exec_type="H", ref="E-5"),  # bust of E-5
        trade(
            "C-1",
            "2",
            "3",
            "5131.25",
            "15:05:40.125",
            order_id="O-2",
            exec_type="G",
            ref="E-3",
            comm_type="1",
            commission="0.85",
        ),  # correct E-3
    ]
    return [_as_42(body) for body in bodies] if begin == "FIX.4.2" else bodies


def expected_fills() -> dict[str, dict[str, Any]]:
    """What the desk session books, after the bust of E-5 and the correction of E-3 (by fill id)."""
    ts = {  # 2024-03-04 14:31:12.250 UTC etc., epoch ns
        "E-1": 1_709_562_672_250_000_000,
        "E-2": 1_709_562_672_250_000_000,
        "C-1": 1_709_564_740_125_000_000,
        "E-4": 1_709_565_600_000_000_000,
    }
    return {
        "E-1": {"side": "buy", "qty": 3.0, "price": 5120.25, "fee": 2.10, "ts": ts["E-1"]},
        "E-2": {"side": "buy", "qty": 2.0, "price": 5120.50, "fee": 2.10, "ts": ts["E-2"]},
        "C-1": {"side": "sell", "qty": 3.0, "price": 5131.25, "fee": 2.55, "ts": ts["C-1"]},  # 0.85 per unit × 3
        "E-4": {"side": "sell", "qty": 1.0, "price": 5140.00, "fee": 2.10, "ts": ts["E-4"]},
    }
