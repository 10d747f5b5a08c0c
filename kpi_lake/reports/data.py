"""What the quarterly report says, gathered from the KPI mart as polars frames (no rendering here).

The report for a quarter shows each KPI's **current position at the quarter's end**: its newest value for a
period ending on or before that day (the quarter itself for quarterly KPIs; the latest year published by then
for annual ones), as ``kpi_single_view`` holds it. Every figure is the mart's; nothing is recomputed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from kpi_lake.tables import TableRef

if TYPE_CHECKING:
    from resources.lake import DeltaLake

SINGLE_VIEW = TableRef("gold", "kpi_mart", "kpi_single_view")
FACT = TableRef("gold", "kpi_mart", "fact_kpi_value")
DIM_THEME = TableRef("gold", "kpi_mart", "dim_theme")
BRIDGE = TableRef("gold", "kpi_mart", "bridge_kpi_theme")
DIM_PERIOD = TableRef("gold", "kpi_mart", "dim_period")
DIM_GEOGRAPHY = TableRef("gold", "kpi_mart", "dim_geography")
SPAR_VALUES = TableRef("silver", "spar_net", "kpi_values")
#: Statistical process control, where the SPC assets have built it; the report leaves its slot out otherwise.
SPC = TableRef("gold", "kpi_mart", "kpi_spc")
#: The mart tables the report reads: their Delta versions say whether a report is out of date.
INPUTS = (SINGLE_VIEW, FACT, DIM_THEME, BRIDGE, DIM_PERIOD, DIM_GEOGRAPHY, SPC)

#: The silver tables behind each ``Source_System``: their last Delta commit is when that source last changed.
SOURCE_TABLES: dict[str, tuple[TableRef, ...]] = {
    "spar_net": (SPAR_VALUES,),
    "business_systems": tuple(
        TableRef("silver", "business_systems", name)
        for name in (
            "planning_decisions",
            "repair_jobs",
            "waste_collections",
            "missed_bins",
            "foi_requests",
            "staff_in_post",
            "sickness_spells",
            "council_tax_debit",
            "council_tax_receipts",
            "service_requests",
        )
    ),
    "emissions": (TableRef("silver", "open_data", "emissions"),),
    "education": (TableRef("silver", "open_data", "education"),),
    "qol_survey": (TableRef("silver", "qol_survey", "indicators"),),
    "benchmarks": (TableRef("silver", "open_data", "benchmarks"),),
}
SOURCE_NAMES = {
    "spar_net": "SPAR.net (the performance system's exports)",
    "business_systems": "Business systems (council databases)",
    "emissions": "DESNZ local authority greenhouse gas emissions",
    "education": "DfE Explore Education Statistics",
    "qol_survey": "Quality of Life survey",
    "benchmarks": "Benchmarks (LG Inform, Oflog, ONS)",
}

RAG_ORDER = ("Red", "Amber", "Green", "No target", "No data")
DIRECTIONS = ("Improving", "Stable", "Worsening", "Not comparable")
#: When two values of a KPI end on the same day (Q4 and the financial year), the quarter is the position.
_TYPE_RANK = {"quarter": 0, "month": 1, "financial_year": 2, "academic_year": 3, "calendar_year": 4}
#: A yearly figure older than this at the quarter's end is overdue (annual statistics are published up to
#: about 18 months after their year ends: DESNZ emissions in June for the calendar year before last).
STALE_YEAR_DAYS = 730
_QUARTER_KEY = re.compile(r"^FY(\d{4})-(\d{2})-Q([1-4])$")


class ReportError(ValueError):
    """The report cannot be built as asked (unknown quarter or theme, a mart without the quarter)."""


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows, for one quarter and audience."""

    period_key: str
    period_label: str
    period_end: dt.date
    previous_period_key: str
    previous_period_label: str
    audience: str
    council: str
    themes: pl.DataFrame
    #: One row per KPI and theme it serves: the current position, with ``Theme_Code``, ``Is_Primary_Theme``,
    #: ``Is_Stale``, ``Stale_Reason``, ``Commentary``, ``Action_To_Improve``.
    positions: pl.DataFrame
    #: Own-council single-view rows of the reported KPIs up to the quarter's end (charts and history tables).
    history: pl.DataFrame
    summary: pl.DataFrame
    directions: pl.DataFrame
    unreconciled: pl.DataFrame
    survey: pl.DataFrame
    sources: pl.DataFrame
    spc: pl.DataFrame | None
    input_versions: dict[str, int | None] = field(default_factory=dict)

    def kpis(self) -> pl.DataFrame:
        """One row per KPI (its primary theme's row): what the summary counts."""
        return self.positions.filter(pl.col("Is_Primary_Theme"))

    def headline(self) -> dict[str, int]:
        counts = dict(zip(self.summary["RAG_Status"], self.summary["This_Quarter"], strict=True))
        directions = dict(zip(self.directions["Direction_Of_Travel"], self.directions["KPIs"], strict=True))
        return {
            "kpis": self.kpis().height,
            **{f"rag_{k.lower().replace(' ', '_')}": int(v) for k, v in counts.items()},
            **{d.lower().replace(" ", "_"): int(v) for d, v in directions.items()},
            "red_exceptions": self.kpis().filter(pl.col("RAG_Status") == "Red").height,
            "unreconciled": self.unreconciled.height,
            "stale_or_provisional": self.kpis()
            .filter(pl.col("Is_Stale") | (pl.col("Data_Status") == "provisional"))
            .height,
        }


