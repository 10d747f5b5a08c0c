"""The KPI mart's rules as pure polars expressions: RAG with polarity and tolerance, direction of travel (with
and without confidence intervals), comparator median/quartile/rank, reconciliation, and the fact assembly."""

import datetime as dt

import polars as pl
import pytest

from kpi_lake.rules import (
    DEFAULT_TOLERANCE_PCT,
    FACT_COLUMNS,
    build_fact_kpi_value,
    comparator_quartile,
    comparator_rank,
    comparator_statistics,
    direction_of_travel,
    rag_status,
    reconcile,
)

HIGHER, LOWER, NEITHER = "higher_is_better", "lower_is_better", "neither"


def rag(actual, target, polarity, tolerance=None) -> str:
    frame = pl.DataFrame(
        {"actual": [actual], "target": [target], "polarity": [polarity], "tolerance": [tolerance]},
        schema={"actual": pl.Float64, "target": pl.Float64, "polarity": pl.String, "tolerance": pl.Float64},
    )
    return frame.select(rag_status("actual", "target", "polarity", "tolerance")).item()


def direction(actual, comparison, polarity, cis=(None, None, None, None), band=None) -> str:
    columns = ["actual", "comparison", "lower", "upper", "comparison_lower", "comparison_upper"]
    frame = pl.DataFrame(
        [[actual, comparison, *cis]], schema=dict.fromkeys(columns, pl.Float64), orient="row"
    )
    extra = {} if band is None else {"stable_band_pct": band}
    expression = direction_of_travel(
        "actual", "comparison", polarity, "lower", "upper", "comparison_lower", "comparison_upper", **extra
    )
    return frame.select(expression).item()


# ---- RAG -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "target", "polarity", "tolerance", "expected"),
    [
        (81.0, 81.0, HIGHER, 5.0, "green"),  # exactly on target
        (90.0, 81.0, HIGHER, 5.0, "green"),
        (76.95, 81.0, HIGHER, 5.0, "amber"),  # exactly on the 5 % boundary (81 × 0.95)
        (76.94, 81.0, HIGHER, 5.0, "red"),
        (72.9, 81.0, HIGHER, 10.0, "amber"),  # exactly on a 10 % boundary
        (72.89, 81.0, HIGHER, 10.0, "red"),
        (10.0, 10.0, LOWER, 5.0, "green"),  # lower is better, on target
        (9.0, 10.0, LOWER, 5.0, "green"),
        (10.5, 10.0, LOWER, 5.0, "amber"),  # exactly on the boundary the other way
        (10.51, 10.0, LOWER, 5.0, "red"),
        (0.0, 0.0, LOWER, 5.0, "green"),  # a zero target
        (0.1, 0.0, LOWER, 5.0, "red"),  # no tolerance around zero
        (50.0, 40.0, NEITHER, 5.0, "no_target"),  # no good direction: no RAG
        (50.0, None, HIGHER, 5.0, "no_target"),
        (None, 40.0, HIGHER, 5.0, "no_data"),
        (None, None, NEITHER, 5.0, "no_data"),  # no data comes first
    ],
)
def test_rag_status(actual, target, polarity, tolerance, expected):
    assert rag(actual, target, polarity, tolerance) == expected


def test_rag_tolerance_defaults_to_five_percent():
    assert DEFAULT_TOLERANCE_PCT == 5.0
    assert rag(95.0, 100.0, HIGHER, None) == "amber"
    assert rag(94.99, 100.0, HIGHER, None) == "red"


def test_rag_takes_literals_columns_and_expressions():
    frame = pl.DataFrame({"a": [9.0, 12.0], "t": [10.0, 10.0]})
    assert frame.select(rag_status("a", "t", LOWER, 10.0)).to_series().to_list() == ["green", "red"]
    assert frame.select(rag_status(pl.col("a") * 2, 20.0, HIGHER, 10.0)).to_series().to_list() == [
        "amber",
        "green",
    ]


# ---- direction of travel -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "comparison", "polarity", "expected"),
    [
        (80.9, 80.0, HIGHER, "improving"),
        (80.8, 80.0, HIGHER, "stable"),  # exactly 1 % of 80: stable
        (79.2, 80.0, HIGHER, "stable"),
        (79.1, 80.0, HIGHER, "worsening"),
        (80.0, 80.0, HIGHER, "stable"),
        (9.0, 10.0, LOWER, "improving"),  # lower is better: down is good
        (11.0, 10.0, LOWER, "worsening"),
        (10.1, 10.0, LOWER, "stable"),
        (0.0, 0.0, LOWER, "stable"),
        (0.1, 0.0, LOWER, "worsening"),  # against zero only no change is stable
        (50.0, 40.0, NEITHER, "not_comparable"),
        (None, 40.0, HIGHER, "not_comparable"),
        (40.0, None, HIGHER, "not_comparable"),
    ],
)
def test_direction_without_confidence_intervals(actual, comparison, polarity, expected):
    assert direction(actual, comparison, polarity) == expected


