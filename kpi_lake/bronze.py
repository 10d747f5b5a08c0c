"""Bronze: land what arrived, as it arrived, with lineage, idempotently.

Files: each file is read as text (``kpi_lake.raw_files``) and its rows replace that file's earlier rows in
one commit; a file whose content hash is already in the table is not read again. A file that cannot be
landed is recorded in ``<table>_bad_files`` (file, hash, error) while the good files land.
Database tables: rows changed since the table's watermark (the largest ``updated_at`` already in bronze) less
a look-back, and now and then the whole table, are merged on the primary key; soft deletes arrive as changed
rows and hard deletes are found by comparing keys, so bronze mirrors the source. Either way a rerun with
nothing new writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from kpi_lake.frames import delta_compatible
from kpi_lake.landed_hashes import LandedHashes
from kpi_lake.raw_files import (
    DECIMAL_MARK,
    EXTRA_FIELDS,
    LOADED_AT,
    PARSE_ISSUE,
    PREAMBLE,
    RUN_ID,
    SOURCE_FILE,
    SOURCE_HASH,
    SOURCE_ROW,
    SOURCE_SHEET,
    RawFileError,
    file_digest,
    read_raw_file,
)
from kpi_lake.tables import TableRef

if TYPE_CHECKING:
    from pathlib import Path

    from resources.lake import DeltaLake, TableState
    from resources.landing import LandingZone

SOURCE_TABLE = "_source_table"
DELETED_IN_SOURCE = "_deleted_in_source"
#: What identifies a landed file row: the file, its row number and (for a spreadsheet) its sheet.
FILE_ROW_KEYS = [SOURCE_FILE, SOURCE_ROW, SOURCE_SHEET]


@dataclass(frozen=True)
class FileTable:
    """A bronze table fed by files: which files in ``landing/<source>/`` go into it.

    A file goes here when its name matches one of ``patterns`` (and no ``exclude``) and its header holds all
    of ``required_columns`` (after name normalisation). Where one folder holds several layouts (a long and a
    wide emissions table, say), the required columns send each file to its table; a file that no table of its
    folder can take (a SPAR.net export without ``actual``) is a bad file, recorded with what it lacks.
    """

    source: str
    table: str
    patterns: tuple[str, ...]
    description: str
    exclude: tuple[str, ...] = ()
    required_columns: tuple[str, ...] = ()
    header_row: int | None = None

    @property
    def ref(self) -> TableRef:
        return TableRef("bronze", self.source, self.table)

    @property
    def bad_files_ref(self) -> TableRef:
        """Where this table's unreadable files are recorded: ``bronze/<source>/<table>_bad_files``."""
        return TableRef("bronze", self.source, f"{self.table}{BAD_FILES_SUFFIX}")

    def takes_name(self, name: str) -> bool:
        """Whether a file name (``spar_net/x.csv`` or ``x.csv``) matches the patterns and no exclusion."""
        base = name.rsplit("/", 1)[-1].lower()
        return any(fnmatch.fnmatch(base, p.lower()) for p in self.patterns) and not any(
            fnmatch.fnmatch(base, p.lower()) for p in self.exclude
        )

    def missing_columns(self, columns: Iterable[str]) -> list[str]:
        have = set(columns)
        return [c for c in self.required_columns if c not in have]


#: Suffix of the table recording a bronze table's bad files (one table per bronze table: one writer each).
BAD_FILES_SUFFIX = "_bad_files"
BAD_FILES_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_hash": pl.String(),
    "error": pl.String(),
    "row": pl.Int64(),
    "column": pl.String(),
    "byte_offset": pl.Int64(),
    "detected_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String(),
}


@dataclass(frozen=True)
class BadFile:
    """A landed file that could not be landed: its name, hash and why (naming the file, and where)."""

    source_file: str
    source_hash: str
    error: str
    row: int | None = None
    column: str | None = None
    byte_offset: int | None = None


@dataclass
class LandingReport:
    """What one bronze materialisation did, for the run log and the asset's metadata."""

    ref: TableRef
    from_files: bool = True
    loaded: list[str] = field(default_factory=list)
    skipped_unchanged: list[str] = field(default_factory=list)
    skipped_other_layout: list[str] = field(default_factory=list)
    bad_files: list[BadFile] = field(default_factory=list)
    bad_files_unchanged: list[str] = field(default_factory=list)
    rows_written: int = 0
    rows_deleted: int = 0
    rows_rejected: int = 0
    rows_with_parse_issues: int = 0
    state: TableState | None = None

    def to_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = dict(self.state.to_metadata()) if self.state else {}
        metadata["rows_written"] = self.rows_written
        if self.from_files:
            metadata.update(
                {
                    "files_loaded": len(self.loaded),
                    "files_unchanged": len(self.skipped_unchanged),
                    "rows_with_parse_issues": self.rows_with_parse_issues,
                    "bad_files": len(self.bad_files),
                }
            )
        if self.loaded:
            metadata["loaded_files"] = ", ".join(self.loaded)
        if self.bad_files:
            metadata["bad_file_errors"] = "\n".join(bad.error for bad in self.bad_files)
        if self.bad_files_unchanged:
            metadata["bad_files_unchanged"] = ", ".join(self.bad_files_unchanged)
        if self.rows_deleted:
            metadata["rows_deleted_in_source"] = self.rows_deleted
        if self.rows_rejected:
            metadata["rows_rejected"] = self.rows_rejected
        return metadata


#: Landed files at least this large are streamed into bronze (parsed as they are written) rather than read
#: whole: a 5-million-row EES file (1 GB) would take several GB as a frame.
STREAM_FROM_BYTES = 64 * 1024 * 1024


class _StreamRefused(Exception):
    """A large file streamed without a validating pass first did not parse: read the files again, validated."""


