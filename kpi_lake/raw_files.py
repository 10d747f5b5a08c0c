"""Read a landed file (CSV or spreadsheet) losslessly: every cell as text, with its file and row.

This is the one reader every bronze asset uses, whatever the family. It copes with what published files do
in the wild: UTF-8 with or without a BOM, Windows-1252, CRLF, title rows above the header, headers with
trailing spaces or duplicates, ragged rows. Nothing is typed here (that is silver's job) and nothing is
dropped: a row with too many fields keeps the extra ones in ``_extra_fields`` and says so in ``_parse_issue``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

#: Lineage columns every bronze row carries (besides the file's own columns).
SOURCE_FILE = "_source_file"
SOURCE_HASH = "_source_hash"
SOURCE_ROW = "_source_row"
SOURCE_SHEET = "_source_sheet"
PARSE_ISSUE = "_parse_issue"
EXTRA_FIELDS = "_extra_fields"
PREAMBLE = "_preamble"  # the rows above the header (titles, dates, notes), kept: they can name the data
LOADED_AT = "_loaded_at"
RUN_ID = "_run_id"

SPREADSHEET_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".txt", ".tsv"}
_HEADER_SCAN_ROWS = 50


class RawFileError(ValueError):
    """A landed file that cannot be read at all. The message names the file and what was wrong."""


@dataclass(frozen=True)
class RawFile:
    """A file read as text: ``frame`` holds its rows, ``columns`` maps normalised to original headers."""

    frame: pl.DataFrame
    source_file: str
    content_hash: str
    encoding: str
    header_row: int  # 1-based row number of the header in the file (or sheet)
    columns: dict[str, str] = field(default_factory=dict)
    sheets: tuple[str, ...] = ()


def file_hash(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks so large files never sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_column_names(headers: Iterable[str | None]) -> list[str]:
    """Headers as Delta- and SQL-safe snake_case names, unique, in order.

    "Territorial emissions (kt CO2e)" -> "territorial_emissions_kt_co2e"; blanks become ``column_<n>``;
    a repeated name gets ``_2``, ``_3``; a name that starts with a digit gets a ``c_`` prefix.
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    for position, header in enumerate(headers, start=1):
        text = (header or "").strip().lower().replace("%", " percent ").replace("£", " gbp ")
        name = re.sub(r"[^0-9a-z]+", "_", text).strip("_") or f"column_{position}"
        if name[0].isdigit():
            name = f"c_{name}"
        if name.startswith("_"):  # leading underscores are reserved for lineage columns
            name = name.lstrip("_") or f"column_{position}"
        count = seen.get(name, 0) + 1
        seen[name] = count
        names.append(name if count == 1 else f"{name}_{count}")
    return names


