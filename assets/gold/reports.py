"""The quarterly performance report, ``gold/reports/quarterly_performance``: one partition per reporting quarter
(``FY2026-27-Q2``), written to ``<lake>/reports/<period_key>/`` as ``cabinet`` and ``scrutiny`` documents
(HTML, PDF, XLSX). The logic is in ``kpi_lake/reports``; this module only wires it to Dagster. See
docs/REPORTS.md."""

import datetime as dt

import dagster as dg

from kpi_lake.reports import (
    build_report,
    publish_report,
    quarter_key_before,
    quarter_key_of,
    quarter_keys,
    report_metadata,
)
from kpi_lake.reports.data import INPUTS, SPC
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake

#: Layer, source, name like every asset key (``TableRef``), though what it writes are documents, not a table.
REPORT = TableRef("gold", "reports", "quarterly_performance")
REPORT_KEY = dg.AssetKey(REPORT.key_path)
#: The first quarter a report can be built for: the mart's history starts in 2018/19.
FIRST_QUARTER = "FY2018-19-Q1"
#: What the asset writes for each quarter (a commission's own theme: ``kpi-lake report --theme``).
AUDIENCES = ("cabinet", "scrutiny")


def reporting_quarters(today: dt.date | None = None) -> list[str]:
    """Every quarter from :data:`FIRST_QUARTER` to the last one that has ended (the partitions). The list
    grows by one when the code location loads after a quarter closes."""
    return quarter_keys(FIRST_QUARTER, quarter_key_before(quarter_key_of(today or dt.date.today())))


quarterly_partitions = dg.StaticPartitionsDefinition(reporting_quarters())


@dg.asset(
    key=REPORT_KEY,
    partitions_def=quarterly_partitions,
    deps=[dg.AssetKey(ref.key_path) for ref in INPUTS if ref != SPC],
    group_name=REPORT.group_name,
    kinds={"html", "pdf", "excel"},
    pool=REPORT.path,
    description="The quarterly performance report for Cabinet and scrutiny, built from the KPI mart.",
)
def quarterly_performance(context: dg.AssetExecutionContext, lake: DeltaLake) -> dg.MaterializeResult:
    period_key = context.partition_key
    metadata: dict[str, dg.RawMetadataValue] = {}
    for audience in AUDIENCES:
        report = build_report(lake, period_key, audience)
        files = publish_report(lake, report)
        shown = report_metadata(report, files)
        for kind, uri in files.items():
            metadata[f"{audience}_{kind}"] = (
                dg.MetadataValue.url(uri) if "://" in uri else dg.MetadataValue.path(uri)
            )
        metadata[f"{audience}_pdf_pages"] = report.pdf_pages
        metadata[f"{audience}_bytes"] = dg.MetadataValue.json(shown["bytes"])
        if audience == "cabinet":
            metadata.update({f"kpis_{name}": value for name, value in report.data.headline().items()})
            metadata["mart_versions"] = dg.MetadataValue.json(report.data.input_versions)
        context.log.info(
            f"{period_key} {audience}: {report.pdf_pages} pages in {report.seconds:.1f}s, {files}"
        )
    return dg.MaterializeResult(metadata=metadata)


report_assets = [quarterly_performance]