def quarter_key_before(period_key: str) -> str:
    """``FY2026-27-Q2`` → ``FY2026-27-Q1``; ``FY2026-27-Q1`` → ``FY2025-26-Q4``."""
    match = _QUARTER_KEY.match(period_key)
    if not match:
        raise ReportError(f"{period_key!r} is not a quarter key; expected e.g. FY2026-27-Q2")
    year, quarter = int(match.group(1)), int(match.group(3))
    if quarter > 1:
        return f"FY{year}-{(year + 1) % 100:02d}-Q{quarter - 1}"
    return f"FY{year - 1}-{year % 100:02d}-Q4"


def quarter_keys(first: str, last: str) -> list[str]:
    """Every quarter key from ``first`` to ``last``, in order."""
    keys = [last]
    while keys[-1] != first:
        keys.append(quarter_key_before(keys[-1]))
        if len(keys) > 400:
            raise ReportError(f"{first!r} is not before {last!r}")
    return keys[::-1]


def quarter_key_of(day: dt.date) -> str:
    """The financial quarter holding ``day``."""
    year = day.year if day.month >= 4 else day.year - 1
    return f"FY{year}-{(year + 1) % 100:02d}-Q{((day.month - 4) % 12) // 3 + 1}"


def latest_reported_quarter(lake: DeltaLake) -> str:
    """The newest quarter for which the mart holds any own-council value: the report's "current quarter"."""
    _require(lake, SINGLE_VIEW)
    latest = (
        lake.scan(SINGLE_VIEW)
        .filter(pl.col("Period_Type") == "quarter", pl.col("Actual").is_not_null())
        .sort("Period_End")
        .select(pl.col("Period_Key").last())
        .collect()
    )
    if latest.height == 0 or latest.item() is None:
        raise ReportError(f"{SINGLE_VIEW} holds no quarterly value yet: run the nightly sync first")
    return latest.item()


def input_versions(lake: DeltaLake) -> dict[str, int | None]:
    """The Delta version of every table the report reads (None: not there)."""
    return {ref.path: lake.version(ref) for ref in INPUTS}


