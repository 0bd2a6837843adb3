"""Column layout of the engine's state arrays (collector/engine/kernel.py works on them, Series reads them).

Every table is a 2-D array, one row per item, one column per field: series (`sf` floats, `si`
integers), holdings of a series in a symbol (`hf`, `hi`), book positions in a symbol (`pf`, `pi`),
FIFO lots (`lf`, `ln` = next lot), symbols (`yf`, `yi`), and the engine's globals (`g`). Ids are
row numbers; -1 is "none". Kept free of numba so reading state costs no compiler import.

After the globals, `g` holds the holder heap: slot i is HEAP_WIDTH words at g[G_WIDTH + HEAP_WIDTH·i]:
the holding, its series and its q (the float's bits, = hf[holding, H_Q]). Symbol y owns slots
Y_START … Y_START + Y_CAP − 1, its Y_COUNT holders (holdings with q ≠ 0) first, in no particular
order (each is another series, so the order changes no value); a holding knows its slot (H_SLOT),
so dropping a holder moves the last one into its place. Y_CAP ≥ Y_HOLDINGS (rows of the symbol in
the holdings table), kept so by the engine when it adds a holding, so the kernel never runs out of
slots. Revaluing a symbol reads its slots in one contiguous run and touches no holdings row: a
holder's value is q × its symbol's mark after every event (each change of the mark or of q
revalues it), so the kernel derives it from the slot's q and keeps no copy in H_V (hf[h, H_V] is
its value only while h is no holder; read a holding's value with Engine.value).
"""

from __future__ import annotations

import numpy as np

FLOAT = np.float64
INT = np.int64
NONE = -1

# ---- series: sf ---------------------------------------------------------------------------------
# Everything revaluing a holder reads and writes is in the first 8 columns: one cache line of a row
# (the engine allocates its tables 64-byte aligned). S_CASH = realized − fees (kept so on every
# change of either: the same subtraction the equity would do); S_DAY: the open period day, a whole
# number (−1: no event yet, the daily moments are None).
S_CASH, S_UNREALIZED, S_PEAK, S_MAX_DD, S_MAX_DD_PCT, S_LAST, S_CAPITAL, S_DAY = range(8)
S_REALIZED, S_FEES, S_VOLUME, S_SLIP_WEIGHTED, S_SLIP_NOTIONAL, S_NET_SUM, S_GROSS_WINS, S_GROSS_LOSSES = range(8, 16)
S_PREV_CLOSE, S_MEAN, S_M2, S_DOWN_SQ = range(16, 20)
SF_WIDTH = 24  # padded to whole cache lines
# ---- series: si ---------------------------------------------------------------------------------
S_N, S_TRADES, S_WINS, S_LOSSES, S_LOSS_STREAK, S_FILLS = range(6)
S_TOUCHED, S_HEAD, S_TAIL, S_HOLDINGS, S_TOUCH_LIST = range(6, 11)  # TOUCH_LIST: row i = i-th touched id
SI_WIDTH = 16

# ---- holdings: hf, hi (a series' holdings form a list in insertion order: HEAD/TAIL, H_NEXT/H_PREV) --
H_Q, H_C, H_V = 0, 1, 2
HF_WIDTH = 4  # padded: two rows per cache line
H_SERIES, H_SLOT, H_SYMBOL, H_BOOKS, H_ALIVE, H_NEXT, H_PREV = range(7)
HI_WIDTH = 7  # H_SLOT: its slot in the holder heap while q ≠ 0 (a holder of its symbol), else -1

# ---- positions: pf, pi (a cycle = the round trip being built; open iff P_DIRECTION ≠ 0) ---------
P_Q, P_C, P_ENTRY_QTY, P_ENTRY_NOTIONAL, P_EXIT_QTY, P_EXIT_NOTIONAL, P_GROSS, P_CYCLE_FEES = range(8)
PF_WIDTH = 8
P_DIRECTION, P_ENTRY_TS, P_HEAD, P_TAIL, P_LOTS, P_BOOK, P_SYMBOL, P_H0 = range(8)  # H0..H0+3: the chain's holdings
PI_WIDTH = P_H0 + 4

# ---- lots: lf, ln -------------------------------------------------------------------------------
L_QTY, L_PRICE, L_MULT, L_ORIGINAL = 0, 1, 2, 3
LF_WIDTH = 4

# ---- symbols: yf, yi ----------------------------------------------------------------------------
Y_MARK = 0
YF_WIDTH = 1
Y_HAS_MARK, Y_STREAMED, Y_DIRTY, Y_DIRTY_LIST, Y_START, Y_COUNT, Y_CAP, Y_HOLDINGS = range(8)
YI_WIDTH = 8

# ---- globals: g ---------------------------------------------------------------------------------
G_CLOCK, G_FREE, G_NFREE, G_NTOUCHED, G_NDIRTY, G_CALENDAR, G_REVALUE, G_HEAP_END = range(8)
G_WIDTH = 8  # then the holder heap; G_HEAP_END: its first slot no symbol owns
HEAP_WIDTH = 3  # words per heap slot: holding, series, q (float64 bits)

# ---- events in (ei, ef) and results out (tf, ti) ----------------------------------------------
E_KIND, E_ID, E_TS, E_SIGN, E_HAS_SLIP = 0, 1, 2, 3, 4  # kind 0 = fill (id = position), 1 = mark (id = symbol)
EI_WIDTH = 5
E_QTY, E_PRICE, E_FEE, E_MULT, E_SLIP = 0, 1, 2, 3, 4
EF_WIDTH = 5
T_REALIZED, T_ENTRY_PRICE, T_EXIT_PRICE, T_QTY, T_GROSS, T_FEES, T_NET = range(7)
TF_WIDTH = 7
T_HAS, T_DIRECTION, T_ENTRY_TS = 0, 1, 2
TI_WIDTH = 3


def digest() -> str:
    """A fingerprint of every column number above (the kernel checks it: see kernel.LAYOUT)."""
    import hashlib

    items = sorted((name, value) for name, value in globals().items() if name.isupper() and isinstance(value, int))
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]
