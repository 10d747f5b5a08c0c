"""Bronze: land what arrived, as it arrived, with lineage, idempotently.

Files: each file is read as text (``kpi_lake.raw_files``) and its rows replace that file's earlier rows in
one commit; a file whose content hash is already in the table is not read again.
Database tables: rows changed since the table's watermark (the largest ``updated_at`` already in bronze)
are merged on the primary key; soft deletes arrive as changed rows and hard deletes are found by comparing
keys, so bronze mirrors the source. Either way a rerun with nothing new writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from kpi_lake.frames import delta_compatible
from kpi_lake.raw_files import (
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
    file_hash,
    read_raw_file,
)
from kpi_lake.tables import TableRef

if TYPE_CHECKING:
    from resources.lake import DeltaLake, TableState
    from resources.landing import LandingZone

SOURCE_TABLE = "_source_table"
DELETED_IN_SOURCE = "_deleted_in_source"


@dataclass(frozen=True)
class FileTable:
    """A bronze table fed by files: which files in ``landing/<source>/`` go into it.

    A file goes here when its name matches one of ``patterns`` (and no ``exclude``) and, if
    ``required_columns`` is set, its header holds all of them (after name normalisation): this is how one
    folder's different layouts (a long and a wide emissions table, say) reach different tables.
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


@dataclass
class LandingReport:
    """What one bronze materialisation did, for the run log and the asset's metadata."""

    ref: TableRef
    from_files: bool = True
    loaded: list[str] = field(default_factory=list)
    skipped_unchanged: list[str] = field(default_factory=list)
    skipped_other_layout: list[str] = field(default_factory=list)
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
                }
            )
        if self.loaded:
            metadata["loaded_files"] = ", ".join(self.loaded)
        if self.rows_deleted:
            metadata["rows_deleted_in_source"] = self.rows_deleted
        if self.rows_rejected:
            metadata["rows_rejected"] = self.rows_rejected
        return metadata