def test_direction_stable_band_is_a_parameter():
    assert direction(80.8, 80.0, HIGHER, band=0.0) == "improving"
    assert direction(84.0, 80.0, HIGHER, band=5.0) == "stable"


@pytest.mark.parametrize(
    ("actual", "comparison", "cis", "polarity", "expected"),
    [
        # Intervals overlap: no real change, however big the difference in estimates.
        (78.9, 74.6, (76.2, 81.5, 71.2, 77.7), HIGHER, "stable"),
        # Touching intervals count as overlapping.
        (80.0, 75.0, (77.0, 83.0, 72.0, 77.0), HIGHER, "stable"),
        # Apart: improving or worsening by polarity.
        (82.0, 74.6, (79.5, 84.5, 71.2, 77.7), HIGHER, "improving"),
        (70.0, 78.0, (67.0, 73.0, 75.5, 80.5), HIGHER, "worsening"),
        (13.0, 7.0, (11.0, 15.0, 5.9, 9.3), LOWER, "worsening"),
        (7.0, 13.0, (5.9, 9.3, 11.0, 15.0), LOWER, "improving"),
        # A tiny change with tight, separate intervals still counts (significance, not size).
        (50.3, 50.0, (50.25, 50.35, 49.95, 50.05), HIGHER, "improving"),
        # One interval missing: the non-survey rule (1 % band) applies.
        (82.0, 74.6, (79.5, 84.5, None, None), HIGHER, "improving"),
        (74.9, 74.6, (None, None, 71.2, 77.7), HIGHER, "stable"),
        (82.0, 74.6, (79.5, 84.5, 71.2, 77.7), NEITHER, "not_comparable"),
    ],
)
def test_direction_with_confidence_intervals(actual, comparison, cis, polarity, expected):
    assert direction(actual, comparison, polarity, cis) == expected


# ---- comparators -----------------------------------------------------------------------------------------


def _compare(values: list[float | None], polarity: str) -> pl.DataFrame:
    frame = pl.LazyFrame(
        {
            "kpi_code": ["K"] * len(values),
            "period_key": ["P"] * len(values),
            "council": [f"C{i}" for i in range(len(values))],
            "actual": values,
            "polarity": [polarity] * len(values),
        },
        schema_overrides={"actual": pl.Float64},
    )
    return comparator_statistics(frame).collect()


def test_comparator_rank_one_is_best_by_polarity_and_ties_share():
    higher = _compare([70.0, 90.0, 80.0, 90.0, None], HIGHER)
    assert higher["comparator_rank"].to_list() == [4, 1, 3, 1, None]
    assert higher["comparator_count"].unique().to_list() == [4]
    assert higher["comparator_median"].unique().to_list() == [85.0]  # mean of the middle two
    lower = _compare([70.0, 90.0, 80.0, 90.0, None], LOWER)
    assert lower["comparator_rank"].to_list() == [1, 3, 2, 3, None]
    neither = _compare([70.0, 90.0, 80.0], NEITHER)
    assert neither["comparator_rank"].to_list() == [None] * 3
    assert neither["comparator_quartile"].to_list() == [None] * 3
    assert neither["comparator_median"].to_list() == [80.0] * 3


def test_comparator_quartiles_of_sixteen_councils():
    values = [float(v) for v in range(16, 0, -1)]  # 16 best … 1 worst when higher is better
    result = _compare(values, HIGHER)
    assert result["comparator_rank"].to_list() == list(range(1, 17))
    assert result["comparator_quartile"].to_list() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    assert result["comparator_median"].unique().item() == 8.5


def test_comparator_quartile_and_rank_expressions():
    frame = pl.DataFrame({"rank": [1, 2, 3, 4, 5], "count": [5] * 5})
    assert frame.select(comparator_quartile("rank", "count")).to_series().to_list() == [1, 1, 2, 3, 4]
    ties = pl.DataFrame({"g": ["a"] * 4, "v": [3.0, 3.0, 2.0, 3.0]})
    assert ties.select(comparator_rank("v", HIGHER, ["g"])).to_series().to_list() == [1, 1, 4, 1]


