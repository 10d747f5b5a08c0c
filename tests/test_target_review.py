"""The target review's rules at their boundaries (kpi_lake.target_review): the Theil-Sen trend, the verdict,
the suggested range, the wording, the comparator statistics; and both new gold tables built by a real nightly run
on the generated sample, whose story sets targets from unchallenging to unrealistic."""

from dataclasses import replace

import dagster as dg
import numpy as np
import polars as pl
import pytest
from scipy import stats

from assets.gold.spc import KPI_SPC, TARGET_REVIEW, kpi_spc, target_review_table
from kpi_lake.sample_data import generate_landing
from kpi_lake.sample_data.council import KPIS
from kpi_lake.spc import xmr
from kpi_lake.target_review import (
    VERDICTS,
    Evidence,
    Trend,
    fmt,
    peer_statistics,
    reason,
    review,
    suggested_range,
    theil_sen,
    verdict,
)

# ---- the trend ------------------------------------------------------------------------------------------


def test_theil_sen_matches_scipy_slope_and_sens_interval():
    rng = np.random.default_rng(7)
    values = list(50 + 0.8 * np.arange(12) + rng.normal(0, 2, 12))
    trend = theil_sen(values)
    expected = stats.theilslopes(values, np.arange(12), alpha=0.95)
    assert trend.points == 12
    assert trend.slope == pytest.approx(expected.slope)
    assert (trend.slope_low, trend.slope_high) == pytest.approx((expected.low_slope, expected.high_slope))


def test_theil_sen_projects_a_straight_line_exactly_and_resists_an_outlier():
    line = [1 + 2 * x for x in range(10)]
    trend = theil_sen(line, steps_ahead=3)
    assert trend.slope == 2 and trend.projection == pytest.approx(1 + 2 * 12)
    assert trend.projection_low == trend.projection_high == pytest.approx(25)
    spoiled = list(line)
    spoiled[4] = 500.0
    assert theil_sen(spoiled).slope == pytest.approx(2)


def test_theil_sen_uses_the_latest_twelve_points_skips_nulls_and_needs_six():
    values = [100.0] * 10 + [float(x) for x in range(12)]
    assert theil_sen(values).slope == pytest.approx(1)
    assert theil_sen([1, 2, 3, 4, 5]) is None
    gappy = theil_sen([1, None, 3, 4, 5, 6, 7])  # x is the position: the gap keeps its place
    assert gappy.points == 6 and gappy.slope == pytest.approx(1)


# ---- the verdict ----------------------------------------------------------------------------------------

FLAT = Trend(
    points=12, slope=0.0, slope_low=-0.5, slope_high=0.5, projection=90, projection_low=88, projection_high=92
)
BASE = Evidence(
    sign=1,
    target=91.0,
    target_period="FY2026-27-Q2",
    points=12,
    latest_actual=90.0,
    latest_period="FY2026-27-Q1",
    mean=90.0,
    lpl=86.9,
    upl=93.1,
    assurance="inconsistent",
    trend=FLAT,
    unit="%",
    period_noun="quarter",
)


def test_too_few_points_or_no_actual_is_insufficient_data():
    assert verdict(replace(BASE, points=11)) == "insufficient_data"
    assert verdict(replace(BASE, points=12)) == "challenging_and_realistic"
    assert verdict(replace(BASE, mean=None, lpl=None, upl=None)) == "insufficient_data"
    assert verdict(replace(BASE, latest_actual=None)) == "insufficient_data"


def test_a_target_the_process_always_passes_is_unchallenging():
    assert verdict(replace(BASE, target=86.0, assurance="consistent_pass")) == "unchallenging"
    lower = replace(BASE, sign=-1, target=95.0, assurance="consistent_pass")
    assert verdict(lower) == "unchallenging"


def test_a_target_worse_than_current_performance_and_the_median_is_unchallenging():
    worse = replace(BASE, target=89.5)  # below the mean and the latest actual, within the limits
    assert verdict(worse) == "unchallenging"
    assert (
        verdict(replace(worse, comparator_median=89.0)) == "challenging_and_realistic"
    )  # better than median
    assert verdict(replace(worse, comparator_median=89.5)) == "unchallenging"  # at the median
    assert verdict(replace(worse, comparator_median=92.0)) == "unchallenging"
    # At the mean is not worse than it.
    assert verdict(replace(BASE, target=90.0)) == "challenging_and_realistic"
    # Worse than the mean but not the latest actual: the latest period fell short of it.
    assert verdict(replace(worse, latest_actual=89.0)) == "challenging_and_realistic"
    # Lower is better, mirrored.
    mirrored = replace(BASE, sign=-1, target=90.5, latest_actual=90.0, mean=90.0)
    assert verdict(mirrored) == "unchallenging"