def detect_encoding(path: str | Path) -> str:
    """``utf-8-sig`` (BOM), ``utf-8`` or ``cp1252``: the first that decodes the whole file."""
    with open(path, "rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            return "cp1252"


def find_header_row(rows: list[list[str | None]]) -> int:
    """0-based index of the header among the first rows: the first row nearly as full as the fullest.

    Published spreadsheets put titles, dates and notes above the header; those rows have few non-empty
    cells, while the header names (nearly) every column.
    """
    filled = [sum(1 for cell in row if cell not in (None, "") and str(cell).strip()) for row in rows]
    if not filled or max(filled) == 0:
        return 0
    # Ragged data rows (an unquoted comma in free text) can be wider than the header: measure the width
    # among rows of the most common length only.
    lengths = Counter(len(row) for row, count in zip(rows, filled, strict=True) if count)
    usual = max(lengths.items(), key=lambda item: (item[1], -item[0]))[0]
    widest = max(count for row, count in zip(rows, filled, strict=True) if len(row) <= usual)
    for index, count in enumerate(filled):
        if count >= 0.8 * widest and count >= min(2, widest):
            return index
    return 0


def read_raw_file(
    path: str | Path,
    *,
    source_file: str,
    header_row: int | None = None,
    content_hash: str | None = None,
) -> RawFile:
    """Read a CSV or spreadsheet at ``path`` as text, with lineage columns.

    ``source_file`` is the name recorded in lineage (the path relative to the landing zone).
    ``header_row`` (1-based) overrides header detection.
    """
    path = Path(path)
    if not path.exists():
        raise RawFileError(f"{source_file}: file not found")
    if path.stat().st_size == 0:
        raise RawFileError(f"{source_file}: the file is empty (0 bytes); expected a header row and data")
    digest = content_hash or file_hash(path)
    suffix = path.suffix.lower()
    if suffix in SPREADSHEET_SUFFIXES:
        raw = _read_spreadsheet(path, source_file, header_row)
    else:
        raw = _read_delimited(path, source_file, header_row)
    frame = raw.frame.with_columns(
        pl.lit(source_file).alias(SOURCE_FILE),
        pl.lit(digest).alias(SOURCE_HASH),
    )
    return RawFile(
        frame=frame,
        source_file=source_file,
        content_hash=digest,
        encoding=raw.encoding,
        header_row=raw.header_row,
        columns=raw.columns,
        sheets=raw.sheets,
    )


def _read_delimited(path: Path, source_file: str, header_row: int | None) -> RawFile:
    encoding = detect_encoding(path)
    with open(path, encoding=encoding, newline="") as handle:
        sample = handle.read(256 * 1024)
    delimiter = _sniff_delimiter(sample)
    head_rows = list(_csv_records(sample, delimiter, limit=_HEADER_SCAN_ROWS))
    if not head_rows:
        raise RawFileError(f"{source_file}: no rows could be read; expected a header row")
    header_index = header_row - 1 if header_row else find_header_row(head_rows)
    if header_index >= len(head_rows):
        raise RawFileError(f"{source_file}: header row {header_index + 1} is beyond the end of the file")
    headers = head_rows[header_index]
    names = normalise_column_names(headers)
    columns = dict(zip(names, (h or "" for h in headers), strict=True))

    try:
        frame = _read_with_polars(path, encoding, delimiter, header_index, names)
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError, pl.exceptions.NoDataError):
        # Ragged or otherwise awkward rows: read record by record so nothing is lost.
        frame = _read_with_csv_module(path, encoding, delimiter, header_index, names)
    frame = _flag_truncated_last_row(frame, path, encoding, delimiter, len(names))
    frame = frame.with_columns(pl.lit(_preamble(head_rows[:header_index]), dtype=pl.String).alias(PREAMBLE))
    return RawFile(
        frame=frame,
        source_file=source_file,
        content_hash="",
        encoding=encoding,
        header_row=header_index + 1,
        columns=columns,
    )


def _read_with_polars(
    path: Path, encoding: str, delimiter: str, header_index: int, names: list[str]
) -> pl.DataFrame:
    source: Path | io.BytesIO = path
    if encoding not in ("utf-8", "utf-8-sig"):
        # polars reads UTF-8 only: decode once into a temporary UTF-8 copy (streams, never all in memory).
        tmp = tempfile.NamedTemporaryFile(suffix=".csv", delete=False)  # noqa: SIM115
        with open(path, encoding=encoding, newline="") as src, open(tmp.name, "w", encoding="utf-8") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        source = Path(tmp.name)
    try:
        frame = pl.read_csv(
            source,
            separator=delimiter,
            skip_rows=header_index,
            has_header=True,
            new_columns=names,
            infer_schema=False,
            extra_columns="raise",
            raise_if_empty=False,
            truncate_ragged_lines=False,
        )
    finally:
        if source is not path:
            Path(str(source)).unlink(missing_ok=True)
    if frame.width != len(names):
        raise pl.exceptions.ShapeError("column count differs from header")
    # Row numbers as a spreadsheet shows them: header at header_index + 1, first data row after it.
    return frame.with_columns(
        pl.int_range(header_index + 2, header_index + 2 + frame.height, dtype=pl.Int64).alias(SOURCE_ROW),
        pl.lit(None, dtype=pl.String).alias(PARSE_ISSUE),
        pl.lit(None, dtype=pl.String).alias(EXTRA_FIELDS),
    )


def _flag_truncated_last_row(
    frame: pl.DataFrame, path: Path, encoding: str, delimiter: str, width: int
) -> pl.DataFrame:
    """Flag a last row cut short (a file truncated in transfer): polars pads it with nulls silently.

    Only a file that does not end with a line break can have been cut mid-row; its last record is
    re-read with the csv module and its field count compared with the header's.
    """
    if frame.height == 0 or frame[PARSE_ISSUE][-1] is not None:
        return frame
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return frame
    text = tail.decode("utf-8-sig" if encoding == "utf-8-sig" else encoding, errors="replace")
    if size > len(tail):  # start at a line boundary; the first partial line is not ours to judge
        text = text.split("\n", 1)[-1]
    records = [r for r in _csv_records(text, delimiter, limit=1_000_000) if r]
    if not records or len(records[-1]) >= width:
        return frame
    issue = f"last row has {len(records[-1])} fields, the header has {width}: the file looks truncated"
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == frame.height - 1)
        .then(pl.lit(issue))
        .otherwise(pl.col(PARSE_ISSUE))
        .alias(PARSE_ISSUE)
    )


