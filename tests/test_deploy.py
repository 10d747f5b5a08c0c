"""The production deployment files: the Dagster instance on a real PostgreSQL server, and the Azure files checked.

The production ``deploy/dagster/dagster.yaml`` is loaded as written, with its ``env:`` settings pointed at the
test's PostgreSQL server. Only its compute-log manager is swapped for a local one: ``AzureBlobComputeLogManager``
builds ``https://<account>.blob.<suffix>`` URLs, which the Azurite emulator (plain HTTP, path-style URLs) cannot
answer, so that block is checked by Dagster's own config schema and by constructing the class instead.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import PROJECT_ROOT
from tests.pipeline_helpers import local_resources

DEPLOY = PROJECT_ROOT / "deploy"
PRODUCTION_YAML = DEPLOY / "dagster" / "dagster.yaml"
ROOT_YAML = PROJECT_ROOT / "dagster.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- the production instance on PostgreSQL -------------------------------------------------------------------


@pytest.fixture
def dagster_database(postgres: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the test server, given to the production dagster.yaml through its variables."""
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = sa.engine.make_url(postgres).set(database=name)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username)
    # The test server trusts loopback connections; the password is still read from the environment, as in
    # production, where it comes from Key Vault.
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "not-used-by-a-trust-server")
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "kpilakelogs")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin.dispose()


def _production_home(home: Path, **run_monitoring: int) -> Path:
    """DAGSTER_HOME holding the production dagster.yaml, its compute logs kept locally (see module docstring)."""
    config = _read_yaml(PRODUCTION_YAML)
    config["compute_logs"] = {
        "module": "dagster._core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "compute_logs")},
    }
    config["run_monitoring"].update(run_monitoring)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home


def _subset(resources: dict, *, asset_selection: dg.AssetSelection) -> dg.JobDefinition:
    from pipelines import definitions

    defs = dg.Definitions(assets=definitions.defs.assets, jobs=definitions.defs.jobs, resources=resources)
    job = defs.resolve_job_def("nightly_sync")
    return job.get_subset(asset_selection=set(asset_selection.resolve(job.asset_layer.asset_graph)))


@pytest.mark.postgres
def test_production_instance_keeps_runs_events_and_pool_slots_in_postgres(
    dagster_database: str, landing_copy: Path, tmp_path: Path
):
    from dagster._core.events import DagsterEventType
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    home = _production_home(tmp_path / "dagster_home")
    lake = tmp_path / "lake"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled

        job = _subset(
            local_resources(lake, landing_copy), asset_selection=dg.AssetSelection.groups("bronze_spar_net")
        )
        result = job.execute_in_process(instance=instance)
        assert result.success
        materialised = {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}
        assert materialised == {"bronze/spar_net/kpi_definitions", "bronze/spar_net/kpi_values"}

    # What the webserver and daemon will read: straight from the PostgreSQL tables.
    engine = sa.create_engine(dagster_database)
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("select status from runs where run_id = :run"), {"run": result.run_id}
            ).scalar_one()
            events = dict(
                conn.execute(
                    sa.text(
                        "select dagster_event_type, count(*) from event_logs where run_id = :run"
                        " group by dagster_event_type"
                    ),
                    {"run": result.run_id},
                ).all()
            )
            asset_keys = set(
                conn.execute(
                    sa.text(
                        "select asset_key from event_logs where run_id = :run"
                        " and dagster_event_type = 'ASSET_MATERIALIZATION'"
                    ),
                    {"run": result.run_id},
                ).scalars()
            )
            pools = dict(
                conn.execute(sa.text('select concurrency_key, "limit" from concurrency_limits')).all()
            )
            held = conn.execute(
                sa.text("select count(*) from concurrency_slots where run_id is not null and not deleted")
            ).scalar()
            tags = dict(
                conn.execute(
                    sa.text("select key, value from run_tags where run_id = :run"), {"run": result.run_id}
                ).all()
            )
    finally:
        engine.dispose()
    assert status == "SUCCESS"
    assert events[DagsterEventType.RUN_SUCCESS.value] == 1  # stored under its legacy name, PIPELINE_SUCCESS
    assert events[DagsterEventType.ASSET_MATERIALIZATION.value] == 2
    assert asset_keys == {'["bronze", "spar_net", "kpi_definitions"]', '["bronze", "spar_net", "kpi_values"]'}
    # Each table's pool was created in PostgreSQL with the default limit of 1, and released at the end.
    assert pools == {"bronze/spar_net/kpi_definitions": 1, "bronze/spar_net/kpi_values": 1}
    assert held == 0
    assert tags["kpi_lake/job"] == "nightly_sync"
    assert (lake / "bronze" / "spar_net" / "kpi_values" / "_delta_log").is_dir()


def _held_slots(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (run_id, key)
            for run_id, key in conn.execute(
                sa.text(
                    "select run_id, concurrency_key from concurrency_slots where run_id is not null and not deleted"
                )
            ).all()
        ]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_run_is_failed_by_run_monitoring_and_its_table_slot_freed(
    dagster_database: str, landing_copy: Path, tmp_path: Path
):
    """`kpi-lake sync` is killed (SIGKILL) while a step holds its table's pool slot; the daemon's own monitoring
    iterations, on the production instance, fail the run and free the slot, and the table can be written again.

    The default run launcher cannot see inside its worker, so a dead run is failed at the instance's runtime
    bound (3 hours in production); here that bound and the slot-freeing delay are shortened to 1 second.
    """
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    home = _production_home(
        tmp_path / "dagster_home", max_runtime_seconds=1, free_slots_after_run_end_seconds=1
    )
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KPI_LAKE_ROOT": str(lake),
        "KPI_LAKE_LANDING": str(landing_copy),
    }
    engine = sa.create_engine(dagster_database)
    with dg.DagsterInstance.from_config(str(home)):
        pass  # the schema exists before any run, as it does once the webserver and daemon have started
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "kpi-lake"), "sync", "--select", "group:bronze_business_systems"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        held: list[tuple[str, str]] = []
        while not held and worker.poll() is None and time.monotonic() < deadline:
            held = _held_slots(engine)
            time.sleep(0.05)
        assert held, "the sync never held a table's pool slot (it finished or failed first)"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        run_id, pool = held[0]

        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
            assert (run_id, pool) in _held_slots(engine)

            logger = logging.getLogger("run_monitoring_test")
            started = time.monotonic()
            with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as context:
                while time.monotonic() - started < 60:
                    list(execute_run_monitoring_iteration(context, logger))
                    list(execute_concurrency_slots_iteration(context, logger))
                    run = instance.get_run_by_id(run_id)
                    if run.status == dg.DagsterRunStatus.FAILURE and not [
                        slot for slot in _held_slots(engine) if slot[0] == run_id
                    ]:
                        break
                    time.sleep(0.5)
            recovered_in = time.monotonic() - started
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
            assert [slot for slot in _held_slots(engine) if slot[0] == run_id] == []
            assert recovered_in < 30

            # The table whose slot the dead run held can be written again (with the slot still held, this run
            # would wait for it until the test timed out).
            asset_key = dg.AssetKey(pool.split("/"))
            job = _subset(
                local_resources(lake, landing_copy), asset_selection=dg.AssetSelection.assets(asset_key)
            )
            assert job.execute_in_process(instance=instance).success
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        engine.dispose()
