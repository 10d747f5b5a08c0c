"""The KPI mart's fact table, ``gold/kpi_mart/fact_kpi_value``: the one Python asset in the mart.

The SQL models give each KPI value with its target, narrative and lineage (``silver/kpi_catalogue/
kpi_values_combined``) and the dimensions; this asset applies the rules of ``kpi_lake.rules`` (their only
implementation), passes the rows through the gate of the fact's suite (``kpi_lake.quality.gate``: a row breaking a
blocking row-level expectation goes to ``fact_kpi_value_withheld`` with the reason) and writes the rest. The SQL
models after it (``kpi_single_view``, ``theme_scorecard``) read it as ``gold.kpi_mart.fact_kpi_value``. Its column
tests run as blocking asset checks, like the gold models'; ``no_rows_withheld`` fails the run while anything is
withheld, without blocking what is built on the published rows.
"""

import inspect
from collections.abc import Iterator
from functools import cache

import dagster as dg
import polars as pl

from assets.quality import EXPECTATIONS_ROOT
from kpi_lake import rebuild, rules
from kpi_lake.quality import Suite, load_suite
from kpi_lake.quality import gate as row_gate
from kpi_lake.quality.gate import WITHHELD_COLUMNS, describe_withheld, withheld_counts, withheld_ref
from kpi_lake.rules import DIRECTIONS, FACT_COLUMNS, FACT_KEY, RAG_STATUSES, build_fact_kpi_value
from kpi_lake.sql_models import ColumnTest, evaluate_test
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake, data_version

FACT = TableRef("gold", "kpi_mart", "fact_kpi_value")
#: The fact's rows that broke a blocking row-level expectation in its latest build, each with the reason.
FACT_WITHHELD = withheld_ref(FACT)
VALUES = TableRef("silver", "kpi_catalogue", "kpi_values_combined")
DIM_KPI = TableRef("gold", "kpi_mart", "dim_kpi")
DIM_PERIOD = TableRef("gold", "kpi_mart", "dim_period")
DIM_GEOGRAPHY = TableRef("gold", "kpi_mart", "dim_geography")
INPUTS = (VALUES, DIM_KPI, DIM_PERIOD, DIM_GEOGRAPHY)

COLUMNS = {
    "kpi_code": "The KPI (dim_kpi)",
    "period_key": "The period (dim_period), e.g. FY2024-25-Q2, FY2024-25, AY2024-25, CY2024",
    "geography_code": "ONS code of the council, ward, region or England (dim_geography)",
    "actual": "The value: computed by the lake where it computes the KPI (rounded as SPAR.net shows it), "
    "else SPAR.net's, else a benchmark's",
    "target": "SPAR.net's target for the own council (null elsewhere, or when none is set)",
    "numerator": "What was counted (computed KPIs and SPAR.net where it gives one)",
    "denominator": "What it was counted out of",
    "lower_ci": "Lower 95% confidence limit (survey and survey-based benchmarks)",
    "upper_ci": "Upper 95% confidence limit",
    "base": "Unweighted number of survey respondents behind the value",
    "rag_status": "green | amber | red | no_target | no_data (kpi_lake.rules.rag_status, with dim_kpi's "
    "polarity and rag_tolerance_pct)",
    "direction_of_travel": "improving | stable | worsening | not_comparable, against the same period last year, "
    "else the previous period (kpi_lake.rules.direction_of_travel)",
    "previous_period_actual": "The actual of the period of the same type just before",
    "same_period_last_year_actual": "The actual of the same period a year earlier",
    "comparator_median": "Median of the own council and its comparators with a value (null for other "
    "geographies, or with fewer than two values)",
    "comparator_quartile": "1 = best quarter of the ranking, 4 = worst",
    "comparator_rank": "Rank among the own council and its comparators, 1 = best by polarity (ties share)",
    "comparator_count": "Councils in the comparison that have a value",
    "narrative": "SPAR.net commentary and action to improve",
    "source_system": "Where the actual came from: business_systems, emissions, education, qol_survey, "
    "spar_net or benchmarks",
    "source_lineage": "The tables, files and rows behind the value; the figure SPAR.net reported, where the "
    "lake computed its own",
    "is_reconciled": "Computed and SPAR.net figures agree within 0.5% (null: nothing to reconcile)",
    "reconciliation_note": "Both figures and the gap, when they do not agree",
    "comparison_lower_ci": "Lower confidence limit of the value direction_of_travel compared with (not in "
    "the BI contract: lets the direction be re-derived from the row)",
    "comparison_upper_ci": "Upper confidence limit of the value direction_of_travel compared with",
    "top_quartile_value": "What good looks like: where the best quarter of the own council and its "
    "comparators starts, the value of the council ranked ceil(n/4)-th best by polarity "
    "(kpi_lake.rules.what_good_looks_like); null with fewer than two values or polarity neither",
    "best_comparator_code": "The comparator (not the own council) with the best value by polarity",
    "best_comparator_name": "Its name",
    "best_comparator_value": "Its value",
    "gap_to_top_quartile": "actual minus top_quartile_value (read with the KPI's polarity)",
    "gap_to_best_comparator": "actual minus best_comparator_value (read with the KPI's polarity)",
}

