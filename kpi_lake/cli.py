"""The ``kpi-lake`` command: ``generate`` a sample landing zone, ``sync`` the lake (the nightly job, in-process).

Both read the same environment as the Dagster UI and the schedule: ``KPI_LAKE_ROOT``, ``KPI_LAKE_LANDING``,
``KPI_LAKE_BUSINESS_DB`` and the standard ``AZURE_*`` variables.
"""

from __future__ import annotations

import argparse
import gc
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
        "--all",
        action="store_true",
        help="run every asset, whether or not its sources changed (default: only what changed, and "
        "everything weekly or when the code changed)",
    )
    sync.add_argument(
        "--verbose", action="store_true", help="print Dagster's run log (default: warnings only)"
    )
    sync.add_argument(
        "--allow-dev-key",
        action="store_true",
        help="pseudonymise the survey with the development key although the data is not the sample "
        "(a trial only; same as KPI_LAKE_ALLOW_DEV_KEY=true)",
    )
    sync.add_argument(
        "--lock-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait while another run holds the lake (default: KPI_LAKE_LOCK_TIMEOUT or 3600; "
        "0 = fail at once)",
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
    # Called as the command (no argv): the process ends with the sync.
    return _sync(args, ends_process=argv is None)


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


def _sync(args: argparse.Namespace, *, ends_process: bool = False) -> int:
    # Start-up builds ~300,000 long-lived objects (Dagster, the code location, the instance) and frees almost
    # none: the cyclic collector's full passes over them were a fifth of a quiet sync's time. It is paused
    # while they are built, then they are frozen (kept out of every later collection); the run's own garbage
    # is collected as usual.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _sync_started(args, collecting)
    finally:
        if collecting:
            gc.enable()
        if ends_process:
            # Everything is freed with the process: the interpreter's full collections at exit would only
            # walk it again (~0.8 s of a quiet sync).
            gc.freeze()
        else:
            gc.unfreeze()  # called from Python (a test): its later collections see these objects again


def _sync_started(args: argparse.Namespace, collecting: bool) -> int:
    import uuid

    import dagster as dg

    from kpi_lake.locking import LakeLockError, lake_lock, lock_timeout_from_env

    # The command's run executes its steps here, one after another (pipelines/runs.py); read when the job is
    # defined, so set before the code location is imported.
    os.environ["KPI_LAKE_EXECUTOR"] = "in_process"
    from pipelines.definitions import defs
    from pipelines.environment import lake_root

    if args.allow_dev_key:
        os.environ["KPI_LAKE_ALLOW_DEV_KEY"] = "true"  # read by the survey's silver asset (in this process)
    resources = defs.resources
    lake = resources["lake"]
    lake_uri = lake_root()
    instance = _instance()
    gc.freeze()
    if collecting:
        gc.enable()
    started = time.perf_counter()
    with dg.build_resources({"lake": lake}, instance=instance) as initialised:
        initialised.lake.ensure_root()
    timeout = lock_timeout_from_env() if args.lock_timeout is None else args.lock_timeout
    run_id = str(uuid.uuid4())
    # One run at a time per lake (see kpi_lake/locking.py): wait, saying for whom, or fail with the holder's name.
    lock = lake_lock(lake_uri, None, run_id, "kpi-lake sync")
    try:
        lock.acquire(timeout, on_wait=_say_waiting)
    except LakeLockError as exc:
        print(f"kpi-lake sync: not started: {exc}", file=sys.stderr)
        return 1
    try:
        return _sync_locked(args, defs, instance, lake, lake_uri, run_id, timeout, started)
    except LakeLockError as exc:
        print(f"kpi-lake sync: not started: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()


def _instance():
    """The Dagster instance of ``DAGSTER_HOME`` (an in-memory one without it). Two commands opening a new home at
    once would both create its SQLite schema (Dagster does not guard that): the first to open it creates it
    while holding an OS lock on the home, the other waits for it."""
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()
    import fcntl

    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, ".kpi-lake-instance.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        return dg.DagsterInstance.get()


def _say_waiting(holder, waited: float) -> None:
    who = holder.describe() if holder else "another run"
    print(f"kpi-lake sync: waiting for the lake, held by {who} ({waited:.0f}s so far)", file=sys.stderr)


def _sync_locked(
    args, defs, instance, lake, lake_uri: str, run_id: str, timeout: float, started: float
) -> int:
    import dagster as dg

    from kpi_lake.locking import recover_dead_runs, run_tags, wait_for_pools
    from kpi_lake.storage import redact
    from kpi_lake.sync_report import step_label

    for line in recover_dead_runs(instance, lake_uri, run_id):
        print(f"kpi-lake sync: {line}", file=sys.stderr)
    wait_for_pools(instance, timeout, lambda line: print(f"kpi-lake sync: {line}", file=sys.stderr), run_id)

    from kpi_lake.sync_report import Progress, print_tables, table_lines
    from pipelines.runs import run_nightly_sync

    plan = None
    tags = run_tags(lake_uri)
    if not args.select:
        # Only what changed (pipelines/planning.py): each source is checked before the run is made.
        from pipelines.planning import PLAN_TAG, plan_sync

        with dg.build_resources(
            {name: defs.resources[name] for name in ("lake", "landing", "business_db")}, instance=instance
        ) as initialised:
            plan = plan_sync(
                lake=initialised.lake,
                landing=initialised.landing,
                business_db=initialised.business_db,
                instance=instance,
                asset_graph=defs.resolve_asset_graph(),
                everything="asked for (--all)" if args.all else None,
            )
        print(f"kpi-lake sync: {plan.summary()}")
        if plan.nothing_to_do:
            print(
                f"\nkpi-lake sync: nothing to run ({time.perf_counter() - started:.1f}s) — lake: "
                f"{redact(lake_uri)}. `kpi-lake sync --all` runs every asset anyway."
            )
            return 0
        tags[PLAN_TAG] = plan.plan_id

    log_level = "INFO" if args.verbose else "WARNING"
    progress = Progress()
    try:
        result = run_nightly_sync(
            instance,
            run_id=run_id,
            select=args.select,
            asset_keys=plan.asset_selection if plan is not None else None,
            tags=tags,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            on_plan=progress.plan,
            on_event=progress.event,
        )
    finally:
        progress.finish()
    if plan is not None and result.success:
        from pipelines.planning import record_plan

        with dg.build_resources({"lake": lake}, instance=instance) as initialised:
            record_plan(initialised.lake, plan.to_document())
    elapsed = time.perf_counter() - started

    print(
        f"\nkpi-lake sync {'succeeded' if result.success else 'FAILED'} in {elapsed:.1f}s (run {run_id}) — "
        f"lake: {redact(lake_uri)}"
    )
    print_tables(table_lines(result.get_asset_materialization_events()), verbose=args.verbose)
    slowest = progress.slowest()
    if slowest:
        print(
            "slowest steps: " + ", ".join(f"{step_label(step)} {seconds:.1f}s" for step, seconds in slowest)
        )
    checks = result.get_asset_check_evaluations()
    published = None
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
        from kpi_lake.quality.docs import docs_uri

        with dg.build_resources({"lake": lake}, instance=instance) as initialised:
            try:
                published = render_data_docs(initialised.lake, result.run_id)
            except (
                Exception
            ) as exc:  # a full disk, a read-only lake: the tables are written; say what was not
                print(
                    f"kpi-lake sync: the tables are written, but the Data Docs could not be: "
                    f"{_os_error(exc)} (site: {docs_uri(initialised.lake)}). Free space or fix permissions "
                    "there; the quality results are stored, and the next run that validates renders the pages again.",
                    file=sys.stderr,
                )
                return 1
        if published is not None:
            print(f"Data Docs: {redact(published.index_uri)} ({published.suites} suites)")
    if not checks or published is None:
        from kpi_lake.quality.docs import DOCS_PATH
        from kpi_lake.storage import join_uri

        print(
            f"Data Docs: {redact(join_uri(lake_uri, DOCS_PATH, 'index.html'))} (no new validation results this run)"
        )
    withheld = [c for c in checks if c.check_name == "no_rows_withheld" and not c.passed]
    for check in withheld:  # a gold gate withheld rows: the rest is published, these are not
        table = "/".join(check.asset_key.path)
        where = check.metadata.get("withheld_table")
        print(
            f"WITHHELD from {table}: {check.description}\n  read why: {where.value if where else table + '_withheld'}",
            file=sys.stderr,
        )
    if not result.success or withheld:
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


def _os_error(exc: BaseException) -> str:
    """What went wrong, with the file it happened to when the error names one, never a bare errno."""
    from resources.lake import redact_error

    if isinstance(exc, OSError) and exc.strerror:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"{exc.strerror} (errno {exc.errno}){where}"
    return redact_error(exc).splitlines()[0] if str(exc) else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
