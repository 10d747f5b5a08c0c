"""The target review: is a KPI's target unchallenging, challenging and realistic, or unrealistic?

Pure functions, one KPI series at a time: the robust trend (Theil-Sen slope with Sen's 95 % interval, projected
to the target's period), the verdict, a suggested target range and the reason in plain English. The asset
``gold/kpi_mart/target_review`` (``assets/gold/spc.py``) applies them; the rules are explained to officers in
docs/SPC_AND_TARGETS.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from kpi_lake.spc import MIN_POINTS, SERIES_KEY, own_council_series, series_target, xmr

VERDICTS = ("unchallenging", "challenging_and_realistic", "unrealistic", "insufficient_data")
#: The trend is fitted over at most this many of the latest points (three years of quarters; a year of months).
TREND_POINTS = 12
#: Fewer points than this and no trend is fitted.
MIN_TREND_POINTS = 6
#: Two-sided 95 % normal quantile, for Sen's interval of the slope.
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class Trend:
    """A Theil-Sen line through the last ``points`` values, projected ``steps_ahead`` periods past the last."""

    points: int
    slope: float
    slope_low: float
    slope_high: float
    projection: float
    projection_low: float
    projection_high: float


def theil_sen(
    values: Sequence[float | None], steps_ahead: int = 0, *, last: int = TREND_POINTS
) -> Trend | None:
    """Theil-Sen trend of the last ``last`` non-null values (None below ``MIN_TREND_POINTS``).

    The slope is the median of the slopes between every pair of points (x = the position in the series, so a
    missing period keeps its place); its 95 % interval is Sen's (1968), from the normal approximation of
    Kendall's statistic, as ``scipy.stats.theilslopes`` computes it. The line passes through the median point
    (median x, median y); the projection to ``steps_ahead`` periods after the last point lies on it, and its
    interval on the lines of the interval's slopes through the same point.
    """
    y_all = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    x_all = np.arange(len(y_all), dtype=float)
    keep = ~np.isnan(y_all)
    x, y = x_all[keep][-last:], y_all[keep][-last:]
    n = len(y)
    if n < MIN_TREND_POINTS:
        return None
    i, j = np.triu_indices(n, k=1)
    slopes = np.sort((y[j] - y[i]) / (x[j] - x[i]))
    slope = float(np.median(slopes))
    pairs = len(slopes)
    sigma = math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    upper = min(round((pairs + _Z95 * sigma) / 2), pairs - 1)
    lower = max(round((pairs - _Z95 * sigma) / 2) - 1, 0)
    low, high = float(slopes[lower]), float(slopes[upper])
    x_centre, y_centre = float(np.median(x)), float(np.median(y))
    distance = (len(y_all) - 1 + steps_ahead) - x_centre
    ends = sorted((y_centre + low * distance, y_centre + high * distance))
    return Trend(n, slope, low, high, y_centre + slope * distance, ends[0], ends[1])


def _better(a: float, b: float, sign: int) -> float:
    return max(a, b) if sign > 0 else min(a, b)


def _worse(a: float, b: float, sign: int) -> float:
    return min(a, b) if sign > 0 else max(a, b)


def beyond(a: float, b: float, sign: int) -> bool:
    """``a`` is strictly better than ``b`` by the polarity ``sign`` (+1 higher is better, -1 lower)."""
    return sign * (a - b) > 0


@dataclass(frozen=True)
class Review:
    verdict: str
    suggested_target_low: float | None
    suggested_target_high: float | None
    reason: str


@dataclass(frozen=True)
class Evidence:
    """What the review of one KPI's target knows. ``sign``: +1 higher is better, -1 lower is better."""

    sign: int
    target: float
    target_period: str
    points: int
    latest_actual: float | None
    latest_period: str | None
    mean: float | None = None
    lpl: float | None = None
    upl: float | None = None
    assurance: str | None = None
    trend: Trend | None = None
    comparator_median: float | None = None
    top_quartile_value: float | None = None
    best_comparator_value: float | None = None
    best_comparator_name: str | None = None
    unit: str | None = None
    period_noun: str = "period"