def test_unrealistic_needs_a_consistent_fail_beyond_the_trend_and_the_best_comparator():
    fail = replace(BASE, target=96.0, assurance="consistent_fail", best_comparator_value=94.2)
    assert verdict(fail) == "unrealistic"
    # The trend reaches it (the better end of the projection at or past the target): realistic.
    reaching = replace(FLAT, slope=1, slope_low=-0.1, slope_high=1.5, projection=94, projection_high=96)
    assert verdict(replace(fail, trend=reaching)) == "challenging_and_realistic"
    assert verdict(replace(fail, trend=replace(reaching, projection_high=95.9))) == "unrealistic"
    # A comparator already does it: realistic.
    assert verdict(replace(fail, best_comparator_value=96.0)) == "challenging_and_realistic"
    assert verdict(replace(fail, best_comparator_value=None)) == "unrealistic"
    # Not beyond the better limit (93.1): realistic even with no comparator doing better.
    assert verdict(replace(fail, target=93.1, best_comparator_value=None)) == "challenging_and_realistic"
    assert verdict(replace(fail, target=93.2, best_comparator_value=None)) == "unrealistic"
    # Lower is better: the trend's reach is the lower end of the projection.
    lower = replace(
        BASE, sign=-1, target=8.0, mean=10.0, lpl=9.0, upl=11.0, latest_actual=10.0, assurance="consistent_fail",
        trend=Trend(12, -0.1, -0.2, 0.0, 9.5, 8.5, 10.5), best_comparator_value=8.5,
    )  # fmt: skip
    assert verdict(lower) == "unrealistic"
    assert (
        verdict(replace(lower, trend=replace(lower.trend, projection_low=8.0))) == "challenging_and_realistic"
    )


def test_a_clear_trend_moves_the_limits_with_it():
    # A worsening KPI (the sample's DCS222): within the limits of the last 12 quarters, but far beyond where the
    # process is heading.
    worsening = replace(
        BASE, target=55.0, mean=48.9, lpl=40.6, upl=57.2, latest_actual=40.4,
        trend=Trend(12, -1.3, -1.8, -0.87, 41.3, 38.95, 44.08), unit="%",
    )  # fmt: skip
    assert verdict(worsening) == "unrealistic"
    assert "upper process limit (moved with the trend) of 49.6 %" in review(worsening).reason
    unclear = replace(worsening, trend=Trend(12, -1.3, -1.8, 0.1, 41.3, 38.95, 44.08))
    assert verdict(unclear) == "challenging_and_realistic"
    # An improving KPI (the sample's BPT704) whose target last year's figures set: it is already passed.
    improving = replace(
        BASE, target=350.0, mean=314.7, lpl=276.5, upl=352.9, latest_actual=394.0,
        trend=Trend(12, 14.5, 13.8, 15.5, 412.75, 408.4, 419.25), unit="Number",
    )  # fmt: skip
    assert verdict(improving) == "unchallenging"
    low, high = suggested_range(improving)
    assert low == pytest.approx(412.75) and high == pytest.approx(419.25)


def test_suggested_range_stretches_the_process_within_its_reach():
    low, high = suggested_range(replace(BASE, top_quartile_value=92.0))
    assert (low, high) == (90.0, 92.0)  # from the mean to the top quartile (the trend's end is 92 too)
    # No further than the better process limit.
    assert suggested_range(replace(BASE, top_quartile_value=97.0)) == (90.0, 93.1)
    # An improving trend moves the start past the mean.
    rising = replace(FLAT, projection=91.5, projection_low=90, projection_high=93)
    assert suggested_range(replace(BASE, trend=rising)) == (91.5, 93.0)
    # Lower is better.
    lower = replace(BASE, sign=-1, mean=10.0, lpl=8.0, upl=12.0, trend=None, top_quartile_value=9.0)
    assert suggested_range(lower) == (9.0, 10.0)
    # Percentages stay within 0-100; no limits, no range.
    near_full = replace(BASE, mean=99.0, lpl=97.0, upl=101.0, trend=None, top_quartile_value=100.5)
    assert suggested_range(near_full) == (99.0, 100.0)
    assert suggested_range(replace(BASE, mean=None, lpl=None, upl=None)) == (None, None)


