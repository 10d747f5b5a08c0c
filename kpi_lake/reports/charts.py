"""Small trend charts for the report: Vega-Lite specs built with Altair, rendered to SVG by ``vl-convert``
(no browser, no network), embedded as ``data:`` images so that each chart keeps its own SVG ids.

Readable in greyscale: the actual is a solid line with filled circles, the target a dashed line, a survey
estimate's 95 % interval a light band; every chart has a text alternative saying the same in words.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import polars as pl

#: Points drawn per chart: three years of quarters.
MAX_POINTS = 12
WIDTH, HEIGHT = 170, 54
INK = "#1a1a1a"
TARGET_INK = "#555555"


@dataclass(frozen=True)
class Chart:
    """An SVG chart as a ``data:`` URI and its text alternative."""

    data_uri: str
    alt: str


def format_number(value: float | None, unit: str | None = None) -> str:
    """A figure as the report prints it: up to two decimals, no trailing zeros, % for percentages."""
    if value is None:
        return "–"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{text}%" if unit and unit.strip() in ("%", "percent", "percentage") else text


def trend_chart(history: pl.DataFrame, kpi_name: str, unit: str | None = None) -> Chart | None:
    """The KPI's recent actuals (``Period``, ``Period_End``, ``Actual``, ``Target``, ``Lower_CI``,
    ``Upper_CI``), oldest first, with its target line; None with fewer than two actuals."""
    import altair as alt
    import vl_convert as vlc

    points = history.filter(pl.col("Actual").is_not_null()).sort("Period_End").tail(MAX_POINTS)
    if points.height < 2:
        return None
    points = points.with_columns(pl.int_range(pl.len()).alias("order"))
    order = points["Period"].to_list()
    base = alt.Chart(points.select("Period", "Actual", "Target", "Lower_CI", "Upper_CI", "order"))
    x = alt.X("Period:O", sort=order, axis=alt.Axis(labels=False, ticks=False, title=None, domain=True))
    values = [
        v
        for col in ("Actual", "Target", "Lower_CI", "Upper_CI")
        for v in points[col].to_list()
        if v is not None
    ]
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    y_scale = alt.Scale(domain=[low - pad, high + pad], zero=False, nice=False)
    y = alt.Y("Actual:Q", scale=y_scale, axis=alt.Axis(title=None, tickCount=3, labelFontSize=8, grid=False))
    layers = []
    if points["Lower_CI"].is_not_null().any():
        layers.append(
            base.mark_area(color="#d9d9d9").encode(x=x, y=alt.Y("Lower_CI:Q", scale=y_scale), y2="Upper_CI:Q")
        )
    if points["Target"].is_not_null().any():
        layers.append(
            base.mark_line(color=TARGET_INK, strokeDash=[4, 3], strokeWidth=1.5, interpolate="step-after")
            .encode(x=x, y=alt.Y("Target:Q", scale=y_scale))
            .transform_filter("datum.Target != null")
        )
    layers.append(base.mark_line(color=INK, strokeWidth=1.5).encode(x=x, y=y))
    layers.append(base.mark_point(color=INK, filled=True, size=18, shape="circle").encode(x=x, y=y))
    chart = (
        alt.layer(*layers)
        .properties(width=WIDTH, height=HEIGHT)
        .configure_view(stroke=None)
        .configure_axis(labelColor=INK, domainColor="#767676", tickColor="#767676")
    )
    svg = vlc.vegalite_to_svg(chart.to_dict(validate=False))
    return Chart(
        "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(), _alt(points, kpi_name, unit)
    )


def _alt(points: pl.DataFrame, kpi_name: str, unit: str | None) -> str:
    first, last = points.row(0, named=True), points.row(-1, named=True)
    text = (
        f"Trend of {kpi_name}, {points.height} periods: {format_number(first['Actual'], unit)} in "
        f"{first['Period']}, {format_number(last['Actual'], unit)} in {last['Period']}"
    )
    actuals = points["Actual"]
    text += f" (lowest {format_number(actuals.min(), unit)}, highest {format_number(actuals.max(), unit)})"
    if last["Target"] is not None:
        text += f"; target {format_number(last['Target'], unit)} (dashed line)"
    if last["Lower_CI"] is not None:
        text += "; shaded band: 95% confidence interval"
    return text + "."
