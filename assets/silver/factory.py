"""Build a silver asset from a spec: read bronze lazily, conform with a pure function, write table + quarantine."""

import datetime as dt
import inspect
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from kpi_lake import personal_data, rebuild
from kpi_lake.conform import Conformed
from kpi_lake.frames import shared_hashes
from kpi_lake.raw_files import LOADED_AT
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake, data_version
from resources.landing import LandingZone


@dataclass(frozen=True)
class Streamed:
    """How a large silver table is built in bounded memory, and rebuilt only where its inputs changed.

    The table is made of units (EES publications, say), each conformed from its own source files and held
    in its own partitions. ``units`` takes the inputs (as ``conform`` does) and gives each unit a digest of
    the files it comes from; ``run`` conforms the units named (all when None), handing the rows to ``sink``
    slice by slice, and returns the quarantine rows. A rerun rebuilds only the units whose digest changed
    (a ``replace_where`` on their partitions), unless the conform code changed.
    """

    units: Callable[..., dict[str, str]]
    run: Callable[..., pl.DataFrame]
    schema: dict[str, pl.DataType]
    unit_column: str
    #: The unit a quarantine row belongs to, from its ``source_file``.
    unit_of_file: Callable[[pl.Expr], pl.Expr]
    partition_by: tuple[str, ...]


@dataclass(frozen=True)
class SilverTable:
    """A silver table: what it reads, the pure function that conforms it, and its documented columns.

    ``conform`` takes one keyword per input, named by the bronze (or silver) table name, each a LazyFrame or
    None when that table does not exist yet, and returns a :class:`Conformed`.
    """

    ref: TableRef
    inputs: tuple[TableRef, ...]
    conform: Callable[..., Conformed]
    description: str
    columns: dict[str, str] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    #: Set when the source holds personal data: the quarantine keeps only its allow-listed fields, the rows
    #: only the documented ``columns``, and pseudonyms are keyed (``conform`` then takes ``key=``).
    personal: personal_data.PersonalSource | None = None
    #: Set for tables too large to conform in memory: conformed in slices and partitioned (see
    #: :class:`Streamed`); ``conform`` stays the in-memory form of the same rows, for tests.
    streamed: Streamed | None = None
    #: Set when ``conform`` works row by row on one bronze table that shares ``primary_key``: a night's
    #: changed bronze rows (by ``_loaded_at``) are conformed alone and merged on the key (see :func:`_merge_changed`).
    merge_changed: bool = False

    @property
    def quarantine_ref(self) -> TableRef:
        return TableRef(self.ref.layer, self.ref.source, f"{self.ref.table}_quarantine")


UNITS = "units"


def _build_streamed(
    context: dg.AssetExecutionContext,
    lake: DeltaLake,
    spec: SilverTable,
    inputs: dict[str, pl.LazyFrame | None],
    built_from: str,
) -> Iterator[dg.MaterializeResult]:
    """Conform in slices to local Parquet, then write the table in one commit: the whole table, or only the
    partitions of the units whose source files changed. Memory is bounded by a slice, not the table."""
    streamed = spec.streamed
    assert streamed is not None
    units = streamed.units(**inputs)
    previous = lake.last_commit_metadata(spec.ref)
    previous_units = json.loads(previous.get(f"kpi_lake.{UNITS}", "null"))
    same_code = _code_of(previous.get(f"kpi_lake.{rebuild.BUILT_FROM}")) == _code_of(built_from)
    incremental = (
        previous_units is not None
        and same_code
        and lake.exists(spec.quarantine_ref)
        and tuple(lake.delta_table(spec.ref).metadata().partition_columns) == streamed.partition_by
    )
    if incremental:
        changed = sorted(u for u, digest in units.items() if previous_units.get(u) != digest)
        removed = sorted(u for u in previous_units if u not in units)
        if not changed and not removed:
            context.log.info(f"{spec.ref}: new input versions, but no {streamed.unit_column} changed")
            yield from _unchanged(context, lake, spec)
            return
        context.log.info(
            f"{spec.ref}: rebuilding {streamed.unit_column} {', '.join(changed) or '-'}"
            + (f"; removing {', '.join(removed)}" if removed else "")
        )
    with tempfile.TemporaryDirectory(prefix="kpi-lake-silver-") as folder:
        parts: list[str] = []

        def sink(frame: pl.DataFrame) -> None:
            path = f"{folder}/part-{len(parts):05d}.parquet"
            frame.write_parquet(path)
            parts.append(path)

        quarantine = streamed.run(sink, units=changed if incremental else None, **inputs)
        rows = pl.scan_parquet(parts) if parts else pl.LazyFrame(schema=streamed.schema)
        _refuse_duplicate_keys(spec, rows)
        if incremental:
            redone = [*changed, *removed]
            kept = lake.scan(spec.quarantine_ref).filter(
                ~streamed.unit_of_file(pl.col("source_file")).is_in(redone)
            )
            quarantine = pl.concat([kept.collect(), quarantine], how="vertical_relaxed").sort(
                "source_file", "source_row", "column", nulls_last=True
            )
        # The quarantine first, the table last: the table's commit records what it was built from.
        quarantine_state = lake.overwrite(spec.quarantine_ref, quarantine)
        record = {rebuild.BUILT_FROM: built_from, UNITS: json.dumps(units, sort_keys=True)}
        if incremental:
            listed = ", ".join("'" + u.replace("'", "''") + "'" for u in redone)
            state = lake.replace_partitions(
                spec.ref, rows, f"{streamed.unit_column} IN ({listed})", commit_metadata=record
            )
        else:
            state = lake.overwrite(
                spec.ref, rows, partition_by=list(streamed.partition_by), commit_metadata=record
            )
    if quarantine.height:
        context.log.warning(f"{spec.ref}: {quarantine.height} rows in quarantine")
    yield from _selected(
        context,
        (
            spec.ref,
            {
                **state.to_metadata(),
                "quarantined_rows": quarantine.height,
                f"{streamed.unit_column}_rebuilt": len(changed) if incremental else len(units),
            },
        ),
        (spec.quarantine_ref, quarantine_state.to_metadata()),
    )