def _read_with_csv_module(
    path: Path, encoding: str, delimiter: str, header_index: int, names: list[str]
) -> pl.DataFrame:
    width = len(names)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    row_numbers: list[int] = []
    issues: list[str | None] = []
    extras: list[str | None] = []
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        for index, record in enumerate(reader):
            if index <= header_index:
                continue
            if not record:
                continue
            row_numbers.append(reader.line_num)
            issue = None
            extra = None
            if len(record) > width:
                extra = delimiter.join(record[width:])
                issue = f"row has {len(record)} fields, the header has {width}"
            elif len(record) < width:
                issue = f"row has {len(record)} fields, the header has {width}"
            for position in range(width):
                cell = record[position] if position < len(record) else None
                columns[position].append(cell if cell != "" else None)
            issues.append(issue)
            extras.append(extra)
    data = {
        name: pl.Series(name, values, dtype=pl.String) for name, values in zip(names, columns, strict=True)
    }
    frame = pl.DataFrame(data) if data else pl.DataFrame()
    return frame.with_columns(
        pl.Series(SOURCE_ROW, row_numbers, dtype=pl.Int64),
        pl.Series(PARSE_ISSUE, issues, dtype=pl.String),
        pl.Series(EXTRA_FIELDS, extras, dtype=pl.String),
    )


def _read_spreadsheet(path: Path, source_file: str, header_row: int | None) -> RawFile:
    try:
        sheets = pl.read_excel(path, sheet_id=0, has_header=False, infer_schema_length=0)
    except Exception as exc:  # fastexcel raises its own error types
        raise RawFileError(f"{source_file}: cannot be read as a spreadsheet ({exc})") from exc
    frames = []
    columns: dict[str, str] = {}
    first_header = 1
    for sheet_name, sheet in sheets.items():
        if sheet.height == 0:
            continue
        head_rows = [list(row) for row in sheet.head(_HEADER_SCAN_ROWS).iter_rows()]
        header_index = header_row - 1 if header_row else find_header_row(head_rows)
        headers = [None if cell is None else str(cell) for cell in head_rows[header_index]]
        names = normalise_column_names(headers)
        columns.update(zip(names, (h or "" for h in headers), strict=True))
        body = sheet.slice(header_index + 1)
        body.columns = names
        body = body.with_columns(
            pl.lit(_preamble(head_rows[:header_index]), dtype=pl.String).alias(PREAMBLE),
            pl.int_range(header_index + 2, header_index + 2 + body.height, dtype=pl.Int64).alias(SOURCE_ROW),
            pl.lit(sheet_name).alias(SOURCE_SHEET),
            pl.lit(None, dtype=pl.String).alias(PARSE_ISSUE),
            pl.lit(None, dtype=pl.String).alias(EXTRA_FIELDS),
        )
        # Entirely blank rows (formatting left in the sheet) carry nothing.
        body = body.filter(~pl.all_horizontal(pl.col(names).is_null()))
        frames.append(body)
        if len(frames) == 1:
            first_header = header_index + 1
    if not frames:
        raise RawFileError(f"{source_file}: every sheet is empty; expected a header row and data")
    return RawFile(
        frame=pl.concat(frames, how="diagonal"),
        source_file=source_file,
        content_hash="",
        encoding="xlsx",
        header_row=first_header,
        columns=columns,
        sheets=tuple(sheets),
    )


def _preamble(rows: list[list]) -> str | None:
    """Rows above the header as text, one line per row, empty cells left out ("Indicator: Life satisfaction")."""
    lines = [" ".join(str(c).strip() for c in row if c not in (None, "") and str(c).strip()) for row in rows]
    text = "\n".join(line for line in lines if line)
    return text or None


def _sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the first rows into the most columns most consistently.

    Counting characters is not enough: a quoted field full of semicolons ("1 = Yes; 2 = No") would win.
    """
    lines = sample.splitlines(keepends=True)[:30]
    best, best_score = ",", (0, 0)
    for delimiter in (",", "\t", ";", "|"):
        widths = [
            len(r) for r in _csv_records("".join(lines), delimiter, limit=30) if any(c.strip() for c in r)
        ]
        if not widths:
            continue
        usual = Counter(widths).most_common(1)[0]
        score = (usual[1] if usual[0] > 1 else 0, usual[0])  # rows agreeing on a width, then the width
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _csv_records(text: str, delimiter: str, limit: int) -> Iterable[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for index, record in enumerate(reader):
            if index >= limit:
                return
            yield record
    except csv.Error:
        return