def test_comparator_statistics_need_two_councils():
    alone = _compare([70.0, None], HIGHER)
    for column in ("comparator_median", "comparator_quartile", "comparator_rank", "comparator_count"):
        assert alone[column].to_list() == [None, None], column


# ---- reconciliation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("computed", "reported", "reconciled"),
    [
        (81.4, 81.4, True),
        (100.0, 100.5, True),  # exactly 0.5 % apart
        (100.0, 99.5, True),
        (100.0, 100.51, False),
        (81.4, 84.1, False),
        (0.0, 0.0, True),
        (0.0, 0.1, False),
        (None, 84.1, None),
        (81.4, None, None),
    ],
)
def test_reconcile(computed, reported, reconciled):
    frame = pl.DataFrame({"c": [computed], "r": [reported]}, schema={"c": pl.Float64, "r": pl.Float64})
    row = frame.select(reconcile("c", "r").struct.unnest()).row(0, named=True)
    assert row["is_reconciled"] is reconciled
    if reconciled is False:
        note = row["reconciliation_note"]
        assert f"SPAR.net reports {reported}" in note and f"the lake computes {computed}" in note
        assert "computed figure is used" in note
    else:
        assert row["reconciliation_note"] is None


def test_reconcile_note_gives_the_gap():
    frame = pl.DataFrame({"c": [81.4], "r": [84.1]})
    note = frame.select(reconcile("c", "r").struct.field("reconciliation_note")).item()
    assert "(3.3% apart, more than 0.5%)" in note


# ---- the fact assembly ------------------------------------------------------------------------------------


def test_build_fact_links_periods_applies_rules_and_compares_councils():
    own, rival, ward = "E06000001", "E06000002", "E05000001"
    keys = ["FY2023-24-Q2", "FY2024-25-Q1", "FY2024-25-Q2", "FY2023-24", "FY2024-25"]
    periods = pl.LazyFrame(
        {
            "period_key": keys,
            "period_type": ["quarter"] * 3 + ["financial_year"] * 2,
            "period_start": [
                *(dt.date(2023, 7, 1), dt.date(2024, 4, 1), dt.date(2024, 7, 1)),
                *(dt.date(2023, 4, 1), dt.date(2024, 4, 1)),
            ],
            "period_end": [
                *(dt.date(2023, 9, 30), dt.date(2024, 6, 30), dt.date(2024, 9, 30)),
                *(dt.date(2024, 3, 31), dt.date(2025, 3, 31)),
            ],
        }
    )
    kpis = pl.LazyFrame(
        {
            "kpi_code": ["Q", "S", "N"],
            "polarity": [HIGHER, HIGHER, LOWER],
            "rag_tolerance_pct": [5.0, None, 5.0],
        }
    )
    geographies = pl.LazyFrame(
        {
            "geography_code": [own, rival, ward],
            "geography_name": ["Own", "Rival", "A ward"],
            "is_own_council": [True, False, False],
            "is_comparator": [False, True, False],
        }
    )
    rows = [
        # kpi, period, geography, actual, target, lower, upper, computed, reported
        ("Q", "FY2023-24-Q2", own, 80.0, None, None, None, None, None),
        ("Q", "FY2024-25-Q1", own, 70.0, None, None, None, None, None),
        ("Q", "FY2024-25-Q2", own, 85.0, 86.0, None, None, 85.0, 88.0),
        ("Q", "FY2024-25-Q2", rival, 90.0, None, None, None, None, None),
        ("S", "FY2023-24", ward, 60.0, None, 55.0, 65.0, None, None),
        ("S", "FY2024-25", ward, 66.0, 70.0, 62.0, 70.0, None, None),
        ("N", "FY2024-25-Q1", own, 50.0, None, None, None, None, None),
        ("N", "FY2024-25-Q2", own, 55.0, None, None, None, None, None),
    ]
    values = pl.LazyFrame(
        rows,
        schema={
            "kpi_code": pl.String,
            "period_key": pl.String,
            "geography_code": pl.String,
            "actual": pl.Float64,
            "target": pl.Float64,
            "lower_ci": pl.Float64,
            "upper_ci": pl.Float64,
            "computed_actual": pl.Float64,
            "reported_actual": pl.Float64,
        },
        orient="row",
    ).with_columns(
        numerator=pl.lit(None, pl.Float64),
        denominator=pl.lit(None, pl.Float64),
        base=pl.lit(None, pl.Int64),
        narrative=pl.lit(None, pl.String),
        source_system=pl.lit("business_systems"),
        source_lineage=pl.lit("test"),
    )
    fact = build_fact_kpi_value(values, kpis, periods, geographies).collect()
    assert fact.columns == list(FACT_COLUMNS)
    row = fact.filter(kpi_code="Q", period_key="FY2024-25-Q2", geography_code=own).row(0, named=True)
    assert row["previous_period_actual"] == 70.0
    assert row["same_period_last_year_actual"] == 80.0
    assert row["direction_of_travel"] == "improving"  # against last year's 80, not last quarter's 70
    assert row["rag_status"] == "amber"
    assert row["is_reconciled"] is False and "SPAR.net reports 88.0" in row["reconciliation_note"]
    assert (row["comparator_rank"], row["comparator_count"], row["comparator_median"]) == (2, 2, 87.5)
    assert row["comparator_quartile"] == 3
    # What good looks like: of two councils the best quarter starts at the best value, the rival's.
    assert (row["top_quartile_value"], row["best_comparator_name"], row["best_comparator_value"]) == (
        90.0,
        "Rival",
        90.0,
    )
    assert row["gap_to_top_quartile"] == row["gap_to_best_comparator"] == -5.0
    first = fact.filter(kpi_code="Q", period_key="FY2024-25-Q1").row(0, named=True)
    assert (first["same_period_last_year_actual"], first["direction_of_travel"]) == (None, "not_comparable")
    # No value a year earlier: compared with the previous period instead (lower is better: 50 → 55 is worse).
    new = fact.filter(kpi_code="N", period_key="FY2024-25-Q2").row(0, named=True)
    assert (new["same_period_last_year_actual"], new["previous_period_actual"]) == (None, 50.0)
    assert new["direction_of_travel"] == "worsening"
    survey = fact.filter(kpi_code="S", period_key="FY2024-25").row(0, named=True)
    assert survey["direction_of_travel"] == "stable"  # 62-70 overlaps 55-65
    assert (survey["comparison_lower_ci"], survey["comparison_upper_ci"]) == (55.0, 65.0)
    assert survey["comparator_rank"] is None  # wards are not in the comparator group
    assert survey["rag_status"] == "red"  # tolerance null means 5 %: 3.5 below 70 at most, and 66 is 4 below


