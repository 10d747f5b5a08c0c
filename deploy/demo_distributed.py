"""`make demo-distributed`: the nightly sync on a Dask cluster, checked table by table against an in-process build.

On loopback, in their own process groups, it starts: the Azurite blob emulator (the lake), a PostgreSQL server
(the Dagster instance: ``deploy/dagster/dagster.yaml`` as shipped, compute logs kept locally), a Dask scheduler and
two Dask workers. It generates the sample landing zone, runs the ``nightly_sync`` job in a run-worker process with
``KPI_LAKE_EXECUTOR=dask`` into a fresh lake on Azurite, prints which worker ran which step (from the run's event
log), builds the same landing zone with ``kpi-lake sync`` (in process) into a second lake, and compares every
table: row counts and a hash of the content, the run-lineage columns ``_loaded_at`` and ``_run_id`` left out. It
stops everything it started by process id and exits non-zero if the run failed or any table differs.

The steps share only the lake (Azurite) and the instance (PostgreSQL); the landing zone is a folder both builds
read. ``tests/test_distributed.py`` runs the same code with the test suite's own Azurite and PostgreSQL.

    .venv/bin/python -m deploy.demo_distributed [--scale 0.2] [--workers 2] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_YAML = PROJECT_ROOT / "deploy" / "dagster" / "dagster.yaml"
BIN = Path(sys.executable).parent
#: Columns that say which run wrote a row and when, not what it holds: left out of the comparison.
LINEAGE_RUN_COLUMNS = ("_loaded_at", "_run_id")
#: The quality history is a log of validations: which run, when, how long, and (freshness checks) how old each
#: table was at that moment are facts about the run, not the data; what was checked and its outcome are compared.
VALIDATION_HISTORY = "gold/data_quality/validation_history"
#: Floating-point values are compared to this many significant figures: a sum's last bits depend on the order
#: polars' threads add its parts in, which differs between any two builds (in process or not).
SIGNIFICANT_FIGURES = 10
VALIDATION_RUN_COLUMNS = ("run_id", "validated_at", "suite_seconds")


@dataclass(frozen=True)
class TableSummary:
    rows: int
    content_hash: str


@dataclass
class DemoResult:
    run_id: str
    run_succeeded: bool
    #: step key -> name of the Dask worker that ran it (from the run's event log)
    step_workers: dict[str, str]
    distributed: dict[str, TableSummary]
    in_process: dict[str, TableSummary]
    timings: dict[str, float] = field(default_factory=dict)
    #: pool name -> limit, as the instance's database holds them after the run
    pools: dict[str, int] = field(default_factory=dict)
    #: files in the instance's local storage folder, where an IO manager would hand outputs between steps
    stored_outputs: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[str]:
        found = []
        for table in sorted(set(self.distributed) | set(self.in_process)):
            left, right = self.distributed.get(table), self.in_process.get(table)
            if left is None or right is None:
                found.append(f"{table}: only in the {'in-process' if left is None else 'distributed'} lake")
            elif left != right:
                found.append(
                    f"{table}: distributed {left.rows:,} rows ({left.content_hash[:12]}), "
                    f"in-process {right.rows:,} rows ({right.content_hash[:12]})"
                )
        return found

    @property
    def ok(self) -> bool:
        return self.run_succeeded and bool(self.distributed) and not self.differences


# --- processes we start: each in its own process group, stopped by its id ---------------------------------------


class Processes:
    """Every process the demo starts, each in its own process group; ``stop`` ends them by id, last first."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process in stop()
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child holds its own descriptor
        self.started.append((name, process))
        return process

    def stop(self) -> None:
        from tests.conftest import stop_process_group

        for _, process in reversed(self.started):
            stop_process_group(process)
        self.started.clear()


def _wait_for_log(path: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{path.stem} exited with {process.returncode}; see {path}")
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{path.stem} did not say {text!r} within {timeout}s; see {path}")


def start_dask_cluster(processes: Processes, env: dict[str, str], workers: int) -> str:
    """A Dask scheduler and ``workers`` single-threaded workers on loopback; returns the scheduler's address."""
    from tests.conftest import free_port, wait_for_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**env, "KPI_LAKE_DASK_SCHEDULER": address}  # workers load the same definitions as the run worker
    scheduler = processes.start(
        "dask-scheduler",
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env={
            **env,
            # A task whose worker dies is not silently run again elsewhere: the executor's health check fails
            # the step instead (and the run's retry policy, if any, decides).
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
        },
    )
    wait_for_port(port, timeout=60, process=scheduler)
    for number in range(1, workers + 1):
        name = f"worker-{number}"
        worker = processes.start(
            f"dask-{name}",
            [
                str(BIN / "dask"),
                "worker",
                address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--memory-limit",
                "0",
            ],
            env=env,
        )
        _wait_for_log(processes.logs / f"dask-{name}.log", "Registered to", worker, timeout=90)
    return address