def clear_trend(trend: Trend | None) -> bool:
    """A trend whose slope's 95 % interval excludes zero."""
    return trend is not None and (trend.slope_low > 0 or trend.slope_high < 0)


def current_level(e: Evidence) -> float | None:
    """Where performance is now: the trend's projection when the trend is clear, else the process mean."""
    return e.trend.projection if clear_trend(e.trend) else e.mean


def limits_now(e: Evidence) -> tuple[float, float]:
    """The process limits around the current level: the process's own limits, moved with a clear trend (centred
    on its projection, the same width), so a KPI that is moving is judged on where it is heading."""
    half_width = (e.upl - e.lpl) / 2
    centre = current_level(e)
    return centre - half_width, centre + half_width


def verdict(e: Evidence) -> str:
    """The rules, in order (docs/SPC_AND_TARGETS.md). The process limits are those of the latest actuals, moved
    with the trend when it is clear (:func:`limits_now`).

    1. ``insufficient_data``: no process limits (fewer than 12 points) or no actual.
    2. ``unchallenging``: the process passes the target consistently (it lies beyond the worse limit), or the
       target is worse than current performance (the latest actual, and the current level: the trend's
       projection when the trend is clear, its slope's interval excluding zero, else the process mean) and no
       better than the comparator median (where there is one).
    3. ``unrealistic``: the process fails it consistently (beyond the better limit), and it lies beyond the
       trend's reach (better than the better end of the projection's interval), and beyond the best
       comparator (where there are comparators).
    4. otherwise ``challenging_and_realistic``.
    """
    if e.points < MIN_POINTS or e.mean is None or e.lpl is None or e.upl is None or e.latest_actual is None:
        return "insufficient_data"
    s = e.sign
    lower, upper = limits_now(e)
    better_limit, worse_limit = (upper, lower) if s > 0 else (lower, upper)
    if beyond(worse_limit, e.target, s):
        return "unchallenging"
    worse_than_current = beyond(current_level(e), e.target, s) and beyond(e.latest_actual, e.target, s)
    if worse_than_current and (e.comparator_median is None or not beyond(e.target, e.comparator_median, s)):
        return "unchallenging"
    if beyond(e.target, better_limit, s):
        reach = None if e.trend is None else (e.trend.projection_high if s > 0 else e.trend.projection_low)
        beyond_trend = reach is None or beyond(e.target, reach, s)
        beyond_best = e.best_comparator_value is None or beyond(e.target, e.best_comparator_value, s)
        if beyond_trend and beyond_best:
            return "unrealistic"
    return "challenging_and_realistic"


def suggested_range(e: Evidence) -> tuple[float | None, float | None]:
    """A target range that stretches the process without leaving what it can reach, as (low, high).

    From the current level (the better of the process mean and the trend's projection: a target no better than
    that is met on current performance) to the better of the projection's better end and the top-quartile
    value, but no further than the better limit around the current level (beyond it the target is met only
    after the process changes). Percentages stay within 0-100. None without process limits.
    """
    if e.mean is None or e.lpl is None or e.upl is None:
        return None, None
    s = e.sign
    lower, upper = limits_now(e)
    better_limit = upper if s > 0 else lower
    start = e.mean if e.trend is None else _better(e.mean, e.trend.projection, s)
    end = start
    if e.trend is not None:
        end = _better(end, e.trend.projection_high if s > 0 else e.trend.projection_low, s)
    if e.top_quartile_value is not None:
        end = _better(end, e.top_quartile_value, s)
    end = _worse(end, _better(better_limit, start, s), s)
    if e.unit == "%":
        start, end = (min(100.0, max(0.0, v)) for v in (start, end))
    return min(start, end), max(start, end)