TESTS = (
    *(ColumnTest(column, "not_null") for column in (*FACT_KEY, "rag_status", "direction_of_travel")),
    ColumnTest("rag_status", "accepted_values", values=RAG_STATUSES),
    ColumnTest("direction_of_travel", "accepted_values", values=DIRECTIONS),
    ColumnTest("kpi_code", "relationships", to=DIM_KPI, field="kpi_code"),
    ColumnTest("period_key", "relationships", to=DIM_PERIOD, field="period_key"),
    ColumnTest("geography_code", "relationships", to=DIM_GEOGRAPHY, field="geography_code"),
)
KEY_CHECK = "fact_key_unique"
_KEY = dg.AssetKey(FACT.key_path)


WITHHELD_CHECK = "no_rows_withheld"
_WITHHELD_KEY = dg.AssetKey(FACT_WITHHELD.key_path)
#: Run tag set on a run that published the fact with rows withheld (the runs list in the UI shows it).
OUTCOME_TAG = "kpi_lake/outcome"
WITHHELD_OUTCOME = "failed_with_withheld_rows"


@cache
def fact_suite() -> Suite:
    """The fact's expectation suite: its row-level expectations are the gate, all of it the checks after."""
    return load_suite(EXPECTATIONS_ROOT / f"{FACT.path}.yml", EXPECTATIONS_ROOT)


