"""Decode raw lines (JSONL or CSV with a header) into records, keeping the raw text for dead letters."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from collector.errors import UserError

Format = Literal["jsonl", "csv"]
_EXTENSIONS: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


@dataclass(slots=True)
class RawRecord:
    """One input record: decoded `data`, or the `error` that stopped decoding it.

    `raw` stays bytes until a record is dead-lettered: most records never need the text.
    """

    source: str
    raw: bytes
    data: Any = None
    error: str | None = None

    @property
    def raw_text(self) -> str:
        return self.raw.decode("utf-8", "backslashreplace")


def detect_format(path: str, explicit: str | None) -> Format:
    if explicit is not None:
        if explicit not in ("jsonl", "csv"):
            raise UserError(f"--format {explicit!r}: expected jsonl or csv")
        return explicit  # type: ignore[return-value]
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UserError(f"{path}: cannot tell the format from {suffix or 'no extension'!r}; pass --format jsonl|csv")
    return _EXTENSIONS[suffix]


def _utf8_error(line: bytes) -> str | None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    return None


def decode_json_line(line: bytes, source: str) -> RawRecord:
    """One JSONL line (already stripped, not blank) → record; orjson also checks the UTF-8."""
    try:
        return RawRecord(source, line, orjson.loads(line))
    except orjson.JSONDecodeError as exc:
        return RawRecord(source, line, error=_utf8_error(line) or f"invalid JSON: {exc}")


def iter_jsonl(lines: Iterable[bytes], name: str, first_line: int = 1) -> Iterator[RawRecord]:
    """One JSON object per line; blank lines are skipped, not rejected."""
    for lineno, line in enumerate(lines, first_line):
        line = line.strip()
        if line:
            yield decode_json_line(line, f"{name}:{lineno}")


class CsvDecoder:
    """Rows of a CSV file with a header line; the header is learned from the first non-blank line."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.header: list[str] | None = None

    def decode(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[RawRecord]:
        for lineno, line in enumerate(lines, first_line):
            line = line.strip()
            if not line:
                continue
            source = f"{self.name}:{lineno}"
            error = _utf8_error(line)
            if error is not None:
                yield RawRecord(source, line, error=error)
                continue
            text = line.decode("utf-8")
            try:
                cells = next(csv.reader([text]))
            except csv.Error as exc:
                yield RawRecord(source, line, error=f"invalid CSV: {exc}")
                continue
            if self.header is None:
                self.header = [cell.strip() for cell in cells]
                continue
            if len(cells) != len(self.header):
                yield RawRecord(
                    source, line, error=f"CSV row has {len(cells)} columns; the header has {len(self.header)}"
                )
                continue
            yield RawRecord(source, line, dict(zip(self.header, cells, strict=True)))


def iter_file(path: str, fmt: Format, stdin: Iterable[bytes] | None = None) -> Iterator[RawRecord]:
    """All records of one file (`-` = the given stdin lines)."""
    if path == "-":
        assert stdin is not None
        yield from _decode_lines(stdin, "stdin", fmt)
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; generator keeps it open while iterating
    except OSError as exc:
        raise UserError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with handle:
        yield from _decode_lines(handle, path, fmt)


def _decode_lines(lines: Iterable[bytes], name: str, fmt: Format) -> Iterator[RawRecord]:
    if fmt == "jsonl":
        return iter_jsonl(lines, name)
    return CsvDecoder(name).decode(lines)
