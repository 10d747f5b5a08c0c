"""Read a landed file (CSV or spreadsheet) losslessly: every cell as text, with its file and row.

This is the one reader every bronze asset uses, whatever the family. It copes with what published files do
in the wild: UTF-8 with or without a BOM, Windows-1252, UTF-16/32 (with a BOM or without one, found by the
pattern of NUL bytes), CRLF, title rows above the header, headers with trailing spaces or duplicates, ragged
rows, ``;``-separated files with decimal commas (recorded in ``_decimal_mark`` for silver). A file it cannot
read (empty, binary, bytes that are no text encoding) raises :class:`RawFileError` naming the file and,
where known, the row, column or byte offset. Nothing is typed here (that is silver's job) and nothing is
dropped: a row with too many fields keeps the extra ones in ``_extra_fields`` and says so in ``_parse_issue``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import tempfile
from collections import Counter, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

#: Lineage columns every bronze row carries (besides the file's own columns).
SOURCE_FILE = "_source_file"
SOURCE_HASH = "_source_hash"
SOURCE_ROW = "_source_row"
SOURCE_SHEET = "_source_sheet"
PARSE_ISSUE = "_parse_issue"
EXTRA_FIELDS = "_extra_fields"
PREAMBLE = "_preamble"  # the rows above the header (titles, dates, notes), kept: they can name the data
DECIMAL_MARK = "_decimal_mark"  # "," for a file written with decimal commas (33,5), else "."
LOADED_AT = "_loaded_at"
RUN_ID = "_run_id"

SPREADSHEET_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
TEXT_SUFFIXES = {".csv", ".txt", ".tsv"}
_HEADER_SCAN_ROWS = 50


class RawFileError(ValueError):
    """A landed file that cannot be read at all. The message names the file and what was wrong; ``row``,
    ``column`` and ``byte_offset`` say where, when that is known."""

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        byte_offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.byte_offset = byte_offset


@dataclass(frozen=True)
class RawFile:
    """A file read as text: ``frame`` holds its rows, ``columns`` maps normalised to original headers."""

    #: A LazyFrame (a scan of the file) when the file was large enough to stream: see ``read_raw_file``.
    frame: pl.DataFrame | pl.LazyFrame
    source_file: str
    content_hash: str
    encoding: str
    header_row: int  # 1-based row number of the header in the file (or sheet)
    columns: dict[str, str] = field(default_factory=dict)
    sheets: tuple[str, ...] = ()
    delimiter: str | None = None  # None for a spreadsheet
    decimal_mark: str = "."
    #: Counted while validating a streamed file (a scan has no height of its own); None for a stream not
    #: validated first (``validate_stream=False``): its rows are counted once written.
    rows: int | None = None
    issue_rows: int | None = None

    @property
    def validated(self) -> bool:
        """Whether every row has been parsed already: a frame read whole, or a stream counted first."""
        return isinstance(self.frame, pl.DataFrame) or self.rows is not None

    @property
    def height(self) -> int:
        """Rows read from the file."""
        if isinstance(self.frame, pl.DataFrame):
            return self.frame.height
        assert self.rows is not None, "a stream not validated has no row count until it is written"
        return self.rows

    @property
    def rows_with_parse_issues(self) -> int:
        """Rows with ``_parse_issue`` set (a width that differs from the header's, a cut-short last row)."""
        if isinstance(self.frame, pl.DataFrame):
            return self.frame.filter(pl.col(PARSE_ISSUE).is_not_null()).height
        assert self.issue_rows is not None
        return self.issue_rows


def file_hash(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks so large files never sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileDigest:
    """A file's SHA-256 and whether its bytes are UTF-8 (None when not checked); ``detect_encoding`` takes the
    latter instead of reading the file again."""

    sha256: str
    utf8: bool | None


def file_digest(path: str | Path, *, check_utf8: bool = True, chunk_size: int = 1 << 20) -> FileDigest:
    """SHA-256 of a file's bytes and, with ``check_utf8``, whether they decode as UTF-8, in one read of the
    file: the hash runs in a second thread (hashlib releases the GIL on large buffers) while this one decodes,
    so on two cores both cost about what the hash alone does."""
    if not check_utf8:
        return FileDigest(file_hash(path, chunk_size), None)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    with ThreadPoolExecutor(1, thread_name_prefix="kpi-lake-hash") as hasher, open(path, "rb") as handle:
        pending: deque = deque()
        while chunk := handle.read(chunk_size):
            pending.append(hasher.submit(digest.update, chunk))  # one worker: chunks hashed in order
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            while len(pending) > 2:  # at most a few chunks in memory
                pending.popleft().result()
        for update in pending:
            update.result()
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:  # ends inside a character
            utf8 = False
    return FileDigest(digest.hexdigest(), utf8)


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


_TEXT_SAMPLE = 64 * 1024
#: Bytes Windows-1252 leaves undefined: a file holding one is neither UTF-8 nor Windows-1252.
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")


def detect_encoding(path: str | Path, source_file: str | None = None, *, utf8: bool | None = None) -> str:
    """The encoding of a text file: ``utf-8-sig``, ``utf-8``, ``cp1252``, ``utf-16``/``utf-32`` (with a BOM) or
    ``utf-16-le``/``-be``, ``utf-32-le``/``-be`` (no BOM: found by where the NUL bytes are).

    ``utf8``: whether the whole file decodes as UTF-8, when already known (:func:`file_digest`); else the file
    is read to find out.

    Raises :class:`RawFileError` (naming the file and the byte offset) for a file that is not text: NUL bytes
    in no UTF-16/32 pattern, control characters, or a byte that is neither UTF-8 nor Windows-1252.
    """
    name = source_file or Path(path).name
    with open(path, "rb") as handle:
        head = handle.read(_TEXT_SAMPLE)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        # UTF-32 first: its little-endian BOM starts with UTF-16's.
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            return "utf-32"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if head.startswith(b"PK\x03\x04"):
            raise RawFileError(
                f"{name}: is a zip archive (an .xlsx workbook?) with a text file's name; expected CSV text, "
                "or save it with its own extension",
                byte_offset=0,
            )
        unmarked = _wide_encoding_without_bom(head)
        if unmarked:
            return unmarked
        if (nul := head.find(b"\x00")) >= 0:
            line = head.count(b"\n", 0, nul) + 1
            raise RawFileError(
                f"{name}: byte {nul} (line {line}) is a NUL byte: this is not a text "
                "file (binary data?); expected CSV text",
                row=line,
                byte_offset=nul,
            )
        if utf8 is None:
            handle.seek(0)
            decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                while chunk := handle.read(1 << 20):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
                utf8 = True
            except UnicodeDecodeError:
                utf8 = False
        encoding = "utf-8" if utf8 else "cp1252"
        if encoding == "cp1252":
            _check_cp1252(handle, name)
    _check_looks_like_text(head.decode(encoding, errors="replace"), name)
    return encoding


def _wide_encoding_without_bom(head: bytes) -> str | None:
    """UTF-32 or UTF-16 text without a BOM: ASCII characters leave NUL bytes at fixed positions."""
    size = min(len(head), 4096)
    sample = head[: size - size % 4]
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return None

    def zero_share(start: int, step: int) -> float:
        part = sample[start::step]
        return part.count(0) / len(part) if part else 0.0

    by_four = [zero_share(i, 4) for i in range(4)]
    if by_four[0] < 0.1 and min(by_four[1:]) > 0.9:
        return "utf-32-le"
    if by_four[3] < 0.1 and min(by_four[:3]) > 0.9:
        return "utf-32-be"
    even, odd = zero_share(0, 2), zero_share(1, 2)
    if even < 0.1 and odd > 0.5:
        return "utf-16-le"
    if odd < 0.1 and even > 0.5:
        return "utf-16-be"
    return None


def _starts_as_utf8(path: Path, size: int = 1 << 20) -> bool:
    """Whether a file's first ``size`` bytes are UTF-8 (a character cut at the end of them counts as UTF-8)."""
    with open(path, "rb") as handle:
        head = handle.read(size)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _check_cp1252(handle, name: str) -> None:
    """Raise naming the first byte Windows-1252 does not define (the file is in no encoding we know)."""
    handle.seek(0)
    offset = 0
    lines = 0
    while chunk := handle.read(1 << 20):
        found = _CP1252_UNDEFINED.search(chunk)
        if found:
            at = offset + found.start()
            line = lines + chunk.count(b"\n", 0, found.start()) + 1
            raise RawFileError(
                f"{name}: byte {at} (0x{chunk[found.start()]:02x}, line {line}) is neither UTF-8 nor "
                "Windows-1252 text; expected a CSV saved as UTF-8 (or Windows-1252)",
                row=line,
                byte_offset=at,
            )
        offset += len(chunk)
        lines += chunk.count(b"\n")


def _check_looks_like_text(sample: str, name: str) -> None:
    """Random bytes often decode as Windows-1252; text has (almost) no control characters besides tab/CR/LF."""
    control = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", sample)
    if control is None:
        return
    count = len(re.findall(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", sample))
    if count > max(2, len(sample) // 1000):
        raise RawFileError(
            f"{name}: {count} control characters in the first {len(sample):,} characters, the first at "
            f"character {control.start()}: this is not a text file (binary data?); expected CSV text",
            byte_offset=control.start() if sample.isascii() else None,
        )


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
    utf8: bool | None = None,
    stream_from_bytes: int | None = None,
    validate_stream: bool = True,
) -> RawFile:
    """Read a CSV or spreadsheet at ``path`` as text, with lineage columns.

    ``source_file`` is the name recorded in lineage (the path relative to the landing zone).
    ``header_row`` (1-based) overrides header detection. ``content_hash`` and ``utf8``: the file's SHA-256 and
    whether it is UTF-8, when already known (:func:`file_digest`).

    With ``stream_from_bytes``, a UTF-8 delimited file of at least that size whose header polars reads comes
    back as a lazy scan (the same rows and columns): it is never held in memory whole, and ``path`` must stay
    readable until the frame has been consumed. The scan is validated by one streamed pass first (its rows
    counted), unless ``validate_stream`` is False: then a comma-separated file is parsed only when the scan is
    consumed, ``rows`` is None, and the caller must treat a failure to consume it as "read it again validated"
    (as :func:`kpi_lake.bronze.land_files` does: the write is one Delta commit, so a refused scan writes nothing).
    """
    path = Path(path)
    if not path.exists():
        raise RawFileError(f"{source_file}: file not found")
    if path.stat().st_size == 0:
        raise RawFileError(f"{source_file}: the file is empty (0 bytes); expected a header row and data")
    digest = content_hash or file_hash(path)
    suffix = path.suffix.lower()
    try:
        if suffix in SPREADSHEET_SUFFIXES:
            raw = _read_spreadsheet(path, source_file, header_row)
        else:
            raw = _read_delimited(path, source_file, header_row, utf8, stream_from_bytes, validate_stream)
    except RawFileError:
        raise
    except UnicodeError as error:
        # Every reader error names the file; a decode error also says where.
        offset = getattr(error, "start", None)
        raise RawFileError(
            f"{source_file}: cannot be decoded as {getattr(error, 'encoding', 'text')} "
            f"(byte {offset} of a block: {getattr(error, 'reason', error)}); expected CSV text",
            byte_offset=offset,
        ) from error
    except (csv.Error, pl.exceptions.PolarsError, ValueError, OverflowError) as error:
        raise RawFileError(f"{source_file}: cannot be read ({type(error).__name__}: {error})") from error
    frame = raw.frame.with_columns(
        pl.lit(source_file).alias(SOURCE_FILE),
        pl.lit(digest).alias(SOURCE_HASH),
        pl.lit(raw.decimal_mark).alias(DECIMAL_MARK),
    )
    return RawFile(
        frame=frame,
        source_file=source_file,
        content_hash=digest,
        encoding=raw.encoding,
        header_row=raw.header_row,
        columns=raw.columns,
        sheets=raw.sheets,
        delimiter=raw.delimiter,
        decimal_mark=raw.decimal_mark,
        rows=raw.rows,
        issue_rows=raw.issue_rows,
    )


def _read_delimited(
    path: Path,
    source_file: str,
    header_row: int | None,
    utf8: bool | None = None,
    stream_from_bytes: int | None = None,
    validate_stream: bool = True,
) -> RawFile:
    streams = stream_from_bytes is not None and path.stat().st_size >= stream_from_bytes
    if utf8 is None and streams and not validate_stream:
        # polars checks every byte as the stream is written (one that is not UTF-8 fails the write, and the
        # caller reads the file again, validated): a start that is UTF-8 is enough to stream it as UTF-8.
        utf8 = _starts_as_utf8(path) or None
    encoding = detect_encoding(path, source_file, utf8=utf8)
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
    preamble = pl.lit(_preamble(head_rows[:header_index]), dtype=pl.String).alias(PREAMBLE)

    if streams and encoding in ("utf-8", "utf-8-sig"):
        # A file not separated by commas is read in full anyway (its decimal mark is looked for in every cell).
        count = validate_stream or delimiter != ","
        scanned = _scan_with_polars(path, delimiter, header_index, names, count=count)
        issue = None
        if scanned is not None and scanned[1] != 0:
            issue = _truncation_issue(path, encoding, delimiter, len(names))
            if issue is not None and scanned[1] is None:  # the last row is flagged by its number
                scanned = _scan_with_polars(path, delimiter, header_index, names, count=True)
        if scanned is not None:
            frame, rows = scanned
            if issue is not None:
                last = pl.col(SOURCE_ROW) == header_index + 1 + rows
                frame = frame.with_columns(pl.when(last).then(pl.lit(issue)).alias(PARSE_ISSUE))
            return RawFile(
                frame=frame.with_columns(preamble),
                source_file=source_file,
                content_hash="",
                encoding=encoding,
                header_row=header_index + 1,
                columns=columns,
                delimiter=delimiter,
                decimal_mark=detect_decimal_mark(frame, names, delimiter),
                rows=rows,
                issue_rows=int(issue is not None),
            )

    try:
        frame = _read_with_polars(path, encoding, delimiter, header_index, names)
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError, pl.exceptions.NoDataError):
        # Ragged or otherwise awkward rows: read record by record so nothing is lost.
        frame = _read_with_csv_module(path, encoding, delimiter, header_index, names)
    frame = _flag_truncated_last_row(frame, path, encoding, delimiter, len(names))
    frame = frame.with_columns(preamble)
    return RawFile(
        frame=frame,
        source_file=source_file,
        content_hash="",
        encoding=encoding,
        header_row=header_index + 1,
        columns=columns,
        delimiter=delimiter,
        decimal_mark=detect_decimal_mark(frame, names, delimiter),
    )


#: "33,5", "-1.234,56", "12,5%": a number written with a decimal comma (and dots between thousands).
_DECIMAL_COMMA = r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d+),\d+\s*%?\s*$"
#: "33.5", "1,234.56": a number written with a decimal point.
_DECIMAL_POINT = r"^\s*[-+]?(\d{1,3}(,\d{3})+|\d+)\.\d+\s*%?\s*$"


def detect_decimal_mark(frame: pl.DataFrame | pl.LazyFrame, columns: list[str], delimiter: str) -> str:
    """``","`` when a file not separated by commas writes its numbers with decimal commas (European CSV,
    ``33,5`` in a ``;`` file) and never with a decimal point; else ``"."``. Silver parses numbers by it."""
    if delimiter == "," or (isinstance(frame, pl.DataFrame) and frame.height == 0) or not columns:
        return "."
    counts = (
        frame.lazy()
        .select(
            pl.sum_horizontal(pl.col(c).str.contains(_DECIMAL_COMMA).sum() for c in columns).alias("comma"),
            pl.sum_horizontal(pl.col(c).str.contains(_DECIMAL_POINT).sum() for c in columns).alias("point"),
        )
        .collect(engine="streaming")
        .row(0)
    )
    return "," if counts[0] and not counts[1] else "."


def _csv_options(delimiter: str, header_index: int, names: list[str]) -> dict[str, Any]:
    """How polars reads a landed CSV, whole or scanned: every cell as text under the detected header's names,
    a row wider than the header refused (the caller then reads record by record, keeping the extra fields)."""
    return {
        "separator": delimiter,
        "skip_rows": header_index,
        "has_header": True,
        "new_columns": names,
        "infer_schema": False,
        "extra_columns": "raise",
        "raise_if_empty": False,
        "truncate_ragged_lines": False,
    }


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
        frame = pl.read_csv(source, **_csv_options(delimiter, header_index, names))
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


def _scan_with_polars(
    path: Path, delimiter: str, header_index: int, names: list[str], *, count: bool = True
) -> tuple[pl.LazyFrame, int | None] | None:
    """The file as a lazy scan with the columns :func:`_read_with_polars` gives, and its row count; None when
    polars cannot read it as it is (the caller then reads it whole, which copes with ragged rows).

    With ``count``, one streamed pass parses every cell first, so a file polars would refuse is found before
    any of it is written. Without it only the header is read (the row count is None): the cells are parsed
    when the scan is consumed.
    """
    scan = pl.scan_csv(path, **_csv_options(delimiter, header_index, names))
    try:
        if len(scan.collect_schema()) != len(names):
            return None
        rows = None
        if count:
            rows = scan.select(pl.len(), pl.col(names).null_count()).collect(engine="streaming").item(0, 0)
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError, pl.exceptions.NoDataError):
        return None
    # Numbered after the scan, not by it: the scan's own row index parses the file on one thread.
    frame = scan.with_row_index(SOURCE_ROW, offset=header_index + 2).select(
        *names,
        pl.col(SOURCE_ROW).cast(pl.Int64),
        pl.lit(None, dtype=pl.String).alias(PARSE_ISSUE),
        pl.lit(None, dtype=pl.String).alias(EXTRA_FIELDS),
    )
    return frame, rows


def _flag_truncated_last_row(
    frame: pl.DataFrame, path: Path, encoding: str, delimiter: str, width: int
) -> pl.DataFrame:
    """Flag a last row cut short (a file truncated in transfer): polars pads it with nulls silently."""
    if frame.height == 0 or frame[PARSE_ISSUE][-1] is not None:
        return frame
    issue = _truncation_issue(path, encoding, delimiter, width)
    if issue is None:
        return frame
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == frame.height - 1)
        .then(pl.lit(issue))
        .otherwise(pl.col(PARSE_ISSUE))
        .alias(PARSE_ISSUE)
    )


def _truncation_issue(path: Path, encoding: str, delimiter: str, width: int) -> str | None:
    """What is wrong with a file's last row when it was cut short, else None.

    Only a file that does not end with a line break can have been cut mid-row; its last record is
    re-read with the csv module and its field count compared with the header's.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    text = tail.decode(_tail_codec(encoding, head, whole=size <= len(tail)), errors="replace")
    if text.endswith(("\n", "\r")):
        return None
    if size > len(tail):  # start at a line boundary; the first partial line is not ours to judge
        text = text.split("\n", 1)[-1]
    records = [r for r in _csv_records(text, delimiter, limit=1_000_000) if r]
    if not records or len(records[-1]) >= width:
        return None
    return f"last row has {len(records[-1])} fields, the header has {width}: the file looks truncated"


def _tail_codec(encoding: str, head: bytes, *, whole: bool) -> str:
    """The codec for the end of a file: a BOM encoding names its byte order only at the file's start."""
    if whole or encoding not in ("utf-16", "utf-32"):
        return encoding
    if encoding == "utf-32":
        return "utf-32-le" if head.startswith(codecs.BOM_UTF32_LE) else "utf-32-be"
    return "utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"


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