@dg.multi_asset(
    name="fact_kpi_value",
    specs=[
        dg.AssetSpec(
            key=_KEY,
            deps=[dg.AssetKey(ref.key_path) for ref in INPUTS],
            description="One row per KPI, period and geography: actual, target, RAG status, direction of "
            "travel, previous and last year's values, comparator median, quartile and rank, narrative, lineage "
            "and reconciliation with SPAR.net. Rows that break a blocking row-level expectation of "
            "expectations/gold/kpi_mart/fact_kpi_value.yml are withheld (fact_kpi_value_withheld). Rules: "
            "kpi_lake/rules.py; see docs/KPI_MART.md.",
            group_name=FACT.group_name,
            kinds={"python", "polars", "delta"},
            tags={"layer": FACT.layer, "source": FACT.source, "kpi_mart": ""},
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, description=COLUMNS[name]) for name in FACT_COLUMNS]
                ),
                "lake_path": FACT.path,
                "unique_key": ", ".join(FACT_KEY),
            },
        ),
        dg.AssetSpec(
            key=_WITHHELD_KEY,
            deps=[dg.AssetKey(ref.key_path) for ref in INPUTS],
            description="What the latest build of fact_kpi_value withheld from readers: each row that broke a "
            "blocking row-level expectation, once per expectation, with the expectation, the column, the value "
            "found and the reason. Rewritten with every build of the fact: empty when nothing is withheld. "
            "See docs/DATA_QUALITY.md.",
            group_name=FACT_WITHHELD.group_name,
            kinds={"python", "polars", "delta"},
            tags={"layer": FACT_WITHHELD.layer, "source": FACT_WITHHELD.source},
            metadata={
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        *(dg.TableColumn(name, description=COLUMNS[name]) for name in FACT_COLUMNS),
                        *(
                            dg.TableColumn(name, "String", description=text)
                            for name, text in WITHHELD_COLUMNS.items()
                        ),
                    ]
                ),
                "lake_path": FACT_WITHHELD.path,
            },
        ),
    ],
    pool=FACT.path,  # one writer per table across runs (pools in deploy/local/dagster.yaml); it alone writes both tables
    # Either key may be selected (a selection of the fact and what follows it has no reason to name the
    # withheld table): both tables are written every time, so that they never disagree.
    can_subset=True,
    check_specs=[
        dg.AssetCheckSpec(
            name=KEY_CHECK,
            asset=_KEY,
            description="(kpi_code, period_key, geography_code) is unique",
            blocking=True,
        ),
        *(
            dg.AssetCheckSpec(
                name=test.check_name,
                asset=_KEY,
                description=test.description,
                blocking=True,
                additional_deps=[dg.AssetKey(test.to.key_path)] if test.to else None,
            )
            for test in TESTS
        ),
    ],
)
def fact_kpi_value(context: dg.AssetExecutionContext, lake: DeltaLake) -> Iterator[dg.MaterializeResult]:
    missing = [str(ref) for ref in INPUTS if not lake.exists(ref)]
    if missing:
        raise dg.Failure(description=f"{FACT}: inputs not in the lake yet: {', '.join(missing)}")
    suite = fact_suite()
    # Work proportional to change: rebuild only when an input has a new Delta version, or the rules, the gate or
    # the fact's suite changed.
    built_from = rebuild.fingerprint(
        lake, INPUTS, inspect.getsource(rules) + inspect.getsource(row_gate) + suite.content_hash
    )
    if rebuild.is_current(lake, FACT, built_from) and lake.exists(FACT_WITHHELD):
        context.log.info(f"{FACT}: inputs, rules and suite unchanged since the last build; nothing to do")
        state = lake.state(FACT, operation="unchanged")
        withheld_state = lake.state(FACT_WITHHELD, operation="unchanged")
    else:
        published, withheld_rows = gate_fact(lake, suite, context.run.run_id, log=context.log.info)
        duplicated = published.filter(published.select(FACT_KEY).is_duplicated())
        if duplicated.height:
            # Structural: the table is wrong, not a row. Nothing is written; readers keep the last good version.
            keys = duplicated.select(FACT_KEY).unique().head(5).to_dicts()
            raise dg.Failure(
                description=f"{FACT}: {duplicated.height} rows share a (kpi_code, period_key, geography_code), "
                f"e.g. {keys}; nothing written, the last good version is kept",
                metadata={"duplicated_rows": duplicated.height},
                allow_retries=False,
            )
        # The withheld rows first: a reader who misses a row finds why before the row is gone.
        withheld_state = lake.overwrite(FACT_WITHHELD, withheld_rows)
        if published.is_empty() and not withheld_rows.is_empty():
            # Nothing left is not "a few rows": structural, like a duplicate key. The fact stays as it was.
            counts = withheld_counts(withheld_rows, "kpi_code")
            rows = withheld_rows.select(FACT_KEY).unique().height
            raise dg.Failure(
                description=f"{FACT}: every row was withheld, so the last good version is kept "
                f"({lake.state(FACT).row_count if lake.exists(FACT) else 0} rows). "
                + describe_withheld(counts, "kpi_code", FACT, rows),
                metadata={"rows_withheld": rows, "withheld_table": FACT_WITHHELD.path},
                allow_retries=False,
            )
        state = lake.overwrite(FACT, published, commit_metadata={rebuild.BUILT_FROM: built_from})
    metadata = state.to_metadata()
    metadata["dagster/column_schema"] = dg.TableSchema(
        columns=[
            dg.TableColumn(name, dtype, description=COLUMNS.get(name)) for name, dtype in state.schema.items()
        ]
    )
    summary, rows_withheld, _, withheld_metadata = withheld_summary(lake)
    if rows_withheld:
        context.log.error(summary)
    if _KEY in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key=_KEY,
            metadata={**metadata, **withheld_metadata},
            check_results=_column_checks(context, lake),
            data_version=data_version(metadata),
        )
    if _WITHHELD_KEY in context.selected_asset_keys:
        yield dg.MaterializeResult(
            asset_key=_WITHHELD_KEY,
            metadata={**withheld_state.to_metadata(), **withheld_metadata},
            data_version=data_version(withheld_state.to_metadata()),
        )


