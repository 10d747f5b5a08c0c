"""Validate one table against its suite: the Delta-log checks, the GX expectations (on a pandas frame, at the
boundary: GX has no polars engine) and the relationships (polars).

Cost is kept proportional to change. A table whose validated content is what the last validation saw (same
suite, same input versions, or the same content hash) reuses that validation's results without importing
GX. A large table (``changed_slice.min_rows``) with an earlier fully passing validation has only its changed
rows validated by the row-by-row expectations; counts, uniqueness and aggregates still see every row.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from kpi_lake.frames import shared_hashes
from kpi_lake.quality import native
from kpi_lake.quality.history import previous_results
from kpi_lake.quality.results import SAMPLE_SIZE, CheckOutcome, ValidationReport, jsonable
from kpi_lake.quality.suites import Expectation, Suite
from kpi_lake.tables import TableRef

if TYPE_CHECKING:
    from resources.lake import DeltaLake

_HASH_SEED = 20261126


@dataclass(frozen=True)
class _Batch:
    """What GX validates in one go: a frame and the expectations to run on it."""

    label: str
    frame: pl.DataFrame
    expectations: Sequence[Expectation]


def validate_table(
    lake: DeltaLake,
    suite: Suite,
    run_id: str,
    *,
    documented_columns: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    log: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Run every check of ``suite`` on its table's current version and return what they found."""
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    say = log or (lambda message: None)
    ref = suite.ref
    if not lake.exists(ref):
        return _missing_table(suite, run_id, now, time.perf_counter() - started)
    state = lake.state(ref)
    version = state.version
    table = lake.delta_table(ref)
    outcomes = _native_outcomes(
        lake, suite, table, state.schema, state.row_count, version, now, documented_columns
    )

    # A lookup table not built yet adds no columns: the expectations that need them fail, saying so.
    lookup_versions = {
        lookup.table: lake.delta_table(lookup.table).version()
        for lookup in suite.lookups
        if lake.exists(lookup.table)
    }
    inputs_version = _inputs_version({ref: version, **lookup_versions})
    rows_validated, scope, fingerprint, gx_results, gx_seconds = 0, "no GX expectations", "", [], 0.0
    if suite.gx_expectations:
        previous = previous_results(lake, ref, suite.content_hash, run_id)
        latest = _latest_run(previous)
        frame = _validated_frame(lake, suite, {ref: version, **lookup_versions})
        reused = None
        if latest is not None and latest["inputs_version"][0] == inputs_version:
            fingerprint = latest["fingerprint"][0]
            reused = latest
        else:
            fingerprint = _fingerprint(frame)
            if latest is not None and latest["fingerprint"][0] == fingerprint:
                reused = latest
        if reused is not None:
            scope = (
                f"unchanged since version {reused['delta_version'][0]}: results of run "
                f"{reused['run_id'][0][:8]} reused"
            )
            outcomes += _reuse(suite, reused)
            say(f"{ref}: {scope}")
        else:
            batches, rows_validated, scope = _plan(
                lake, suite, frame, state.row_count, version, lookup_versions, previous
            )
            say(f"{ref}: validating {scope} with Great Expectations")
            gx_started = time.perf_counter()
            computed = {b.label: b for b in batches if b.label == _POLARS}
            batches = [b for b in batches if b.label != _POLARS]
            gx_outcomes, gx_results = _run_gx(suite, batches, run_id, now)
            if computed:
                gx_outcomes.update(_polars_outcomes(computed[_POLARS], state.row_count))
            gx_seconds = time.perf_counter() - gx_started
            outcomes += [gx_outcomes[e.name] for e in suite.gx_expectations]
    for expectation in suite.relationships:
        outcomes.append(_relationship(lake, suite, expectation, version))
    return ValidationReport(
        suite=suite,
        run_id=run_id,
        validated_at=now,
        delta_version=version,
        rows_in_table=state.row_count,
        rows_validated=rows_validated,
        validated_scope=scope,
        inputs_version=inputs_version,
        fingerprint=fingerprint,
        seconds=time.perf_counter() - started,
        outcomes=outcomes,
        gx_results=gx_results,
        gx_seconds=gx_seconds,
    )