def land_files(
    spec: FileTable,
    *,
    lake: DeltaLake,
    landing: LandingZone,
    run_id: str,
    siblings: Sequence[FileTable] = (),
    loaded_at: dt.datetime | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> LandingReport:
    """Load the files of ``spec`` that bronze does not hold yet, in one commit (see :func:`_land_files`).

    A large file is streamed in a single pass: parsed as it is written. A file polars cannot parse that way
    (ragged rows, bytes that are not UTF-8 past the start) fails the write, which is one Delta commit and so
    writes nothing; then the files are read again, a large one validated by a streamed pass before it is
    written, and one that polars refuses is read whole (which keeps ragged rows, with ``_parse_issue`` set).
    """
    recorded_bad: set[tuple[str, str]] = set()
    for validate_streams in (False, True):
        # A streamed file is read when the table is written: its local copy is kept until then.
        with contextlib.ExitStack() as keep_open:
            try:
                return _land_files(
                    spec,
                    lake=lake,
                    landing=landing,
                    run_id=run_id,
                    siblings=siblings,
                    loaded_at=loaded_at,
                    log=log,
                    keep_open=keep_open,
                    validate_streams=validate_streams,
                    recorded_bad=recorded_bad,
                )
            except _StreamRefused as refused:
                log(f"{refused}: reading the files again, each validated before it is written")
    raise AssertionError("unreachable: the validated attempt raises no _StreamRefused")


def _land_files(
    spec: FileTable,
    *,
    lake: DeltaLake,
    landing: LandingZone,
    run_id: str,
    siblings: Sequence[FileTable],
    loaded_at: dt.datetime | None,
    log: Callable[[str], None],
    keep_open: contextlib.ExitStack,
    validate_streams: bool = True,
    recorded_bad: set[tuple[str, str]] | None = None,
) -> LandingReport:
    """Load the files of ``spec`` that bronze does not hold yet, in one commit. Returns what it did.

    A file that cannot be landed (unreadable, or missing a required column) is a bad file: it is recorded in
    ``<table>_bad_files`` with its hash and the error, and the good files land without it. An unchanged bad
    file (same hash) is not read again; a corrected one (new hash) is. ``siblings`` are the other tables of
    the same landing folder, so a file of another layout is left to its table rather than called bad.
    ``recorded_bad``: bad files this call records, added to by it (an earlier attempt's are reported as new).
    """
    from resources.lake import LakeWriteError

    report = LandingReport(spec.ref)
    loaded_at = loaded_at or dt.datetime.now(dt.UTC)
    recorded_bad = set() if recorded_bad is None else recorded_bad
    # A table left with rows twice by two unguarded first loads heals here: one row per file row again.
    lake.heal_duplicate_keys(spec.ref, FILE_ROW_KEYS[:2], optional_keys=FILE_ROW_KEYS[2:])
    known = _known_files(lake, spec.ref)
    known_hashes = set(known.values())
    known_bad = _known_bad_files(lake, spec.bad_files_ref) - recorded_bad
    # Hashes recorded by fingerprint: an unchanged file is recognised without reading (or downloading) it.
    ledger = LandedHashes(lake, spec.ref)
    recorded = ledger.load()
    hashed: dict[str, tuple[str, str]] = {}
    listed: list[str] = []
    frames: list[pl.LazyFrame] = []
    unvalidated: dict[str, Path] = {}  # streamed files not parsed yet: their rows are counted once written
    streamed = False
    for landed in landing.list_files(spec.source, spec.patterns, spec.exclude):
        listed.append(landed.name)
        # Recorded with this fingerprint: skipped on that hash alone when bronze holds it. A file that must be
        # read after all is hashed from its bytes, so lineage never carries a hash only remembered.
        entry = recorded.get(landed.name)
        fingerprinted = (
            landed.fingerprint is not None and entry is not None and entry[0] == landed.fingerprint
        )
        if fingerprinted and _seen(landed.name, entry[1], known, known_hashes, known_bad, report):
            continue
        with contextlib.ExitStack() as opened:
            path = opened.enter_context(landing.open_local(landed))
            # The hash, and for a file new to bronze whether its bytes are UTF-8 (read once for both; a known
            # name is most often unchanged: its hash alone says so; a large file streamed in one pass has its
            # bytes checked by polars as it is written).
            single_pass = not validate_streams and landed.size >= STREAM_FROM_BYTES
            digested = file_digest(path, check_utf8=landed.name not in known and not single_pass)
            digest = digested.sha256
            if landed.fingerprint:
                hashed[landed.name] = (landed.fingerprint, digest)
            if _seen(landed.name, digest, known, known_hashes, known_bad, report):
                continue
            try:
                raw = read_raw_file(
                    path,
                    source_file=landed.name,
                    header_row=spec.header_row,
                    content_hash=digest,
                    utf8=digested.utf8,
                    stream_from_bytes=STREAM_FROM_BYTES,
                    validate_stream=validate_streams,
                )
            except RawFileError as error:
                report.bad_files.append(
                    BadFile(landed.name, digest, str(error), error.row, error.column, error.byte_offset)
                )
                continue
            if isinstance(raw.frame, pl.LazyFrame):
                keep_open.enter_context(opened.pop_all())
        owner = _layout_owner(spec, siblings, landed.name, raw.columns)
        if owner is None:
            report.skipped_other_layout.append(landed.name)
            continue
        missing = spec.missing_columns(raw.columns)
        if missing:
            if owner is spec:
                report.bad_files.append(_missing_columns_error(landed.name, digest, missing, raw.columns))
            else:  # the table its columns are closest to records it
                report.skipped_other_layout.append(landed.name)
            continue
        streamed = streamed or isinstance(raw.frame, pl.LazyFrame)
        frames.append(raw.frame.lazy())
        report.loaded.append(landed.name)
        known_hashes.add(digest)
        if not raw.validated:
            unvalidated[landed.name] = path
            continue
        issues = raw.rows_with_parse_issues
        if issues:
            log(f"{landed.name}: {issues} rows do not match the header's width; kept with _parse_issue set")
        report.rows_with_parse_issues += issues
        report.rows_written += raw.height
        log(f"{landed.name}: {raw.height} rows ({raw.encoding}, header on row {raw.header_row})")

    if report.bad_files:
        # Recorded before the table is written: a failure in between leaves the good files to the next run.
        lake.merge(
            spec.bad_files_ref,
            _bad_files_frame(report.bad_files, loaded_at, run_id),
            ["source_file", "source_hash"],
        )
        recorded_bad.update((bad.source_file, bad.source_hash) for bad in report.bad_files)
        for bad in report.bad_files:
            kept = " (its earlier version stays in bronze)" if bad.source_file in known else ""
            log(f"bad file set aside in {spec.bad_files_ref}{kept}: {bad.error}")
    if not frames:
        report.state = lake.state(spec.ref, operation="unchanged") if lake.exists(spec.ref) else None
        _record_hashes(ledger, recorded, hashed, listed)
        return report
    batch = pl.concat(frames, how="diagonal_relaxed").with_columns(
        pl.lit(loaded_at).dt.cast_time_unit("us").alias(LOADED_AT),
        pl.lit(run_id).alias(RUN_ID),
    )
    batch = _order_columns(batch)
    if not streamed:
        # Files read whole are written as one frame: delta-rs writes a stream of batches in the order they
        # arrive from its workers, a frame in its own order (a landed file's rows stay in file order).
        batch = batch.collect()
    names = ", ".join(_sql_string(name) for name in report.loaded)
    # With a streamed file the write streams (that file straight from its scan), never one whole frame. Each
    # file's rows are unique by row number and the predicate removes every earlier row of these files.
    try:
        report.state = lake.replace_where(
            spec.ref, batch, predicate=f"{SOURCE_FILE} IN ({names})", unique_keys=FILE_ROW_KEYS
        )
    except LakeWriteError:
        refused = [name for name, path in unvalidated.items() if not _parses_as_streamed(path, name, spec)]
        if refused:  # nothing was committed: the write is one Delta commit
            raise _StreamRefused(f"{', '.join(refused)}: polars cannot stream it as it is") from None
        raise
    if unvalidated:
        written = _rows_written(lake, spec.ref, list(unvalidated))
        for name in unvalidated:
            report.rows_written += written.get(name, 0)
            log(f"{name}: {written.get(name, 0)} rows (utf-8, streamed)")
    _record_hashes(ledger, recorded, hashed, listed)
    return report


def _seen(
    name: str,
    digest: str,
    known: dict[str, str],
    known_hashes: set[str],
    known_bad: set[tuple[str, str]],
    report: LandingReport,
) -> bool:
    """Whether a landed file of this hash needs no reading: bronze holds it (under this name, or under another
    when the name is new: a renamed copy), or it is a bad file recorded unchanged. Says so in ``report``."""
    if known.get(name) == digest or (name not in known and digest in known_hashes):
        report.skipped_unchanged.append(name)
        return True
    if (name, digest) in known_bad:
        report.bad_files_unchanged.append(name)
        return True
    return False


def _record_hashes(
    ledger: LandedHashes,
    recorded: dict[str, tuple[str, str]],
    hashed: dict[str, tuple[str, str]],
    listed: list[str],
) -> None:
    """Record the hashes computed this time by fingerprint (after the table's commit), for files still landed."""
    still_landed = set(listed)
    updated = {name: entry for name, entry in {**recorded, **hashed}.items() if name in still_landed}
    if updated != recorded:
        ledger.save(updated)


def _parses_as_streamed(path: Path, name: str, spec: FileTable) -> bool:
    """Whether polars parses every row of a landed file as a stream (one validating pass over it)."""
    try:
        raw = read_raw_file(
            path, source_file=name, header_row=spec.header_row, content_hash="-", stream_from_bytes=0
        )
    except RawFileError:
        return False
    return isinstance(raw.frame, pl.LazyFrame)


def _rows_written(lake: DeltaLake, ref: TableRef, names: list[str]) -> dict[str, int]:
    """How many rows each of ``names`` has in bronze (a streamed file's count, read back from what was written):
    from the Delta log's file statistics when every data file holding these names holds one of them alone
    (its ``_source_file`` minimum and maximum both that name), else by reading ``_source_file``."""
    actions = pl.DataFrame(lake.delta_table(ref).get_add_actions(flatten=True))
    low, high = f"min.{SOURCE_FILE}", f"max.{SOURCE_FILE}"
    if {low, high} <= set(actions.columns):
        wanted = pl.col(low).is_in(names) | pl.col(high).is_in(names)
        unknown = pl.col(low).is_null() | pl.col(high).is_null()
        files = actions.filter(wanted | unknown)
        # A file with no statistics for the column, or spanning two names (or a name cut short), is not counted
        # from the log.
        if files.filter(unknown | (pl.col(low) != pl.col(high))).height == 0:
            counts = files.group_by(low).agg(pl.col("num_records").sum())
            return {name: int(rows) for name, rows in counts.iter_rows()}
    counts = (
        lake.scan(ref).filter(pl.col(SOURCE_FILE).is_in(names)).group_by(SOURCE_FILE).agg(pl.len()).collect()
    )
    return dict(counts.iter_rows())


def _layout_owner(
    spec: FileTable, siblings: Sequence[FileTable], name: str, columns: Iterable[str]
) -> FileTable | None:
    """Which table a file belongs to: ``spec`` when it has spec's required columns; None when a sibling whose
    patterns match takes it instead; else the candidate whose required columns it has most of (``spec``
    first on a tie), which records it as a bad file."""
    have = list(columns)
    if not spec.missing_columns(have):
        return spec
    # In the folder's declared order, so that every table's asset picks the same one.
    tables = list(siblings) if spec in siblings else [spec, *siblings]
    candidates = [t for t in tables if t is spec or t.takes_name(name)]
    if any(not other.missing_columns(have) for other in candidates if other is not spec):
        return None
    return max(candidates, key=lambda t: len(t.required_columns) - len(t.missing_columns(have)))


def _missing_columns_error(name: str, digest: str, missing: list[str], columns: Iterable[str]) -> BadFile:
    what = "required column" if len(missing) == 1 else "required columns"
    verb = "is" if len(missing) == 1 else "are"
    listed = ", ".join(repr(c) for c in missing)
    return BadFile(
        name,
        digest,
        f"{name}: {what} {listed} {verb} missing; found: {', '.join(columns)} "
        "(headers in snake_case; a renamed column counts as missing)",
        row=1,
        column=missing[0],
    )


def _bad_files_frame(bad_files: list[BadFile], detected_at: dt.datetime, run_id: str) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "source_file": bad.source_file,
                "source_hash": bad.source_hash,
                "error": bad.error,
                "row": bad.row,
                "column": bad.column,
                "byte_offset": bad.byte_offset,
                "detected_at": detected_at,
                "run_id": run_id,
            }
            for bad in bad_files
        ],
        schema=BAD_FILES_SCHEMA,
    ).unique(["source_file", "source_hash"], keep="first", maintain_order=True)