# --- the instance: the production dagster.yaml on a fresh PostgreSQL database ----------------------------------


def instance_home(home: Path, postgres_url: str) -> dict[str, str]:
    """A DAGSTER_HOME holding the production dagster.yaml on a new database of ``postgres_url``; returns the
    environment that points it there. Compute logs stay in the home (the shipped Azure Blob manager builds
    account URLs that Azurite cannot answer)."""
    import sqlalchemy as sa
    import yaml

    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database = f"dagster_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{database}"'))
    finally:
        admin.dispose()
    url = sa.engine.make_url(postgres_url)
    config = yaml.safe_load(PRODUCTION_YAML.read_text(encoding="utf-8"))
    config["compute_logs"] = {
        "module": "dagster._core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "compute_logs")},
    }
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_USERNAME": url.username,
        # The local server trusts loopback; the variable is still read, as the production file asks.
        "DAGSTER_PG_PASSWORD": url.password or "not-used-by-a-trust-server",
        "DAGSTER_PG_DB": database,
    }


# --- the run worker: launches nightly_sync on the cluster (run in its own process by run_demo) ------------------


def run_job(select: str | None = None) -> int:
    """Execute ``nightly_sync`` (or the assets ``select`` names) as a launched run would, its executor from the
    environment; prints the run's id and outcome as a JSON line."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from pipelines.environment import get_resources

    with dg.build_resources({"lake": get_resources()["lake"]}) as resources:
        resources.lake.ensure_root()  # creates the container of a fresh lake, as `kpi-lake sync` does
    job = ReconstructableRepository.for_module(
        "pipelines.definitions", "defs", working_directory=str(PROJECT_ROOT)
    ).get_reconstructable_job("nightly_sync")
    with dg.DagsterInstance.get() as instance:
        if select:
            graph = job.get_definition().asset_layer.asset_graph
            job = job.get_subset(asset_selection=dg.AssetSelection.from_string(select).resolve(graph))
        result = dg.execute_job(
            job,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    print(json.dumps({"run_id": result.run_id, "success": result.success}))
    return 0 if result.success else 1


def launch_run(processes: Processes, env: dict[str, str], select: str | None = None) -> subprocess.Popen:
    """The run worker, in its own process (as a run launcher would start it), logging to ``run-worker.log``."""
    command = [sys.executable, "-m", "deploy.demo_distributed", "--run-job"]
    return processes.start("run-worker", [*command, "--select", select] if select else command, env=env)


def run_outcome(processes: Processes, run_worker: subprocess.Popen, timeout: float | None = None) -> dict:
    """Wait for the run worker; its run's id and whether it succeeded."""
    run_worker.wait(timeout=timeout)
    log = (processes.logs / "run-worker.log").read_text(encoding="utf-8", errors="replace")
    lines = [line for line in log.splitlines() if line.startswith('{"run_id"')]
    if not lines:
        raise RuntimeError(
            f"the run worker exited with {run_worker.returncode} before finishing a run:\n{log}"
        )
    return json.loads(lines[-1])


@contextlib.contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """These variables set in this process for a while (the instance's dagster.yaml reads PostgreSQL's)."""
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cluster_environment(workdir: Path, postgres_url: str, azurite_url: str, landing: Path) -> dict[str, str]:
    """What the run worker and every Dask worker share: the lake on Azurite, the landing zone, the instance on a
    fresh PostgreSQL database, and the dask executor. Nothing of this process's own lake settings leaks in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KPI_LAKE_", "DAGSTER_", "AZURE_", "AZURITE_"))
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return {
        **env,
        **instance_home(workdir / "dagster_home", postgres_url),
        "KPI_LAKE_ROOT": f"az://lake/distributed-{uuid.uuid4().hex[:8]}",  # a fresh lake, whoever ran before
        "KPI_LAKE_LANDING": str(landing),
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURITE_BLOB_STORAGE_URL": azurite_url,
        "KPI_LAKE_EXECUTOR": "dask",
    }


def instance_settings(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith("DAGSTER_")}


def step_workers(instance, run_id: str) -> dict[str, str]:
    """Which Dask worker ran each step, from the engine events the workers wrote into the run's event log."""
    import dagster as dg

    from pipelines.executors import DASK_WORKER_KEY

    workers = {}
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
        if DASK_WORKER_KEY in metadata and event.step_key:
            workers[event.step_key] = metadata[DASK_WORKER_KEY].value
    return workers