def gate_fact(
    lake: DeltaLake, suite: Suite, run_id: str, log=lambda message: None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fact's rows to publish and the rows withheld.

    A withheld value must not reach readers through another row either (last year's actual, the previous
    period's, the comparator median, a direction of travel): when anything is withheld, the fact is built again
    from the values without the withheld keys, and that build is what is published.
    """
    values, kpis, periods, geographies = (lake.scan(ref) for ref in INPUTS)

    def tables(ref: TableRef) -> pl.LazyFrame | None:
        return lake.scan(ref) if lake.exists(ref) else None

    first = row_gate.split_rows(
        build_fact_kpi_value(values, kpis, periods, geographies), suite, run_id, tables=tables
    )
    if first.untranslated:
        log(f"{FACT}: judged after the write only (not row by row): {', '.join(first.untranslated)}")
    if not first.rows_withheld:
        return first.published, first.withheld
    withheld_keys = first.withheld.select(FACT_KEY).unique().lazy()
    kept = values.join(withheld_keys, on=list(FACT_KEY), how="anti", nulls_equal=True)
    second = row_gate.split_rows(
        build_fact_kpi_value(kept, kpis, periods, geographies), suite, run_id, tables=tables
    )
    log(
        f"{FACT}: {first.rows_withheld} rows withheld; rebuilt without them so that no other row derives from "
        f"them ({second.rows_withheld} more withheld on the rebuild)"
    )
    return second.published, pl.concat([first.withheld, second.withheld], how="vertical")


def _column_checks(context: dg.AssetExecutionContext, lake: DeltaLake) -> list[dg.AssetCheckResult]:
    table = lake.scan(FACT)
    selected = context.selected_asset_check_keys
    results = []
    if dg.AssetCheckKey(_KEY, KEY_CHECK) in selected:
        duplicated = table.group_by(FACT_KEY).agg(pl.len().alias("rows")).filter(pl.col("rows") > 1).collect()
        results.append(
            dg.AssetCheckResult(
                asset_key=_KEY,
                check_name=KEY_CHECK,
                passed=duplicated.height == 0,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failing_rows": int(duplicated["rows"].sum()) if duplicated.height else 0,
                    "sample_failing_rows": dg.MetadataValue.json(duplicated.head(5).to_dicts()),
                },
            )
        )
    for test in TESTS:
        if dg.AssetCheckKey(_KEY, test.check_name) not in selected:
            continue
        parent = lake.scan(test.to) if test.to is not None else None
        outcome = evaluate_test(test, table, FACT_KEY, parent)
        results.append(
            dg.AssetCheckResult(
                asset_key=_KEY,
                check_name=test.check_name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=outcome.message or test.description,
                metadata={
                    "failing_rows": outcome.failing_rows,
                    "sample_failing_rows": dg.MetadataValue.json(outcome.sample),
                },
            )
        )
    return results


def _markdown(counts: pl.DataFrame) -> str:
    if counts.is_empty():
        return "Nothing withheld."
    lines = ["| KPI | expectation | rows |", "| --- | --- | --- |"]
    lines += [f"| {kpi} | {expectation} | {rows} |" for kpi, expectation, rows in counts.head(50).iter_rows()]
    if counts.height > 50:
        lines.append(f"| … | {counts.height - 50} more | |")
    return "\n".join(lines)


def withheld_summary(lake: DeltaLake) -> tuple[str, int, list[str], dict]:
    """What is withheld now (from the withheld table): a paragraph, the row count, the KPIs, and metadata for
    the UI."""
    if not lake.exists(FACT_WITHHELD):
        withheld = row_gate.empty_withheld(pl.DataFrame(schema={k: pl.String() for k in FACT_KEY})).lazy()
    else:
        withheld = lake.scan(FACT_WITHHELD)
    counts = withheld_counts(withheld, "kpi_code")
    rows = withheld.select(FACT_KEY).unique().select(pl.len()).collect().item()
    kpis = sorted({str(k) for k in counts["kpi_code"].to_list()})
    summary = describe_withheld(counts, "kpi_code", FACT, rows) if rows else "nothing withheld"
    metadata = {
        "rows_withheld": rows,
        "kpis_withheld": dg.MetadataValue.json(kpis),
        "withheld_by_kpi_and_expectation": dg.MetadataValue.md(_markdown(counts)),
        "withheld_table": FACT_WITHHELD.path,
        "sample_withheld_rows": dg.MetadataValue.json(
            withheld.select(*FACT_KEY, "expectation", "observed_value", "reason").head(5).collect().to_dicts()
        ),
    }
    return summary, rows, kpis, metadata


@dg.multi_asset_check(
    name="fact_kpi_value_no_rows_withheld",
    specs=[
        dg.AssetCheckSpec(
            name=WITHHELD_CHECK,
            asset=_KEY,
            description="No row of the fact was withheld by its gate (else the run fails, naming the KPIs, "
            "while the published rows and what is built on them still go out)",
            # Not blocking: kpi_single_view and theme_scorecard are built from the published rows.
            blocking=False,
            additional_deps=[dg.AssetDep(_WITHHELD_KEY)],
            metadata={"withheld_table": FACT_WITHHELD.path},
        )
    ],
    description=f"Reads {FACT_WITHHELD}: passes when it is empty; otherwise reports the KPIs and expectations "
    "and fails the run (marked failed_with_withheld_rows), so that the failure alert names them.",
)
def fact_kpi_value_no_rows_withheld(
    context: dg.AssetCheckExecutionContext, lake: DeltaLake
) -> Iterator[dg.AssetCheckResult]:
    summary, rows, kpis, metadata = withheld_summary(lake)
    yield dg.AssetCheckResult(
        asset_key=_KEY,
        check_name=WITHHELD_CHECK,
        passed=rows == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary[:1000],
        metadata=metadata,
    )
    if rows:
        context.instance.add_run_tags(context.run.run_id, {OUTCOME_TAG: WITHHELD_OUTCOME})
        raise dg.Failure(
            description=summary,
            metadata={
                "rows_withheld": rows,
                "kpis_withheld": dg.MetadataValue.json(kpis),
                "withheld_table": FACT_WITHHELD.path,
            },
            allow_retries=False,
        )


kpi_mart_assets: list[dg.AssetsDefinition] = [fact_kpi_value, fact_kpi_value_no_rows_withheld]