def _known_bad_files(lake: DeltaLake, ref: TableRef) -> set[tuple[str, str]]:
    """(file, hash) of every bad file recorded: an unchanged bad file is not read again."""
    if not lake.exists(ref):
        return set()
    known = lake.scan(ref).select("source_file", "source_hash").collect()
    return set(known.iter_rows())


def _known_files(lake: DeltaLake, ref: TableRef) -> dict[str, str]:
    """Files already in a bronze table, with the hash of the version loaded."""
    if not lake.exists(ref):
        return {}
    known = lake.scan(ref).select(SOURCE_FILE, SOURCE_HASH).unique().collect()
    return dict(zip(known[SOURCE_FILE].to_list(), known[SOURCE_HASH].to_list(), strict=True))


def _order_columns(frame: pl.LazyFrame) -> pl.LazyFrame:
    lineage = [
        SOURCE_FILE,
        SOURCE_HASH,
        SOURCE_ROW,
        PREAMBLE,
        PARSE_ISSUE,
        EXTRA_FIELDS,
        DECIMAL_MARK,
        LOADED_AT,
        RUN_ID,
    ]
    columns = frame.collect_schema().names()
    data = [c for c in columns if not c.startswith("_")]
    rest = [c for c in columns if c.startswith("_") and c not in lineage]
    return frame.select(data + [c for c in lineage if c in columns] + rest)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ---- file names no table takes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnmatchedFile:
    """A file in a landing folder that no bronze table's patterns take, and the table it is closest to."""

    name: str
    closest: FileTable
    renamed: str | None  # a name the closest table would take (spaces and case fixed), when there is one

    @property
    def message(self) -> str:
        patterns = ", ".join(self.closest.patterns)
        hint = (
            f"rename it {self.renamed!r} to land it in {self.closest.ref}"
            if self.renamed
            else f"the closest table is {self.closest.ref}"
        )
        return f"{self.name}: matches no table's file pattern and is not landed (expected {patterns}); {hint}"


def unmatched_files(names: Iterable[str], tables: Sequence[FileTable]) -> list[UnmatchedFile]:
    """The files (``<source>/<name>``) that no table of their folder takes, each with its closest table."""
    result = []
    for name in sorted(names):
        source = name.split("/", 1)[0]
        own = [t for t in tables if t.source == source]
        if not own or any(t.takes_name(name) for t in own):
            continue
        base = name.rsplit("/", 1)[-1]
        tidy = re.sub(r"[\s-]+", "_", base.strip().lower())
        tidy_keep_dash = re.sub(r"\s+", "_", base.strip().lower())
        renamed = next(
            ((t, candidate) for candidate in (tidy_keep_dash, tidy) for t in own if t.takes_name(candidate)),
            None,
        )
        if renamed:
            result.append(UnmatchedFile(name, renamed[0], renamed[1]))
            continue

        result.append(UnmatchedFile(name, max(own, key=lambda t: _likeness(tidy, t)), None))
    return result


def _likeness(name: str, table: FileTable) -> float:
    return max(
        difflib.SequenceMatcher(None, name, p.lower().replace("*", "")).ratio() for p in table.patterns
    )


