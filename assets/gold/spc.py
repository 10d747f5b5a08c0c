"""Beyond RAG: ``gold/kpi_mart/kpi_spc`` (every own-council KPI series as an XmR chart, kpi_lake.spc) and
``gold/kpi_mart/target_review`` (is each target unchallenging, challenging and realistic, or unrealistic?
kpi_lake.target_review). Both read the fact and the dimensions; both rebuild only when one of those has a new
Delta version or their rules changed. Their quality checks are the suites in expectations/gold/kpi_mart/.
See docs/SPC_AND_TARGETS.md.
"""

import inspect
from collections.abc import Callable

import dagster as dg
import polars as pl

from kpi_lake import rebuild
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake, data_version

FACT = TableRef("gold", "kpi_mart", "fact_kpi_value")
DIM_KPI = TableRef("gold", "kpi_mart", "dim_kpi")
DIM_PERIOD = TableRef("gold", "kpi_mart", "dim_period")
DIM_GEOGRAPHY = TableRef("gold", "kpi_mart", "dim_geography")
INPUTS = (FACT, DIM_KPI, DIM_PERIOD, DIM_GEOGRAPHY)
KPI_SPC = TableRef("gold", "kpi_mart", "kpi_spc")
TARGET_REVIEW = TableRef("gold", "kpi_mart", "target_review")

KPI_SPC_DOCS = {
    "kpi_code": "The KPI (dim_kpi)",
    "period_key": "The period (dim_period)",
    "period_type": "quarter, month, financial_year, ...: each KPI and period type is one series",
    "period_start": "First day of the period (the series' order)",
    "geography_code": "The own council",
    "actual": "The value (fact_kpi_value.actual)",
    "target": "This period's target",
    "polarity": "dim_kpi.polarity",
    "improvement": "increase | decrease | neutral: the better direction, from the polarity",
    "series_points": "Periods of the series with an actual",
    "spc_status": "ok | insufficient_points (fewer than 12 actuals: no limits, SPC columns null)",
    "mean": "Process mean (centre line)",
    "lpl": "Lower process limit: mean - 2.66 x mean moving range (moving ranges of 3.267 x their mean screened)",
    "upl": "Upper process limit: mean + 2.66 x mean moving range",
    "outside_limits": "The actual lies beyond a process limit",
    "relative_to_mean": "1 above the mean, -1 below, 0 on it",
    "close_to_limits": "Beyond two sigma but within the limits",
    "special_cause_flag": "The point is special-cause variation",
    "special_cause_type": "Why: above_upl, below_lpl, trend_increasing, trend_decreasing, two_in_three_above, "
    "two_in_three_below, shift_above, shift_below, or common_cause",
    "point_type": "common_cause, special_cause_improvement, special_cause_concern, special_cause_neutral_high "
    "or special_cause_neutral_low",
    "variation_type": "The series' variation icon: the point type of its latest point",
    "assurance_target": "The target assurance is judged against: the series' latest target",
    "assurance_type": "consistent_pass | consistent_fail | inconsistent: where that target sits against the "
    "limits (null without a target, or for a KPI without a better direction)",
}
TARGET_REVIEW_DOCS = {
    "kpi_code": "The KPI (dim_kpi)",
    "period_type": "The series: quarter, month, financial_year, ...",
    "target_period_key": "The period of the target reviewed: the latest period with a target",
    "target": "The target reviewed",
    "latest_period_key": "The latest period with an actual",
    "latest_actual": "Its actual",
    "polarity": "dim_kpi.polarity",
    "unit": "dim_kpi.unit",
    "series_points": "Periods with an actual",
    "process_mean": "Process mean of the latest 12 actuals (the process as it is now)",
    "lpl": "Lower process limit of the latest 12 actuals",
    "upl": "Upper process limit of the latest 12 actuals",
    "assurance_type": "consistent_pass | consistent_fail | inconsistent (null: too few points)",
    "variation_type": "The point type of the latest point",
    "trend_points": "Latest actuals the trend is fitted on (up to 12)",
    "trend_slope": "Theil-Sen slope: change per period",
    "trend_slope_low": "Lower end of the slope's 95 % interval (Sen)",
    "trend_slope_high": "Upper end of the slope's 95 % interval",
    "projected_value": "The trend projected to the target's period",
    "projected_low": "Lower end of the projection's 95 % range",
    "projected_high": "Upper end of the projection's 95 % range",
    "comparator_period_key": "The latest period up to the target's with comparator values",
    "comparator_median": "Median of the own council and its comparators in that period",
    "top_quartile_value": "Where the best quarter of that ranking starts (by polarity)",
    "best_comparator_code": "The best comparator (ONS code)",
    "best_comparator_name": "Its name",
    "best_comparator_value": "Its value",
    "verdict": "unchallenging | challenging_and_realistic | unrealistic | insufficient_data",
    "suggested_target_low": "Least ambitious end of a challenging yet realistic target",
    "suggested_target_high": "Most ambitious end",
    "reason": "The verdict's reason in plain English, for a target-setting paper",
}