def gather(
    lake: DeltaLake, period_key: str, audience: str = "cabinet", theme: str | None = None
) -> ReportData:
    """The report's data for ``period_key`` (a quarter key) from the mart in ``lake``."""
    if audience not in ("cabinet", "scrutiny"):
        raise ReportError(f"audience must be 'cabinet' or 'scrutiny', not {audience!r}")
    for ref in (SINGLE_VIEW, FACT, DIM_THEME, BRIDGE, DIM_PERIOD, DIM_GEOGRAPHY):
        _require(lake, ref)
    periods = lake.scan(DIM_PERIOD).collect()
    period = periods.filter(pl.col("period_key") == period_key)
    if period.height == 0 or period["period_type"][0] != "quarter":
        known = periods.filter(pl.col("period_type") == "quarter").sort("period_start")["period_key"]
        raise ReportError(
            f"{period_key!r} is not a quarter in {DIM_PERIOD}; quarters there run from "
            f"{known.first()} to {known.last()}"
        )
    period_end = period["period_end"][0]
    previous_key = quarter_key_before(period_key)
    previous = periods.filter(pl.col("period_key") == previous_key)
    previous_end = (
        previous["period_end"][0] if previous.height else period["period_start"][0] - dt.timedelta(1)
    )
    previous_label = previous["label"][0] if previous.height else previous_key

    themes = lake.scan(DIM_THEME).collect().sort("theme_code")
    if theme is not None:
        themes = themes.filter(pl.col("theme_code") == theme.upper())
        if themes.height == 0:
            known = ", ".join(lake.scan(DIM_THEME).collect()["theme_code"].sort())
            raise ReportError(f"no theme {theme!r} in {DIM_THEME}; themes are {known}")
    view = lake.scan(SINGLE_VIEW)
    own = lake.scan(DIM_GEOGRAPHY).filter(pl.col("is_own_council")).select("geography_code").collect()
    council = view.select(pl.col("Council").drop_nulls().first()).collect().item() or "the council"

    current = _positions(view, period_end).collect()
    if current.filter(pl.col("Period_Key") == period_key).height == 0:
        raise ReportError(f"the mart holds no own-council value for {period_key}: nothing to report yet")
    comparison = (
        lake.scan(FACT)
        .filter(pl.col("geography_code").is_in(own["geography_code"].implode()))
        .select(
            pl.col("kpi_code").alias("KPI_Code"),
            pl.col("period_key").alias("Period_Key"),
            pl.col("comparison_lower_ci").alias("Comparison_Lower_CI"),
            pl.col("comparison_upper_ci").alias("Comparison_Upper_CI"),
        )
        .collect()
    )
    current = current.join(comparison, on=["KPI_Code", "Period_Key"], how="left").with_columns(
        *_stale(period_key, period_end), *_narrative()
    )
    before = _positions(view, previous_end).collect()

    bridge = lake.scan(BRIDGE).collect()
    positions = (
        current.join(
            bridge.select(
                pl.col("kpi_code").alias("KPI_Code"),
                pl.col("theme_code").alias("Theme_Code"),
                pl.col("is_primary").alias("Is_Primary_Theme"),
            ),
            on="KPI_Code",
            how="inner",
        )
        .filter(pl.col("Theme_Code").is_in(themes["theme_code"].implode()))
        .sort("Theme_Code", "KPI_Name")
    )
    if theme is not None:
        # One theme's report counts the KPIs that serve it, cross-cutting ones included.
        positions = positions.with_columns(Is_Primary_Theme=pl.lit(True))
        current = current.filter(pl.col("KPI_Code").is_in(positions["KPI_Code"].implode()))
        before = before.filter(pl.col("KPI_Code").is_in(positions["KPI_Code"].implode()))
    codes = positions["KPI_Code"].unique().implode()
    history = (
        view.filter(pl.col("KPI_Code").is_in(codes), pl.col("Period_End") <= period_end)
        .sort("KPI_Code", "Period_End")
        .collect()
    )
    spc = _spc(lake, codes)
    return ReportData(
        period_key=period_key,
        period_label=period["label"][0],
        period_end=period_end,
        previous_period_key=previous_key,
        previous_period_label=previous_label,
        audience=audience,
        council=council,
        themes=themes,
        positions=positions,
        history=history,
        summary=_summary(current, before),
        directions=_directions(current),
        unreconciled=_unreconciled(lake, history),
        survey=current.filter(pl.col("Lower_CI").is_not_null()).sort("KPI_Name"),
        sources=_sources(lake, current),
        spc=spc,
        input_versions=input_versions(lake),
    )


def _require(lake: DeltaLake, ref: TableRef) -> None:
    if not lake.exists(ref):
        raise ReportError(f"{ref} is not in the lake at {lake.root}: run the nightly sync first")


def _positions(view: pl.LazyFrame, period_end: dt.date) -> pl.LazyFrame:
    """Each KPI's newest value for a period ending on or before ``period_end`` (quarter before year on a tie);
    KPIs with rows but no value by then keep their latest row, which says "No data"."""
    rank = pl.col("Period_Type").replace_strict(_TYPE_RANK, default=9, return_dtype=pl.Int8)
    return (
        view.filter(pl.col("Period_End") <= period_end)
        .sort(
            [pl.col("Actual").is_not_null(), "Period_End", rank],
            descending=[True, True, False],
            nulls_last=True,
        )
        .group_by("KPI_Code", maintain_order=True)
        .first()
    )


def _stale(period_key: str, period_end: dt.date) -> list[pl.Expr]:
    """A value is overdue when it is not this quarter's (quarterly KPIs), ends before the quarter's last month
    (monthly), or ended more than :data:`STALE_YEAR_DAYS` before the quarter's end (yearly)."""
    year_due = period_end - dt.timedelta(days=STALE_YEAR_DAYS)
    month_due = period_end.replace(day=1) - dt.timedelta(days=1)
    kind = pl.col("Period_Type")
    stale = (
        pl.when(pl.col("Actual").is_null())
        .then(True)
        .when(kind == "quarter")
        .then(pl.col("Period_Key") != period_key)
        .when(kind == "month")
        .then(pl.col("Period_End") <= month_due)
        .otherwise(pl.col("Period_End") < year_due)
    )
    reason = (
        pl.when(pl.col("Actual").is_null())
        .then(pl.lit("no value yet"))
        .when(stale)
        .then(pl.format("latest value is for {}", pl.col("Period")))
    )
    return [stale.alias("Is_Stale"), reason.alias("Stale_Reason")]


def _narrative() -> list[pl.Expr]:
    """SPAR.net's narrative is its commentary, then "Action to improve: …" (the mart's convention)."""
    parts = pl.col("Narrative").str.splitn("Action to improve:", 2)
    return [
        parts.struct.field("field_0").str.strip_chars().replace("", None).alias("Commentary"),
        parts.struct.field("field_1").str.strip_chars().replace("", None).alias("Action_To_Improve"),
    ]