# ---- database tables ----------------------------------------------------------------------------------------
#: Rows whose ``updated_at`` is at most this much older than bronze's watermark are read again on every run
#: (merged on the key, so unchanged ones write nothing): late-arriving changes and clock skew are caught.
DEFAULT_LOOKBACK = dt.timedelta(hours=72)
#: Every so often the whole table is read and merged (only rows that differ are written): catches changes
#: whatever their ``updated_at`` (a restore, a bulk fix that did not touch it).
DEFAULT_FULL_RECONCILIATION = dt.timedelta(days=7)
REJECT_REASON = "_reason"
REJECT_KEY = "_rejected_record"
#: Beyond this many repeated keys, the whole table is read rather than listing them in the query.
MAX_KEYS_IN_QUERY = 1000
#: Data file size of a mirrored database table. Rows arrive in ``updated_at`` order, so a night's changes
#: (mostly to recent rows) fall in few files, and a merge rewrites only those (a single file would be
#: rewritten whole every night). Small next to what BI tools like; bronze is read by silver, not by them.
DATABASE_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class DatabaseTable:
    """A bronze table mirrored from a business-system database table."""

    source: str
    table: str
    primary_key: str
    watermark: str = "updated_at"
    description: str = ""
    lookback: dt.timedelta = DEFAULT_LOOKBACK
    full_reconciliation_every: dt.timedelta = DEFAULT_FULL_RECONCILIATION

    @property
    def ref(self) -> TableRef:
        return TableRef("bronze", self.source, self.table)

    @property
    def rejected_ref(self) -> TableRef:
        return TableRef("bronze", self.source, f"{self.table}_rejected")


@dataclass
class DatabaseLandingReport(LandingReport):
    """What one database extract did: besides rows, whether it was a full reconciliation (and why), the
    columns that appeared or disappeared at source, and why rows were rejected."""

    full_reconciliation: str | None = None
    reconciled_at: dt.datetime | None = None
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0

    def to_metadata(self) -> dict[str, Any]:
        metadata = super().to_metadata()
        metadata["rows_read_from_source"] = self.rows_read
        metadata["full_reconciliation"] = self.full_reconciliation or "no (incremental, with look-back)"
        if self.reconciled_at is not None:
            metadata[LAST_FULL_RECONCILIATION] = self.reconciled_at.isoformat()
        if self.columns_added or self.columns_removed:
            drift = [f"added at source: {', '.join(self.columns_added)}"] if self.columns_added else []
            drift += [f"gone from source: {', '.join(self.columns_removed)}"] if self.columns_removed else []
            metadata["schema_drift"] = "; ".join(drift)
        if self.rejected_reasons:
            metadata["rejected_reasons"] = "; ".join(f"{r} ({n})" for r, n in self.rejected_reasons.items())
        return metadata


#: Materialisation metadata key holding when the table was last fully reconciled (ISO timestamp).
LAST_FULL_RECONCILIATION = "last_full_reconciliation"


