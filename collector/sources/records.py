"""Decode raw lines (JSONL or CSV with a header) into records, keeping the raw text for dead letters."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from collector.errors import UserError
from collector.model import REQUIRED_FIELDS

Format = Literal["jsonl", "csv"]
BOM = b"\xef\xbb\xbf"
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
    skipped: str | None = None  # not a fill (a subtotal row, a non-trade FIX message): counted, not dead-lettered

    @property
    def raw_text(self) -> str:
        return self.raw.decode("utf-8", "backslashreplace")


def detect_format(path: str, explicit: str | None) -> Format:
    if explicit is not None:
        if explicit not in ("jsonl", "csv"):
            raise UserError(f"--input-format {explicit!r}: expected jsonl or csv")
        return explicit  # type: ignore[return-value]
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UserError(
            f"{path}: cannot tell the format from {suffix or 'no extension'!r}; pass --input-format jsonl|csv"
        )
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


def jsonl_lines(lines: Iterable[bytes], first_line: int = 1) -> Iterator[tuple[int, bytes]]:
    """(line number, stripped line) of each line that is not blank; a leading UTF-8 BOM is dropped."""
    for lineno, line in enumerate(lines, first_line):
        line = line.strip()
        if lineno == first_line and line.startswith(BOM):
            line = line[len(BOM) :].strip()
        if line:
            yield lineno, line


def iter_jsonl(lines: Iterable[bytes], name: str, first_line: int = 1) -> Iterator[RawRecord]:
    """One JSON object per line; blank lines are skipped, not rejected; a leading UTF-8 BOM is dropped."""
    for lineno, line in jsonl_lines(lines, first_line):
        yield decode_json_line(line, f"{name}:{lineno}")


HeaderCheck = Callable[[list[str], str], None]


def check_contract_header(header: list[str], source: str) -> None:
    """A CSV without a column map must name the contract's required fields in its header."""
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        raise UserError(
            f"{source}: the header lacks required column(s) {missing}; expected the fill contract's "
            f"{list(REQUIRED_FIELDS)}, found {header}; for another layout pass --map PROFILE.yaml (examples/maps/)"
        )


class CsvDecoder:
    """Rows of a CSV file with a header line; the header is learned from the first non-blank line.

    A UTF-8 byte order mark before the header is dropped. `check_header` runs once on the header
    and raises `UserError` when columns are missing. With `section` (multi-section statements such
    as IBKR's), only lines whose first cell is the section count, and each one whose second cell
    is `Header` (re)defines the header; the other lines are skipped records, and `finish` fails a
    file that never had the section (`label` names the map that wants it).
    """

    def __init__(
        self,
        name: str,
        check_header: HeaderCheck | None = None,
        delimiter: str = ",",
        section: str | None = None,
        label: str = "the map",
    ) -> None:
        self.name = name
        self.header: list[str] | None = None
        self.check_header = check_header
        self.delimiter = delimiter
        self.section = section
        self.label = label
        self.first: tuple[str, list[str]] | None = None  # source and cells of the first line (sectioned files)

    def decode(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[RawRecord]:
        for lineno, line in enumerate(lines, first_line):
            line = line.strip()
            if line.startswith(BOM):
                line = line[len(BOM) :].strip()
            if not line:
                continue
            source = f"{self.name}:{lineno}"
            error = _utf8_error(line)
            if error is not None:
                yield RawRecord(source, line, error=error)
                continue
            text = line.decode("utf-8")
            try:
                cells = next(csv.reader([text], delimiter=self.delimiter))
            except csv.Error as exc:
                yield RawRecord(source, line, error=f"invalid CSV: {exc}")
                continue
            if self.section is not None:
                if self.first is None:
                    self.first = (source, [cell.strip() for cell in cells])
                if cells[0].strip() != self.section:
                    yield RawRecord(source, line, skipped=f"not in the {self.section!r} section")
                    continue
                if len(cells) > 1 and cells[1].strip() == "Header":
                    self._learn_header(cells, source)
                    continue
            if self.header is None:
                self._learn_header(cells, source)
                continue
            if len(cells) != len(self.header):
                yield RawRecord(
                    source, line, error=f"CSV row has {len(cells)} columns; the header has {len(self.header)}"
                )
                continue
            yield RawRecord(source, line, dict(zip(self.header, cells, strict=True)))

    def finish(self) -> None:
        """After the last line: a sectioned file that had lines but never the section's header fails."""
        if self.section is None or self.header is not None or self.first is None:
            return
        source, cells = self.first
        why = f"{self.name}: no {self.section!r} section (lines {self.section},Header,...) that {self.label} reads"
        try:
            if self.check_header is not None:
                self.check_header(cells, source)
        except UserError as exc:
            raise UserError(f"{why}; {exc}") from None
        raise UserError(f"{why}; its first line is {cells}")

    def _learn_header(self, cells: list[str], source: str) -> None:
        header = [cell.strip() for cell in cells]
        if self.check_header is not None:
            self.check_header(header, source)
        self.header = header


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
