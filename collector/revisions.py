"""A bust or correction end to end: re-derive the book (engine/revise.py), then fix the stored fills.

The original's `fills` point is deleted (after a flush, so it is surely in InfluxDB), and the
replayed fills from the original's time on are written again with their new realized PnL (same
fill ids, so the same keys: overwritten in place); a correction's replacement is written as a new
point. Perf points of the affected series follow at the next flush.
"""

from __future__ import annotations

from collector.engine.engine import Engine
from collector.engine.revise import Revision, revise
from collector.model import Fill
from collector.store.fillkeys import FillKeys, delete_fill
from collector.store.lineproto import fill_line
from collector.store.reader import Reader
from collector.store.writer import Writer


def apply_revision(engine: Engine, event: Fill, writer: Writer, keys: FillKeys, reader: Reader) -> Revision:
    """Apply a cancel/correct event; RevisionError (nothing changed) when its fill is not in the book log."""
    revision = revise(engine, event)
    writer.flush()
    delete_fill(reader, revision.original)
    since = revision.original.ts
    if revision.replacement is not None:
        since = min(since, revision.replacement.ts)
    rewrite = [(fill, realized) for fill, realized in revision.replayed if fill.ts >= since]
    stamps = keys.assign([fill for fill, _ in rewrite])
    for (fill, realized), ts in zip(rewrite, stamps, strict=True):
        writer.write(fill_line(fill, ts, realized))
    return revision