# --- comparing two lakes --------------------------------------------------------------------------------------


def summarise_lake(root: str, storage_options: dict[str, str] | None = None, filesystem=None) -> dict:
    """Every Delta table under ``root`` (``layer/source/table``): its rows and a hash of its sorted content."""
    import polars as pl

    if filesystem is None:
        base = Path(root)
        tables = sorted(str(p.parent.relative_to(base)) for p in base.rglob("_delta_log"))
    else:
        from kpi_lake.storage import parse_azure_uri

        location = parse_azure_uri(root)
        prefix = f"{location.container}/{location.path}".rstrip("/")
        logs = [p for p in filesystem.find(prefix, withdirs=True) if p.endswith("/_delta_log")]
        tables = sorted(p[len(prefix) + 1 : -len("/_delta_log")] for p in logs)
    summaries = {}
    for table in tables:
        frame = pl.read_delta(f"{root.rstrip('/')}/{table}", storage_options=storage_options)
        if table == VALIDATION_HISTORY:
            frame = without_run_facts(frame)
        summaries[table] = TableSummary(rows=frame.height, content_hash=content_hash(frame))
    return summaries


def without_run_facts(history):
    """The quality history without what depends on when the run happened (see ``VALIDATION_RUN_COLUMNS``)."""
    import polars as pl

    freshness = pl.col("check_kind") == "freshness"
    return history.drop(VALIDATION_RUN_COLUMNS).with_columns(
        pl.when(freshness).then(None).otherwise(pl.col(c)).alias(c) for c in ("observed_value", "kwargs")
    )


def content_hash(frame) -> str:
    """A hash of a table's schema and rows, independent of row order, without the run-lineage columns (floats to
    ``SIGNIFICANT_FIGURES``)."""
    import polars as pl

    data = frame.drop([c for c in LINEAGE_RUN_COLUMNS if c in frame.columns])
    data = data.select(sorted(data.columns)).with_columns(
        pl.col(pl.Float32, pl.Float64).round_sig_figs(SIGNIFICANT_FIGURES)
    )
    digest = hashlib.sha256(json.dumps([(c, str(t)) for c, t in data.schema.items()]).encode())
    if data.width and data.height:
        # Two independent 64-bit row hashes, sorted: the same rows in any order give the same bytes.
        rows = pl.DataFrame({"a": data.hash_rows(seed=0), "b": data.hash_rows(seed=1)}).sort(["a", "b"])
        digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()


# --- the demo ---------------------------------------------------------------------------------------------------


def run_demo(
    workdir: Path, *, postgres_url: str, azurite_url: str, scale: float = 0.2, workers: int = 2
) -> DemoResult:
    """Everything between the services and the verdict (the test calls this with its own Azurite and PostgreSQL)."""
    import dagster as dg
    import sqlalchemy as sa

    from kpi_lake.sample_data import generate_landing
    from resources.azure import AzureStorage

    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    landing = workdir / "landing"
    generate_landing(landing, scale=scale)
    timings["generate"] = time.perf_counter() - started

    cluster_env = cluster_environment(workdir, postgres_url, azurite_url, landing)
    processes = Processes(logs)
    try:
        started = time.perf_counter()
        scheduler = start_dask_cluster(processes, cluster_env, workers)
        timings["cluster_start"] = time.perf_counter() - started
        print(f"Dask scheduler {scheduler}, {workers} workers; logs in {logs}", flush=True)

        started = time.perf_counter()
        run_worker = launch_run(processes, {**cluster_env, "KPI_LAKE_DASK_SCHEDULER": scheduler})
        outcome = run_outcome(processes, run_worker)
        timings["distributed_sync"] = time.perf_counter() - started
    finally:
        processes.stop()

    with (
        environment(instance_settings(cluster_env)),
        dg.DagsterInstance.from_config(cluster_env["DAGSTER_HOME"]) as instance,
    ):
        workers_by_step = step_workers(instance, outcome["run_id"])
    engine = sa.create_engine(sa.engine.make_url(postgres_url).set(database=cluster_env["DAGSTER_PG_DB"]))
    try:
        with engine.connect() as conn:
            pools = dict(
                conn.execute(sa.text('select concurrency_key, "limit" from concurrency_limits')).all()
            )
    finally:
        engine.dispose()

    started = time.perf_counter()
    in_process_lake = workdir / "lake-in-process"
    sync = subprocess.run(
        [str(BIN / "kpi-lake"), "sync"],
        cwd=PROJECT_ROOT,
        env={
            **{k: v for k, v in cluster_env.items() if not k.startswith(("DAGSTER_", "AZURE", "KPI_LAKE_"))},
            "KPI_LAKE_ROOT": str(in_process_lake),
            "KPI_LAKE_LANDING": str(landing),
        },
        capture_output=True,
        text=True,
    )
    timings["in_process_sync"] = time.perf_counter() - started
    (logs / "in-process-sync.log").write_text(sync.stdout + sync.stderr, encoding="utf-8")
    if sync.returncode != 0:
        raise RuntimeError(f"the in-process build failed ({sync.returncode}):\n{sync.stderr[-3000:]}")

    started = time.perf_counter()
    azure = AzureStorage(use_emulator=True, emulator_url=azurite_url)
    distributed = summarise_lake(
        cluster_env["KPI_LAKE_ROOT"],
        storage_options=azure.delta_storage_options(cluster_env["KPI_LAKE_ROOT"]),
        filesystem=azure.filesystem(cluster_env["KPI_LAKE_ROOT"]),
    )
    in_process = summarise_lake(str(in_process_lake))
    timings["compare"] = time.perf_counter() - started
    return DemoResult(
        run_id=outcome["run_id"],
        run_succeeded=outcome["success"],
        step_workers=workers_by_step,
        distributed=distributed,
        in_process=in_process,
        timings=timings,
        pools=pools,
        stored_outputs=sorted(
            str(p) for p in (workdir / "dagster_home" / "storage").rglob("*") if p.is_file()
        ),
    )