def _missing_table(suite: Suite, run_id: str, now: dt.datetime, seconds: float) -> ValidationReport:
    """A table that has not been written yet fails every check of its suite (with its severity), saying so."""
    message = f"{suite.ref} does not exist in the lake yet"
    outcomes = [
        CheckOutcome(name, name, rule.severity, False, name.replace("_", " "), scope="log", message=message)
        for name, rule in suite.native.items()
    ]
    outcomes += [
        CheckOutcome(
            name=e.name,
            kind="gx" if e.is_gx else "relationship",
            severity=e.severity,
            success=False,
            description=e.describe(),
            expectation_type=e.type,
            column=", ".join(e.columns) or None,
            scope=e.scope,
            message=message,
            kwargs=jsonable(dict(e.kwargs)),
        )
        for e in suite.expectations
    ]
    return ValidationReport(suite, run_id, now, -1, 0, 0, "table missing", "", "", seconds, outcomes)


# ---- Delta-log checks -----------------------------------------------------------------------------------------
def _native_outcomes(
    lake: DeltaLake,
    suite: Suite,
    table: Any,
    schema: Mapping[str, str],
    rows: int,
    version: int,
    now: dt.datetime,
    documented: Mapping[str, str] | None,
) -> list[CheckOutcome]:
    outcomes = []
    if rule := suite.native.get("freshness"):
        history = table.history(1)
        last = (
            dt.datetime.fromtimestamp(history[0]["timestamp"] / 1000, dt.UTC)
            if history and "timestamp" in history[0]
            else None
        )
        outcomes.append(native.freshness(rule, last, now))
    if rule := suite.native.get("schema_drift"):
        outcomes.append(native.schema_drift(rule, schema, suite.columns, documented))
    if rule := suite.native.get("row_count_change"):
        previous = None
        if version > 0:
            table.load_as_version(version - 1)  # the same log, one version back: no second log read
            actions = pl.DataFrame(table.get_add_actions(flatten=True))
            previous = int(actions["num_records"].sum()) if actions.height else 0
        outcomes.append(native.row_count_change(rule, rows, previous, version))
    return outcomes


# ---- what GX sees ---------------------------------------------------------------------------------------------
def _validated_frame(lake: DeltaLake, suite: Suite, versions: Mapping[TableRef, int]) -> pl.LazyFrame:
    """The table at ``versions[suite.ref]`` with its lookup columns joined, cut to the columns GX reads."""
    frame = lake.scan(suite.ref, version=versions[suite.ref])
    for lookup in suite.lookups:
        if lookup.table not in versions:
            continue
        right = (
            lake.scan(lookup.table, version=versions[lookup.table])
            .select([*lookup.on, *(pl.col(src).alias(alias) for src, alias in lookup.columns.items())])
            .unique(subset=list(lookup.on), keep="first")
        )
        frame = frame.join(right, on=list(lookup.on), how="left")
    schema = frame.collect_schema()
    columns = [c for c in suite.validated_columns if c in schema]
    nested = {c for c in columns if isinstance(schema[c], pl.List | pl.Array | pl.Struct)}
    return frame.select(
        [pl.struct(c).struct.json_encode().alias(c) if c in nested else pl.col(c) for c in columns]
    )


def _fingerprint(frame: pl.LazyFrame) -> str:
    """An order-independent hash of the frame's content (and columns): equal content, equal fingerprint."""
    schema = frame.collect_schema()
    if not schema:
        return "empty"
    # Floats are hashed at 9 decimals: a parallel sum may differ in its last bit from one build to the next
    # while nothing a rule can see has changed.
    rounded = [pl.col(c).round(9) if dtype.is_float() else pl.col(c) for c, dtype in schema.items()]
    total, rows = (
        frame.select(pl.struct(rounded).hash(seed=_HASH_SEED).alias("h"))
        .select(pl.col("h").sum(), pl.len())
        .collect(engine="streaming")
        .row(0)
    )
    columns = ",".join(f"{name}:{dtype}" for name, dtype in schema.items())
    return f"{rows}:{total or 0:x}:{hash_text(columns)}"


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _latest_run(previous: pl.DataFrame) -> pl.DataFrame | None:
    if previous.is_empty():
        return None
    latest = previous.sort("validated_at", descending=True).row(0, named=True)
    return previous.filter(pl.col("run_id") == latest["run_id"])


