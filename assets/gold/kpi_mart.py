"""The KPI mart's fact table, ``gold/kpi_mart/fact_kpi_value``: the one Python asset in the mart.

The SQL models give each KPI value with its target, narrative and lineage (``silver/kpi_catalogue/
kpi_values_combined``) and the dimensions; this asset applies the rules of ``kpi_lake.rules`` (their only
implementation) and writes the fact. The SQL models after it (``kpi_single_view``, ``theme_scorecard``) read it
as ``gold.kpi_mart.fact_kpi_value``. Its column tests run as blocking asset checks, like the gold models'.
"""

import inspect

import dagster as dg
import polars as pl

from kpi_lake import rebuild, rules
from kpi_lake.rules import DIRECTIONS, FACT_COLUMNS, FACT_KEY, RAG_STATUSES, build_fact_kpi_value
from kpi_lake.sql_models import ColumnTest, evaluate_test
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake

FACT = TableRef("gold", "kpi_mart", "fact_kpi_value")
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


@dg.asset(
    key=_KEY,
    deps=[dg.AssetKey(ref.key_path) for ref in INPUTS],
    description="One row per KPI, period and geography: actual, target, RAG status, direction of travel, "
    "previous and last year's values, comparator median, quartile and rank, narrative, lineage and "
    "reconciliation with SPAR.net. Rules: kpi_lake/rules.py; see docs/KPI_MART.md.",
    group_name=FACT.group_name,
    pool=FACT.path,  # one writer per table across runs (pools in dagster.yaml)
    kinds={"python", "polars", "delta"},
    tags={"layer": FACT.layer, "source": FACT.source, "kpi_mart": ""},
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
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, description=COLUMNS[name]) for name in FACT_COLUMNS]
        ),
        "lake_path": FACT.path,
        "unique_key": ", ".join(FACT_KEY),
    },
)
def fact_kpi_value(context: dg.AssetExecutionContext, lake: DeltaLake) -> dg.MaterializeResult:
    missing = [str(ref) for ref in INPUTS if not lake.exists(ref)]
    if missing:
        raise dg.Failure(description=f"{FACT}: inputs not in the lake yet: {', '.join(missing)}")
    # Work proportional to change: rebuild only when an input has a new Delta version or the rules changed.
    built_from = rebuild.fingerprint(lake, INPUTS, inspect.getsource(rules))
    if rebuild.is_current(lake, FACT, built_from):
        context.log.info(f"{FACT}: inputs and rules unchanged since the last build; nothing to do")
        state = lake.state(FACT, operation="unchanged")
    else:
        values, kpis, periods, geographies = (lake.scan(ref) for ref in INPUTS)
        state = lake.overwrite(
            FACT,
            build_fact_kpi_value(values, kpis, periods, geographies),
            commit_metadata={rebuild.BUILT_FROM: built_from},
        )
    metadata = state.to_metadata()
    metadata["dagster/column_schema"] = dg.TableSchema(
        columns=[
            dg.TableColumn(name, dtype, description=COLUMNS.get(name)) for name, dtype in state.schema.items()
        ]
    )

    table = lake.scan(FACT)
    selected = context.selected_asset_check_keys
    results = []
    if dg.AssetCheckKey(_KEY, KEY_CHECK) in selected:
        duplicated = table.group_by(FACT_KEY).agg(pl.len().alias("rows")).filter(pl.col("rows") > 1).collect()
        results.append(
            dg.AssetCheckResult(
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
    return dg.MaterializeResult(metadata=metadata, check_results=results)


kpi_mart_assets: list[dg.AssetsDefinition] = [fact_kpi_value]