def land_database_table(
    spec: DatabaseTable,
    *,
    lake: DeltaLake,
    engine: Any,
    run_id: str,
    loaded_at: dt.datetime | None = None,
    last_full_reconciliation: dt.datetime | None = None,
    batch_size: int = 250_000,
    log: Callable[[str], None] = lambda _: None,
) -> DatabaseLandingReport:
    """Merge rows changed since the watermark (less the look-back) into bronze, and mark rows deleted from
    the source. The whole table is read instead on the first load, when the source's columns changed, when
    the source holds keys bronze has never seen, and every ``spec.full_reconciliation_every``.

    Rows with a NULL primary key, or a key that appears more than once at source, go to
    ``<table>_rejected`` with the reason, never into bronze (for a duplicated key, bronze keeps the version
    it already held). New source columns are added to bronze (reported as schema drift)."""
    import sqlalchemy as sa  # imported here: keeps the code location light to load

    report = DatabaseLandingReport(spec.ref, from_files=False)
    loaded_at = loaded_at or dt.datetime.now(dt.UTC)
    table = sa.Table(spec.table, sa.MetaData(), autoload_with=engine)
    key = spec.primary_key
    if key not in table.c or spec.watermark not in table.c:
        raise RawFileError(
            f"database table {spec.table}: expected columns {key!r} (primary key) and "
            f"{spec.watermark!r} (watermark); found {sorted(table.c.keys())}"
        )
    types = _polars_types(table)
    exists = lake.exists(spec.ref)
    watermark = None
    if exists:  # a table left with a key twice by two unguarded first loads heals here, changes or not
        lake.heal_duplicate_keys(spec.ref, [spec.primary_key])
        newest, watermark = (
            lake.scan(spec.ref).select(pl.col(LOADED_AT).max(), pl.col(spec.watermark).max()).collect().row(0)
        )
        # Each load's stamp is later than any before it, whatever this host's clock says: silver takes the rows
        # changed since its last build as those with a later `_loaded_at` (assets/silver/factory.py).
        if newest is not None and loaded_at <= newest:
            loaded_at = newest + dt.timedelta(microseconds=1)
    full = "first load" if not exists else None
    if exists:
        bronze_columns = lake.scan(spec.ref).collect_schema().names()
        report.columns_added = [c for c in types if c not in bronze_columns]
        report.columns_removed = [c for c in bronze_columns if not c.startswith("_") and c not in types]
        if report.columns_added or report.columns_removed:
            full = "the source's columns changed"
            log(
                f"{spec.table}: schema drift at source (added: {report.columns_added or '-'}, "
                f"gone: {report.columns_removed or '-'}); reading the whole table"
            )
        elif last_full_reconciliation is None:
            full = "no full reconciliation on record"
        elif loaded_at - last_full_reconciliation >= spec.full_reconciliation_every:
            full = f"last full reconciliation {last_full_reconciliation:%Y-%m-%d %H:%M} UTC"

    with engine.connect() as connection:
        source_keys = duplicated_keys = pl.Series(key, [], dtype=types[key])
        query = sa.select(table)
        since = None
        if full is None and watermark is not None:
            since = _as_source_timestamp(watermark) - spec.lookback
            query = query.where(table.c[spec.watermark] >= since)
        read_whole = full is not None or since is None
        # The changed rows first: the keys they bring into bronze are counted on bronze's side below, so that a
        # night of inserts (and updates) agrees with the source without reading a key.
        changed, rejected = _read_changed(connection, query, table, types, batch_size, spec, log)
        if exists:  # on a first load, the rows read are all the keys there are
            key_ranges: KeyRanges | None = None
            if full is None:
                arriving = _arriving_keys(lake, spec, changed[key])
                # Compare counts and sums (per key range, for an integer key) first: keys are read only where
                # they differ (from SQLite every key at once, kept with the ranges).
                key_ranges = _differing_key_ranges(connection, table, key, types[key], lake, spec, arriving)
            if key_ranges is not None and key_ranges.keys is not None:
                source_keys = key_ranges.keys
            elif key_ranges is None or key_ranges.buckets:
                at_once = _all_keys(connection, table, key, types[key]) if key_ranges is None else None
                if at_once is not None:
                    source_keys = at_once
                else:
                    keys_query = sa.select(table.c[key])
                    if key_ranges is not None:
                        keys_query = keys_query.where(key_ranges.where(table.c[key]))
                    keys_read = pl.read_database(keys_query, connection, schema_overrides={key: types[key]})
                    source_keys = keys_read[key]
            duplicated_keys = _repeated(source_keys)
            if duplicated_keys.len() > MAX_KEYS_IN_QUERY and full is None:
                full = f"{duplicated_keys.len()} keys appear more than once at source"
            elif duplicated_keys.len() and not read_whole:
                # Every row of a repeated key is read, so that all of them are set aside, not just the new.
                repeated = pl.col(key).is_in(duplicated_keys.implode())
                again, again_rejected = _read_changed(
                    connection,
                    sa.select(table).where(table.c[key].in_(duplicated_keys.to_list())),
                    table,
                    types,
                    batch_size,
                    spec,
                    log,
                )
                changed = pl.concat([changed.filter(~repeated), again])
                if key in rejected.columns:
                    as_text = duplicated_keys.cast(pl.String).implode()
                    rejected = rejected.filter(~pl.col(key).cast(pl.String).is_in(as_text))
                rejected = pl.concat([rejected, again_rejected], how="diagonal_relaxed")
        if full is None:
            # A cheap comparison of keys: a row inserted with an old updated_at is missed by any watermark.
            # Keys just read (new rows past the watermark) are not unseen: they are about to be merged.
            read = [duplicated_keys, changed[key]]
            if key in rejected.columns:
                read.append(rejected[key])
            read_keys = pl.concat([k.cast(pl.String) for k in read])
            unseen = _unseen_keys(lake, spec, source_keys, read_keys) if source_keys.len() else 0
            if unseen:
                full = f"{unseen} source keys not in bronze (inserted with an old {spec.watermark}?)"
        if full is not None and not read_whole:
            changed, rejected = _read_changed(
                connection, sa.select(table), table, types, batch_size, spec, log
            )
    report.full_reconciliation = full
    report.rows_read = changed.height + rejected.height
    report.reconciled_at = loaded_at if full else last_full_reconciliation
    if not exists:
        duplicated_keys = _repeated(changed[key])
    changed, bad_keys = _split_bad_keys(changed, key, duplicated_keys)
    rejected = pl.concat([rejected, bad_keys], how="diagonal_relaxed")
    if rejected.height:
        _reject(spec, lake, rejected, run_id=run_id, report=report, log=log)

    data_columns = list(changed.columns)
    changed = delta_compatible(changed).with_columns(
        pl.lit(spec.table).alias(SOURCE_TABLE),
        pl.lit(False).alias(DELETED_IN_SOURCE),
        pl.lit(loaded_at).dt.cast_time_unit("us").alias(LOADED_AT),
        pl.lit(run_id).alias(RUN_ID),
    )
    if not exists:
        report.rows_written = changed.height
        report.state = lake.merge(spec.ref, changed, [key], file_bytes=DATABASE_FILE_BYTES)
        log(f"{spec.table}: first load, {changed.height} rows")
        return report
    if report.columns_added:
        # Add the new columns first (an empty append evolves the schema), so that the merge below can compare
        # them and fill them in on every row the source has them for.
        lake.append(spec.ref, changed.head(0).select(key, *report.columns_added))

    vanished = (
        lake.scan(spec.ref)
        .filter(~pl.col(DELETED_IN_SOURCE))
        .filter(key_ranges.expr(key) if key_ranges is not None else pl.lit(True))
        .join(pl.LazyFrame({key: source_keys.drop_nulls()}), on=key, how="anti")
        # Stamped with this load, as every row a merge changes: silver finds a night's changes by `_loaded_at`.
        .with_columns(
            pl.lit(True).alias(DELETED_IN_SOURCE),
            pl.lit(loaded_at).dt.cast_time_unit("us").alias(LOADED_AT),
            pl.lit(run_id).alias(RUN_ID),
        )
        .collect()
    )
    report.rows_deleted = vanished.height
    if full is None and changed.height:
        # Rows read again through the look-back are mostly as bronze holds them: merge only those that differ
        # (a merge of unchanged rows writes nothing, but still scans the whole table).
        changed = _differing_rows(lake, spec, changed, data_columns)
    upserts = pl.concat([changed, vanished], how="diagonal_relaxed")
    if upserts.height == 0:
        report.state = lake.state(spec.ref, operation="unchanged")
        return report
    state = lake.merge(
        spec.ref,
        upserts,
        [key],
        only_if_changed=[*data_columns, DELETED_IN_SOURCE],
        matched_from=_matched_from(lake, spec, upserts[key]),
    )
    report.rows_written = int(state.metrics.get("num_target_rows_inserted", 0)) + int(
        state.metrics.get("num_target_rows_updated", 0)
    )
    report.state = state
    read = "the whole table (" + full + ")" if full else f"rows since {since} (watermark less the look-back)"
    log(
        f"{spec.table}: read {changed.height} rows, {read}; {report.rows_written} changed, "
        f"{report.rows_deleted} deleted in source"
    )
    return report


def _matched_from(lake: DeltaLake, spec: DatabaseTable, keys: pl.Series) -> tuple[str, Any] | None:
    """The oldest ``watermark`` among the bronze rows that ``keys`` will update (None when one has no stamp, or
    none is held): the merge then reads only the files that can hold them. A night's changes are mostly to
    recent rows, and bronze is written in stamp order, so its older files are skipped."""
    watermark = spec.watermark
    held = (
        lake.scan(spec.ref)
        .select(pl.col(spec.primary_key).cast(keys.dtype), watermark)
        .join(pl.LazyFrame({spec.primary_key: keys}), on=spec.primary_key, how="semi")
        .select(
            pl.col(watermark).min().alias("lowest"), pl.col(watermark).null_count().alias("nulls"), pl.len()
        )
        .collect()
        .row(0, named=True)
    )
    if held["len"] == 0 or held["nulls"] or held["lowest"] is None:
        return None
    return watermark, held["lowest"]


def source_fingerprint(spec: DatabaseTable, engine: Any) -> str:
    """What says a source table is as bronze last found it, without reading its rows: its columns and types,
    its row count, newest ``watermark`` and sum of keys (an integer key), and the keys and stamps of the rows
    inside the look-back window from that newest stamp. A change :func:`land_database_table` finds between
    full reconciliations changes this: an update moves a stamp, an insert or hard delete the count, a late
    commit with an older stamp the window's rows. What it cannot see (an update that keeps its old stamp), the
    incremental read cannot either: both are left to the periodic full reconciliation."""
    import hashlib
    import json

    import sqlalchemy as sa

    table = sa.Table(spec.table, sa.MetaData(), autoload_with=engine)
    key, stamp = table.c[spec.primary_key], table.c[spec.watermark]
    # One query each: SQLite answers a combined aggregate by scanning an index of every column it names, and
    # the newest stamp alone from the stamp's index.
    totals = [sa.select(sa.func.count()).select_from(table), sa.select(sa.func.max(stamp))]
    if isinstance(key.type, sa.Integer):
        totals.append(sa.select(_key_sum(key)))
    digest = hashlib.sha256()
    with engine.connect() as connection:
        found = [connection.execute(query).scalar() for query in totals]
        columns = [(column.name, str(column.type)) for column in table.columns]
        digest.update(json.dumps([columns, [str(value) for value in found]]).encode())
        newest = found[1]
        if isinstance(newest, dt.date):  # a datetime too; a stamp stored as text has no window to take
            # As text (the database's own rendering, not parsed row by row), and sorted here: an ORDER BY on
            # the key makes SQLite walk the whole table in key order instead of the stamp's index range.
            window = sa.select(sa.cast(key, sa.String), sa.cast(stamp, sa.String)).where(
                stamp >= newest - spec.lookback
            )
            for row in sorted(connection.execute(window).cursor.fetchall()):  # no per-row processing
                digest.update(f"{row[0]}\t{row[1]}\n".encode())
    return digest.hexdigest()[:32]