def _selected(
    context: dg.AssetExecutionContext, *tables: tuple[TableRef, dict]
) -> Iterator[dg.MaterializeResult]:
    """A materialisation for each of a silver table and its quarantine that the run selected (both are always
    written together), its data version the table's Delta version."""
    for ref, metadata in tables:
        if dg.AssetKey(ref.key_path) in context.selected_asset_keys:
            yield dg.MaterializeResult(
                asset_key=ref.key_path, metadata=metadata, data_version=data_version(metadata)
            )


def _unchanged(
    context: dg.AssetExecutionContext, lake: DeltaLake, spec: SilverTable
) -> Iterator[dg.MaterializeResult]:
    """What a build that finds nothing to do reports: each selected table as it stands."""
    refs = [
        r for r in (spec.ref, spec.quarantine_ref) if dg.AssetKey(r.key_path) in context.selected_asset_keys
    ]
    yield from _selected(context, *((r, lake.state(r, operation="unchanged").to_metadata()) for r in refs))


def _code_of(built_from: str | None) -> str | None:
    return json.loads(built_from).get("code") if built_from else None


#: Commit-metadata key (``kpi_lake.loaded_to``): the newest bronze ``_loaded_at`` a merge-changed silver table holds.
LOADED_TO = "loaded_to"
#: Past this share of the table changed, a whole rebuild is cheaper than a merge.
MERGE_CHANGED_SHARE = 0.25
#: Data file size of a merge-changed silver table: a merge rewrites only the files holding changed keys.
MERGED_FILE_BYTES = 8 * 1024 * 1024


def _newest_loaded(frame: pl.LazyFrame | pl.DataFrame) -> str | None:
    newest = frame.lazy().select(pl.col(LOADED_AT).max()).collect().item()
    return newest.isoformat() if newest is not None else None


def _merge_changed(
    context: dg.AssetExecutionContext, lake: DeltaLake, spec: SilverTable, built_from: str
) -> Iterator[dg.MaterializeResult] | None:
    """Conform only the bronze rows loaded since this table was last built, and merge them on the key: rows
    deleted at source (or now failing a check) leave the table, quarantine rows of the changed keys are
    replaced. None when the table must be rebuilt whole: no merge record, new code, or too much changed."""
    previous = lake.last_commit_metadata(spec.ref)
    loaded_to = previous.get(f"kpi_lake.{LOADED_TO}")
    if (
        not loaded_to
        or _code_of(previous.get(f"kpi_lake.{rebuild.BUILT_FROM}")) != _code_of(built_from)
        or not lake.exists(spec.quarantine_ref)
    ):
        return None
    [source] = spec.inputs
    [key] = spec.primary_key
    rewound = _rewound(lake, source, json.loads(previous[f"kpi_lake.{rebuild.BUILT_FROM}"])["inputs"])
    if rewound:
        context.log.info(f"{spec.ref}: {source} {rewound} since the last build: rebuilding whole")
        return None
    bronze = lake.scan(source)
    # Bronze stamps each load later than the one before (kpi_lake/bronze.py): the rows after the recorded
    # stamp are exactly those loaded since.
    changed = bronze.filter(pl.col(LOADED_AT) > dt.datetime.fromisoformat(loaded_to)).collect()
    table_rows = lake.state(spec.ref).row_count
    if changed.height > MERGE_CHANGED_SHARE * max(table_rows, 1):
        context.log.info(f"{spec.ref}: {changed.height} of {table_rows} rows changed: rebuilding whole")
        return None
    return _merged(context, lake, spec, built_from, changed, key, loaded_to)