def _reuse(suite: Suite, previous: pl.DataFrame) -> list[CheckOutcome]:
    """Outcomes of the last validation, for content that has not changed since (same suite, same rows)."""
    from kpi_lake.quality.reuse import history_outcome

    by_name = {row["check_name"]: row for row in previous.iter_rows(named=True)}
    outcomes = []
    for expectation in suite.gx_expectations:
        row = by_name.get(expectation.name)
        if row is None:  # cannot happen with the same suite hash; validate rather than guess
            raise RuntimeError(f"{suite.ref}: no earlier result for {expectation.name} to reuse")
        outcomes.append(history_outcome(suite, row))
    return outcomes


def _plan(
    lake: DeltaLake,
    suite: Suite,
    frame: pl.LazyFrame,
    rows: int,
    version: int,
    lookup_versions: Mapping[TableRef, int],
    previous: pl.DataFrame,
) -> tuple[list[_Batch], int, str]:
    """Whole table; or, for a large table with an earlier passing validation, the rows of the data files
    added since that version (the Delta log says which: no CDF needed, and no old version is read) for the
    row-by-row expectations, and every row of just the columns the table-wide expectations read."""
    expectations = suite.gx_expectations
    changed, baseline = None, None
    if suite.changed_slice_min_rows is not None and rows >= suite.changed_slice_min_rows:
        baseline = _passing_baseline(previous, _inputs_version(lookup_versions))
        if baseline is not None:
            changed = _rows_added_since(lake, suite, version, int(baseline["delta_version"]))
    if changed is None and rows > FULL_COPY_MAX_ROWS:
        return _plan_large(suite, frame, rows)
    if changed is None:
        whole = frame.collect()
        return [_Batch("all_rows", whole, expectations)], whole.height, f"all {whole.height} rows"
    row_level = [e for e in expectations if e.scope == "rows"]
    table_level = [e for e in expectations if e.scope == "table"]
    batches = [_Batch("changed_rows", changed, row_level)] if row_level else []
    if table_level:
        wanted = dict.fromkeys([*suite.sample_columns, *(c for e in table_level for c in e.columns)])
        present = [c for c in wanted if c in frame.collect_schema()]
        batches.append(_Batch("all_rows", frame.select(present).collect(), table_level))
    scope = (
        f"{changed.height} changed rows of {rows} since version {baseline['delta_version']} "
        f"(run {baseline['run_id'][:8]}); table-wide expectations on all rows"
    )
    return batches, changed.height, scope


#: Beyond this many rows, a table with no changed slice to validate is not copied whole into pandas for GX.
FULL_COPY_MAX_ROWS = 2_000_000
#: Rows GX is given, at most, for the row-by-row expectations of a large table with no changed slice to
#: validate (its first build, a rebuild): every n-th row, so a pandas copy of the whole table is never made.
SAMPLE_ROWS = 250_000
#: Table-wide expectations computed with polars aggregates on every row of a large table, not by GX.
POLARS_COMPUTED = frozenset(
    {
        "expect_compound_columns_to_be_unique",
        "expect_column_values_to_be_unique",
        "expect_table_row_count_to_be_between",
    }
)
_POLARS = "polars_aggregates"