def _read_changed(
    connection: Any,
    query: Any,
    table: Any,
    types: dict[str, pl.DataType],
    batch_size: int,
    spec: DatabaseTable,
    log: Callable[[str], None],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows ``query`` selects, typed, and those set aside because a value does not fit its type."""
    import sqlalchemy as sa

    query = query.order_by(table.c[spec.watermark], table.c[spec.primary_key])
    try:
        return _read_typed(connection, query, types, batch_size), _empty_rejects(types)
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
        # A value that does not fit its column's declared type (SQLite and extracts allow it): read
        # as text, keep what types cleanly, and set the rest aside with the column and the reason.
        log(f"{spec.table}: a value does not fit its declared type ({exc}); reading as text to find it")
        text_query = sa.select(*(sa.cast(c, sa.String).label(c.name) for c in table.columns)).where(
            query.whereclause if query.whereclause is not None else sa.true()
        )
        text = pl.read_database(text_query, connection, schema_overrides=dict.fromkeys(types, pl.String()))
        return _type_text_rows(text, types)


def _differing_rows(
    lake: DeltaLake, spec: DatabaseTable, rows: pl.DataFrame, columns: list[str]
) -> pl.DataFrame:
    """The rows (read from the source) that bronze does not hold as they are: new keys, changed values, keys
    bronze marks deleted. Bronze is read only where it can hold an identical row: its rows stamped at or after
    the oldest ``watermark`` read (an identical row has the same stamp)."""
    key, watermark = spec.primary_key, spec.watermark
    schema = lake.scan(spec.ref).collect_schema()
    if any(c not in schema for c in columns):
        return rows
    held = (
        lake.scan(spec.ref)
        .filter(pl.col(watermark) >= rows[watermark].min())
        .filter(~pl.col(DELETED_IN_SOURCE))
        .select(columns)
        .join(rows.lazy().select(key), on=key, how="semi")
        .collect()
    )
    if held.height == 0:
        return rows
    held = held.select(pl.col(c).cast(rows.schema[c]) for c in columns)
    return rows.join(held, on=columns, how="anti", nulls_equal=True)


#: Key ranges compared per table: a changed range costs a read of its keys, about rows / KEY_RANGES of them.
KEY_RANGES = 16384
#: Up to this many keys, a SQLite table's are read in one value (``_all_keys``: the key's text and a separator
#: each, about 90 MB and 300 MB at the peak for 10M eight-digit keys).
MAX_KEYS_AT_ONCE = 10_000_000
#: Beyond this many separate ranges to read, the query selects keys by range number instead (a range condition
#: is an index range scan, a range number a scan of every key; SQLite allows expressions 1000 deep) ...
MAX_KEY_RANGES_IN_QUERY = 400
#: ... and beyond this many ranges, every key is read (a list of range numbers that long costs more).
MAX_RANGE_NUMBERS_IN_QUERY = 4096


@dataclass(frozen=True)
class KeyRanges:
    """Integer key ranges ``[low + i·width, low + (i+1)·width)`` whose counts or sums differ between the
    source and bronze: the only keys read to find deletes, repeats and unseen keys."""

    low: int
    width: int
    buckets: tuple[int, ...]
    #: The source's keys in those ranges, when the comparison read every key anyway (SQLite): not read again.
    keys: pl.Series | None = field(default=None, compare=False)

    def where(self, column: Any) -> Any:
        """A SQL condition selecting the keys of the ranges (contiguous ranges merged)."""
        import sqlalchemy as sa

        if not self.buckets:
            return sa.false()
        if len(self.buckets) > MAX_RANGE_NUMBERS_IN_QUERY:
            return sa.true()
        if len(self._runs()) > MAX_KEY_RANGES_IN_QUERY:
            # Changes in many places: one condition on the range number rather than a long OR of ranges.
            bucket = (column - sa.literal_column(str(self.low))) // sa.literal_column(str(self.width))
            return bucket.in_(list(self.buckets))
        return sa.or_(
            *(
                column.between(self.low + a * self.width, self.low + (b + 1) * self.width - 1)
                for a, b in self._runs()
            )
        )

    def expr(self, key: str) -> pl.Expr:
        """The same ranges as a polars condition on bronze."""
        if not self.buckets:
            return pl.lit(False)
        bucket = (pl.col(key) - self.low) // self.width
        return bucket.is_in(list(self.buckets))

    def _runs(self) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for bucket in self.buckets:
            if runs and runs[-1][1] == bucket - 1:
                runs[-1] = (runs[-1][0], bucket)
            else:
                runs.append((bucket, bucket))
        return runs


def _arriving_keys(lake: DeltaLake, spec: DatabaseTable, keys: pl.Series) -> pl.Series:
    """The keys among ``keys`` (those of the rows just read) that bronze does not hold as live rows: new, or
    back after a delete. Once merged they are bronze's too, so the comparison with the source counts them."""
    keys = keys.drop_nulls().unique()
    if keys.is_empty():
        return keys
    key = spec.primary_key
    live = lake.scan(spec.ref).filter(~pl.col(DELETED_IN_SOURCE)).select(pl.col(key).cast(keys.dtype))
    return pl.LazyFrame({key: keys}).join(live, on=key, how="anti").collect()[key]


def _differing_key_ranges(
    connection: Any,
    table: Any,
    key: str,
    dtype: pl.DataType,
    lake: DeltaLake,
    spec: DatabaseTable,
    arriving: pl.Series,
) -> KeyRanges | None:
    """The key ranges where the source and bronze (rows not marked deleted, plus ``arriving``: the keys the
    rows just read bring in) disagree, by per-range counts, distinct counts and sums of keys, once the
    whole-table totals have been found to differ (none when they agree). Bronze's side is one streamed
    aggregate; the source's one ``GROUP BY`` in the database, or in SQLite (which sorts every key for it) every
    key read in one value and grouped here, the keys then kept for the ranges that differ (``KeyRanges.keys``).
    A range holding a repeated key, a key bronze lacks (or set aside in ``_rejected``) or a deleted key differs;
    a delete and an insert with an old stamp that balance count and sum in one range would not, and are left to
    the periodic full reconciliation. A key that is not an integer has no ranges: its whole-table counts are
    compared, and ``None`` (read every key) is returned when they differ."""
    import sqlalchemy as sa

    column = table.c[key]
    integer = dtype == pl.Int64
    # First the whole table on each side: count and sum of keys (and distinct keys, unless the source declares
    # the key its primary key). Equal totals on a quiet night end the comparison with one cheap query.
    unique_at_source = list(table.primary_key.columns.keys()) == [key]
    totals = [sa.func.count(column)]
    if integer:
        totals += [sa.func.min(column), sa.func.max(column), _key_sum(column)]
    if not unique_at_source:
        totals.append(sa.func.count(sa.distinct(column)))
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # One query each: SQLite answers min and max from the key's index and a count from its smallest index,
        # but a combined aggregate by scanning an index of every column it names (0.34 s → 0.14 s at 1.9M rows).
        queries = [sa.select(sa.func.count()).select_from(table).where(column.is_not(None))]
        queries += [sa.select(total) for total in totals[1:]]
        found = tuple(connection.execute(query).scalar() for query in queries)
    else:
        found = tuple(connection.execute(sa.select(*totals)).one())
    rows, distinct = found[0], (found[-1] if not unique_at_source else found[0])
    live = lake.scan(spec.ref).filter(~pl.col(DELETED_IN_SOURCE)).select(pl.col(key).cast(dtype))
    bronze = pl.concat([live, pl.LazyFrame({key: arriving.cast(dtype)})]).filter(pl.col(key).is_not_null())
    if not integer:
        b_rows = bronze.select(pl.len()).collect(engine="streaming").item()
        return KeyRanges(0, 1, ()) if distinct == rows == b_rows else None
    low, high, total = found[1:4]
    keys = None
    if not all(isinstance(value, int) for value in (low, high) if value is not None):
        # SQLite keeps whatever it is given: a text value in an integer key column (set aside when its row is read)
        # sorts after every number. The comparison takes the integer keys alone.
        keys = _all_keys(connection, table, key, dtype, count=int(rows))
        if keys is None or keys.is_empty():
            return None
        low, high, rows, distinct = keys.min(), keys.max(), keys.len(), keys.n_unique()
        total = keys.to_frame().select(_key_sum_of(key)).item()
    bronze = bronze.select(pl.col(key).cast(pl.Int64))
    if low is not None and distinct == rows:
        b_rows, b_total = bronze.select(pl.len(), _key_sum_of(key)).collect(engine="streaming").row(0)
        if (int(b_rows), int(b_total or 0)) == (int(rows), int(total)):
            return KeyRanges(int(low), 1, ())
    if low is None:  # nothing at source: every bronze key is a candidate
        b_low, b_high = live.select(pl.col(key).min(), pl.col(key).max()).collect().row(0)
        if b_low is None:
            return KeyRanges(0, 1, ())
        return KeyRanges(int(b_low), int(b_high) - int(b_low) + 1, (0,))
    low, high = int(low), int(high)
    width = max(1, -(-(high - low + 1) // KEY_RANGES))
    # SQLite: every key read in one value, and the ranges computed here; elsewhere one GROUP BY in the database.
    if keys is None:
        keys = _all_keys(connection, table, key, dtype, count=int(rows))
    if keys is not None:
        source = _ranges_of(keys, low, width, unique_at_source)
    else:
        source = _ranges_grouped(connection, column, low, width, unique_at_source)
    mirrored = (
        bronze.with_columns(((pl.col(key) - low) // width).alias("bucket"))
        .group_by("bucket")
        .agg(
            pl.len().alias("b_keys"),
            ((pl.col(key) - low) % width).sum().alias("b_total"),
        )
        .collect(engine="streaming")
    )
    compared = source.join(mirrored, on="bucket", how="full", coalesce=True).filter(
        (pl.col("rows") != pl.col("keys")).fill_null(True)
        | (pl.col("keys") != pl.col("b_keys")).fill_null(True)
        | (pl.col("total") != pl.col("b_total")).fill_null(True)
    )
    ranges = KeyRanges(low, width, tuple(sorted(compared["bucket"].to_list())))
    if keys is None:
        return ranges
    return KeyRanges(low, width, ranges.buckets, keys=keys.to_frame().filter(ranges.expr(key))[key])


#: Keys are summed modulo this prime: a plain sum of 64-bit keys (snowflake-style ids) overflows, and SQLite then
#: raises rather than answer. Under 2^30, so that ``key % m + m`` stays within a 32-bit integer key's type.
KEY_SUM_MODULUS = 1_000_000_007


def _key_sum(column: Any) -> Any:
    """The sum of the keys modulo ``KEY_SUM_MODULUS`` in SQL (non-negative for negative keys too)."""
    import sqlalchemy as sa

    modulus = sa.literal_column(str(KEY_SUM_MODULUS))
    return sa.func.sum((column % modulus + modulus) % modulus)


def _key_sum_of(key: str) -> pl.Expr:
    """The same sum over a frame (polars' ``%`` is already non-negative for a positive modulus)."""
    return (pl.col(key) % KEY_SUM_MODULUS).sum()


def _ranges_grouped(connection: Any, column: Any, low: int, width: int, unique: bool) -> pl.DataFrame:
    """Per-range rows, distinct keys and sum of offsets in one ``GROUP BY`` (a hash aggregate in PostgreSQL and
    most servers; SQLite sorts every key for it)."""
    import sqlalchemy as sa

    # Integers written into the SQL (not bound): the GROUP BY must repeat the very expression selected.
    shifted = column - sa.literal_column(str(low))
    bucket = shifted // sa.literal_column(str(width))
    offset = shifted % sa.literal_column(str(width))
    # A declared primary key is unique at source: counting its distinct values would only slow the GROUP BY.
    keys = sa.func.count(column) if unique else sa.func.count(sa.distinct(column))
    total = sa.func.sum(offset) if unique else sa.func.sum(sa.distinct(offset))
    return pl.DataFrame(
        connection.execute(
            sa.select(
                bucket.label("bucket"),
                sa.func.count(column).label("rows"),
                keys.label("keys"),
                total.label("total"),
            )
            .where(column.is_not(None))
            .group_by(bucket)
        ).all(),
        schema=_RANGE_SCHEMA,
        orient="row",
    )


def _all_keys(
    connection: Any, table: Any, key: str, dtype: pl.DataType, count: int | None = None
) -> pl.Series | None:
    """Every non-NULL key of a SQLite table (an integer or a text key), in one value: ``group_concat`` streams
    over the smallest index holding the key, with no sort and no Python object per row. 1.9M integer keys:
    0.25-0.35 s, where a ``GROUP BY`` by range sorts every key (0.7-1.1 s) and reading them row by row takes
    0.8 s. None for another database, another type of key, more than ``MAX_KEYS_AT_ONCE`` keys, or a text key
    holding the separator. A text value in an integer key column is left out, as NULL. ``count``: the non-NULL
    keys, when the caller has counted them."""
    if connection.dialect.name != "sqlite" or dtype not in (pl.Int64, pl.String):
        return None
    quote = connection.dialect.identifier_preparer
    column, name = quote.quote(key), quote.format_table(table)
    if count is None:
        count = connection.exec_driver_sql(f"SELECT count(*) FROM {name} WHERE {column} IS NOT NULL").scalar()
    if count > MAX_KEYS_AT_ONCE:
        return None
    separator = "\x1f"  # the unit separator: not in a reference someone typed (nor a number someone typed)
    text = connection.exec_driver_sql(
        f"SELECT group_concat({column}, ?) FROM {name} WHERE {column} IS NOT NULL", (separator,)
    ).scalar()
    if not text:
        return pl.Series(key, [], dtype=dtype)
    keys = pl.Series(key, [text]).str.split(separator).explode()
    if keys.len() != count:  # a key holding the separator
        return None
    return keys.cast(pl.Int64, strict=False).drop_nulls() if dtype == pl.Int64 else keys


def _ranges_of(keys: pl.Series, low: int, width: int, unique: bool) -> pl.DataFrame:
    """Per-range rows, distinct keys and sum of distinct offsets of ``keys``: what :func:`_ranges_grouped`
    computes in the database (and, as there, a key the source declares unique is not counted twice)."""
    offset = pl.col(keys.name) - low
    figures = (
        [pl.len().alias("rows"), pl.len().alias("keys"), (offset % width).sum().alias("total")]
        if unique
        else [
            pl.len().alias("rows"),
            pl.col(keys.name).n_unique().alias("keys"),
            (offset % width).unique().sum().alias("total"),
        ]
    )
    return (
        keys.to_frame()
        .group_by((offset // width).alias("bucket"))
        .agg(figures)
        .select(pl.col(c).cast(t) for c, t in _RANGE_SCHEMA.items())
    )


_RANGE_SCHEMA = {"bucket": pl.Int64, "rows": pl.Int64, "keys": pl.Int64, "total": pl.Int64}


def _repeated(keys: pl.Series) -> pl.Series:
    return keys.filter(keys.is_duplicated()).drop_nulls().unique()


def _unseen_keys(lake: DeltaLake, spec: DatabaseTable, source_keys: pl.Series, duplicated: pl.Series) -> int:
    """Source keys that are neither in bronze nor set aside in ``_rejected``, nor in ``duplicated`` (keys
    handled otherwise: repeated at source, or just read)."""
    known = [lake.scan(spec.ref).select(pl.col(spec.primary_key).cast(pl.String))]
    if lake.exists(spec.rejected_ref):
        rejected = lake.scan(spec.rejected_ref)
        if spec.primary_key in rejected.collect_schema().names():
            known.append(rejected.select(pl.col(spec.primary_key).cast(pl.String)))
    keys = pl.LazyFrame({spec.primary_key: source_keys.drop_nulls()}).filter(
        ~pl.col(spec.primary_key).cast(pl.String).is_in(duplicated.cast(pl.String).implode())
    )
    return (
        keys.select(pl.col(spec.primary_key).cast(pl.String))
        .join(pl.concat(known), on=spec.primary_key, how="anti")
        .select(pl.len())
        .collect()
        .item()
    )


def _split_bad_keys(rows: pl.DataFrame, key: str, duplicated: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows with a usable primary key, and the rest (NULL, or a key the source holds more than once: every
    such row, since nothing says which is right) with the reason."""
    null = pl.col(key).is_null()
    repeated = pl.col(key).is_in(duplicated.implode())
    bad = rows.filter(null | repeated)
    if bad.height == 0:
        return rows, pl.DataFrame()
    reason = (
        pl.when(null)
        .then(pl.lit(f"primary key {key} is NULL"))
        .otherwise(
            pl.format(
                "primary key {} = {} appears more than once at source; none of its rows is loaded",
                pl.lit(key),
                pl.col(key).cast(pl.String),
            )
        )
    )
    rejected = bad.select(pl.all().cast(pl.String), reason.alias(REJECT_REASON))
    return rows.filter(~(null | repeated)), rejected


def _empty_rejects(types: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema={**dict.fromkeys(types, pl.String()), REJECT_REASON: pl.String()})


def _reject(
    spec: DatabaseTable,
    lake: DeltaLake,
    rejected: pl.DataFrame,
    *,
    run_id: str,
    report: DatabaseLandingReport,
    log: Callable[[str], None],
) -> None:
    """Set rows aside in ``<table>_rejected``, keyed by the record itself: a rerun adds nothing."""
    data = [c for c in rejected.columns if not c.startswith("_")]
    keyed = (
        rejected.with_columns(pl.struct(pl.col(data).cast(pl.String)).struct.json_encode().alias(REJECT_KEY))
        .unique(REJECT_KEY, keep="first", maintain_order=True)
        .with_columns(pl.lit(run_id).alias(RUN_ID))
    )
    lake.merge(spec.rejected_ref, keyed, [REJECT_KEY], only_if_changed=[REJECT_REASON])
    counts = keyed.group_by(pl.col(REJECT_REASON).str.replace(r" = .* appears", " = … appears")).len()
    report.rejected_reasons = dict(sorted(counts.iter_rows()))
    report.rows_rejected = keyed.height
    log(
        f"{spec.table}: {keyed.height} rows set aside in {spec.rejected_ref}: "
        + "; ".join(f"{r} ({n})" for r, n in report.rejected_reasons.items())
    )


def _read_typed(connection: Any, query: Any, types: dict[str, pl.DataType], batch_size: int) -> pl.DataFrame:
    batches = list(
        pl.read_database(
            query,
            connection,
            iter_batches=True,
            batch_size=batch_size,
            schema_overrides=types,
            infer_schema_length=None,
        )
    )
    return pl.concat(batches, how="vertical_relaxed") if batches else pl.DataFrame(schema=types)


_TRUE = ["1", "true", "t", "yes", "y"]
_FALSE = ["0", "false", "f", "no", "n"]


def _typed(column: str, dtype: pl.DataType) -> pl.Expr:
    text = pl.col(column).str.strip_chars()
    if dtype == pl.Boolean:
        lowered = text.str.to_lowercase()
        return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
    if dtype == pl.Date:
        return text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    if isinstance(dtype, pl.Datetime):
        return pl.coalesce(
            text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
            text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
            text.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us"),
        )
    return text.cast(dtype, strict=False)


def _type_text_rows(text: pl.DataFrame, types: dict[str, pl.DataType]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Type text rows column by column; rows with a value that does not type go aside, with the reason."""
    typed = text.with_columns(_typed(c, t).alias(f"__typed_{c}") for c, t in types.items())
    failures = [
        pl.when(pl.col(c).is_not_null() & pl.col(f"__typed_{c}").is_null()).then(
            pl.format("column {}: {} is not a valid {}", pl.lit(c), pl.col(c), pl.lit(str(t)))
        )
        for c, t in types.items()
    ]
    typed = typed.with_columns(pl.concat_str(failures, separator="; ", ignore_nulls=True).alias("_reason"))
    bad = typed.filter(pl.col("_reason") != "").select(*types, "_reason")
    good = typed.filter(pl.col("_reason") == "").select(pl.col(f"__typed_{c}").alias(c) for c in types)
    return good, bad


def _as_source_timestamp(value: dt.datetime) -> dt.datetime:
    # Bronze stores UTC-labelled timestamps; business databases hold naive ones.
    return value.replace(tzinfo=None) if value.tzinfo else value


def _polars_types(table: Any) -> dict[str, pl.DataType]:
    """Polars types for a reflected table's columns: the source's own types, nothing guessed."""
    import sqlalchemy as sa

    mapping: list[tuple[type, pl.DataType]] = [
        (sa.Boolean, pl.Boolean()),
        (sa.DateTime, pl.Datetime("us")),
        (sa.Date, pl.Date()),
        (sa.Integer, pl.Int64()),
        (sa.Numeric, pl.Float64()),
        (sa.Float, pl.Float64()),
        (sa.String, pl.String()),
        (sa.Text, pl.String()),
    ]
    types: dict[str, pl.DataType] = {}
    for column in table.columns:
        for sa_type, pl_type in mapping:
            if isinstance(column.type, sa_type):
                types[column.name] = pl_type
                break
        else:
            types[column.name] = pl.String()
    return types