def fmt(value: float | None, unit: str | None = None) -> str:
    """A figure as an officer writes it: '96 %', '93.1 %', '1,480', '10.4 days'."""
    if value is None or math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    decimals = 0 if magnitude >= 1000 else 1 if magnitude >= 10 else 2
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if unit == "%":
        return f"{text} %"
    if unit and unit.lower() in ("days",):
        return f"{text} {unit.lower()}"
    return text


def reason(e: Evidence, verdict_: str, low: float | None, high: float | None) -> str:
    """One paragraph an officer can paste into a target-setting paper."""
    u = e.unit
    target = f"The target of {fmt(e.target, u)} for {e.target_period}"
    if verdict_ == "insufficient_data" and (e.mean is None or e.points < MIN_POINTS):
        return (
            f"{target} cannot be judged on the data: there are {e.points} {e.period_noun}s of actuals, and process "
            f"limits need at least {MIN_POINTS}. Until then, compare it with last year's outturn and the "
            "comparators by hand."
        )
    if verdict_ == "insufficient_data":
        return f"{target} cannot be judged: the KPI has no actual yet."
    s = e.sign
    worse_word, better_word = ("below", "above") if s > 0 else ("above", "below")
    lower, upper = limits_now(e)
    better_limit, worse_limit = (upper, lower) if s > 0 else (lower, upper)
    moved = " (moved with the trend)" if clear_trend(e.trend) else ""
    if beyond(e.target, better_limit, s):
        position = (
            f"{target} lies {better_word} the {'upper' if s > 0 else 'lower'} process limit{moved} of "
            f"{fmt(better_limit, u)}: on current performance it will not be met without a change in how the "
            "service works."
        )
    elif beyond(worse_limit, e.target, s):
        position = (
            f"{target} lies {worse_word} the {'lower' if s > 0 else 'upper'} process limit{moved} of "
            f"{fmt(worse_limit, u)}: the service meets it every {e.period_noun} without changing anything, so it "
            "does not stretch performance."
        )
    else:
        centre = "projected level" if moved else "mean"
        position = (
            f"{target} lies within the process limits{moved} ({fmt(lower, u)} to {fmt(upper, u)}, "
            f"{centre} {fmt(current_level(e), u)}): on current performance it will be met in some "
            f"{e.period_noun}s and missed in others."
        )
    sentences = [position]
    latest = f"The latest actual ({e.latest_period}) is {fmt(e.latest_actual, u)}."
    sentences.append(latest)
    if e.trend is not None:
        step = e.trend.slope * s
        if not clear_trend(e.trend):
            direction = "no clear trend"
        else:
            direction = "an improving trend" if step > 0 else "a worsening trend"
        sentences.append(
            f"Over the last {e.trend.points} {e.period_noun}s there is {direction} "
            f"({fmt(e.trend.slope, None)} a {e.period_noun}); projected to {e.target_period} it reaches "
            f"{fmt(e.trend.projection, u)} (95 % range {fmt(e.trend.projection_low, u)} to "
            f"{fmt(e.trend.projection_high, u)})."
        )

    comparators = []
    if e.best_comparator_value is not None:
        name = f" ({e.best_comparator_name})" if e.best_comparator_name else ""
        comparators.append(f"the best comparator{name} reaches {fmt(e.best_comparator_value, u)}")
    if e.top_quartile_value is not None:
        comparators.append(f"the top quarter starts at {fmt(e.top_quartile_value, u)}")
    if e.comparator_median is not None:
        comparators.append(f"the comparator median is {fmt(e.comparator_median, u)}")
    if comparators:
        text = "; ".join(comparators)
        sentences.append(text[0].upper() + text[1:] + ".")
    label = verdict_.replace("_", " ")
    if low is not None and high is not None:
        span = fmt(low, u) if fmt(low, u) == fmt(high, u) else f"between {fmt(low, u)} and {fmt(high, u)}"
        sentences.append(f"Verdict: {label}; a challenging yet realistic target would be {span}.")
    else:
        sentences.append(f"Verdict: {label}.")
    return " ".join(sentences)