def _plan_large(suite: Suite, frame: pl.LazyFrame, rows: int) -> tuple[list[_Batch], int, str]:
    """A large table without a changed slice: row-by-row expectations on a bounded, evenly spread sample;
    uniqueness and row count from polars aggregates over every row (streamed); any other table-wide
    expectation on every row of just its columns."""
    expectations = suite.gx_expectations
    row_level = [e for e in expectations if e.scope == "rows"]
    computed = [e for e in expectations if e.scope == "table" and e.type in POLARS_COMPUTED]
    table_level = [e for e in expectations if e.scope == "table" and e.type not in POLARS_COMPUTED]
    every = max(1, -(-rows // SAMPLE_ROWS))
    batches = []
    sampled = 0
    if row_level:
        sample = frame.gather_every(every).collect(engine="streaming")
        sampled = sample.height
        batches.append(_Batch("sampled_rows", sample, row_level))
    if table_level:
        wanted = dict.fromkeys([*suite.sample_columns, *(c for e in table_level for c in e.columns)])
        present = [c for c in wanted if c in frame.collect_schema()]
        batches.append(_Batch("all_rows", frame.select(present).collect(), table_level))
    if computed:
        # The frame stays lazy: the aggregates stream over it (see _polars_outcomes).
        batches.append(_Batch(_POLARS, frame, computed))  # type: ignore[arg-type]
    scope = (
        f"a sample of {sampled} of {rows} rows (every {every}th) for the row-by-row expectations; "
        f"{', '.join(e.name for e in computed) or 'no table-wide expectation'} computed with polars "
        "aggregates on all rows"
    )
    return batches, sampled, scope


def _polars_outcomes(batch: _Batch, rows: int) -> dict[str, CheckOutcome]:
    """Uniqueness and row-count expectations from polars aggregates over every row (key hashes streamed,
    then the exact keys of colliding hashes), with GX's outcome shape."""
    frame: pl.LazyFrame = batch.frame  # type: ignore[assignment]
    outcomes = {}
    for expectation in batch.expectations:
        kwargs = dict(expectation.kwargs)
        outcome = CheckOutcome(
            name=expectation.name,
            kind="gx",
            severity=expectation.severity,
            success=False,
            description=expectation.describe(),
            expectation_type=expectation.type,
            column=", ".join(expectation.columns) or None,
            scope=expectation.scope,
            kwargs=jsonable(kwargs),
            message="computed with polars aggregates over every row (the table is too large for a pandas copy)",
        )
        if expectation.type == "expect_table_row_count_to_be_between":
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            outcome.success = (low is None or rows >= low) and (high is None or rows <= high)
            outcome.observed_value = rows
        else:
            columns = list(expectation.columns)
            # GX skips rows where all (compound) or the (single) column is null.
            present = frame.filter(pl.any_horizontal(pl.col(columns).is_not_null()))
            hashed = pl.struct(columns).hash(seed=_HASH_SEED).alias("_h")
            shared = shared_hashes(present.select(hashed))
            duplicated = pl.DataFrame()
            if shared.len():
                candidates = (
                    present.filter(hashed.is_in(shared.implode())).select(columns).collect(engine="streaming")
                )
                duplicated = candidates.filter(pl.struct(columns).is_duplicated())
            counted = present.select(pl.len()).collect(engine="streaming").item()
            outcome.success = duplicated.height == 0
            outcome.element_count = counted
            outcome.unexpected_count = duplicated.height
            outcome.unexpected_percent = duplicated.height / counted * 100 if counted else 0.0
            outcome.sample = [
                {k: jsonable(v) for k, v in row.items()} for row in duplicated.head(SAMPLE_SIZE).to_dicts()
            ]
        outcomes[expectation.name] = outcome
    return outcomes


def _inputs_version(versions: Mapping[TableRef, int]) -> str:
    """Which version of each table a validation read: ``silver/x/y@12;silver/x/z@3``."""
    return ";".join(f"{ref.path}@{v}" for ref, v in versions.items())


def _rows_added_since(lake: DeltaLake, suite: Suite, version: int, baseline: int) -> pl.DataFrame | None:
    """The validated columns of the rows in data files added since ``baseline`` (None when that is every
    file, the table is partitioned, or the baseline version is gone: then the whole table is validated).

    A file rewritten by a merge brings its unchanged rows along: they are validated again, which is safe.
    """
    import pyarrow.dataset as pads

    table = lake.delta_table(suite.ref, version=version)
    if table.metadata().partition_columns:
        return None
    now = set(pl.DataFrame(table.get_add_actions(flatten=True))["path"].to_list())
    try:
        table.load_as_version(baseline)
    except Exception:  # vacuumed or replaced: validate everything
        return None
    before = set(pl.DataFrame(table.get_add_actions(flatten=True))["path"].to_list())
    added = now - before
    if added == now:
        return None
    table.load_as_version(version)
    dataset = table.to_pyarrow_dataset()
    fragments = [f for f in dataset.get_fragments() if any(f.path.endswith(path) for path in added)]
    columns = [c for c in suite.validated_columns if c in dataset.schema.names]
    data = pads.FileSystemDataset(
        fragments, schema=dataset.schema, format=dataset.format, filesystem=dataset.filesystem
    ).to_table(columns=columns)
    return pl.from_arrow(data)


def _passing_baseline(previous: pl.DataFrame, lookups: str) -> dict[str, Any] | None:
    """The latest earlier validation whose row-by-row expectations all passed (so unchanged rows pass), with
    the lookup tables at the versions they are now (a lookup that changed can change any row's result)."""
    if previous.is_empty():
        return None
    runs = (
        previous.group_by("run_id", "validated_at", "delta_version", "inputs_version")
        .agg(pl.col("success").filter(pl.col("scope") == "rows").all().alias("rows_passed"))
        .filter(pl.col("rows_passed"))
        .sort("validated_at", descending=True)
    )
    if lookups:
        runs = runs.filter(pl.col("inputs_version").str.ends_with(";" + lookups))
    return runs.row(0, named=True) if runs.height else None


# ---- Great Expectations -----------------------------------------------------------------------------------------
def _run_gx(
    suite: Suite, batches: Sequence[_Batch], run_id: str, now: dt.datetime
) -> tuple[dict[str, CheckOutcome], list[dict[str, Any]]]:
    """Validate each batch with GX (imported here: it takes seconds, and only checks need it)."""
    context = gx_context()
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    source = context.data_sources.add_pandas("lake")
    outcomes: dict[str, CheckOutcome] = {}
    results: list[dict[str, Any]] = []
    by_name = {e.name: e for e in suite.expectations}
    for batch in batches:
        if not batch.expectations:
            continue
        label = suite.name if len(batches) == 1 else f"{suite.name}.{batch.label}"
        asset = source.add_dataframe_asset(label)  # names become Data Docs paths: no "/" or spaces
        gx_suite = context.suites.add(suite.to_gx_suite(batch.expectations, name=label))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=label, data=asset.add_batch_definition_whole_dataframe(batch.label), suite=gx_suite
            )
        )
        sample_columns = [c for c in suite.sample_columns if c in batch.frame.columns]
        result = definition.run(
            batch_parameters={"dataframe": to_pandas(batch.frame)},
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": SAMPLE_SIZE,
                **({"unexpected_index_column_names": sample_columns} if sample_columns else {}),
            },
            run_id=RunIdentifier(run_name=run_id, run_time=now),
        )
        results.append(
            {"suite": gx_suite.to_json_dict(), "result": result.to_json_dict(), "batch_id": result.batch_id}
        )
        for item in result.results:
            expectation = by_name[item.expectation_config.meta["check_name"]]
            outcomes[expectation.name] = _gx_outcome(expectation, item, sample_columns)
    return outcomes, results