# ---- the wording ----------------------------------------------------------------------------------------


def test_reason_reads_like_the_target_setting_paper():
    e = replace(
        BASE, target=96.0, assurance="consistent_fail", best_comparator_value=94.2, best_comparator_name="Ashbury",
        top_quartile_value=91.0, comparator_median=89.4,
    )  # fmt: skip
    result = review(e)
    assert result.verdict == "unrealistic"
    assert result.reason.startswith(
        "The target of 96 % for FY2026-27-Q2 lies above the upper process limit of 93.1 %: on current performance "
        "it will not be met without a change in how the service works."
    )
    assert "The best comparator (Ashbury) reaches 94.2 %; the top quarter starts at 91 %" in result.reason
    assert "Over the last 12 quarters there is no clear trend" in result.reason
    assert result.reason.endswith(
        "Verdict: unrealistic; a challenging yet realistic target would be between 90 % and 92 %."
    )


def test_reason_for_each_position_and_for_too_little_data():
    lower = replace(BASE, sign=-1, unit="Days", target=12.0, mean=10.0, lpl=9.0, upl=11.0, trend=None)
    assert "lies above the upper process limit of 11 days" in reason(
        replace(lower, assurance="consistent_pass"), "unchallenging", None, None
    )
    assert (
        "lies below the lower process limit of 9 days: on current performance it will not be met"
        in reason(replace(lower, target=8.0, assurance="consistent_fail"), "unrealistic", None, None)
    )
    assert "within the process limits (86.9 % to 93.1 %, mean 90 %)" in reason(
        BASE, "challenging_and_realistic", 1, 2
    )
    short = reason(replace(BASE, points=7, mean=None), "insufficient_data", None, None)
    assert "there are 7 quarters of actuals, and process limits need at least 12" in short


def test_fmt_writes_figures_as_officers_do():
    assert fmt(96.0, "%") == "96 %"
    assert fmt(93.149, "%") == "93.1 %"
    assert fmt(1480.4, "Number") == "1,480"
    assert fmt(0.254, None) == "0.25"
    assert fmt(None) == "n/a"


# ---- comparators ----------------------------------------------------------------------------------------


def test_peer_statistics_quartiles_as_the_mart_ranks_them():
    codes = ["OWN", "A", "B", "C", "D"]
    higher = peer_statistics([70, 80, 60, 90, 50], codes, "OWN", sign=1)
    # Five councils: ranks 1 and 2 are the top quarter ((rank - 1) x 4 // 5 + 1 = 1), so it starts at 80.
    assert higher == {
        "comparator_median": 70.0,
        "top_quartile_value": 80.0,
        "best_comparator_value": 90.0,
        "best_comparator_code": "C",
    }
    lower = peer_statistics([70, 80, 60, 90, 50], codes, "OWN", sign=-1)
    assert lower["top_quartile_value"] == 60.0 and lower["best_comparator_code"] == "D"
    # The own council is never its own best comparator.
    assert peer_statistics([99, 80, 60], ["OWN", "A", "B"], "OWN", 1)["best_comparator_value"] == 80.0
    assert peer_statistics([70], ["OWN"], "OWN", 1) == {}
    sixteen = peer_statistics(list(range(16)), [str(i) for i in range(16)], "OWN", 1)
    assert sixteen["top_quartile_value"] == 12.0  # the 4th best of 16


# ---- the gold tables, built nightly from the sample ------------------------------------------------------


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory):
    from tests.pipeline_helpers import local_resources, run_nightly

    root = tmp_path_factory.mktemp("spc")
    generate_landing(root / "landing", scale=0.3)
    resources = local_resources(root / "lake", root / "landing")
    result = run_nightly(resources)
    assert result.success
    return resources["lake"], result


def test_kpi_spc_and_target_review_are_built_nightly_and_pass_their_suites(nightly):
    from assets.quality import EXPECTATIONS_ROOT
    from kpi_lake.quality import load_suites
    from kpi_lake.quality.validate import validate_table

    lake, result = nightly
    materialised = {tuple(e.asset_key.path): e for e in result.get_asset_materialization_events()}
    suites = {suite.ref: suite for suite in load_suites(EXPECTATIONS_ROOT)}
    for ref in (KPI_SPC, TARGET_REVIEW):
        assert tuple(ref.key_path) in materialised, ref
        report = validate_table(lake, suites[ref], result.run_id)
        assert len(report.outcomes) > 10 and report.rows_in_table > 0, ref
        assert not report.failures(), [(o.name, o.observed_value) for o in report.failures()]
    review_ = lake.scan(TARGET_REVIEW).collect()
    metadata = materialised[tuple(TARGET_REVIEW.key_path)].materialization.metadata
    assert sum(metadata[f"verdict_{v}"].value for v in VERDICTS) == review_.height
    spc_metadata = materialised[tuple(KPI_SPC.key_path)].materialization.metadata
    assert spc_metadata["points_special_cause_concern"].value > 0


