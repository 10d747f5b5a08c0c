"""Rendering the report: one Jinja2 template to a self-contained HTML file (CSS and charts inline, no network
fetch), WeasyPrint for a PDF of the same HTML, and xlsxwriter for a workbook of the same tables."""

from __future__ import annotations

import datetime as dt
import io
from importlib import resources
from typing import Any

import polars as pl

from kpi_lake.reports.charts import Chart, format_number, trend_chart
from kpi_lake.reports.data import RAG_ORDER, ReportData

RAG_SHAPES = {
    "Green": "circle",
    "Amber": "triangle",
    "Red": "diamond",
    "No target": "dash",
    "No data": "dash",
}
DIRECTION_ARROWS = {"Improving": "↑", "Stable": "→", "Worsening": "↓", "Not comparable": "–"}
#: Columns of each theme's table, in the HTML, the PDF and the workbook alike.
THEME_COLUMNS = {
    "KPI_Code": "Code",
    "KPI_Name": "KPI",
    "Cross_Cutting": "Cross-cutting",
    "Period": "Period",
    "Actual": "Actual",
    "Target": "Target",
    "RAG_Status": "RAG",
    "Direction_Of_Travel": "Direction of travel",
    "Polarity": "What good looks like",
    "Comparator_Position": "Comparator position",
    "Comparator_Quartile": "Comparator quartile",
    "Comparator_Median": "Comparator median",
    "Unit": "Unit",
    "Data_Status": "Data status",
}
HISTORY_COLUMNS = {
    "KPI_Code": "Code",
    "KPI_Name": "KPI",
    "Period": "Period",
    "Actual": "Actual",
    "Target": "Target",
    "RAG_Status": "RAG",
    "Direction_Of_Travel": "Direction of travel",
    "Comparator_Position": "Comparator position",
    "Lower_CI": "Lower 95% CI",
    "Upper_CI": "Upper 95% CI",
    "Data_Status": "Data status",
}


def theme_table(data: ReportData, theme_code: str) -> pl.DataFrame:
    """A theme's KPI table as the report prints it (the workbook's sheet has the same rows and columns)."""
    rows = data.positions.filter(pl.col("Theme_Code") == theme_code).with_columns(
        pl.when(pl.col("Is_Primary_Theme") | pl.col("Is_Cross_Cutting").not_())
        .then(pl.lit(""))
        .otherwise(pl.lit("Yes"))
        .alias("Cross_Cutting")
    )
    if data.audience == "scrutiny" or data.themes.height == 1:
        rows = rows.with_columns(
            pl.when(pl.col("Is_Cross_Cutting"))
            .then(pl.lit("Yes"))
            .otherwise(pl.lit(""))
            .alias("Cross_Cutting")
        )
    return rows.select(list(THEME_COLUMNS)).sort("KPI_Name")


def history_table(data: ReportData, kpi_code: str, period_type: str) -> pl.DataFrame:
    return (
        data.history.filter(pl.col("KPI_Code") == kpi_code, pl.col("Period_Type") == period_type)
        .sort("Period_End", descending=True)
        .select(list(HISTORY_COLUMNS))
    )


def render_html(data: ReportData, generated_at: dt.datetime | None = None) -> str:
    """The report as one HTML document with everything inline."""
    import jinja2

    generated_at = generated_at or dt.datetime.now(dt.UTC)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kpi_lake.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["signed"] = lambda v: f"{v:+d}" if v else "no change"
    css = resources.files("kpi_lake.reports").joinpath("templates/report.css").read_text(encoding="utf-8")
    charts = _charts(data)
    themes = []
    for theme in data.themes.iter_rows(named=True):
        table = theme_table(data, theme["theme_code"])
        kpis = []
        for row in table.iter_rows(named=True):
            period_type = data.positions.filter(pl.col("KPI_Code") == row["KPI_Code"])["Period_Type"][0]
            history = (
                history_table(data, row["KPI_Code"], period_type) if data.audience == "scrutiny" else None
            )
            kpis.append(
                {
                    **row,
                    "chart": charts.get(row["KPI_Code"]),
                    "history": None if history is None else history.to_dicts(),
                }
            )
        counts = table.group_by("RAG_Status").len()
        themes.append(
            {
                **theme,
                "kpis": kpis,
                "counts": dict(zip(counts["RAG_Status"], counts["len"], strict=True)),
            }
        )
    kpis = data.kpis()
    template = env.get_template("report.html.j2")
    return template.render(
        data=data,
        css=css,
        themes=themes,
        rag_order=RAG_ORDER,
        rag_shapes=RAG_SHAPES,
        arrows=DIRECTION_ARROWS,
        summary=data.summary.to_dicts(),
        directions=data.directions.to_dicts(),
        total=kpis.height,
        reds=kpis.filter(pl.col("RAG_Status") == "Red").sort("Theme", "KPI_Name").to_dicts(),
        unreconciled=data.unreconciled.to_dicts(),
        flagged=kpis.filter(pl.col("Is_Stale") | (pl.col("Data_Status") == "provisional"))
        .sort("Theme", "KPI_Name")
        .to_dicts(),
        survey=data.survey.to_dicts(),
        sources=data.sources.to_dicts(),
        lineage=kpis.select("KPI_Code", "KPI_Name", "Period", "Source_System", "Source_Lineage")
        .sort("KPI_Name")
        .to_dicts(),
        spc=_spc_summary(data),
        generated_at=generated_at.strftime("%d %B %Y %H:%M UTC"),
    )