def test_what_good_looks_like_starts_the_top_quartile_where_the_ranking_does():
    from kpi_lake.rules import comparator_statistics, what_good_looks_like

    # 16 councils (the own council and 15 comparators): ranks 1-4 are quartile 1, so the best quarter starts
    # at the 4th best value; lower is better for L, and N has no better direction.
    codes = [f"E0600{i:04d}" for i in range(16)]
    values = list(range(100, 116))
    frame = pl.LazyFrame(
        {
            "kpi_code": ["H"] * 16 + ["L"] * 16 + ["N"] * 16 + ["ONE"],
            "period_key": ["P"] * 49,
            "geography_code": codes * 3 + [codes[0]],
            "geography_name": [f"Council {i}" for i in range(16)] * 3 + ["Council 0"],
            "is_own_council": [i == 0 for i in range(16)] * 3 + [True],
            "actual": [float(v) for v in values] * 3 + [1.0],
            "polarity": [HIGHER] * 16 + [LOWER] * 16 + ["neither"] * 16 + [HIGHER],
        }
    )
    good = {row["kpi_code"]: row for row in what_good_looks_like(frame).collect().iter_rows(named=True)}
    assert good["H"]["top_quartile_value"] == 112.0  # 115, 114, 113, 112
    assert good["L"]["top_quartile_value"] == 103.0  # 100, 101, 102, 103
    assert (good["H"]["best_comparator_name"], good["H"]["best_comparator_value"]) == ("Council 15", 115.0)
    # The own council (100, best when lower is better) is not its own best comparator.
    assert (good["L"]["best_comparator_code"], good["L"]["best_comparator_value"]) == (codes[1], 101.0)
    assert good["N"]["top_quartile_value"] is None and good["N"]["best_comparator_value"] is None
    assert good["ONE"]["top_quartile_value"] is None  # one council: nothing to compare with
    # The same boundary as the quartiles: every council at least as good as the threshold is in quartile 1.
    ranked = comparator_statistics(frame.filter(pl.col("kpi_code") == "H")).collect()
    assert set(ranked.filter(pl.col("actual") >= 112.0)["comparator_quartile"]) == {1}
    assert 1 not in set(ranked.filter(pl.col("actual") < 112.0)["comparator_quartile"])