#: Commits after which rows loaded before a silver table's last build may be gone or different: the rows loaded
#: since are then not the whole change.
_REWINDING = ("RESTORE", "DELETE", "TRUNCATE", "CREATE OR REPLACE TABLE")


def _rewound(lake: DeltaLake, source: TableRef, built_from_versions: dict[str, int | None]) -> str | None:
    """What took ``source`` back since the version a table was built from (a restore, a delete, an overwrite),
    or None when it was only added to and merged into."""
    recorded = built_from_versions.get(str(source))
    table = lake.delta_table(source)
    if recorded is None or table.version() < recorded:
        return "went back to an earlier version"
    for commit in table.history(table.version() - recorded):
        operation = str(commit.get("operation", "")).upper()
        mode = str((commit.get("operationParameters") or {}).get("mode", "")).lower()
        if operation in _REWINDING or (operation == "WRITE" and mode == "overwrite"):
            return f"had a {operation.lower()}{' (overwrite)' if mode == 'overwrite' else ''} (version {commit.get('version')})"
    return None


def _merged(
    context: dg.AssetExecutionContext,
    lake: DeltaLake,
    spec: SilverTable,
    built_from: str,
    changed: pl.DataFrame,
    key: str,
    loaded_to: str,
) -> Iterator[dg.MaterializeResult]:
    conformed = spec.conform(**{spec.inputs[0].table: changed.lazy()})
    rows = conformed.rows
    keys = changed.select(key).unique()
    gone = keys.join(rows.select(key), on=key, how="anti")
    # The quarantine is small: its rows of the changed keys (found in the raw record) are replaced whole.
    quarantine = lake.scan(spec.quarantine_ref).collect()
    changed_keys = keys[key].cast(pl.String).implode()
    kept = quarantine.filter(
        ~pl.col("raw_record").str.json_path_match(f"$.{key}").is_in(changed_keys).fill_null(False)
    )
    new_quarantine = pl.concat([kept, conformed.quarantine], how="vertical_relaxed")
    quarantine_state = (
        lake.overwrite(spec.quarantine_ref, new_quarantine)
        if kept.height != quarantine.height or conformed.quarantine.height
        else lake.state(spec.quarantine_ref, operation="unchanged")
    )
    record = {rebuild.BUILT_FROM: built_from, LOADED_TO: _newest_loaded(changed) or loaded_to}
    state = lake.merge(
        spec.ref,
        rows,
        [key],
        only_if_changed=[c for c in rows.columns if c != key],
        delete_keys=gone,
        commit_metadata=record,
    )
    context.log.info(
        f"{spec.ref}: {changed.height} bronze rows loaded since {loaded_to} conformed and merged "
        f"({gone.height} keys left the table, {conformed.quarantine.height} quarantined)"
    )
    yield from _selected(
        context,
        (
            spec.ref,
            {
                **state.to_metadata(),
                "quarantined_rows": new_quarantine.height,
                "bronze_rows_conformed": changed.height,
            },
        ),
        (spec.quarantine_ref, quarantine_state.to_metadata()),
    )


def _refuse_duplicate_keys(spec: SilverTable, rows: pl.LazyFrame) -> None:
    """Fail when the key is not unique, comparing key hashes (streamed) and then the keys that share one."""
    if not spec.primary_key:
        return
    key = list(spec.primary_key)
    hashed = pl.struct(key).hash(seed=7).alias("_key_hash")
    shared = shared_hashes(rows.select(hashed))
    if shared.len() == 0:
        return
    candidates = rows.filter(hashed.is_in(shared.implode())).select(key).collect(engine="streaming")
    duplicates = candidates.group_by(key).len().filter(pl.col("len") > 1)
    if duplicates.height:
        raise dg.Failure(
            f"{spec.ref}: key ({', '.join(key)}) is not unique, e.g. "
            f"{duplicates.head(3).drop('len').to_dicts()}; the table was not written"
        )


