"""Build a silver asset from a spec: read bronze lazily, conform with a pure function, write table + quarantine."""

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
        state = lake.overwrite(spec.ref, rows, commit_metadata={rebuild.BUILT_FROM: built_from})
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
