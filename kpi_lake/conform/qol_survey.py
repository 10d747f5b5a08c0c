"""Quality of Life survey → ``silver/qol_survey/responses`` (no personal data) and ``.../indicators``.

Only an allow-list of columns leaves bronze: a column the research agency adds next year (a phone number,
say) is never carried by accident. The respondent id is replaced by a keyed hash (HMAC-SHA256), so waves
can be linked by whoever holds the key and by nobody else. Indicators are weighted percentages with 95%
confidence limits (Wilson, on the effective sample size) and are suppressed on an unweighted base under 30.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import polars as pl

from kpi_lake.conform import Conformed, empty_quarantine, quarantine, require_columns, split_by_checks
from kpi_lake.conform.parsing import clean_text, parse_number
from kpi_lake.personal_data import PersonalSource, pseudonym_key

#: The only columns besides the answers (q01, q02, …) that silver keeps.
SAFE_COLUMNS = (
    "survey_year",
    "mode",
    "ward_code",
    "imd_decile",
    "age_band",
    "sex",
    "ethnic_group",
    "disability",
    "carer",
)
#: What of a survey row may leave bronze, quarantine included: the safe columns, the weight and the answers.
#: Anything else (a phone number, an email, a postcode, free text, a column added next year) stays in bronze.
PERSONAL_SOURCE = PersonalSource(allowed_columns=(*SAFE_COLUMNS, "weight"), allowed_pattern=r"q\d+[a-z]?")
#: Fields known to identify a person (the allow-list above is what protects them; this list names them).
PERSONAL_COLUMNS = (
    "respondent_id",
    "postcode",
    "email",
    "free_text_comment",
    "lsoa_code",
    "name",
    "phone",
    "address",
)
EQUALITY_GROUPS = ("age_band", "sex", "ethnic_group", "disability", "carer")
MIN_BASE = 30
DONT_KNOW = 9
Z_95 = 1.959964

RESPONSE_COLUMNS = {
    "respondent_key": "Pseudonymous respondent id: HMAC-SHA256 of wave and respondent id (the key is not in the lake)",
    "survey_year": "Wave: the autumn the fieldwork ran",
    "period_key": "The financial year the wave reports against (wave 2024 → FY2024-25)",
    "mode": "How the questionnaire was completed (online, paper)",
    "ward_code": "Respondent's ward (ONS code)",
    "imd_decile": "Index of Multiple Deprivation decile of the respondent's area (1 = most deprived 10%)",
    "age_band": "Age band",
    "sex": "Sex",
    "ethnic_group": "Ethnic group",
    "disability": "Disabled (Yes/No/Prefer not to say)",
    "carer": "Unpaid carer (Yes/No/Prefer not to say)",
    "weight": "Survey weight (calibrated to ward and age)",
    "answers": "Answers by question code: 1-5 on the question's scale, 9 = don't know, null = not answered",
}
INDICATOR_COLUMNS = {
    "indicator_code": "Question code the indicator is computed from (q01 …)",
    "indicator_name": "Indicator as published, e.g. '% satisfied with their local area'",
    "kpi_code": "The KPI this indicator feeds, where there is one",
    "survey_year": "Wave",
    "period_key": "Financial year the wave reports against",
    "breakdown": "council | ward | deprivation_decile | age_band | sex | ethnic_group | disability | carer",
    "geography_code": "The council (for council and equality-group breakdowns) or the ward",
    "group_value": "The group within the breakdown (a ward code, '1' for the most deprived decile, '16-24', …)",
    "weighted_percentage": "Weighted % of valid answers that are counted answers; null when suppressed",
    "lower_ci": "Lower 95% confidence limit (Wilson, effective sample size); null when suppressed",
    "upper_ci": "Upper 95% confidence limit; null when suppressed",
    "unweighted_base": "Respondents with a valid answer (1-5)",
    "effective_base": "Effective sample size after weighting (Kish)",
    "is_suppressed": "True when the unweighted base is under 30: no figure is published",
}


def pseudonymise(survey_year: pl.Series, respondent_id: pl.Series, key: bytes) -> pl.Series:
    # A keyed hash per respondent. Survey waves are a few thousand rows, so a loop over hashlib is cheap,
    # and polars has no keyed cryptographic hash to do it in the engine.
    values = [
        hmac.new(key, f"{year}:{rid}".encode(), hashlib.sha256).hexdigest()[:20]
        for year, rid in zip(survey_year.to_list(), respondent_id.to_list(), strict=True)
    ]
    return pl.Series("respondent_key", values, dtype=pl.String)


def _answer_columns(columns: list[str]) -> list[str]:
    return sorted(c for c in columns if re.fullmatch(r"q\d+[a-z]?", c))


def conform_responses(responses: pl.LazyFrame | None, key: bytes | None = None) -> Conformed:
    """Typed responses without personal fields; rows with an unusable weight, wave or answer quarantined
    (the quarantine rows carry only allow-listed fields: :data:`PERSONAL_SOURCE`).

    ``key`` is the pseudonym key; without it, the key from the environment (see
    :func:`kpi_lake.personal_data.pseudonym_key`: the development key is refused unless allowed)."""
    if responses is None:
        return Conformed(rows=pl.DataFrame(schema={"respondent_key": pl.String}))
    require_columns(
        responses, ["respondent_id", "survey_year", "weight", "ward_code"], what="survey microdata"
    )
    frame = responses.collect()
    answers = _answer_columns(frame.columns)
    typed = frame.with_columns(
        parse_number("weight").alias("_weight"),
        parse_number("survey_year").cast(pl.Int32, strict=False).alias("_year"),
        parse_number("imd_decile").cast(pl.Int8, strict=False).alias("_imd")
        if "imd_decile" in frame.columns
        else pl.lit(None, pl.Int8).alias("_imd"),
        *[parse_number(q).alias(f"_{q}") for q in answers],
    )
    source = "bronze/qol_survey/responses"
    problems = []
    checks = [
        (pl.col("_weight").is_null() | (pl.col("_weight") <= 0), "weight", "weight is not a positive number"),
        (
            pl.col("_year").is_null() | ~pl.col("_year").is_between(1990, 2100),
            "survey_year",
            "survey_year is not a year",
        ),
        (clean_text("respondent_id").is_null(), "respondent_id", "no respondent id"),
    ]
    for q in answers:
        valid = pl.col(f"_{q}").is_null() & clean_text(q).is_null() | pl.col(f"_{q}").is_in(
            [1.0, 2.0, 3.0, 4.0, 5.0, float(DONT_KNOW)]
        )
        checks.append((~valid, q, f"answer is not 1-5 or {DONT_KNOW} (don't know)"))
    good, problem_rows = split_by_checks(typed, checks, source_table=source, allowed=PERSONAL_SOURCE.allows)
    if problem_rows.height:
        problems.append(problem_rows)
    respondent_ids = good.select(clean_text("respondent_id"))["respondent_id"]
    keys = pseudonymise(good["_year"], respondent_ids, key or pseudonym_key(None))
    duplicated = keys.is_duplicated()
    if duplicated.any():
        problems.append(
            quarantine(
                good.filter(duplicated),
                source_table=source,
                column="respondent_id",
                reason="the same respondent id appears twice in one wave",
                allowed=PERSONAL_SOURCE.allows,
            )
        )
        good, keys = good.filter(~duplicated), keys.filter(~duplicated)
    rows = good.select(
        keys,
        pl.col("_year").alias("survey_year"),
        pl.format(
            "FY{}-{}", pl.col("_year"), ((pl.col("_year") + 1) % 100).cast(pl.String).str.zfill(2)
        ).alias("period_key"),
        *[
            (clean_text(c) if c in good.columns else pl.lit(None, pl.String)).alias(c)
            for c in ("mode", "ward_code")
        ],
        pl.col("_imd").alias("imd_decile"),
        *[
            (clean_text(c) if c in good.columns else pl.lit(None, pl.String)).alias(c)
            for c in EQUALITY_GROUPS
        ],
        pl.col("_weight").alias("weight"),
        pl.struct([pl.col(f"_{q}").cast(pl.Int8).alias(q) for q in answers]).alias("answers")
        if answers
        else pl.lit(None).alias("answers"),
    )
    return Conformed(rows=rows, quarantine=pl.concat(problems) if problems else empty_quarantine())


def _wilson(p: pl.Expr, n: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_95 * ((p * (1 - p) / n + z2 / (4 * n * n)).sqrt()) / (1 + z2 / n)
    return (centre - half) * 100, (centre + half) * 100


def conform_indicators(
    responses: pl.LazyFrame | None, codebook: pl.LazyFrame | None, geographies: pl.LazyFrame | None = None
) -> Conformed:
    """Weighted percentages per indicator, wave and group, with confidence limits and suppression."""
    if responses is None or codebook is None:
        return Conformed(rows=pl.DataFrame(schema={"indicator_code": pl.String}))
    require_columns(codebook, ["question", "indicator_name", "positive_answers"], what="survey codebook")
    book = codebook.select(
        clean_text("question").str.to_lowercase().alias("indicator_code"),
        clean_text("indicator_name").alias("indicator_name"),
        clean_text("positive_answers")
        .str.split(";")
        .list.eval(pl.element().str.strip_chars().cast(pl.Int8, strict=False))
        .alias("positive"),
        (
            clean_text("kpi_code")
            if "kpi_code" in codebook.collect_schema().names()
            else pl.lit(None, pl.String)
        ).alias("kpi_code"),
    ).unique("indicator_code", keep="last")
    schema = responses.collect_schema()
    answers = list(schema["answers"].to_schema()) if isinstance(schema.get("answers"), pl.Struct) else []
    book_rows = book.collect()
    positive = {row["indicator_code"]: row["positive"] for row in book_rows.iter_rows(named=True)}
    questions = [q for q in answers if q in positive]
    # One pass per breakdown over the wide responses, every question's sums at once (no long unpivot of
    # responses × questions, which is most of the memory at large scales).
    wide = (
        responses.select(
            "survey_year", "period_key", "ward_code", "imd_decile", *EQUALITY_GROUPS, "weight", "answers"
        )
        .unnest("answers")
        .collect()
    )
    weight = pl.col("weight")
    sums = []
    for q in questions:
        valid = pl.col(q).is_between(1, 5)
        counted = valid & pl.col(q).is_in([int(a) for a in positive[q] if a is not None])
        sums += [
            weight.filter(counted).sum().alias(f"{q}__counted"),
            weight.filter(valid).sum().alias(f"{q}__weight"),
            (weight**2).filter(valid).sum().alias(f"{q}__weight_sq"),
            valid.sum().alias(f"{q}__base"),
        ]
    council = _council_code(geographies, responses)
    groups = {
        "council": pl.lit(council),
        "ward": pl.col("ward_code"),
        "deprivation_decile": pl.col("imd_decile").cast(pl.String),
        **{name: pl.col(name) for name in EQUALITY_GROUPS},
    }
    parts = []
    for breakdown, group in groups.items():
        totals = (
            wide.with_columns(group.cast(pl.String).alias("group_value"))
            .filter(pl.col("group_value").is_not_null())
            .group_by("survey_year", "period_key", "group_value")
            .agg(sums)
        )
        for q in questions:
            parts.append(
                totals.select(
                    pl.lit(q).alias("indicator_code"),
                    "survey_year",
                    "period_key",
                    "group_value",
                    pl.col(f"{q}__counted").alias("_counted"),
                    pl.col(f"{q}__weight").alias("_weight"),
                    pl.col(f"{q}__weight_sq").alias("_weight_sq"),
                    pl.col(f"{q}__base").cast(pl.Int64).alias("unweighted_base"),
                    pl.lit(breakdown).alias("breakdown"),
                    (pl.col("group_value") if breakdown == "ward" else pl.lit(council)).alias(
                        "geography_code"
                    ),
                ).filter(pl.col("unweighted_base") > 0)
            )
    if not parts:
        return Conformed(rows=pl.DataFrame(schema={"indicator_code": pl.String}))
    estimates = (
        pl.concat(parts)
        .join(
            book_rows.select("indicator_code", "indicator_name", "kpi_code"), on="indicator_code", how="left"
        )
        .lazy()
        .with_columns(
            (pl.col("_counted") / pl.col("_weight")).alias("_p"),
            (pl.col("_weight") ** 2 / pl.col("_weight_sq")).alias("effective_base"),
            (pl.col("unweighted_base") < MIN_BASE).alias("is_suppressed"),
        )
    )
    lower, upper = _wilson(pl.col("_p"), pl.col("effective_base"))
    rows = (
        estimates.with_columns(
            pl.when(~pl.col("is_suppressed")).then(pl.col("_p") * 100).alias("weighted_percentage"),
            pl.when(~pl.col("is_suppressed")).then(lower.clip(0, 100)).alias("lower_ci"),
            pl.when(~pl.col("is_suppressed")).then(upper.clip(0, 100)).alias("upper_ci"),
            pl.col("unweighted_base").cast(pl.Int64),
        )
        .select(list(INDICATOR_COLUMNS))
        .sort("indicator_code", "survey_year", "breakdown", "group_value")
        .collect()
    )
    return Conformed(rows=rows)


def _council_code(geographies: pl.LazyFrame | None, responses: pl.LazyFrame) -> str:
    """The council the survey's wards belong to (from the geography lookup), or 'council' if unknown."""
    if geographies is None:
        return "council"
    wards = responses.select(pl.col("ward_code").unique()).collect()["ward_code"]
    parents = (
        geographies.filter(pl.col("geography_code").is_in(wards.implode()))
        .select("parent_code")
        .collect()["parent_code"]
        .drop_nulls()
        .mode()
    )
    return parents.sort()[0] if parents.len() else "council"