def _counts(frame: pl.DataFrame, column: str, values: tuple[str, ...], name: str) -> pl.DataFrame:
    return (
        pl.DataFrame({column: list(values)})
        .join(frame.group_by(column).len(name), on=column, how="left")
        .with_columns(pl.col(name).fill_null(0).cast(pl.Int64))
    )


def _summary(current: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
    """KPIs by RAG status this quarter and last, with shares of the KPIs counted."""
    now = _counts(current, "RAG_Status", RAG_ORDER, "This_Quarter")
    then = _counts(before, "RAG_Status", RAG_ORDER, "Last_Quarter")
    total = max(current.height, 1)
    previous_total = max(before.height, 1)
    return now.join(then, on="RAG_Status", how="left", maintain_order="left").with_columns(
        (pl.col("This_Quarter") * 100 / total).round(1).alias("This_Quarter_Pct"),
        (pl.col("Last_Quarter") * 100 / previous_total).round(1).alias("Last_Quarter_Pct"),
        (pl.col("This_Quarter") - pl.col("Last_Quarter")).alias("Change"),
    )


def _directions(current: pl.DataFrame) -> pl.DataFrame:
    return _counts(current, "Direction_Of_Travel", DIRECTIONS, "KPIs").with_columns(
        (pl.col("KPIs") * 100 / max(current.height, 1)).round(1).alias("Pct")
    )


def _unreconciled(lake: DeltaLake, history: pl.DataFrame) -> pl.DataFrame:
    """Figures of the reported KPIs, up to the quarter, whose lake figure and SPAR.net's disagree (newest
    first), with both figures: a published figure that was wrong matters after its quarter too."""
    rows = history.filter(pl.col("Reconciled_With_SPAR_Net") == False)  # noqa: E712 (null means nothing to compare)
    spar = pl.DataFrame(
        schema={"KPI_Code": pl.String, "Period_Key": pl.String, "SPAR_Net_Figure": pl.Float64}
    )
    if lake.exists(SPAR_VALUES):
        columns = lake.scan(SPAR_VALUES).collect_schema().names()
        if {"kpi_code", "period_key", "actual"} <= set(columns):
            spar = (
                lake.scan(SPAR_VALUES)
                .select(
                    pl.col("kpi_code").alias("KPI_Code"),
                    pl.col("period_key").alias("Period_Key"),
                    pl.col("actual").cast(pl.Float64).alias("SPAR_Net_Figure"),
                )
                .unique(["KPI_Code", "Period_Key"], keep="last")
                .collect()
            )
    return rows.join(spar, on=["KPI_Code", "Period_Key"], how="left").sort(
        "Period_End", "KPI_Name", descending=[True, False]
    )


def _sources(lake: DeltaLake, current: pl.DataFrame) -> pl.DataFrame:
    """Each source system behind a reported figure: its tables, when they last changed, how many KPIs."""
    rows = []
    used = current.group_by("Source_System").len("KPIs")
    for system, kpis in used.iter_rows():
        refs = SOURCE_TABLES.get(system or "", ())
        refreshed = [_last_commit(lake, ref) for ref in refs]
        refreshed = [r for r in refreshed if r is not None]
        rows.append(
            {
                "Source_System": system,
                "Source": SOURCE_NAMES.get(system or "", system or "unknown"),
                "KPIs": kpis,
                "Tables": ", ".join(ref.path for ref in refs),
                "Last_Refreshed": max(refreshed) if refreshed else None,
            }
        )
    schema = {
        "Source_System": pl.String,
        "Source": pl.String,
        "KPIs": pl.Int64,
        "Tables": pl.String,
        "Last_Refreshed": pl.Datetime("ms", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema).sort("Source")


def _last_commit(lake: DeltaLake, ref: TableRef) -> dt.datetime | None:
    if not lake.exists(ref):
        return None
    history = lake.delta_table(ref).history(1)
    stamp = history[0].get("timestamp") if history else None
    return None if stamp is None else dt.datetime.fromtimestamp(stamp / 1000, tz=dt.UTC)


def _spc(lake: DeltaLake, codes: Any) -> pl.DataFrame | None:
    """The SPC table's rows for the reported KPIs, when the SPC assets have built it (else None)."""
    if not lake.exists(SPC):
        return None
    columns = set(lake.scan(SPC).collect_schema().names())
    if not {"kpi_code", "period_key", "point_type"} <= columns:
        return None
    wanted = [
        c
        for c in (
            "kpi_code",
            "period_key",
            "point_type",
            "special_cause_type",
            "variation_type",
            "assurance_type",
        )
        if c in columns
    ]
    return lake.scan(SPC).filter(pl.col("kpi_code").is_in(codes)).select(wanted).collect()
