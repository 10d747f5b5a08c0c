"""Data-quality asset checks: one check op per table with a suite in ``expectations/``, one Dagster check per
expectation (plus freshness, schema drift and row-count change), blocking where the suite says ``error``.

Why one check per expectation: the UI then lists, under each table, every rule with its own pass/fail,
severity and failing rows, and a blocked run names the rule that blocked it. Why one op per table: the table
is read once and GX starts once for all of its rules. The work is in ``kpi_lake.quality``.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

from kpi_lake.quality import HISTORY, CheckOutcome, Suite, SuiteRun, docs_uri, load_suites, run_suite
from kpi_lake.quality.suites import NATIVE_CHECKS
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXPECTATIONS_ROOT = PROJECT_ROOT / "expectations"

AssetLike = dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset | dg.AssetKey | Sequence[str]
_NATIVE_DESCRIPTIONS = {
    "freshness": "The table was written recently enough (its last Delta commit), or the nightly run stalled.",
    "schema_drift": "The table's columns and types are the ones declared in its suite (and documented).",
    "row_count_change": "The row count did not jump or drop beyond the bound since the previous Delta version.",
}


def quality_checks(
    asset_graph: Iterable[AssetLike],
    *,
    suites_root: Path = EXPECTATIONS_ROOT,
    documented_columns: Mapping[TableRef, Mapping[str, str]] | None = None,
) -> list[dg.AssetChecksDefinition]:
    """The checks of every suite whose table is an asset of ``asset_graph`` (the assets given to Definitions:
    assets definitions, specs or keys). A suite for a table not in the graph is left out until it is.

    Given assets definitions (not bare keys), checks that read another table wait for it when it is built in
    the same run and is not downstream of the checked table (which would be a cycle).
    """
    upstream = _dependencies(asset_graph)
    if documented_columns is None:
        from assets.silver import SILVER_TABLES

        documented_columns = {spec.ref: spec.columns for spec in SILVER_TABLES}
    checks = []
    for suite in _suites(suites_root):
        key = dg.AssetKey(suite.ref.key_path)
        if key in upstream:
            checks.append(suite_checks(suite, upstream, documented_columns.get(suite.ref)))
    return checks


def suite_checks(
    suite: Suite,
    upstream: Mapping[dg.AssetKey, frozenset[dg.AssetKey]],
    documented: Mapping[str, str] | None = None,
) -> dg.AssetChecksDefinition:
    """One op that validates ``suite``'s table and reports each of its checks."""
    asset_key = dg.AssetKey(suite.ref.key_path)
    waits_for = _waits_for(suite, asset_key, upstream)
    specs = [
        dg.AssetCheckSpec(
            name=name,
            asset=asset_key,
            description=_spec_description(suite, name),
            blocking=_severity(suite, name) == "error",
            additional_deps=[dg.AssetDep(k) for k in waits_for.get(name, ())] or None,
            metadata={"severity": _severity(suite, name), "suite_file": f"expectations/{suite.file}"},
        )
        for name in suite.check_names
    ]

    @dg.multi_asset_check(
        name="quality_" + "_".join(suite.ref.key_path),
        specs=specs,
        can_subset=True,
        description=(suite.description or f"Expectation suite of {suite.ref}")
        + f" (expectations/{suite.file})",
        compute_kind="great_expectations",
    )
    def _quality(context: dg.AssetCheckExecutionContext, lake: DeltaLake) -> Iterator[dg.AssetCheckResult]:
        run = run_suite(lake, suite, context.run.run_id, documented_columns=documented, log=context.log.info)
        report = run.report
        failed = report.failures()
        context.log.info(
            f"{suite.ref}: {len(report.outcomes) - len(failed)} of {len(report.outcomes)} checks passed on "
            f"version {report.delta_version} ({report.validated_scope}) in {report.seconds:.2f}s; "
            f"history at version {run.history_version} of {HISTORY}"
        )
        for outcome in failed:
            log = context.log.error if outcome.severity == "error" else context.log.warning
            log(f"{suite.ref}: {outcome.summary()}")
        blocking = [outcome for outcome in failed if outcome.severity == "error"]
        if blocking and suite.ref.layer == "gold" and report.delta_version is not None:
            # Blocking stops what is built on the table; withdrawing the version stops what reads it directly
            # (Power BI, Excel): councillors must not see numbers that failed their checks.
            names = ", ".join(outcome.name for outcome in blocking)
            state = lake.withdraw(suite.ref, report.delta_version, reason=f"failed {names}")
            context.log.error(
                f"{suite.ref}: version {report.delta_version} withdrawn (failed {names}); readers now see "
                f"version {state.version}, {state.row_count} rows"
            )
        if run.docs_error:
            context.log.warning(f"{suite.ref}: GX results not kept for Data Docs: {run.docs_error}")
        selected = context.selected_asset_check_keys
        for outcome in report.outcomes:
            if dg.AssetCheckKey(asset_key, outcome.name) in selected:
                yield _check_result(asset_key, outcome, run, docs_uri(lake))

    return _quality