def land_files(
    spec: FileTable,
    *,
    lake: DeltaLake,
    landing: LandingZone,
    run_id: str,
    loaded_at: dt.datetime | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> LandingReport:
    """Load the files of ``spec`` that bronze does not hold yet, in one commit. Returns what it did."""
    report = LandingReport(spec.ref)
    loaded_at = loaded_at or dt.datetime.now(dt.UTC)
    # A table left with rows twice by two unguarded first loads heals here: one row per file row again.
    lake.heal_duplicate_keys(spec.ref, [SOURCE_FILE, SOURCE_ROW], optional_keys=[SOURCE_SHEET])
    known = _known_files(lake, spec.ref)
    known_hashes = set(known.values())
    frames: list[pl.DataFrame] = []
    for landed in landing.list_files(spec.source, spec.patterns, spec.exclude):
        with landing.open_local(landed) as path:
            digest = file_hash(path)
            if known.get(landed.name) == digest or (landed.name not in known and digest in known_hashes):
                report.skipped_unchanged.append(landed.name)
                continue
            raw = read_raw_file(
                path, source_file=landed.name, header_row=spec.header_row, content_hash=digest
            )
        if spec.required_columns and not set(spec.required_columns) <= set(raw.columns):
            report.skipped_other_layout.append(landed.name)
            continue
        issues = raw.frame.filter(pl.col(PARSE_ISSUE).is_not_null()).height
        if issues:
            log(f"{landed.name}: {issues} rows do not match the header's width; kept with _parse_issue set")
        report.rows_with_parse_issues += issues
        frames.append(raw.frame)
        report.loaded.append(landed.name)
        log(f"{landed.name}: {raw.frame.height} rows ({raw.encoding}, header on row {raw.header_row})")
        known_hashes.add(digest)

    if not frames:
        report.state = lake.state(spec.ref, operation="unchanged") if lake.exists(spec.ref) else None
        return report
    batch = pl.concat(frames, how="diagonal_relaxed").with_columns(
        pl.lit(loaded_at).dt.cast_time_unit("us").alias(LOADED_AT),
        pl.lit(run_id).alias(RUN_ID),
    )
    batch = _order_columns(batch)
    report.rows_written = batch.height
    names = ", ".join(_sql_string(name) for name in report.loaded)
    report.state = lake.replace_where(spec.ref, batch, predicate=f"{SOURCE_FILE} IN ({names})")
    return report


def _known_files(lake: DeltaLake, ref: TableRef) -> dict[str, str]:
    """Files already in a bronze table, with the hash of the version loaded."""
    if not lake.exists(ref):
        return {}
    known = lake.scan(ref).select(SOURCE_FILE, SOURCE_HASH).unique().collect()
    return dict(zip(known[SOURCE_FILE].to_list(), known[SOURCE_HASH].to_list(), strict=True))


def _order_columns(frame: pl.DataFrame) -> pl.DataFrame:
    lineage = [SOURCE_FILE, SOURCE_HASH, SOURCE_ROW, PREAMBLE, PARSE_ISSUE, EXTRA_FIELDS, LOADED_AT, RUN_ID]
    data = [c for c in frame.columns if not c.startswith("_")]
    rest = [c for c in frame.columns if c.startswith("_") and c not in lineage]
    return frame.select(data + [c for c in lineage if c in frame.columns] + rest)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ---- database tables ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseTable:
    """A bronze table mirrored from a business-system database table."""

    source: str
    table: str
    primary_key: str
    watermark: str = "updated_at"
    description: str = ""

    @property
    def ref(self) -> TableRef:
        return TableRef("bronze", self.source, self.table)


def land_database_table(
    spec: DatabaseTable,
    *,
    lake: DeltaLake,
    engine: Any,
    run_id: str,
    loaded_at: dt.datetime | None = None,
    batch_size: int = 250_000,
    log: Callable[[str], None] = lambda _: None,
) -> LandingReport:
    """Merge rows changed since the watermark into bronze, and mark rows deleted from the source."""
    import sqlalchemy as sa  # imported here: keeps the code location light to load

    report = LandingReport(spec.ref, from_files=False)
    loaded_at = loaded_at or dt.datetime.now(dt.UTC)
    table = sa.Table(spec.table, sa.MetaData(), autoload_with=engine)
    if spec.primary_key not in table.c or spec.watermark not in table.c:
        raise RawFileError(
            f"database table {spec.table}: expected columns {spec.primary_key!r} (primary key) and "
            f"{spec.watermark!r} (watermark); found {sorted(table.c.keys())}"
        )
    exists = lake.exists(spec.ref)
    if exists:  # a table left with a key twice by two unguarded first loads heals here, changes or not
        lake.heal_duplicate_keys(spec.ref, [spec.primary_key])
    watermark = None
    if exists:
        watermark = lake.scan(spec.ref).select(pl.col(spec.watermark).max()).collect().item()
    query = sa.select(table)
    if watermark is not None:
        # >= rather than >: rows written in the same instant as the last load are not missed; the merge below
        # leaves rows that did not change untouched, so re-reading them costs nothing in the table.
        query = query.where(table.c[spec.watermark] >= _as_source_timestamp(watermark))
    query = query.order_by(table.c[spec.watermark], table.c[spec.primary_key])

    types = _polars_types(table)
    rejected = pl.DataFrame()
    with engine.connect() as connection:
        try:
            changed = _read_typed(connection, query, types, batch_size)
        except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
            # A value that does not fit its column's declared type (SQLite and extracts allow it): read
            # as text, keep what types cleanly, and set the rest aside with the column and the reason.
            log(f"{spec.table}: a value does not fit its declared type ({exc}); reading as text to find it")
            text_query = sa.select(*(sa.cast(c, sa.String).label(c.name) for c in table.columns)).where(
                query.whereclause if query.whereclause is not None else sa.true()
            )
            text = pl.read_database(
                text_query, connection, schema_overrides=dict.fromkeys(types, pl.String())
            )
            changed, rejected = _type_text_rows(text, types)
        source_keys = (
            pl.read_database(sa.select(table.c[spec.primary_key]), connection)[spec.primary_key]
            if exists
            else None
        )
    if rejected.height:
        report.rows_rejected = rejected.height
        reject_ref = TableRef("bronze", spec.source, f"{spec.table}_rejected")
        lake.merge(
            reject_ref,
            rejected.with_columns(pl.lit(run_id).alias(RUN_ID)),
            [spec.primary_key],
        )
        log(f"{spec.table}: {rejected.height} rows set aside in {reject_ref} (value does not fit its type)")

    data_columns = list(changed.columns)
    changed = delta_compatible(changed).with_columns(
        pl.lit(spec.table).alias(SOURCE_TABLE),
        pl.lit(False).alias(DELETED_IN_SOURCE),
        pl.lit(loaded_at).dt.cast_time_unit("us").alias(LOADED_AT),
        pl.lit(run_id).alias(RUN_ID),
    )
    if not exists:
        report.rows_written = changed.height
        report.state = lake.merge(spec.ref, changed, [spec.primary_key])
        log(f"{spec.table}: first load, {changed.height} rows")
        return report

    vanished = (
        lake.scan(spec.ref)
        .filter(~pl.col(DELETED_IN_SOURCE))
        .join(pl.LazyFrame({spec.primary_key: source_keys}), on=spec.primary_key, how="anti")
        .with_columns(pl.lit(True).alias(DELETED_IN_SOURCE), pl.lit(run_id).alias(RUN_ID))
        .collect()
    )
    report.rows_deleted = vanished.height
    upserts = pl.concat([changed, vanished.select(changed.columns)], how="vertical_relaxed")
    if upserts.height == 0:
        report.state = lake.state(spec.ref, operation="unchanged")
        return report
    state = lake.merge(
        spec.ref, upserts, [spec.primary_key], only_if_changed=[*data_columns, DELETED_IN_SOURCE]
    )
    report.rows_written = int(state.metrics.get("num_target_rows_inserted", 0)) + int(
        state.metrics.get("num_target_rows_updated", 0)
    )
    report.state = state
    log(
        f"{spec.table}: {changed.height} rows since {watermark}, {report.rows_written} changed, "
        f"{report.rows_deleted} deleted in source"
    )
    return report


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