def review(e: Evidence) -> Review:
    """Verdict, suggested range and reason for one KPI's target."""
    verdict_ = verdict(e)
    low, high = suggested_range(e)
    return Review(verdict_, low, high, reason(e, verdict_, low, high))


# ---- the mart's target review table -----------------------------------------------------------------------

TARGET_REVIEW_COLUMNS = (
    "kpi_code",
    "period_type",
    "target_period_key",
    "target",
    "latest_period_key",
    "latest_actual",
    "polarity",
    "unit",
    "series_points",
    "process_mean",
    "lpl",
    "upl",
    "assurance_type",
    "variation_type",
    "trend_points",
    "trend_slope",
    "trend_slope_low",
    "trend_slope_high",
    "projected_value",
    "projected_low",
    "projected_high",
    "comparator_period_key",
    "comparator_median",
    "top_quartile_value",
    "best_comparator_code",
    "best_comparator_name",
    "best_comparator_value",
    "verdict",
    "suggested_target_low",
    "suggested_target_high",
    "reason",
)
_PERIOD_NOUN = {
    "quarter": "quarter",
    "month": "month",
    "financial_year": "year",
    "academic_year": "year",
    "calendar_year": "year",
}


def peer_statistics(values: Sequence[float], codes: Sequence[str], own_code: str, sign: int) -> dict:
    """Median of the own council and its comparators, the top-quartile value (the worst value in the best
    quarter, quarters as the mart ranks them: quartile = (rank - 1) x 4 // count + 1) and the best comparator
    (the own council left out). Empty with fewer than two values."""
    if len(values) < 2:
        return {}
    order = np.argsort(-sign * np.asarray(values, dtype=float), kind="stable")
    ranked = np.asarray(values, dtype=float)[order]
    top_quarter = ranked[math.ceil(len(ranked) / 4) - 1]
    others = [(v, c) for v, c in zip(values, codes, strict=True) if c != own_code]
    # Among comparators with the same best value, the lowest code: the same answer whatever the rows' order.
    best = min(others, key=lambda vc: (-sign * vc[0], vc[1])) if others else (None, None)
    return {
        "comparator_median": float(np.median(values)),
        "top_quartile_value": float(top_quarter),
        "best_comparator_value": None if best[0] is None else float(best[0]),
        "best_comparator_code": best[1],
    }


