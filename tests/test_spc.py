"""kpi_lake.spc.xmr against the published examples and tests of the reference implementation, the NHS-R
community's NHSRplotthedots (github.com/nhs-r-community/NHSRplotthedots).

Where the data come from:
- ``AE_PERFORMANCE`` and ``AE_ATTENDANCES``: tests/testthat/test-integration_tests.R builds them from
  NHSRdatasets' ``ae_attendances`` (England, April 2016 - March 2019, summed by month; performance = 1 -
  breaches / attendances); the expected values are the R-serialised snapshots in
  tests/testthat/_snaps/integration_tests.md ("ae_all performance spc", ``fix_after_n_points = 12``; "ae_all
  attendances spc"; "ae_all attendances spc with rebase", rebased at 2017-04-01), decoded to full precision.
- ``RNORM_123``: ``set.seed(123); rnorm(20)`` of tests/testthat/test-ptd_spc_standard.R and test-ptd_spc.R, whose
  expected mean and limits (printed to 3 significant figures) are in tests/testthat/_snaps/ptd_spc.md.
- The rule vectors: tests/testthat/test-ptd_calculate_point_type.R, test-ptd_calculate_assurance_type.R,
  test-ptd_spc_standard.R, and issues #143, #167 and #171 (fixed in NHSRplotthedots 0.2.2, NEWS.md).
"""

import numpy as np
import polars as pl
import pytest

from kpi_lake.spc import _assurance, _special_cause_type, xmr

AE_PERFORMANCE = [
    0.9003512724457525, 0.9027555860390081, 0.9055994429248081, 0.9028524786030435, 0.909763097023593,
    0.9064786853944554, 0.8905308979446662, 0.8837903610883545, 0.8617594559611471, 0.851413411900772,
    0.8753090395991286, 0.9000949482943537, 0.9051525263083392, 0.8970035160821932, 0.9072518525056468,
    0.9034785895858326, 0.9029928875860346, 0.8966609396555797, 0.8994186788850258, 0.8876655246839736,
    0.8498503458662225, 0.8529918213516818, 0.8504476893558943, 0.8462121637147311, 0.8857248828216929,
    0.9039011151983545, 0.9076297242234981, 0.8931949047110505, 0.8972702710007838, 0.8894368286304747,
    0.8900933497219513, 0.8760446687116353, 0.8644632183941728, 0.843525141560121, 0.8422525009629417,
    0.8660427671795345,
]  # fmt: skip
AE_PERFORMANCE_POINT_TYPES = (
    ["common_cause"] * 9
    + ["special_cause_concern", "common_cause"]
    + ["special_cause_improvement"] * 8
    + ["common_cause"]
    + ["special_cause_concern"] * 4
    + ["common_cause"] * 5
    + ["special_cause_concern"] * 7
)
AE_ATTENDANCES = [
    1867781, 2070340, 1958802, 2079034, 1932901, 1952464, 2001816, 1907871, 1944567, 1895272, 1735619,
    2015834, 1949762, 2066789, 1994056, 2073944, 1924663, 1925961, 2044137, 1976971, 2003954, 2000086,
    1820012, 2049785, 1984369, 2164458, 2093942, 2179896, 1997854, 2005695, 2079492, 2037847, 2047518,
    2113413, 1954947, 2167550,
]  # fmt: skip
RNORM_123 = [
    -0.56047565, -0.23017749, 1.55870831, 0.07050839, 0.12928774, 1.71506499, 0.46091621, -1.26506123,
    -0.68685285, -0.44566197, 1.22408180, 0.35981383, 0.40077145, 0.11068272, -0.55584113, 1.78691314,
    0.49785048, -1.96661716, 0.70135590, -0.47279141,
]  # fmt: skip

SIX_FIGURES = 5e-7


def _limits(frame: pl.DataFrame) -> list[tuple[float, float, float]]:
    return [tuple(row) for row in frame.select("mean", "lpl", "upl").unique(maintain_order=True).iter_rows()]


