"""Statistical process control: the XmR chart of NHS England's "Making Data Count", as the NHS-R community's
reference implementation NHSRplotthedots (``ptd_spc``) computes it. Public and stable: ``xmr``.

The method, per process (a series, or each part of it between rebase points):

- process mean: the mean of the points (of the first ``fix_after_n_points`` when the limits are fixed);
- moving ranges: ``|x[i] - x[i-1]|``; with ``screen_outliers`` those of 3.267 x their mean or more are left
  out and the mean moving range recomputed;
- process limits: mean ± 2.66 x mean moving range; "close to the limits" is beyond two sigma (mean ± 2/3 of
  that) without being beyond the limit;
- special cause, in the reference's order of precedence: a point beyond a limit; part of a trend of 7 points
  each higher (or each lower) than the last (equal points break it); part of 2 out of 3 points close to the
  limits and all three on the same side of the mean; part of 7 points in a row on the same side of the mean
  (a point on the mean breaks the run);
- point type: improvement or concern by the side (or the trend's direction) and ``improvement``; high or low
  when the KPI has no better direction;
- variation type: the point type of the process's last point; assurance: where the target sits against the
  last process's limits (beyond the better limit: the process passes consistently; beyond the worse one: it
  fails consistently; between them: it passes and fails at random).

Deviations from the reference, for data it does not define: null values are skipped (the rules run over the
points with a value; a null point keeps its process's limits and gets no flags); a process whose moving ranges
are all zero gets limits equal to its mean (the reference's screening leaves it none, so NaN limits);
``rebase_at`` takes positions in ``values`` rather than dates. The reference warns under 12 points a process
(``short_group_warning``); so does this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

IMPROVEMENTS = ("increase", "decrease", "neutral")
#: Process limits at the mean ± LIMIT x the mean moving range (3 sigma: 3 / 1.128).
LIMIT = 2.66
#: Two sigma: the bound of "close to the limits".
CLOSE = 2 * LIMIT / 3
#: Moving ranges of this many times their mean or more are screened out (the upper range limit, D4).
MR_SCREEN = 3.267
#: Fewer points than this in a process: limits are trial limits (the reference's short_group_warning).
MIN_POINTS = 12
#: Run length of the trend and shift rules.
RUN = 7

POINT_TYPES = (
    "common_cause",
    "special_cause_improvement",
    "special_cause_concern",
    "special_cause_neutral_high",
    "special_cause_neutral_low",
)
#: Why a point is special cause (the reference's labels: "Above UCL", "7 Point Trend (Increasing)",
#: "2 in 3 Above CL", "7 Points Above CL", ...), in its order of precedence.
SPECIAL_CAUSE_TYPES = (
    "common_cause",
    "above_upl",
    "below_lpl",
    "trend_increasing",
    "trend_decreasing",
    "two_in_three_above",
    "two_in_three_below",
    "shift_above",
    "shift_below",
)
ASSURANCE_TYPES = ("consistent_pass", "consistent_fail", "inconsistent")

SCHEMA = {
    "point": pl.Int64,
    "value": pl.Float64,
    "rebase_group": pl.Int64,
    "short_group_warning": pl.Boolean,
    "mean": pl.Float64,
    "lpl": pl.Float64,
    "upl": pl.Float64,
    "outside_limits": pl.Boolean,
    "relative_to_mean": pl.Int8,
    "close_to_limits": pl.Boolean,
    "special_cause_flag": pl.Boolean,
    "special_cause_type": pl.String,
    "point_type": pl.String,
    "variation_type": pl.String,
    "target": pl.Float64,
    "assurance_type": pl.String,
}


def xmr(
    values: Iterable[float | None] | pl.Series | np.ndarray,
    improvement: str,
    target: float | None = None,
    *,
    screen_outliers: bool = True,
    fix_after_n_points: int | None = None,
    rebase_at: Sequence[int] = (),
) -> pl.DataFrame:
    """The XmR chart of an ordered series: one row per value (nulls allowed, skipped by the rules).

    ``improvement``: ``"increase"``, ``"decrease"`` or ``"neutral"``. ``target``: one value for the series, or
    None. ``fix_after_n_points``: compute each process's mean and limits from its first n points only.
    ``rebase_at``: positions in ``values`` where a new process starts (its own mean and limits).

    Columns: ``point`` (position), ``value``, ``rebase_group`` (0, 1, ... per process), ``short_group_warning``
    (fewer than 12 points in the process), ``mean``, ``lpl``, ``upl``, ``outside_limits``,
    ``relative_to_mean`` (-1, 0, 1), ``close_to_limits``, ``special_cause_flag``, ``special_cause_type``,
    ``point_type``, ``variation_type`` (the point type of the process's last point), ``target`` and
    ``assurance_type`` (on the last process's rows; null without a target or for a neutral KPI).
    """
    if improvement not in IMPROVEMENTS:
        raise ValueError(f"xmr: improvement must be one of {IMPROVEMENTS}, not {improvement!r}")
    if fix_after_n_points is not None and (isinstance(fix_after_n_points, bool) or fix_after_n_points < 2):
        raise ValueError(
            f"xmr: fix_after_n_points must be a whole number of 2 or more, not {fix_after_n_points!r}"
        )
    series = values if isinstance(values, pl.Series) else pl.Series("value", list(values), dtype=pl.Float64)
    y = series.cast(pl.Float64).fill_nan(None).to_numpy(allow_copy=True).astype(float)
    n = len(y)
    starts = sorted(set(int(p) for p in rebase_at))
    bad = [p for p in starts if not 0 <= p < n]
    if bad:
        raise ValueError(f"xmr: rebase_at positions must be within the series (0..{n - 1}), not {bad}")
    group = np.zeros(n, dtype=np.int64)
    for position in starts:
        if position > 0:
            group[position:] += 1

    columns: dict[str, np.ndarray] = {
        "mean": np.full(n, np.nan),
        "lpl": np.full(n, np.nan),
        "upl": np.full(n, np.nan),
        "outside": np.zeros(n, dtype=bool),
        "rtm": np.zeros(n, dtype=np.int8),
        "close": np.zeros(n, dtype=bool),
    }
    special_type = np.full(n, None, dtype=object)
    short = np.zeros(n, dtype=bool)
    variation = np.full(n, None, dtype=object)
    present = ~np.isnan(y)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        points = rows[present[rows]]
        short[rows] = len(points) < MIN_POINTS
        if len(points) == 0:
            continue
        stats = _process(y[points], screen_outliers, fix_after_n_points)
        for name in ("mean", "lpl", "upl"):
            columns[name][rows] = stats[name]
        for name in ("outside", "rtm", "close"):
            columns[name][points] = stats[name]
        special_type[points] = stats["special_cause_type"]
        variation[rows] = _point_type(np.array([stats["special_cause_type"][-1]], dtype=object), improvement)[
            0
        ]

    point_type = np.full(n, None, dtype=object)
    point_type[present] = _point_type(special_type[present], improvement)
    assurance = np.full(n, None, dtype=object)
    if target is not None and improvement != "neutral" and n:
        last = group == group.max()
        upl, lpl = columns["upl"][last][0], columns["lpl"][last][0]
        assurance[last] = _assurance(float(target), lpl, upl, improvement)

    def flag(values: np.ndarray) -> list:
        return [bool(v) if p else None for v, p in zip(values, present, strict=True)]

    return pl.DataFrame(
        {
            "point": np.arange(n, dtype=np.int64),
            "value": pl.Series(y).fill_nan(None),
            "rebase_group": group,
            "short_group_warning": short,
            "mean": pl.Series(columns["mean"]).fill_nan(None),
            "lpl": pl.Series(columns["lpl"]).fill_nan(None),
            "upl": pl.Series(columns["upl"]).fill_nan(None),
            "outside_limits": flag(columns["outside"]),
            "relative_to_mean": [int(v) if p else None for v, p in zip(columns["rtm"], present, strict=True)],
            "close_to_limits": flag(columns["close"]),
            "special_cause_flag": [None if t is None else t != "common_cause" for t in special_type],
            "special_cause_type": special_type.tolist(),
            "point_type": point_type.tolist(),
            "variation_type": variation.tolist(),
            "target": [None if target is None else float(target)] * n,
            "assurance_type": assurance.tolist(),
        },
        schema=SCHEMA,
    )


def _process(
    y: np.ndarray, screen_outliers: bool, fix_after_n_points: int | None
) -> dict[str, np.ndarray | float]:
    """Mean, limits and the special-cause rules of one process (its non-null points, in order)."""
    base = y if fix_after_n_points is None else y[:fix_after_n_points]
    mean = float(np.mean(base))
    moving_ranges = np.abs(np.diff(base))
    if len(moving_ranges) == 0:
        amr = np.nan
    else:
        amr = float(np.mean(moving_ranges))
        if screen_outliers and amr > 0:
            amr = float(np.mean(moving_ranges[moving_ranges < MR_SCREEN * amr]))
    lpl, upl = mean - LIMIT * amr, mean + LIMIT * amr
    near_lower, near_upper = mean - CLOSE * amr, mean + CLOSE * amr
    with np.errstate(invalid="ignore"):
        outside = (y > upl) | (y < lpl)
        close = ~outside & ((y < near_lower) | (y > near_upper))
    rtm = np.sign(y - mean).astype(np.int8)
    return {
        "mean": mean,
        "lpl": lpl,
        "upl": upl,
        "outside": outside,
        "rtm": rtm,
        "close": close,
        "special_cause_type": _special_cause_type(y, rtm, close, outside),
    }


def _runs_ending(equal_to_previous: np.ndarray, length: int) -> np.ndarray:
    """True at i when points i-length+1 .. i are a run (each of the length-1 steps ending at them holds)."""
    n = len(equal_to_previous)
    ends = np.zeros(n, dtype=bool)
    if n >= length:
        steps = np.lib.stride_tricks.sliding_window_view(equal_to_previous[1:], length - 1)
        ends[length - 1 :] = steps.all(axis=1)
    return ends


def _part_of(ends: np.ndarray, length: int) -> np.ndarray:
    """True at i when a run of ``length`` ends at i or within the next length-1 points (i belongs to it)."""
    padded = np.concatenate([ends, np.zeros(length - 1, dtype=bool)])
    return np.lib.stride_tricks.sliding_window_view(padded, length).any(axis=1)


def _special_cause_type(y: np.ndarray, rtm: np.ndarray, close: np.ndarray, outside: np.ndarray) -> np.ndarray:
    n = len(y)
    step = np.sign(np.diff(y)) if n > 1 else np.zeros(0)
    # Trend: 7 points each strictly higher (or lower) than the one before.
    rising = _runs_ending(np.concatenate([[False], step > 0]), RUN)
    falling = _runs_ending(np.concatenate([[False], step < 0]), RUN)
    in_trend = _part_of(rising | falling, RUN)
    # Shift: 7 points in a row on the same (non-zero) side of the mean.
    same_side = np.concatenate([[False], (rtm[1:] == rtm[:-1]) & (rtm[1:] != 0)]) if n else np.zeros(0, bool)
    in_shift = _part_of(_runs_ending(same_side, RUN) & (rtm != 0), RUN)
    # 2 in 3: a window of three with two or more close to the limits, all three on the same side of the mean;
    # the close points of such a window are flagged.
    in_two_of_three = np.zeros(n, dtype=bool)
    if n >= 3:
        close_count = np.lib.stride_tricks.sliding_window_view(close.astype(int), 3).sum(axis=1)
        side_sum = np.lib.stride_tricks.sliding_window_view(rtm.astype(int), 3).sum(axis=1)
        window = (close_count >= 2) & (np.abs(side_sum) == 3)
        covered = np.zeros(n, dtype=bool)
        for offset in range(3):
            covered[offset : offset + len(window)] |= window
        in_two_of_three = covered & close
    # The direction of a trend point: the step to the next point when that is in the trend too, else the step
    # from the previous one (the reference's rule, so that a trend's first and last points read its way).
    right = np.concatenate([step, step[-1:]]) if n > 1 else np.zeros(n)
    left = np.concatenate([[0.0], step]) if n > 1 else np.zeros(n)
    next_in_trend = np.concatenate([in_trend[1:], [False]]) if n else in_trend
    direction = np.where(next_in_trend & in_trend, right, left)
    above = rtm > 0
    return np.select(
        [outside, in_trend, in_two_of_three, in_shift],
        [
            np.where(rtm == 1, "above_upl", "below_lpl"),
            np.where(direction == 1, "trend_increasing", "trend_decreasing"),
            np.where(above, "two_in_three_above", "two_in_three_below"),
            np.where(above, "shift_above", "shift_below"),
        ],
        default="common_cause",
    ).astype(object)


_HIGH = frozenset({"above_upl", "trend_increasing", "two_in_three_above", "shift_above"})


def _point_type(special_cause_type: np.ndarray, improvement: str) -> np.ndarray:
    high = np.isin(special_cause_type, list(_HIGH))
    common = special_cause_type == "common_cause"
    if improvement == "neutral":
        good, bad = "special_cause_neutral_high", "special_cause_neutral_low"
    elif improvement == "increase":
        good, bad = "special_cause_improvement", "special_cause_concern"
    else:
        good, bad = "special_cause_concern", "special_cause_improvement"
    return np.where(common, "common_cause", np.where(high, good, bad)).astype(object)


def _assurance(target: float, lpl: float, upl: float, improvement: str) -> str | None:
    if np.isnan(lpl) or np.isnan(upl):
        return None
    increasing = improvement == "increase"
    if target > upl:
        return "consistent_fail" if increasing else "consistent_pass"
    if target < lpl:
        return "consistent_pass" if increasing else "consistent_fail"
    return "inconsistent"


# ---- the mart's SPC table ---------------------------------------------------------------------------------

#: dim_kpi polarity -> xmr improvement direction.
IMPROVEMENT_OF_POLARITY = {"higher_is_better": "increase", "lower_is_better": "decrease"}
SPC_STATUSES = ("ok", "insufficient_points")
SERIES_KEY = ("kpi_code", "period_type")
KPI_SPC_COLUMNS = (
    "kpi_code",
    "period_key",
    "period_type",
    "period_start",
    "geography_code",
    "actual",
    "target",
    "polarity",
    "improvement",
    "series_points",
    "spc_status",
    "mean",
    "lpl",
    "upl",
    "outside_limits",
    "relative_to_mean",
    "close_to_limits",
    "special_cause_flag",
    "special_cause_type",
    "point_type",
    "variation_type",
    "assurance_target",
    "assurance_type",
)
_SPC_OUTPUTS = (
    "mean",
    "lpl",
    "upl",
    "outside_limits",
    "relative_to_mean",
    "close_to_limits",
    "special_cause_flag",
    "special_cause_type",
    "point_type",
    "variation_type",
    "assurance_type",
)


def own_council_series(
    fact: pl.LazyFrame, kpis: pl.LazyFrame, periods: pl.LazyFrame, geographies: pl.LazyFrame
) -> pl.LazyFrame:
    """The own council's rows of the fact with each period's type and start and the KPI's polarity and unit,
    ordered by KPI, period type and period (each (kpi_code, period_type) is one series)."""
    own = geographies.filter(pl.col("is_own_council")).select("geography_code")
    return (
        fact.join(own, on="geography_code", how="semi")
        .join(periods.select("period_key", "period_type", "period_start"), on="period_key", how="inner")
        .join(kpis.select("kpi_code", "polarity", "unit"), on="kpi_code", how="left")
        .with_columns(
            pl.col("polarity").replace_strict(IMPROVEMENT_OF_POLARITY, default="neutral").alias("improvement")
        )
        .sort([*SERIES_KEY, "period_start"])
    )


def series_target(frame: pl.DataFrame) -> tuple[float | None, str | None]:
    """The target assurance is judged against: the latest period's target that is set, and that period."""
    with_target = frame.filter(pl.col("target").is_not_null())
    if with_target.height == 0:
        return None, None
    last = with_target.row(-1, named=True)
    return float(last["target"]), last["period_key"]


def build_kpi_spc(
    fact: pl.LazyFrame, kpis: pl.LazyFrame, periods: pl.LazyFrame, geographies: pl.LazyFrame
) -> pl.DataFrame:
    """``gold/kpi_mart/kpi_spc``: every own-council KPI series (one per KPI and period type), each period with
    its XmR columns; a series with fewer than 12 actuals has ``spc_status = 'insufficient_points'`` and no
    SPC columns. Assurance is against the series' latest target (``assurance_target``)."""
    series = own_council_series(fact, kpis, periods, geographies).collect()
    parts = []
    for frame in series.partition_by(list(SERIES_KEY), maintain_order=True):
        improvement = frame["improvement"][0]
        target, _ = series_target(frame)
        points = frame["actual"].drop_nulls().len()
        base = frame.with_columns(
            pl.lit(points, dtype=pl.Int64).alias("series_points"),
            pl.lit(target, dtype=pl.Float64).alias("assurance_target"),
        )
        if points < MIN_POINTS:
            parts.append(
                base.with_columns(
                    pl.lit("insufficient_points").alias("spc_status"),
                    *(pl.lit(None, dtype=SCHEMA[name]).alias(name) for name in _SPC_OUTPUTS),
                )
            )
            continue
        chart = xmr(frame["actual"], improvement, target)
        parts.append(base.with_columns(pl.lit("ok").alias("spc_status")).hstack(chart.select(_SPC_OUTPUTS)))
    if not parts:
        empty = {
            **series.schema,
            "series_points": pl.Int64,
            "assurance_target": pl.Float64,
            "spc_status": pl.String,
        }
        return pl.DataFrame(schema={c: {**empty, **SCHEMA}[c] for c in KPI_SPC_COLUMNS})
    return pl.concat(parts, how="vertical_relaxed").select(KPI_SPC_COLUMNS)