def build_target_review(
    fact: pl.LazyFrame, kpis: pl.LazyFrame, periods: pl.LazyFrame, geographies: pl.LazyFrame
) -> pl.DataFrame:
    """``gold/kpi_mart/target_review``: one row per own-council KPI series (KPI and period type) with a target
    and a better direction: the latest target and actual, the process, the trend projected to the target's
    period, the comparators of the latest period that has them, the verdict, a suggested range and the reason."""
    series = own_council_series(fact, kpis, periods, geographies).collect()
    geos = geographies.select("geography_code", "geography_name", "is_own_council", "is_comparator").collect()
    own_code = geos.filter(pl.col("is_own_council"))["geography_code"].first()
    names = dict(geos.select("geography_code", "geography_name").iter_rows())
    peer_codes = geos.filter(pl.col("is_own_council") | pl.col("is_comparator")).select("geography_code")
    peers = (
        fact.join(peer_codes.lazy(), on="geography_code", how="semi")
        .filter(pl.col("actual").is_not_null())
        .select("kpi_code", "period_key", "geography_code", "actual")
        .collect()
    )
    peers_of = peers.partition_by("kpi_code", as_dict=True, include_key=False)
    no_peers = peers.clear().drop("kpi_code")
    rows = []
    for frame in series.partition_by(list(SERIES_KEY), maintain_order=True):
        first = frame.row(0, named=True)
        improvement = first["improvement"]
        target, target_period = series_target(frame)
        if target is None or improvement == "neutral":
            continue
        sign = 1 if improvement == "increase" else -1
        periods_in_order = frame["period_key"].to_list()
        actuals = frame["actual"].to_list()
        with_actual = [i for i, v in enumerate(actuals) if v is not None]
        points = len(with_actual)
        latest = with_actual[-1] if with_actual else None
        target_index = periods_in_order.index(target_period)
        # The process as it is now: the latest TREND_POINTS actuals (the trend's window), so that a KPI that has
        # moved over the years is judged on where it is, not on its history.
        recent = frame["actual"].drop_nulls().tail(TREND_POINTS)
        chart = xmr(recent, improvement, target) if points >= MIN_POINTS else None
        last = chart.row(-1, named=True) if chart is not None else {}
        trend = (
            theil_sen(actuals[: latest + 1], steps_ahead=target_index - latest)
            if latest is not None
            else None
        )
        peer_period, stats = None, {}
        kpi_peers = peers_of.get((first["kpi_code"],), no_peers)
        for index in range(target_index, -1, -1):  # the latest period up to the target's with comparators
            at = kpi_peers.filter(pl.col("period_key") == periods_in_order[index])
            stats = peer_statistics(at["actual"].to_list(), at["geography_code"].to_list(), own_code, sign)
            if stats:
                peer_period = periods_in_order[index]
                break
        evidence = Evidence(
            sign=sign,
            target=target,
            target_period=target_period,
            points=points,
            latest_actual=None if latest is None else float(actuals[latest]),
            latest_period=None if latest is None else periods_in_order[latest],
            mean=last.get("mean"),
            lpl=last.get("lpl"),
            upl=last.get("upl"),
            assurance=last.get("assurance_type"),
            trend=trend,
            comparator_median=stats.get("comparator_median"),
            top_quartile_value=stats.get("top_quartile_value"),
            best_comparator_value=stats.get("best_comparator_value"),
            best_comparator_name=names.get(stats.get("best_comparator_code")),
            unit=first["unit"],
            period_noun=_PERIOD_NOUN.get(first["period_type"], "period"),
        )
        result = review(evidence)
        rows.append(
            {
                "kpi_code": first["kpi_code"],
                "period_type": first["period_type"],
                "target_period_key": target_period,
                "target": target,
                "latest_period_key": evidence.latest_period,
                "latest_actual": evidence.latest_actual,
                "polarity": first["polarity"],
                "unit": first["unit"],
                "series_points": points,
                "process_mean": evidence.mean,
                "lpl": evidence.lpl,
                "upl": evidence.upl,
                "assurance_type": evidence.assurance,
                "variation_type": last.get("variation_type"),
                "trend_points": None if trend is None else trend.points,
                "trend_slope": None if trend is None else trend.slope,
                "trend_slope_low": None if trend is None else trend.slope_low,
                "trend_slope_high": None if trend is None else trend.slope_high,
                "projected_value": None if trend is None else trend.projection,
                "projected_low": None if trend is None else trend.projection_low,
                "projected_high": None if trend is None else trend.projection_high,
                "comparator_period_key": peer_period,
                "comparator_median": evidence.comparator_median,
                "top_quartile_value": evidence.top_quartile_value,
                "best_comparator_code": stats.get("best_comparator_code"),
                "best_comparator_name": evidence.best_comparator_name,
                "best_comparator_value": evidence.best_comparator_value,
                "verdict": result.verdict,
                "suggested_target_low": result.suggested_target_low,
                "suggested_target_high": result.suggested_target_high,
                "reason": result.reason,
            }
        )
    return pl.DataFrame(rows, schema=TARGET_REVIEW_SCHEMA)


def _schema() -> dict[str, type[pl.DataType]]:
    text = {
        "kpi_code", "period_type", "target_period_key", "latest_period_key", "polarity", "unit",
        "assurance_type", "variation_type", "comparator_period_key", "best_comparator_code",
        "best_comparator_name", "verdict", "reason",
    }  # fmt: skip
    whole = {"series_points", "trend_points"}
    return {
        c: pl.String if c in text else pl.Int64 if c in whole else pl.Float64 for c in TARGET_REVIEW_COLUMNS
    }


TARGET_REVIEW_SCHEMA = _schema()