def test_ae_performance_with_fixed_limits_matches_the_reference():
    chart = xmr(AE_PERFORMANCE, "increase", fix_after_n_points=12)

    ((mean, lpl, upl),) = _limits(chart)
    assert mean == pytest.approx(0.8908915564349236, rel=SIX_FIGURES)
    assert lpl == pytest.approx(0.8614049789074258, rel=SIX_FIGURES)
    assert upl == pytest.approx(0.9203781339624213, rel=SIX_FIGURES)
    assert chart["point_type"].to_list() == AE_PERFORMANCE_POINT_TYPES
    assert chart["variation_type"].unique().to_list() == ["special_cause_concern"]
    # Why each is special: below the lower limit, or a run on one side of the mean; beyond-limit wins.
    types = chart["special_cause_type"].to_list()
    assert types[9] == "below_lpl" and types[20:24] == ["below_lpl"] * 4
    assert types[11:19] == ["shift_above"] * 8
    assert set(types[29:36]) == {"shift_below", "below_lpl"}
    # Fixing the limits matters: over all 36 points they differ.
    assert _limits(xmr(AE_PERFORMANCE, "increase"))[0][0] != pytest.approx(mean, rel=SIX_FIGURES)


def test_ae_performance_point_types_flip_with_the_improvement_direction():
    chart = xmr(AE_PERFORMANCE, "decrease", fix_after_n_points=12)
    flipped = {
        "special_cause_improvement": "special_cause_concern",
        "special_cause_concern": "special_cause_improvement",
        "common_cause": "common_cause",
    }
    assert chart["point_type"].to_list() == [flipped[t] for t in AE_PERFORMANCE_POINT_TYPES]
    neutral = xmr(AE_PERFORMANCE, "neutral", fix_after_n_points=12)["point_type"].to_list()
    assert neutral[9] == "special_cause_neutral_low" and neutral[11] == "special_cause_neutral_high"
    assert neutral[0] == "common_cause"


def test_ae_attendances_and_its_rebase_match_the_reference():
    chart = xmr(AE_ATTENDANCES, "increase")
    ((mean, lpl, upl),) = _limits(chart)
    assert (mean, lpl, upl) == pytest.approx(
        (2000538.9444444445, 1731844.3644444444, 2269233.5244444446), rel=SIX_FIGURES
    )
    assert set(chart["point_type"]) == {"common_cause"}

    rebased = xmr(AE_ATTENDANCES, "increase", rebase_at=[12])  # 2017-04-01 is the 13th month
    assert rebased["rebase_group"].to_list() == [0] * 12 + [1] * 24
    before, after = _limits(rebased)
    assert before == pytest.approx(
        (1946858.4166666667, 1639947.374848485, 2253769.4584848485), rel=SIX_FIGURES
    )
    assert after == pytest.approx(
        (2027379.2083333333, 1772921.0639855072, 2281837.3526811595), rel=SIX_FIGURES
    )
    assert set(rebased["point_type"]) == {"common_cause"}


def test_rnorm_example_summary_matches_the_reference_to_its_printed_figures():
    chart = xmr(RNORM_123, "increase")
    ((mean, lpl, upl),) = _limits(chart)
    assert (round(mean, 3), round(lpl, 2), round(upl, 2)) == (0.142, -3.01, 3.29)
    assert set(chart["point_type"]) == {"common_cause"}
    # The snapshot's facets: the first and the last ten points as separate processes.
    first, second = _limits(xmr(RNORM_123, "increase", rebase_at=[10]))
    assert (round(first[0], 4), round(first[1], 2), round(first[2], 2)) == (0.0746, -2.60, 2.75)
    assert (round(second[0], 3), round(second[1], 2), round(second[2], 2)) == (0.209, -3.28, 3.70)


def test_outlier_screening_and_fixing_change_the_limits_as_the_reference_tests_say():
    with_outlier = list(RNORM_123)
    with_outlier[14] = 10.0
    plain = _limits(xmr(RNORM_123, "increase"))[0]
    screened = _limits(xmr(with_outlier, "increase"))[0]
    unscreened = _limits(xmr(with_outlier, "increase", screen_outliers=False))[0]
    assert len({plain[1], screened[1], unscreened[1]}) == 3
    assert unscreened[2] - unscreened[1] > screened[2] - screened[1]
    # Screening: the two moving ranges around the outlier (3.267 x the mean or more) are left out.
    moving_ranges = np.abs(np.diff(with_outlier))
    kept = moving_ranges[moving_ranges < 3.267 * moving_ranges.mean()]
    assert len(kept) == len(moving_ranges) - 2
    assert screened[2] == pytest.approx(screened[0] + 2.66 * kept.mean())
    assert _limits(xmr(RNORM_123, "increase", fix_after_n_points=12))[0][1] != plain[1]