def _check_result(
    asset_key: dg.AssetKey, outcome: CheckOutcome, run: SuiteRun, data_docs: str
) -> dg.AssetCheckResult:
    report = run.report
    metadata: dict[str, Any] = {
        "severity": outcome.severity,
        "check": outcome.expectation_type or outcome.kind,
        "delta_version": report.delta_version,
        "rows_in_table": report.rows_in_table,
        "rows_validated": report.rows_validated,
        "validated_scope": report.validated_scope,
        "suite_seconds": round(report.seconds, 3),
        "history_table": f"{HISTORY} (version {run.history_version})",
    }
    if report.reused_from_run is not None and outcome.kind != "freshness":
        metadata["reused"] = True
        metadata["reused_from_run"] = report.reused_from_run
        metadata["reused_from_version"] = report.delta_version
    if outcome.kwargs:
        metadata["kwargs"] = dg.MetadataValue.json(outcome.kwargs)
    if outcome.observed_value is not None:
        observed = outcome.observed_value
        metadata["observed_value"] = (
            dg.MetadataValue.json(observed) if isinstance(observed, dict | list) else observed
        )
    for field in ("unexpected_count", "unexpected_percent", "element_count"):
        value = getattr(outcome, field)
        if value is not None:
            metadata[field] = round(value, 4) if isinstance(value, float) else value
    if outcome.sample:
        metadata["sample_failing_rows"] = dg.MetadataValue.json(outcome.sample)
    if outcome.message:
        metadata["message"] = outcome.message
    if outcome.kind == "gx":
        metadata["data_docs"] = dg.MetadataValue.path(data_docs)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR if outcome.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=outcome.summary()[:1000],
        metadata=metadata,
    )


@cache
def _suites(root: Path) -> tuple[Suite, ...]:
    """The suites under ``root``: read once per process and, between processes (each code-location load),
    from the parsed-tree cache, keyed by every suite file's bytes and the reader's code (a YAML edit is read)."""
    from kpi_lake import tables
    from kpi_lake.quality import suites
    from kpi_lake.sql_models.cache import cached_tree

    return cached_tree(
        root,
        (),
        lambda: tuple(load_suites(root)),
        prefix="expectation-suites-",
        code=[Path(suites.__file__), Path(tables.__file__)],
        packages=("PyYAML",),
    )


def _severity(suite: Suite, name: str) -> str:
    if name in NATIVE_CHECKS:
        return suite.native[name].severity
    return next(e.severity for e in suite.expectations if e.name == name)


def _spec_description(suite: Suite, name: str) -> str:
    if name in NATIVE_CHECKS:
        return _NATIVE_DESCRIPTIONS[name]
    expectation = next(e for e in suite.expectations if e.name == name)
    engine = "polars" if not expectation.is_gx else "Great Expectations"
    return f"{expectation.describe()} ({expectation.severity}; {engine})"


def _dependencies(asset_graph: Iterable[AssetLike]) -> dict[dg.AssetKey, frozenset[dg.AssetKey]]:
    """Each asset key with its direct upstream keys (empty when only a key was given)."""
    upstream: dict[dg.AssetKey, frozenset[dg.AssetKey]] = {}
    for item in asset_graph:
        if isinstance(item, dg.AssetsDefinition):
            for spec in item.specs:
                upstream[spec.key] = frozenset(dep.asset_key for dep in spec.deps)
        elif isinstance(item, dg.AssetSpec):
            upstream[item.key] = frozenset(dep.asset_key for dep in item.deps)
        elif isinstance(item, dg.SourceAsset):
            upstream[item.key] = frozenset()
        else:
            upstream.setdefault(dg.AssetKey.from_coercible(item), frozenset())
    return upstream


def _ancestors(key: dg.AssetKey, upstream: Mapping[dg.AssetKey, frozenset[dg.AssetKey]]) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    todo = list(upstream.get(key, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(upstream.get(current, ()))
    return seen


def _waits_for(
    suite: Suite, asset_key: dg.AssetKey, upstream: Mapping[dg.AssetKey, frozenset[dg.AssetKey]]
) -> dict[str, list[dg.AssetKey]]:
    """For each check reading another table built in this graph: that table, when the check must wait for
    it (it is neither already upstream of the checked table nor downstream of it)."""
    ancestors = _ancestors(asset_key, upstream)
    waits: dict[str, list[dg.AssetKey]] = {}
    for expectation in suite.expectations:
        reads = [
            dg.AssetKey(lookup.table.key_path)
            for lookup in suite.lookups
            if expectation.is_gx and set(lookup.columns.values()) & set(expectation.columns)
        ]
        if expectation.target is not None:
            reads.append(dg.AssetKey(expectation.target.key_path))
        for other in reads:
            if other == asset_key or other not in upstream or other in ancestors:
                continue
            if asset_key in _ancestors(other, upstream):
                continue  # built after this table: waiting for it would be a cycle; read its last version
            waits.setdefault(expectation.name, []).append(other)
    return waits