def report(result: DemoResult) -> None:
    by_worker: dict[str, list[str]] = {}
    for step, worker in sorted(result.step_workers.items()):
        by_worker.setdefault(worker, []).append(step)
    print(f"\nrun {result.run_id}: {'succeeded' if result.run_succeeded else 'FAILED'}")
    print("which Dask worker ran which step (from the run's event log):")
    for worker, steps in sorted(by_worker.items()):
        shown = ", ".join(steps[:6]) + (f", … ({len(steps) - 6} more)" if len(steps) > 6 else "")
        print(f"  {worker}: {len(steps)} steps: {shown}")
    print(f"table pools in the instance (one writer per table): {len(result.pools)}")
    width = max((len(t) for t in result.distributed | result.in_process), default=10)
    print(f"\n{'table'.ljust(width)}  {'distributed':>12}  {'in-process':>12}  content")
    for table in sorted(set(result.distributed) | set(result.in_process)):
        left, right = result.distributed.get(table), result.in_process.get(table)
        same = "same" if left == right else "DIFFERENT"
        print(
            f"{table.ljust(width)}  {'-' if left is None else f'{left.rows:,}':>12}  "
            f"{'-' if right is None else f'{right.rows:,}':>12}  {same}"
        )
    print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in result.timings.items()))
    if result.ok:
        print(f"\nOK: {len(result.distributed)} tables identical (rows and content) in both lakes.")
    else:
        for difference in result.differences:
            print(f"DIFFERENT {difference}", file=sys.stderr)
        if not result.run_succeeded:
            print("FAILED: the distributed run failed; see its log in the Dagster instance", file=sys.stderr)


@contextlib.contextmanager
def services(workdir: Path) -> Iterator[tuple[str, str]]:
    """Azurite and a PostgreSQL server on free loopback ports, started (and stopped, by process id) by the very
    code of the test suite's ``azurite`` and ``postgres`` fixtures; yields their URLs."""
    from tests import conftest

    factory = _TempPathFactory(workdir)
    azurite = contextlib.contextmanager(conftest.azurite.__wrapped__)
    postgres = contextlib.contextmanager(conftest.postgres.__wrapped__)
    with azurite(factory) as azurite_url, postgres(factory) as postgres_url:
        yield postgres_url, azurite_url


class _TempPathFactory:
    def __init__(self, base: Path):
        self.base = base

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo-distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2, help="size of the sample business systems")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers to start (at least 2)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, lakes, instance)")
    parser.add_argument("--run-job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--select", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_job:
        return run_job(args.select)
    if args.workers < 2:
        parser.error("--workers: at least 2 (the point is more than one worker)")
    workdir = Path(tempfile.mkdtemp(prefix="kpi-lake-distributed-"))
    try:
        with services(workdir) as (postgres_url, azurite_url):
            result = run_demo(
                workdir,
                postgres_url=postgres_url,
                azurite_url=azurite_url,
                scale=args.scale,
                workers=args.workers,
            )
        report(result)
        return 0 if result.ok else 1
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