def test_two_close_points_on_opposite_sides_are_not_special_cause():
    # test-ptd_spc_standard.R, issue #143.
    data = [1.0, -1.0] * 8
    data[14], data[15] = 5.5, -5.5
    assert xmr(data, "increase")["point_type"].tail(2).to_list() == ["common_cause", "common_cause"]


def _types(y=None, rtm=None, close=None, outside=None, n=None):
    n = n or len(next(v for v in (y, rtm, close, outside) if v is not None))
    return _special_cause_type(
        np.zeros(n) if y is None else np.asarray(y, dtype=float),
        np.zeros(n, dtype=np.int8) if rtm is None else np.asarray(rtm, dtype=np.int8),
        np.zeros(n, dtype=bool) if close is None else np.asarray(close, dtype=bool),
        np.zeros(n, dtype=bool) if outside is None else np.asarray(outside, dtype=bool),
    ).tolist()


def test_seven_points_one_side_of_the_mean():
    # ptd_seven_point_one_side_mean / ptd_part_of_seven_trend vectors.
    assert _types(rtm=[1] * 6) == ["common_cause"] * 6
    assert _types(rtm=[1] * 6 + [-1]) == ["common_cause"] * 7
    assert _types(rtm=[1] * 8 + [-1]) == ["shift_above"] * 8 + ["common_cause"]
    assert _types(rtm=[-1] * 8 + [1]) == ["shift_below"] * 8 + ["common_cause"]
    assert _types(rtm=[-1] + [1] * 8 + [-1]) == ["common_cause"] + ["shift_above"] * 8 + ["common_cause"]
    # A point on the mean breaks the run.
    assert _types(rtm=[1, 1, 1, 0, 1, 1, 1]) == ["common_cause"] * 7


def test_seven_point_trends_either_way_and_ties_break_them():
    # ptd_seven_point_trend vectors; decreasing trends are flagged too (issue #167).
    assert _types(y=[1, 2, 3, 4, 5, 6]) == ["common_cause"] * 6
    assert _types(y=[1, 2, 3, 3, 4, 5, 6]) == ["common_cause"] * 7
    assert _types(y=[1, 2, 3, 4, 5, 6, 7]) == ["trend_increasing"] * 7
    assert _types(y=[2, 1, 2, 3, 4, 5, 6, 7, 3]) == ["common_cause"] + ["trend_increasing"] * 7 + [
        "common_cause"
    ]
    assert _types(y=[7, 6, 5, 4, 3, 2, 1]) == ["trend_decreasing"] * 7
    # Issue #167's examples through xmr: 0 up to 7 and 0 down to -7 are special cause throughout (the ends
    # beyond the limits, the rest as a trend).
    for values in (list(range(8)), [-v for v in range(8)]):
        assert xmr(values, "increase")["special_cause_flag"].all()


def test_a_trend_reads_by_its_direction_not_its_side_of_the_mean():
    # Issue #171: a falling trend above the mean is a concern when higher is better.
    types = _types(y=[9, 8, 7, 6, 5, 4, 3], rtm=[1] * 7)
    assert types == ["trend_decreasing"] * 7
    chart = xmr([0, 12, 1, 11, 2, 10, 9.5, 9, 8.5, 8, 7.5, 7, 0, 12, 1, 11, 2, 12, 0, 11], "increase")
    assert chart["relative_to_mean"][5:12].to_list() == [1] * 7
    assert (
        chart["point_type"].to_list()
        == ["common_cause"] * 5 + ["special_cause_concern"] * 8 + ["common_cause"] * 7
    )


