"""Parsing published text into values: numbers as councils and the ONS write them (decimal commas too, where
the file uses them), suppression, UK dates; NaN, infinities and impossible dates are never values.

All are polars expressions, so they run vectorised inside lazy plans.
"""

from __future__ import annotations

import polars as pl

#: Suppression and missing-value symbols in official statistics (DfE EES, ONS, LG Inform).
#: c confidential, x not available, z not applicable, k rounds to zero, u low reliability, low (a low count),
#: '.' and ':' in older releases; NA / n/a / - in councils' own files.
SUPPRESSION_CODES = ("c", "x", "z", "k", "u", "low", ".", ":", "..", "[c]", "[x]", "[z]", "[u]", "[low]")
MISSING_TEXT = ("", "na", "n/a", "n.a.", "-", "–", "null", "none", "#n/a")


def clean_text(column: str | pl.Expr) -> pl.Expr:
    """Trimmed text, with empty strings as null."""
    expr = pl.col(column) if isinstance(column, str) else column
    expr = expr.cast(pl.String).str.strip_chars()
    return pl.when(expr != "").then(expr)  # keeps the column's name


#: NaN and infinities: floats that are no value. "NaN", "inf", "-Infinity" are rejected, never stored.
NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"


def _european(text: pl.Expr, decimal_mark: pl.Expr | None) -> pl.Expr:
    """Text written with a decimal comma ("1.234,5") rewritten with a decimal point ("1234.5")."""
    if decimal_mark is None:
        return text
    comma = decimal_mark.fill_null(".") == ","
    return pl.when(comma).then(text.str.replace_all(r"\.", "").str.replace_all(",", ".")).otherwise(text)


def parse_number(column: str | pl.Expr, decimal_mark: pl.Expr | None = None) -> pl.Expr:
    """ "85.2%" → 85.2, "1,234" → 1234.0, "£1,200" → 1200.0, "(12)" → -12.0; symbols and "n/a" → null.

    ``decimal_mark`` is the file's convention (bronze's ``_decimal_mark``): where it is ``","`` (a European
    CSV), "33,5" → 33.5 and "1.234,5" → 1234.5, never 335. NaN and infinities give null. A cell that is
    neither a number nor a known symbol also gives null: use :func:`unparseable_number` to find those and
    quarantine them.
    """
    text = _european(clean_text(column), decimal_mark)
    negative_in_brackets = text.str.contains(r"^\(.*\)$")
    digits = text.str.replace_all(r"[,%£$\s]|^\(|\)$", "")
    number = digits.cast(pl.Float64, strict=False)
    number = pl.when(number.is_finite()).then(number)
    return pl.when(negative_in_brackets).then(-number).otherwise(number)


def non_finite_number(column: str | pl.Expr) -> pl.Expr:
    """True where a cell holds NaN or an infinity ("nan", "inf", "-Infinity"): a float that is no value."""
    return clean_text(column).str.contains(NON_FINITE).fill_null(False)


def suppression_code(column: str | pl.Expr) -> pl.Expr:
    """The suppression symbol a cell holds (lower case, brackets kept), or null for a value or blank."""
    text = clean_text(column).str.to_lowercase()
    return pl.when(text.is_in(list(SUPPRESSION_CODES))).then(text).otherwise(None)


def unparseable_number(column: str | pl.Expr, decimal_mark: pl.Expr | None = None) -> pl.Expr:
    """True where a cell holds text that is neither a number, a suppression symbol nor a missing marker
    (NaN and infinities included: they are not values)."""
    text = clean_text(column)
    lowered = text.str.to_lowercase()
    return (
        text.is_not_null()
        & parse_number(column, decimal_mark).is_null()
        & ~lowered.is_in(list(SUPPRESSION_CODES))
        & ~lowered.is_in(list(MISSING_TEXT))
    )


def unparseable_date(column: str | pl.Expr, parsed: pl.Expr) -> pl.Expr:
    """True where a cell holds text but ``parsed`` (its date or datetime) is null: "2024-13-01 10:00"."""
    return clean_text(column).is_not_null() & parsed.is_null()


def parse_uk_date(column: str | pl.Expr) -> pl.Expr:
    """dd/mm/yyyy (UK order; also d/m/yyyy and dd-mm-yyyy), ISO yyyy-mm-dd, or a spreadsheet datetime."""
    text = clean_text(column)
    return pl.coalesce(
        text.str.to_date("%d/%m/%Y", strict=False),
        text.str.to_date("%d-%m-%Y", strict=False),
        text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
    )
