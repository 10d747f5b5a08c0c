"""The KPI mart's performance rules, as polars expressions: RAG status, direction of travel, comparator
statistics and reconciliation, plus :func:`build_fact_kpi_value`, which applies them to the catalogue's values.

These are the only implementation of the rules: the fact asset (``assets/gold/kpi_mart.py``) applies them, and
the tests re-derive every stored status with them. See docs/KPI_MART.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

HIGHER = "higher_is_better"
LOWER = "lower_is_better"
NEITHER = "neither"
POLARITIES = (HIGHER, LOWER, NEITHER)
RAG_STATUSES = ("green", "amber", "red", "no_target", "no_data")
DIRECTIONS = ("improving", "stable", "worsening", "not_comparable")

#: Amber band when a KPI sets no tolerance of its own: within 5 % of the target on the wrong side.
DEFAULT_TOLERANCE_PCT = 5.0
#: A change of no more than 1 % of the value compared with is "stable" (KPIs without confidence intervals).
STABLE_BAND_PCT = 1.0
#: SPAR.net's figure agrees with the lake's when it is within 0.5 % of it.
RECONCILE_TOLERANCE_PCT = 0.5
#: Absorbs binary floating-point error at exact boundaries (81 × 0.95 is not exactly 76.95).
_EPSILON = 1e-9

ExprLike = str | pl.Expr | float | int | None


def _expr(value: ExprLike) -> pl.Expr:
    """A column name, an expression, or a literal (numbers and None) as an expression."""
    if isinstance(value, pl.Expr):
        return value
    if isinstance(value, str):
        return pl.col(value)
    return pl.lit(value, dtype=pl.Float64)


def _polarity(polarity: ExprLike) -> pl.Expr:
    """A polarity value (``"higher_is_better"``, …) as a literal; any other text names a column."""
    if isinstance(polarity, str) and polarity in POLARITIES:
        return pl.lit(polarity)
    return _expr(polarity)


def _better_sign(polarity: pl.Expr) -> pl.Expr:
    """+1 when higher is better, -1 when lower is better, null otherwise (no better direction)."""
    return pl.when(polarity == HIGHER).then(1.0).when(polarity == LOWER).then(-1.0)


# ---- RAG ------------------------------------------------------------------------------------------------


def rag_status(
    actual: ExprLike, target: ExprLike, polarity: ExprLike, tolerance_pct: ExprLike = None
) -> pl.Expr:
    """green | amber | red | no_target | no_data for each row. Each argument is a column name, an expression
    or a literal; ``polarity`` may also be a polarity value such as ``"lower_is_better"``.

    - ``no_data``: no actual.
    - ``no_target``: no target, or a KPI whose polarity is ``neither`` (or unknown): on target has no meaning.
    - ``green``: on or better than the target (higher_is_better: actual ≥ target; lower_is_better: ≤).
    - ``amber``: on the wrong side by no more than ``tolerance_pct`` % of the target (the boundary is amber).
    - ``red``: further off.

    ``tolerance_pct`` is the KPI's ``rag_tolerance_pct``; null means :data:`DEFAULT_TOLERANCE_PCT`.
    """
    actual_, target_ = _expr(actual), _expr(target)
    polarity_ = _polarity(polarity)
    tolerance = _expr(tolerance_pct).fill_null(DEFAULT_TOLERANCE_PCT) / 100.0
    sign = _better_sign(polarity_)
    shortfall = (target_ - actual_) * sign  # > 0: on the wrong side of the target
    allowed = target_.abs() * tolerance + _EPSILON * pl.max_horizontal(target_.abs(), pl.lit(1.0))
    return (
        pl.when(actual_.is_null())
        .then(pl.lit("no_data"))
        .when(sign.is_null() | target_.is_null())
        .then(pl.lit("no_target"))
        .when(shortfall <= 0)
        .then(pl.lit("green"))
        .when(shortfall <= allowed)
        .then(pl.lit("amber"))
        .otherwise(pl.lit("red"))
        .alias("rag_status")
    )


# ---- direction of travel --------------------------------------------------------------------------------


def direction_of_travel(
    actual: ExprLike,
    comparison: ExprLike,
    polarity: ExprLike,
    lower_ci: ExprLike = None,
    upper_ci: ExprLike = None,
    comparison_lower_ci: ExprLike = None,
    comparison_upper_ci: ExprLike = None,
    stable_band_pct: float = STABLE_BAND_PCT,
) -> pl.Expr:
    """improving | stable | worsening | not_comparable: ``actual`` against ``comparison`` (in the mart, the
    same period last year, or the previous period where there is no value a year earlier).

    - ``not_comparable``: either value is missing, or the KPI's polarity is ``neither`` (no better direction).
    - **Survey-based values** (both periods carry a confidence interval: all four CI arguments non-null):
      ``stable`` when the two intervals overlap (touching counts as overlapping), otherwise improving or
      worsening by the KPI's polarity. The change must be statistically distinguishable to count.
    - **Every other value**: ``stable`` when the change is no more than ``stable_band_pct`` % of the
      comparison value (default 1 %: 80.0 → 80.8 is stable, 80.0 → 80.9 is not; a comparison of 0 is stable
      only against 0), otherwise improving or worsening by the KPI's polarity.
    """
    actual_, comparison_ = _expr(actual), _expr(comparison)
    polarity_ = _polarity(polarity)
    lower, upper = _expr(lower_ci), _expr(upper_ci)
    comparison_lower, comparison_upper = _expr(comparison_lower_ci), _expr(comparison_upper_ci)
    sign = _better_sign(polarity_)
    change = actual_ - comparison_
    better = pl.when(change * sign > 0).then(pl.lit("improving")).otherwise(pl.lit("worsening"))
    has_intervals = pl.all_horizontal(
        lower.is_not_null(),
        upper.is_not_null(),
        comparison_lower.is_not_null(),
        comparison_upper.is_not_null(),
    )
    overlap = (lower <= comparison_upper) & (comparison_lower <= upper)
    band = comparison_.abs() * (stable_band_pct / 100.0) + _EPSILON * pl.max_horizontal(
        comparison_.abs(), pl.lit(1.0)
    )
    return (
        pl.when(actual_.is_null() | comparison_.is_null() | sign.is_null())
        .then(pl.lit("not_comparable"))
        .when(has_intervals & overlap)
        .then(pl.lit("stable"))
        .when(has_intervals)
        .then(better)
        .when(change.abs() <= band)
        .then(pl.lit("stable"))
        .otherwise(better)
        .alias("direction_of_travel")
    )


# ---- comparators ----------------------------------------------------------------------------------------


def comparator_rank(value: ExprLike, polarity: ExprLike, by: Sequence[str]) -> pl.Expr:
    """Rank within each ``by`` group, 1 = best by polarity (highest value when higher is better, lowest when
    lower is better). Ties share the best rank of the tie and the next rank is skipped (1, 2, 2, 4). Null for
    a missing value and for polarity ``neither``."""
    ordered = _expr(value) * -_better_sign(_polarity(polarity))  # ascending order of this puts the best first
    return ordered.rank(method="min").over(list(by)).cast(pl.Int64).alias("comparator_rank")


def comparator_quartile(rank: ExprLike, count: ExprLike) -> pl.Expr:
    """The quarter of the ranking a rank falls in, 1 = the best quarter: of 16 councils, ranks 1-4 are
    quartile 1, 5-8 quartile 2, 9-12 quartile 3 and 13-16 quartile 4 (``floor(4 × (rank - 1) / count) + 1``)."""
    rank_, count_ = _expr(rank), _expr(count)
    return (((rank_ - 1) * 4) // count_ + 1).cast(pl.Int64).alias("comparator_quartile")


def comparator_statistics(
    values: pl.LazyFrame,
    *,
    value: str = "actual",
    polarity: str = "polarity",
    by: Sequence[str] = ("kpi_code", "period_key"),
) -> pl.LazyFrame:
    """Add ``comparator_median``, ``comparator_quartile``, ``comparator_rank`` and ``comparator_count`` to each
    row of ``values``: statistics over every row of its ``by`` group (pass the own council and its comparators
    only). ``comparator_count`` counts the councils with a value; with fewer than two there is nothing to
    compare with, and all four are null. Median is the usual median (the mean of the middle two for an even
    count); rank and quartile are as :func:`comparator_rank` and :func:`comparator_quartile`."""
    group = list(by)
    count = pl.col(value).count().over(group)
    enough = count >= 2
    return (
        values.with_columns(
            comparator_count=count.cast(pl.Int64),
            comparator_median=pl.col(value).median().over(group),
            comparator_rank=comparator_rank(value, polarity, group),
        )
        .with_columns(
            comparator_quartile=comparator_quartile("comparator_rank", "comparator_count"),
        )
        .with_columns(
            pl.when(enough).then(pl.col(name)).alias(name)
            for name in ("comparator_median", "comparator_quartile", "comparator_rank", "comparator_count")
        )
    )


def what_good_looks_like(
    values: pl.LazyFrame,
    *,
    value: str = "actual",
    polarity: str = "polarity",
    by: Sequence[str] = ("kpi_code", "period_key"),
    is_own: str = "is_own_council",
    name: str = "geography_name",
) -> pl.LazyFrame:
    """Per ``by`` group (the own council and its comparators), what good looks like:

    - ``top_quartile_value``: where the best quarter starts, the value of the council ranked
      ``ceil(count / 4)``-th best by polarity (any council at least as good is in quartile 1, as
      :func:`comparator_quartile` ranks);
    - ``best_comparator_code``, ``best_comparator_name``, ``best_comparator_value``: the best comparator (not
      the own council) by polarity; ties go to the lowest code.

    One row per group; null where fewer than two councils have a value, or the polarity is ``neither``."""
    group = list(by)
    ordered = pl.col(value) * -_better_sign(_polarity(polarity))  # ascending: best first
    rows = values.filter(pl.col(value).is_not_null()).with_columns(_order=ordered)
    quartile = (
        rows.sort([*group, "_order", "geography_code"])
        .group_by(group, maintain_order=True)
        .agg(
            pl.len().alias("_count"),
            pl.col(value).alias("_values"),
            pl.col("_order").null_count().alias("_unordered"),
        )
        .with_columns(
            top_quartile_value=pl.when((pl.col("_count") >= 2) & (pl.col("_unordered") == 0)).then(
                pl.col("_values").list.get(((pl.col("_count") + 3) // 4 - 1).cast(pl.Int64), null_on_oob=True)
            )
        )
        .select(*group, "top_quartile_value", "_count", "_unordered")
    )
    best = (
        rows.filter(~pl.col(is_own).fill_null(False))
        .sort([*group, "_order", "geography_code"])
        .group_by(group, maintain_order=True)
        .agg(
            pl.col("geography_code").first().alias("best_comparator_code"),
            pl.col(name).first().alias("best_comparator_name"),
            pl.col(value).first().alias("best_comparator_value"),
        )
    )
    enough = (pl.col("_count") >= 2) & (pl.col("_unordered") == 0)
    return (
        quartile.join(best, on=group, how="left")
        .with_columns(
            pl.when(enough).then(pl.col(c)).alias(c)
            for c in ("best_comparator_code", "best_comparator_name", "best_comparator_value")
        )
        .drop("_count", "_unordered")
    )


# ---- reconciliation -------------------------------------------------------------------------------------


def reconcile(
    computed: ExprLike, reported: ExprLike, tolerance_pct: float = RECONCILE_TOLERANCE_PCT
) -> pl.Expr:
    """A struct (``is_reconciled``, ``reconciliation_note``) comparing the lake's computed actual with the
    figure SPAR.net reports for the same KPI, period and council.

    - Both present and no more than ``tolerance_pct`` % apart (relative to the computed figure): reconciled,
      no note.
    - Further apart: not reconciled, with a note giving both figures and the gap. The mart uses the computed
      figure either way; the reported one stays in ``source_lineage``.
    - Either missing: null (nothing to reconcile).
    """
    computed_, reported_ = _expr(computed), _expr(reported)
    gap = (computed_ - reported_).abs()
    relative = (
        pl.when(computed_ != 0).then(gap / computed_.abs()).when(gap == 0).then(0.0).otherwise(float("inf"))
    )
    both = computed_.is_not_null() & reported_.is_not_null()
    is_reconciled = pl.when(both).then(relative <= tolerance_pct / 100.0 + _EPSILON)
    note = pl.when(both & ~(relative <= tolerance_pct / 100.0 + _EPSILON)).then(
        pl.format(
            "SPAR.net reports {} but the lake computes {} ({}% apart, more than {}%): the computed figure is used",
            reported_,
            computed_,
            (relative * 100).round(1),
            pl.lit(tolerance_pct),
        )
    )
    return pl.struct(is_reconciled.alias("is_reconciled"), note.alias("reconciliation_note")).alias(
        "reconciliation"
    )


# ---- the fact table -------------------------------------------------------------------------------------

FACT_COLUMNS = (
    "kpi_code",
    "period_key",
    "geography_code",
    "actual",
    "target",
    "numerator",
    "denominator",
    "lower_ci",
    "upper_ci",
    "base",
    "rag_status",
    "direction_of_travel",
    "previous_period_actual",
    "same_period_last_year_actual",
    "comparator_median",
    "comparator_quartile",
    "comparator_rank",
    "comparator_count",
    "narrative",
    "source_system",
    "source_lineage",
    "is_reconciled",
    "reconciliation_note",
    # Beyond the contract: the confidence interval of the value direction_of_travel compared with, so the
    # direction can be re-derived from the row alone.
    "comparison_lower_ci",
    "comparison_upper_ci",
    # What good looks like: where the comparators' best quarter starts and the best comparator, with the gap
    # from each row's value to both (positive = the row is above; read with the KPI's polarity).
    "top_quartile_value",
    "best_comparator_code",
    "best_comparator_name",
    "best_comparator_value",
    "gap_to_top_quartile",
    "gap_to_best_comparator",
)
FACT_KEY = ("kpi_code", "period_key", "geography_code")


def build_fact_kpi_value(
    values: pl.LazyFrame,
    kpis: pl.LazyFrame,
    periods: pl.LazyFrame,
    geographies: pl.LazyFrame,
) -> pl.LazyFrame:
    """The fact table: one row per KPI, period and geography, with every rule applied.

    ``values`` is ``silver/kpi_catalogue/kpi_values`` (one chosen value per key, with target, narrative,
    lineage and the computed and reported actuals); ``kpis``, ``periods`` and ``geographies`` are the mart's
    ``dim_kpi``, ``dim_period`` and ``dim_geography``.

    - previous period: the same KPI and geography, the period of the same type that ends the day before this
      one starts; same period last year: the period of the same type starting one year earlier.
    - direction_of_travel compares with the same period last year, or with the previous period when there is
      no value a year earlier (so a KPI in its first year still has a trend).
    - comparator statistics are over the own council and its comparators, per KPI and period.
    """
    rows = values.join(
        kpis.select("kpi_code", "polarity", "rag_tolerance_pct"), on="kpi_code", how="left"
    ).join(
        periods.select("period_key", "period_type", "period_start", "period_end"), on="period_key", how="left"
    )
    lookup = rows.select(
        "kpi_code",
        "geography_code",
        "period_type",
        "period_start",
        "period_end",
        pl.col("actual").alias("_actual"),
        pl.col("lower_ci").alias("_lower_ci"),
        pl.col("upper_ci").alias("_upper_ci"),
    )
    along = ["kpi_code", "geography_code", "period_type"]
    previous = lookup.select(
        *along,
        (pl.col("period_end") + pl.duration(days=1)).alias("period_start"),
        pl.col("_actual").alias("previous_period_actual"),
        pl.col("_lower_ci").alias("_previous_lower_ci"),
        pl.col("_upper_ci").alias("_previous_upper_ci"),
    )
    last_year = lookup.select(
        *along,
        pl.col("period_start").dt.offset_by("1y").alias("period_start"),
        pl.col("_actual").alias("same_period_last_year_actual"),
        pl.col("_lower_ci").alias("_last_year_lower_ci"),
        pl.col("_upper_ci").alias("_last_year_upper_ci"),
    )
    rows = rows.join(previous, on=[*along, "period_start"], how="left").join(
        last_year, on=[*along, "period_start"], how="left"
    )
    use_last_year = pl.col("same_period_last_year_actual").is_not_null()
    rows = rows.with_columns(
        comparison_lower_ci=pl.when(use_last_year)
        .then(pl.col("_last_year_lower_ci"))
        .otherwise(pl.col("_previous_lower_ci")),
        comparison_upper_ci=pl.when(use_last_year)
        .then(pl.col("_last_year_upper_ci"))
        .otherwise(pl.col("_previous_upper_ci")),
    ).with_columns(
        rag_status("actual", "target", pl.col("polarity"), pl.col("rag_tolerance_pct")),
        direction_of_travel(
            "actual",
            pl.coalesce("same_period_last_year_actual", "previous_period_actual"),
            pl.col("polarity"),
            "lower_ci",
            "upper_ci",
            "comparison_lower_ci",
            "comparison_upper_ci",
        ),
        reconcile("computed_actual", "reported_actual").struct.unnest(),
    )

    group = geographies.filter(pl.col("is_own_council") | pl.col("is_comparator")).select("geography_code")
    statistics = comparator_statistics(
        rows.join(group, on="geography_code", how="semi").select(*FACT_KEY, "actual", "polarity")
    ).select(*FACT_KEY, "comparator_median", "comparator_quartile", "comparator_rank", "comparator_count")
    rows = rows.join(statistics, on=list(FACT_KEY), how="left")
    compared = rows.join(
        geographies.filter(pl.col("is_own_council") | pl.col("is_comparator")).select(
            "geography_code", "geography_name", "is_own_council"
        ),
        on="geography_code",
        how="inner",
    ).select(
        "kpi_code", "period_key", "geography_code", "geography_name", "is_own_council", "actual", "polarity"
    )
    good = what_good_looks_like(compared)
    rows = rows.join(good, on=["kpi_code", "period_key"], how="left").with_columns(
        gap_to_top_quartile=pl.col("actual") - pl.col("top_quartile_value"),
        gap_to_best_comparator=pl.col("actual") - pl.col("best_comparator_value"),
    )
    return rows.select(FACT_COLUMNS).sort(FACT_KEY)
