"""Files given to `stratmon ingest` / `report`: JSONL, CSV (optionally through a column map) or FIX logs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from collector.errors import UserError
from collector.sources.colmap import ColumnMap, Mapper, map_records
from collector.sources.fixlog import iter_fix, sniff_fix
from collector.sources.records import CsvDecoder, RawRecord, check_contract_header, detect_format, iter_jsonl

InputFormat = Literal["jsonl", "csv", "fix"]
FORMATS = ("jsonl", "csv", "fix")
_SNIFF_BYTES = 64 * 1024


def detect_input_format(path: str, explicit: str | None) -> InputFormat:
    """--format, else the extension; `.fix`/`.log` files are read when their content is FIX."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise UserError(f"--input-format {explicit!r}: expected jsonl, csv or fix")
        return explicit  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if path != "-" and suffix in (".fix", ".log"):
        try:
            with open(path, "rb") as handle:
                head = handle.read(_SNIFF_BYTES)
        except OSError as exc:
            raise UserError(f"{path}: cannot open: {exc.strerror or exc}") from None
        if sniff_fix(head):
            return "fix"
        raise UserError(f"{path}: no FIX messages (8=FIX…35=…) in its first 64 KiB; pass --input-format jsonl|csv|fix")
    try:
        return detect_format(path, None)
    except UserError:
        raise UserError(
            f"{path}: cannot tell the format from {suffix or 'no extension'!r}; pass --input-format jsonl|csv|fix"
        ) from None


def read_input(
    path: str, fmt: InputFormat, stdin: Iterable[bytes] | None = None, profile: ColumnMap | None = None
) -> Iterator[RawRecord]:
    """All records of one input (`-` = stdin), mapped through `profile` when one is given (CSV/JSON)."""
    yield from _records(read_lines(path, stdin), "stdin" if path == "-" else path, fmt, profile)


def read_lines(path: str, stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
    """The raw lines of one input (`-` = the given stdin lines)."""
    if path == "-":
        assert stdin is not None
        yield from stdin
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; the generator keeps it open while iterating
    except OSError as exc:
        raise UserError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with handle:
        yield from handle


def _records(lines: Iterable[bytes], name: str, fmt: InputFormat, profile: ColumnMap | None) -> Iterator[RawRecord]:
    if fmt == "fix":
        if profile is not None:
            raise UserError(f"{name}: --map applies to CSV/JSON inputs; FIX tags are read as documented")
        return iter_fix(lines, name)
    if profile is None:
        if fmt == "jsonl":
            return iter_jsonl(lines, name)
        return CsvDecoder(name, check_header=check_contract_header).decode(lines)
    mapper = Mapper(profile)
    if fmt == "jsonl":
        return map_records(iter_jsonl(lines, name), mapper)
    return map_records(_decode_all(mapper.csv_decoder(name), lines), mapper)


def _decode_all(decoder: CsvDecoder, lines: Iterable[bytes]) -> Iterator[RawRecord]:
    """The records of a whole file, then the decoder's end-of-file check (a missing section)."""
    yield from decoder.decode(lines)
    decoder.finish()