def to_pandas(frame: pl.DataFrame):
    """The frame as GX's pandas engine reads it: UTC timestamps as naive UTC (the same instants; pandas'
    tz-aware arrays are what GX's comparisons stumble over)."""
    naive = [
        pl.col(name).dt.replace_time_zone(None)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    ]
    return (frame.with_columns(naive) if naive else frame).to_pandas()


def gx_context():
    """An in-memory GX context without progress bars or analytics. Imports GX (seconds, once a process)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _gx_outcome(expectation: Expectation, item: Any, sample_columns: Sequence[str]) -> CheckOutcome:
    result = dict(item.result or {})
    error = _exception_message(item.exception_info)
    message = f"could not be evaluated: {error}" if error else ""
    if not item.success and not result and not message:
        missing = ", ".join(expectation.columns)
        message = f"could not be evaluated (is {missing or 'the column'} in the table?)"
    keep = set(sample_columns) | set(expectation.columns)
    sample = [
        {k: jsonable(v) for k, v in row.items() if k in keep}
        for row in (result.get("partial_unexpected_index_list") or [])[:SAMPLE_SIZE]
    ]
    if not sample and result.get("partial_unexpected_list"):
        sample = [
            row if isinstance(row, dict) else {"value": row}
            for row in jsonable(result["partial_unexpected_list"][:SAMPLE_SIZE])
        ]
    return CheckOutcome(
        name=expectation.name,
        kind="gx",
        severity=expectation.severity,
        success=bool(item.success),
        description=expectation.describe(),
        expectation_type=expectation.type,
        column=", ".join(expectation.columns) or None,
        scope=expectation.scope,
        observed_value=jsonable(result.get("observed_value")),
        unexpected_count=_int(result.get("unexpected_count")),
        unexpected_percent=jsonable(result.get("unexpected_percent")),
        element_count=_int(result.get("element_count")),
        sample=sample,
        message=message,
        kwargs=jsonable(dict(expectation.kwargs)),
    )


def _exception_message(info: Any) -> str:
    """GX reports an exception either flat or per metric; the first message, whichever it is."""
    if not isinstance(info, Mapping):
        return ""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return ""


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


# ---- relationships (polars) -----------------------------------------------------------------------------------
def _relationship(lake: DeltaLake, suite: Suite, expectation: Expectation, version: int) -> CheckOutcome:
    """Every non-null ``column`` of the table is a ``field`` of the ``to`` table (composite keys allowed)."""
    kwargs = expectation.kwargs
    columns = [kwargs["column"]] if isinstance(kwargs["column"], str) else list(kwargs["column"])
    fields = [kwargs["field"]] if isinstance(kwargs["field"], str) else list(kwargs["field"])
    target = expectation.target
    outcome = CheckOutcome(
        name=expectation.name,
        kind="relationship",
        severity=expectation.severity,
        success=False,
        description=expectation.describe(),
        expectation_type="relationship",
        column=", ".join(columns),
        scope="table",
        kwargs=jsonable(dict(kwargs)),
    )
    if target is None or not lake.exists(target):
        outcome.message = f"{kwargs['to']} is not in the lake, so {', '.join(columns)} cannot be checked"
        return outcome
    table = lake.scan(suite.ref, version=version)
    schema, parent_schema = table.collect_schema(), lake.scan(target).collect_schema()
    absent = [c for c in columns if c not in schema] + [
        f"{target}.{f}" for f in fields if f not in parent_schema
    ]
    if absent:
        outcome.message = f"column(s) {', '.join(absent)} not found"
        return outcome
    shown = list(dict.fromkeys([*(c for c in suite.sample_columns if c in schema), *columns]))
    children = table.select(shown).filter(pl.all_horizontal(pl.col(columns).is_not_null()))
    parents = (
        lake.scan(target)
        .select(
            [pl.col(f).cast(schema[c], strict=False).alias(c) for f, c in zip(fields, columns, strict=True)]
        )
        .unique()
    )
    failing = children.join(parents, on=columns, how="anti")
    counted = pl.concat(
        [children.select(pl.len().alias("n")), failing.select(pl.len().alias("n"))], how="vertical"
    ).collect()["n"]
    total, bad = int(counted[0]), int(counted[1])
    outcome.success = bad == 0
    outcome.element_count = total
    outcome.unexpected_count = bad
    outcome.unexpected_percent = bad / total * 100 if total else 0.0
    outcome.sample = failing.select(pl.col(shown).cast(pl.String)).head(SAMPLE_SIZE).collect().to_dicts()
    if bad:
        missing_values = failing.select(columns).unique().head(SAMPLE_SIZE).collect().to_dicts()
        outcome.message = f"{bad} row(s) point to no {', '.join(fields)} of {target}, e.g. {missing_values}"
    return outcome