def _build(
    context: dg.AssetExecutionContext,
    lake: DeltaLake,
    ref: TableRef,
    code: str,
    build: Callable[..., pl.DataFrame],
    docs: dict[str, str],
) -> tuple[dict, pl.LazyFrame]:
    missing = [str(r) for r in INPUTS if not lake.exists(r)]
    if missing:
        raise dg.Failure(description=f"{ref}: inputs not in the lake yet: {', '.join(missing)}")
    # Work proportional to change: rebuild only when an input has a new Delta version or the rules changed.
    built_from = rebuild.fingerprint(lake, INPUTS, code)
    if rebuild.is_current(lake, ref, built_from):
        context.log.info(f"{ref}: inputs and rules unchanged since the last build; nothing to do")
        state = lake.state(ref, operation="unchanged")
    else:
        frame = build(*(lake.scan(r) for r in INPUTS))
        state = lake.overwrite(ref, frame, commit_metadata={rebuild.BUILT_FROM: built_from})
    metadata = state.to_metadata()
    metadata["dagster/column_schema"] = dg.TableSchema(
        columns=[
            dg.TableColumn(name, dtype, description=docs.get(name)) for name, dtype in state.schema.items()
        ]
    )
    return metadata, lake.scan(ref)


def _counts(table: pl.LazyFrame, column: str, values: tuple[str, ...]) -> dict[str, int]:
    counted = dict(table.group_by(column).agg(pl.len()).collect().iter_rows())
    return {value: int(counted.get(value, 0)) for value in values}


def _spec(ref: TableRef, description: str, docs: dict[str, str], deps: tuple[TableRef, ...]) -> dict:
    return {
        "key": dg.AssetKey(ref.key_path),
        "deps": [dg.AssetKey(r.key_path) for r in deps],
        "description": description,
        "group_name": ref.group_name,
        "pool": ref.path,  # one writer per table across runs (pools in deploy/local/dagster.yaml)
        "kinds": {"python", "polars", "delta"},
        "tags": {"layer": ref.layer, "source": ref.source, "kpi_mart": ""},
        "metadata": {
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(name, description=text) for name, text in docs.items()]
            ),
            "lake_path": ref.path,
        },
    }


@dg.asset(
    **_spec(
        KPI_SPC,
        "Statistical process control for every own-council KPI series (quarterly, monthly and annual apart): "
        "each period's XmR mean, process limits, special-cause type, point type, variation and assurance, as "
        "NHS England's Making Data Count and NHSRplotthedots compute them. Rules: kpi_lake/spc.py; see "
        "docs/SPC_AND_TARGETS.md.",
        KPI_SPC_DOCS,
        INPUTS,
    )
)
def kpi_spc(context: dg.AssetExecutionContext, lake: DeltaLake) -> dg.MaterializeResult:
    from kpi_lake import spc  # numpy: imported by the build, not when the code location loads

    metadata, table = _build(context, lake, KPI_SPC, inspect.getsource(spc), spc.build_kpi_spc, KPI_SPC_DOCS)
    series = table.select(*spc.SERIES_KEY, "spc_status").unique()
    for status, count in _counts(series, "spc_status", spc.SPC_STATUSES).items():
        metadata[f"series_{status}"] = count
    for point_type, count in _counts(table, "point_type", spc.POINT_TYPES).items():
        if point_type != "common_cause":
            metadata[f"points_{point_type}"] = count
    latest = (
        table.filter(pl.col("spc_status") == "ok")
        .group_by(spc.SERIES_KEY)
        .agg(pl.col("variation_type").last())
    )
    for variation, count in _counts(latest, "variation_type", spc.POINT_TYPES).items():
        metadata[f"series_now_{variation}"] = count
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(metadata))


@dg.asset(
    **_spec(
        TARGET_REVIEW,
        "One row per own-council KPI series with a target: latest actual, target, process mean and limits, "
        "assurance, Theil-Sen trend projected to the target's period, comparator median, top-quartile and best "
        "comparator, and a verdict (unchallenging, challenging_and_realistic, unrealistic, insufficient_data) "
        "with a suggested target range and the reason in plain English. Rules: kpi_lake/target_review.py; see "
        "docs/SPC_AND_TARGETS.md.",
        TARGET_REVIEW_DOCS,
        INPUTS,
    )
)
def target_review_table(context: dg.AssetExecutionContext, lake: DeltaLake) -> dg.MaterializeResult:
    from kpi_lake import spc, target_review  # numpy: imported by the build, not when the code location loads

    code = inspect.getsource(spc) + inspect.getsource(target_review)
    metadata, table = _build(
        context, lake, TARGET_REVIEW, code, target_review.build_target_review, TARGET_REVIEW_DOCS
    )
    for verdict, count in _counts(table, "verdict", target_review.VERDICTS).items():
        metadata[f"verdict_{verdict}"] = count
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(metadata))


spc_assets: list[dg.AssetsDefinition] = [kpi_spc, target_review_table]