def test_two_in_three_close_to_the_limits():
    # ptd_two_in_three / ptd_part_of_two_in_three vectors: only the close points of a window are flagged,
    # and all three points of the window must be on the same side of the mean.
    assert _types(close=[0, 0, 1, 0, 1, 0, 0], rtm=[1, 1, 1, 1, 1, 1, -1]) == [
        "common_cause", "common_cause", "two_in_three_above", "common_cause", "two_in_three_above",
        "common_cause", "common_cause",
    ]  # fmt: skip
    assert _types(close=[1, 0, 0, 1], rtm=[-1] * 4) == ["common_cause"] * 4
    assert _types(close=[1, 0, 0, 1, 1], rtm=[-1] * 5) == ["common_cause"] * 3 + ["two_in_three_below"] * 2
    assert _types(close=[0, 1, 1], rtm=[1, 1, -1]) == ["common_cause"] * 3


def test_precedence_beyond_limit_then_trend_then_two_in_three_then_shift():
    types = _types(
        y=[1, 2, 3, 4, 5, 6, 7, 7],
        rtm=[1] * 8,
        close=[0, 0, 0, 0, 0, 1, 0, 1],
        outside=[0, 0, 0, 0, 0, 0, 1, 0],
    )
    assert types[6] == "above_upl"
    assert types[:6] == ["trend_increasing"] * 6
    assert types[7] == "two_in_three_above"


@pytest.mark.parametrize(
    ("lpl", "upl", "increase", "decrease"),
    [(1, 3, "consistent_fail", "consistent_pass"), (5, 7, "consistent_pass", "consistent_fail"),
     (1, 5, "inconsistent", "inconsistent")],
)  # fmt: skip
def test_assurance_from_the_target_against_the_limits(lpl, upl, increase, decrease):
    # test-ptd_calculate_assurance_type.R: target 4 against three sets of limits.
    assert _assurance(4.0, lpl, upl, "increase") == increase
    assert _assurance(4.0, lpl, upl, "decrease") == decrease


def test_assurance_on_the_reference_example():
    def assurance(target, improvement="increase", **options):
        return xmr(AE_PERFORMANCE, improvement, target, fix_after_n_points=12, **options)["assurance_type"]

    assert set(assurance(0.95)) == {"consistent_fail"}  # above the upper limit 0.9204
    assert set(assurance(0.95, "decrease")) == {"consistent_pass"}
    assert set(assurance(0.85)) == {"consistent_pass"}  # below the lower limit 0.8614
    assert set(assurance(0.90)) == {"inconsistent"}
    assert assurance(0.90, "neutral").null_count() == 36
    assert xmr(AE_PERFORMANCE, "increase")["assurance_type"].null_count() == 36
    # With a rebase, only the last process is assured.
    rebased = assurance(0.95, rebase_at=[24])
    assert rebased.head(24).null_count() == 24 and set(rebased.tail(12)) == {"consistent_fail"}


def test_nulls_are_skipped_and_keep_their_process_limits():
    with_gaps = [*AE_PERFORMANCE[:5], None, *AE_PERFORMANCE[5:20], float("nan"), *AE_PERFORMANCE[20:]]
    chart = xmr(with_gaps, "increase", fix_after_n_points=12)
    assert chart.height == 38
    gaps = chart.filter(pl.col("value").is_null())
    assert gaps["point"].to_list() == [5, 21]
    assert gaps["point_type"].null_count() == 2 and gaps["special_cause_flag"].null_count() == 2
    points = chart.filter(pl.col("value").is_not_null())
    assert points["point_type"].to_list() == AE_PERFORMANCE_POINT_TYPES
    assert _limits(chart)[0] == pytest.approx((0.8908915564349236, 0.8614049789074258, 0.9203781339624213))


def test_short_processes_are_warned_of():
    assert set(xmr(AE_PERFORMANCE[:11], "increase")["short_group_warning"]) == {True}
    assert set(xmr(AE_PERFORMANCE[:12], "increase")["short_group_warning"]) == {False}
    rebased = xmr(AE_PERFORMANCE, "increase", rebase_at=[30])
    assert rebased["short_group_warning"].to_list() == [False] * 30 + [True] * 6
    # One point: no moving range, so no limits.
    single = xmr([3.0], "increase")
    assert single["lpl"].to_list() == [None] and single["mean"].to_list() == [3.0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="improvement must be one of"):
        xmr([1, 2, 3], "up")
    with pytest.raises(ValueError, match="rebase_at"):
        xmr([1, 2, 3], "increase", rebase_at=[3])
    with pytest.raises(ValueError, match="fix_after_n_points"):
        xmr([1, 2, 3], "increase", fix_after_n_points=1)