def silver_asset(spec: SilverTable) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(ref.key_path) for ref in spec.inputs]
    tags = {"layer": spec.ref.layer, "source": spec.ref.source}

    decorate = dg.multi_asset(
        name="_".join(spec.ref.key_path),
        pool=spec.ref.path,  # one writer per table across runs (pools in deploy/local/dagster.yaml)
        # Either table may be selected alone (no "additional assets will be materialized" prompt in the UI);
        # both are always written together, and a materialisation is recorded for those selected.
        can_subset=True,
        specs=[
            dg.AssetSpec(
                key=spec.ref.key_path,
                deps=deps,
                group_name=spec.ref.group_name,
                description=spec.description,
                kinds={"delta", "polars"},
                tags=tags,
                metadata={
                    "dagster/column_schema": dg.TableSchema(
                        columns=[
                            dg.TableColumn(name, "", description=doc) for name, doc in spec.columns.items()
                        ]
                    ),
                    "primary_key": ", ".join(spec.primary_key),
                    "lake_path": spec.ref.path,
                },
            ),
            dg.AssetSpec(
                key=spec.quarantine_ref.key_path,
                deps=deps,
                group_name=spec.ref.group_name,
                description=(
                    f"Rows of {', '.join(str(r) for r in spec.inputs)} that could not be conformed into "
                    f"{spec.ref}: file, row, column, value, reason and the raw record. Nothing is dropped."
                ),
                kinds={"delta", "polars"},
                tags=tags,
            ),
        ],
    )

    def _build(
        context: dg.AssetExecutionContext, lake: DeltaLake, landing: LandingZone | None
    ) -> Iterator[dg.MaterializeResult]:
        keyed: dict[str, bytes] = {}
        if spec.personal is not None and spec.personal.pseudonymised:
            try:
                keyed["key"] = personal_data.pseudonym_key(landing)
            except personal_data.DevelopmentKeyError as exc:
                raise dg.Failure(f"{spec.ref}: {exc}") from None
        # Work proportional to change: when every input is at the version this table was last built from,
        # and the conform code (and pseudonym key) is the same, there is nothing to do.
        built_from = rebuild.fingerprint(
            lake,
            spec.inputs,
            inspect.getsource(inspect.getmodule(spec.conform)),
            key_fingerprint=personal_data.key_fingerprint(keyed["key"]) if keyed else None,
        )
        if rebuild.is_current(lake, spec.ref, built_from) and lake.exists(spec.quarantine_ref):
            context.log.info(f"{spec.ref}: inputs and code unchanged since the last build; nothing to do")
            yield from _unchanged(context, lake, spec)
            return
        inputs = {ref.table: (lake.scan(ref) if lake.exists(ref) else None) for ref in spec.inputs}
        missing = [name for name, frame in inputs.items() if frame is None]
        if missing:
            context.log.warning(f"{spec.ref}: no table yet for {', '.join(missing)}; conforming without it")
        if spec.streamed is not None:
            yield from _build_streamed(context, lake, spec, inputs, built_from)
            return
        if spec.merge_changed:
            merged = _merge_changed(context, lake, spec, built_from)
            if merged is not None:
                yield from merged
                return
        conformed = spec.conform(**inputs, **keyed)
        rows = conformed.rows
        if spec.personal is not None:
            # Structural, whatever the conform code did: nothing but allow-listed fields leaves bronze.
            conformed.quarantine = personal_data.restrict_quarantine(conformed.quarantine, spec.personal)
            rows = rows.select([c for c in rows.columns if c in spec.columns])
        if spec.primary_key:
            duplicates = rows.group_by(list(spec.primary_key)).len().filter(pl.col("len") > 1)
            if duplicates.height:
                raise dg.Failure(
                    f"{spec.ref}: key ({', '.join(spec.primary_key)}) is not unique, e.g. "
                    f"{duplicates.head(3).drop('len').to_dicts()}; the table was not written"
                )
        # The quarantine first, the table last: the table's commit records what it was built from, so a
        # failure in between makes the next run rebuild both.
        quarantine_state = lake.overwrite(spec.quarantine_ref, conformed.quarantine)
        record = {rebuild.BUILT_FROM: built_from}
        if spec.merge_changed:  # where the next build's merge starts from
            record[LOADED_TO] = _newest_loaded(inputs[spec.inputs[0].table]) or ""
        state = lake.overwrite(
            spec.ref,
            rows,
            commit_metadata=record,
            file_bytes=MERGED_FILE_BYTES if spec.merge_changed else None,
        )
        if conformed.quarantine.height:
            reasons = conformed.quarantine.group_by("reason").len().sort("len", descending=True).head(5)
            context.log.warning(
                f"{spec.ref}: {conformed.quarantine.height} rows quarantined: "
                + "; ".join(f"{r} ({n})" for r, n in reasons.iter_rows())
            )
        yield from _selected(
            context,
            (spec.ref, {**state.to_metadata(), "quarantined_rows": conformed.quarantine.height}),
            (spec.quarantine_ref, quarantine_state.to_metadata()),
        )

    if spec.personal is not None:
        # The landing zone tells the generated sample (where the development key is fine) from real data.
        @decorate
        def _personal_silver(context: dg.AssetExecutionContext, lake: DeltaLake, landing: LandingZone):
            yield from _build(context, lake, landing)

        return _personal_silver

    @decorate
    def _silver(context: dg.AssetExecutionContext, lake: DeltaLake) -> Iterator[dg.MaterializeResult]:
        yield from _build(context, lake, None)

    return _silver
