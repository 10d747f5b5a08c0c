"""The quarterly performance report for Cabinet and scrutiny, generated from the KPI mart: HTML (everything
inline), a PDF of the same HTML and an Excel workbook of the same tables. See docs/REPORTS.md.

``build_report`` makes the documents in memory; ``publish_report`` writes them to ``<lake>/reports/<period>/``
(a local folder or the lake's Azure container); ``write_report`` to any local folder (the CLI's ``--out``).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_lake.reports.data import (
    ReportData,
    ReportError,
    gather,
    input_versions,
    latest_reported_quarter,
    quarter_key_before,
    quarter_key_of,
    quarter_keys,
)
from kpi_lake.storage import join_uri, redact, write_atomically

if TYPE_CHECKING:
    from resources.lake import DeltaLake

__all__ = [
    "REPORTS_PATH",
    "Report",
    "ReportData",
    "ReportError",
    "build_report",
    "gather",
    "input_versions",
    "latest_reported_quarter",
    "publish_report",
    "quarter_key_before",
    "quarter_key_of",
    "quarter_keys",
    "report_metadata",
    "write_report",
]

#: Where reports live below the lake root: ``reports/<period_key>/<name>.{html,pdf,xlsx}``.
REPORTS_PATH = "reports"


@dataclass(frozen=True)
class Report:
    """One report's documents and what they say."""

    name: str
    data: ReportData
    html: str
    pdf: bytes
    pdf_pages: int
    xlsx: bytes
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    def documents(self) -> dict[str, bytes]:
        return {
            f"{self.name}.html": self.html.encode("utf-8"),
            f"{self.name}.pdf": self.pdf,
            f"{self.name}.xlsx": self.xlsx,
        }


def report_name(audience: str, theme: str | None = None) -> str:
    """``cabinet``, ``scrutiny``, or ``scrutiny-ENV`` for one theme's commission."""
    return audience if theme is None else f"{audience}-{theme.upper()}"


def build_report(
    lake: DeltaLake,
    period_key: str | None = None,
    audience: str = "cabinet",
    theme: str | None = None,
    generated_at: dt.datetime | None = None,
) -> Report:
    """The report for ``period_key`` (default: the latest quarter the mart holds) in HTML, PDF and XLSX."""
    from kpi_lake.reports.render import render_html, render_pdf, render_workbook

    started = time.perf_counter()
    data = gather(lake, period_key or latest_reported_quarter(lake), audience, theme)
    html = render_html(data, generated_at)
    pdf, pages = render_pdf(html)
    xlsx = render_workbook(data)
    return Report(report_name(audience, theme), data, html, pdf, pages, xlsx, time.perf_counter() - started)


def write_report(report: Report, folder: str | Path) -> dict[str, str]:
    """Write the documents into a local folder; their paths by extension."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, content in report.documents().items():
        path = target / name
        write_atomically(path, content)
        written[name.rsplit(".", 1)[1]] = str(path)
    return written


def publish_report(lake: DeltaLake, report: Report) -> dict[str, str]:
    """Write the documents to ``<lake>/reports/<period_key>/`` through the lake's storage; their URIs."""
    folder = join_uri(lake.root, REPORTS_PATH, report.data.period_key)
    written = {}
    for name, content in report.documents().items():
        uri = join_uri(folder, name)
        lake.write_document(uri, content)
        written[name.rsplit(".", 1)[1]] = redact(uri)
    return written


def report_metadata(report: Report, files: dict[str, str]) -> dict[str, Any]:
    """What a materialisation or the CLI shows about one report."""
    return {
        "files": files,
        "pdf_pages": report.pdf_pages,
        "bytes": {name: len(content) for name, content in report.documents().items()},
        "headline": report.data.headline(),
        "seconds": round(report.seconds, 1),
    }