def render_pdf(html: str) -> tuple[bytes, int]:
    """The PDF of the HTML (WeasyPrint, print CSS) and its page count."""
    import weasyprint

    document = weasyprint.HTML(string=html).render()
    return document.write_pdf(), len(document.pages)


def render_workbook(data: ReportData) -> bytes:
    """An Excel workbook of the report's tables: a summary, one sheet per theme, exceptions, survey, sources
    and (scrutiny) every KPI's history; filters on every sheet."""
    import xlsxwriter

    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True, "remove_timezone": True}) as book:
        bold = book.add_format({"bold": True, "text_wrap": True, "valign": "top", "bg_color": "#E7E6E6"})
        _sheet(book, bold, "Summary", data.summary.rename(_spaced(data.summary)))
        _sheet(book, bold, "Direction of travel", data.directions.rename(_spaced(data.directions)))
        for theme in data.themes.iter_rows(named=True):
            table = theme_table(data, theme["theme_code"])
            _sheet(book, bold, theme["theme_code"], table.rename(THEME_COLUMNS), title=theme["theme_name"])
        reds = data.kpis().filter(pl.col("RAG_Status") == "Red")
        _sheet(
            book,
            bold,
            "Red KPIs",
            reds.select(
                "KPI_Code",
                "KPI_Name",
                "Theme",
                "Period",
                "Actual",
                "Target",
                "Commentary",
                "Action_To_Improve",
            )
            .sort("KPI_Name")
            .rename(_spaced),
        )
        _sheet(
            book,
            bold,
            "Not reconciled",
            data.unreconciled.select(
                "KPI_Code", "KPI_Name", "Period", "Actual", "SPAR_Net_Figure", "Reconciliation_Note"
            ).rename(
                lambda name: {"Actual": "Lake figure", "SPAR_Net_Figure": "SPAR.net figure"}.get(
                    name, _spaced(name)
                )
            ),
        )
        flagged = data.kpis().filter(pl.col("Is_Stale") | (pl.col("Data_Status") == "provisional"))
        _sheet(
            book,
            bold,
            "Provisional or stale",
            flagged.select("KPI_Code", "KPI_Name", "Period", "Data_Status", "Is_Stale", "Stale_Reason")
            .sort("KPI_Name")
            .rename(_spaced),
        )
        _sheet(
            book,
            bold,
            "Survey",
            data.survey.select(
                "KPI_Code",
                "KPI_Name",
                "Period",
                "Actual",
                "Lower_CI",
                "Upper_CI",
                "Survey_Base",
                "Same_Period_Last_Year",
                "Comparison_Lower_CI",
                "Comparison_Upper_CI",
                "Direction_Of_Travel",
            ).rename(_spaced),
        )
        _sheet(book, bold, "Sources", data.sources.rename(_spaced(data.sources)))
        if data.audience == "scrutiny":
            history = data.history.select(["Period_Type", *HISTORY_COLUMNS]).sort("KPI_Name", "Period_Type")
            _sheet(book, bold, "History", history.rename(HISTORY_COLUMNS | {"Period_Type": "Period type"}))
    return buffer.getvalue()


def _spaced(frame: pl.DataFrame | str) -> Any:
    """A column's friendly name ("Last_Quarter_Pct" → "Last Quarter Pct"), or the mapping for a frame."""
    if isinstance(frame, str):
        return frame.replace("_", " ")
    return {name: name.replace("_", " ") for name in frame.columns}


def _sheet(book: Any, header: Any, name: str, frame: pl.DataFrame, title: str | None = None) -> None:
    """One worksheet: a header row, the rows, filters on, the header frozen, columns wide enough to read."""
    frame = frame.with_columns(pl.col(pl.Datetime).dt.replace_time_zone(None))
    frame.write_excel(
        workbook=book,
        worksheet=name[:31],
        autofilter=True,
        header_format=header,
        freeze_panes=(1, 0),
        autofit=True,
        table_style=None,
    )
    if title:
        book.get_worksheet_by_name(name[:31]).set_header(f"&L{title}")


def _charts(data: ReportData) -> dict[str, Chart | None]:
    """One trend chart per reported KPI, over the periods of its current position's type."""
    kpis = data.kpis().select("KPI_Code", "KPI_Name", "Unit", "Period_Type")
    history = data.history.join(kpis.select("KPI_Code", "Period_Type"), on=["KPI_Code", "Period_Type"])
    by_kpi = history.partition_by("KPI_Code", as_dict=True)
    return {
        code: trend_chart(by_kpi[(code,)], name, unit) if (code,) in by_kpi else None
        for code, name, unit, _ in kpis.iter_rows()
    }


def _spc_summary(data: ReportData) -> dict[str, Any] | None:
    """The SPC signals of this quarter's points, when the mart has SPC (else the section is left out)."""
    if data.spc is None:
        return None
    points = (
        data.kpis()
        .select("KPI_Code", "KPI_Name", "Period_Key")
        .join(
            data.spc.rename({"kpi_code": "KPI_Code", "period_key": "Period_Key"}),
            on=["KPI_Code", "Period_Key"],
        )
    )
    signals = points.filter(pl.col("point_type").str.starts_with("special_cause"))
    assurance = (
        points.group_by("assurance_type").len().drop_nulls().to_dicts()
        if "assurance_type" in points.columns
        else []
    )
    return {
        "improvement": signals.filter(pl.col("point_type") == "special_cause_improvement").height,
        "concern": signals.filter(pl.col("point_type") == "special_cause_concern").height,
        "signals": signals.sort("KPI_Name").to_dicts(),
        "assurance": assurance,
        "charted": points.filter(pl.col("point_type").is_not_null()).height,
    }
