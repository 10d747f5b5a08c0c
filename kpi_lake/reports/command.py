"""``kpi-lake report``: build one quarterly report from the mart and write it to the lake or a folder."""

from __future__ import annotations

import argparse
import sys

from kpi_lake.reports import ReportError, build_report, publish_report, report_metadata, write_report
from kpi_lake.storage import redact


def report_command(args: argparse.Namespace, lake_root: str) -> int:
    """Build the report ``args`` ask for (``period``, ``theme``, ``audience``, ``out``) from the lake at
    ``lake_root``; print where it went, its page count, sizes and headline counts."""
    import dagster as dg

    from resources.azure import AzureStorage
    from resources.lake import DeltaLake

    with dg.build_resources({"lake": DeltaLake(root=lake_root, azure=AzureStorage.from_env())}) as built:
        lake = built.lake
        try:
            report = build_report(lake, args.period, args.audience, args.theme)
        except ReportError as error:
            print(f"kpi-lake report: {error}", file=sys.stderr)
            return 2
        files = write_report(report, args.out) if args.out else publish_report(lake, report)
    shown = report_metadata(report, files)
    data = report.data
    headline = shown["headline"]
    print(
        f"{data.audience} report for {data.period_label} ({data.period_key}), {data.council}: "
        f"{report.pdf_pages} PDF pages, built in {report.seconds:.1f}s from {redact(lake_root)}"
    )
    print(
        f"{headline['kpis']} KPIs: {headline.get('rag_green', 0)} green, {headline.get('rag_amber', 0)} amber, "
        f"{headline.get('rag_red', 0)} red, {headline.get('rag_no_target', 0)} without target; "
        f"{headline.get('improving', 0)} improving, {headline.get('stable', 0)} stable, "
        f"{headline.get('worsening', 0)} worsening"
    )
    for kind, path in files.items():
        size = shown["bytes"][f"{report.name}.{kind}"]
        print(f"  {kind:4}  {path}  ({size / 1024:,.0f} KiB)")
    return 0