def test_kpi_spc_charts_every_long_series_and_says_when_one_is_too_short(nightly):
    lake, _ = nightly
    table = lake.scan(KPI_SPC).collect()
    statuses = table.group_by("period_type", "spc_status").agg(pl.col("kpi_code").n_unique())
    quarterly = dict(
        statuses.filter(pl.col("period_type") == "quarter").select("spc_status", "kpi_code").iter_rows()
    )
    assert quarterly.get("ok", 0) >= 30
    annual = table.filter(pl.col("period_type") == "financial_year")
    assert (
        set(annual["spc_status"]) == {"insufficient_points"} and annual["upl"].null_count() == annual.height
    )
    # Every charted series re-derives from its own actuals with the public function.
    for series in table.filter(pl.col("spc_status") == "ok").partition_by("kpi_code", "period_type"):
        chart = xmr(series["actual"], series["improvement"][0], series["assurance_target"][0])
        for column in ("mean", "lpl", "upl", "point_type", "assurance_type"):
            assert series[column].to_list() == chart[column].to_list(), (series["kpi_code"][0], column)


def test_the_verdicts_find_the_samples_targets(nightly):
    lake, _ = nightly
    review_ = lake.scan(TARGET_REVIEW).collect()
    assert set(review_["verdict"]) == set(VERDICTS)
    story = {k.code: (k.target_stance, k.trend) for k in KPIS if k.period_kind == "quarter"}
    verdict_of = dict(
        review_.filter(pl.col("period_type") == "quarter").select("kpi_code", "verdict").iter_rows()
    )
    # Targets set below last year's outturn on KPIs that keep improving are found unchallenging.
    easy = [
        code for code, (stance, trend) in story.items() if stance == "unchallenging" and trend == "improving"
    ]
    assert easy and all(verdict_of[code] == "unchallenging" for code in easy), {
        c: verdict_of[c] for c in easy
    }
    # Targets far beyond last year on KPIs that stall or worsen: at least two found unrealistic, none unchallenging.
    hard = [
        code for code, (stance, trend) in story.items() if stance == "unrealistic" and trend != "volatile"
    ]
    found = [code for code in hard if verdict_of[code] == "unrealistic"]
    assert len(found) >= 2, {c: verdict_of[c] for c in hard}
    assert not [
        c for c, (stance, _) in story.items() if stance == "unrealistic" and verdict_of[c] == "unchallenging"
    ]
    assert not [
        c for c, (stance, _) in story.items() if stance == "unchallenging" and verdict_of[c] == "unrealistic"
    ]
    # Series of fewer than 12 actuals say so: every financial- and academic-year KPI (five or six years); the
    # emissions' calendar years (2005 on) are long enough to be judged.
    short = review_.filter(pl.col("series_points") < 12)
    assert set(short["verdict"]) == {"insufficient_data"}
    assert short["reason"].str.contains("process limits need at least 12").all()
    assert set(short["period_type"]) >= {"financial_year", "academic_year"}
    emissions = review_.filter(pl.col("period_type") == "calendar_year", pl.col("series_points") >= 12)
    assert emissions.height > 0 and "insufficient_data" not in set(emissions["verdict"])
    # The reason names the target, the limits and the verdict.
    unrealistic = review_.filter(pl.col("verdict") == "unrealistic").row(0, named=True)
    assert unrealistic["reason"].startswith(
        f"The target of {fmt(unrealistic['target'], unrealistic['unit'])}"
    )
    assert "Verdict: unrealistic" in unrealistic["reason"]


def test_a_rerun_with_nothing_new_rebuilds_nothing(nightly):
    lake, _ = nightly
    before = {ref: lake.state(ref).version for ref in (KPI_SPC, TARGET_REVIEW)}
    result = dg.materialize([kpi_spc, target_review_table], resources={"lake": lake})
    assert result.success
    assert {ref: lake.state(ref).version for ref in (KPI_SPC, TARGET_REVIEW)} == before
