"""The ``kpi-lake`` command: ``generate`` a sample landing zone, ``sync`` the lake (the nightly job, in-process).

Both read the same environment as the Dagster UI and the schedule: ``KPI_LAKE_ROOT``, ``KPI_LAKE_LANDING``,
``KPI_LAKE_BUSINESS_DB`` and the standard ``AZURE_*`` variables.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kpi-lake", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write the sample landing zone (a fictional council)")
    generate.add_argument("--scale", type=float, default=1.0, help="size of the business systems (1 = small)")
    generate.add_argument("--seed", type=int, default=None, help="random seed (same seed, same bytes)")
    generate.add_argument(
        "--landing", default=None, help="where to write (default: KPI_LAKE_LANDING or landing/)"
    )
    generate.add_argument(
        "--if-empty", action="store_true", help="do nothing when the landing zone already holds files"
    )

    sync = commands.add_parser("sync", help="run the nightly sync in-process and print a summary")
    sync.add_argument(
        "--select", default=None, help="a Dagster asset selection, e.g. 'group:bronze_spar_net'"
    )
    sync.add_argument(
        "--verbose", action="store_true", help="print Dagster's run log (default: warnings only)"
    )

    report = commands.add_parser("report", help="build the quarterly performance report from the KPI mart")
    report.add_argument("--period", default=None, help="quarter key, e.g. FY2026-27-Q2 (default: the latest)")
    report.add_argument("--theme", default=None, help="one theme's report, e.g. ENV (default: every theme)")
    report.add_argument("--audience", choices=("cabinet", "scrutiny"), default="cabinet")
    report.add_argument("--out", default=None, help="a local folder (default: <lake>/reports/<period>/)")

    args = parser.parse_args(argv)
    if args.command == "report":
        from kpi_lake.reports.command import report_command
        from pipelines.environment import lake_root

        return report_command(args, lake_root())
    if args.command == "generate":
        return _generate(args)
    return _sync(args)


def _generate(args: argparse.Namespace) -> int:
    from kpi_lake.sample_data import generate_landing
    from kpi_lake.storage import is_remote
    from pipelines.environment import landing_root

    target = args.landing or landing_root()
    kwargs = {"scale": args.scale} | ({"seed": args.seed} if args.seed is not None else {})
    if is_remote(target):
        from kpi_lake.storage import parse_azure_uri
        from resources.azure import AzureStorage

        azure = AzureStorage.from_env()
        fs = azure.filesystem(target)
        location = parse_azure_uri(target)
        remote = f"{location.container}/{location.path}".rstrip("/")
        if args.if_empty and fs.exists(remote) and fs.find(remote):
            print(f"landing zone {target} already holds files: nothing generated")
            return 0
        if not fs.exists(location.container):
            fs.mkdir(location.container)
        with tempfile.TemporaryDirectory(prefix="kpi-lake-landing-") as tmp:
            story = generate_landing(tmp, **kwargs)
            for name in story.files:
                fs.put_file(str(Path(tmp) / name), f"{remote}/{name}")
    else:
        folder = Path(target)
        if args.if_empty and folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
            print(f"landing zone {folder} already holds files: nothing generated")
            return 0
        started = time.perf_counter()
        story = generate_landing(folder, **kwargs)
        print(f"generated {len(story.files)} files in {time.perf_counter() - started:.1f}s")
    print(f"sample landing zone for {story.council_name} written to {target}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    import dagster as dg

    from kpi_lake.storage import redact
    from pipelines.definitions import defs

    resources = defs.resources
    lake = resources["lake"]
    lake_uri = os.environ.get("KPI_LAKE_ROOT") or lake.root
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    with dg.build_resources({"lake": lake}) as initialised:
        initialised.lake.ensure_root()
    job = defs.resolve_job_def("nightly_sync")
    if args.select:
        job = job.get_subset(
            asset_selection=set(
                dg.AssetSelection.from_string(args.select).resolve(job.asset_layer.asset_graph)
            )
        )
    log_level = "INFO" if args.verbose else "WARNING"
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    elapsed = time.perf_counter() - started

    rows: list[tuple[str, int | None, str]] = []
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = materialization.metadata
        count = metadata.get("dagster/row_count")
        files = metadata.get("files_loaded")
        written = metadata.get("rows_written")
        quarantined = metadata.get("quarantined_rows")
        note = ""
        if files is not None:
            note = f"{files.value} new files"
        elif written is not None:
            note = f"{written.value:,} rows changed"
        elif quarantined is not None and quarantined.value:
            note = f"{quarantined.value:,} rows quarantined"
        rows.append(
            ("/".join(materialization.asset_key.path), None if count is None else int(count.value), note)
        )
    rows.sort()
    width = max((len(name) for name, _, _ in rows), default=10)
    print(
        f"\nkpi-lake sync {'succeeded' if result.success else 'FAILED'} in {elapsed:.1f}s — lake: {redact(lake_uri)}"
    )
    print(f"{'table'.ljust(width)}  {'rows':>10}  this run")
    for name, count, note in rows:
        shown = "-" if count is None else f"{count:,}"
        print(f"{name.ljust(width)}  {shown:>10}  {note}")
    total = sum(count or 0 for _, count, _ in rows)
    print(f"{len(rows)} tables, {total:,} rows.")
    checks = result.get_asset_check_evaluations()
    if checks:
        failed = [c for c in checks if not c.passed]
        blocking = [c for c in failed if c.severity == dg.AssetCheckSeverity.ERROR]
        print(
            f"quality checks: {len(checks) - len(failed)} passed, {len(failed)} failed ({len(blocking)} errors)"
        )
        for check in failed[:10]:
            print(
                f"  {'ERROR' if check in blocking else 'warn '} {'/'.join(check.asset_key.path)}: {check.check_name}"
            )
        from kpi_lake.quality import render_data_docs  # GX is imported only here, after the run

        with dg.build_resources({"lake": lake}) as initialised:
            published = render_data_docs(initialised.lake, result.run_id)
        if published is not None:
            print(f"Data Docs: {redact(published.index_uri)} ({published.suites} suites)")
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                # The user's error, not Dagster's wrapper around it.
                while error is not None and error.cause is not None:
                    error = error.cause
                reason = error.message.strip() if error else "see the run log"
                print(f"FAILED {event.step_key}: {reason}", file=sys.stderr)
        return 1
    print(
        "Next: `make dev` opens the Dagster UI (asset graph, run history); read a table with "
        "polars.scan_delta('<lake>/<layer>/<source>/<table>') or DuckDB (see README)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
