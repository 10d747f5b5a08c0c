"""The local instance's storage (deploy/local/dagster.yaml): Dagster's SQLite files, connections kept.

Runs and their events written through it are what Dagster's own storage reads from the same home (and the other
way round, so an existing home keeps its history), and it holds a bounded number of run databases open.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from kpi_lake.instance_storage import KEPT_SHARDS, KeptEngineSqliteEventLogStorage
from tests.conftest import PROJECT_ROOT


@dg.asset
def counted() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=counted)
def has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _home(tmp_path: Path, name: str, *, local_settings: bool) -> Path:
    home = tmp_path / name
    home.mkdir()
    if local_settings:
        shutil.copy(PROJECT_ROOT / "deploy/local/dagster.yaml", home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def _instance(home: Path, monkeypatch) -> dg.DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def test_runs_written_through_it_are_read_by_dagsters_own_storage_and_back(tmp_path: Path, monkeypatch):
    home = _home(tmp_path, "home", local_settings=True)
    with _instance(home, monkeypatch) as instance:
        assert isinstance(instance.event_log_storage, KeptEngineSqliteEventLogStorage)
        result = dg.materialize([counted, has_rows], instance=instance)
        assert result.success
    # Dagster's default storage on the same files sees the run, its materialisation and its check.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with _instance(home, monkeypatch) as plain:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        (run,) = plain.get_runs()
        assert run.run_id == result.run_id and run.is_success
        event = plain.get_latest_materialization_event(counted.key)
        assert event is not None and event.run_id == result.run_id
        assert event.asset_materialization.metadata["rows"].value == 3
        dg.materialize([counted, has_rows], instance=plain)  # history written the default way...
    shutil.copy(PROJECT_ROOT / "deploy/local/dagster.yaml", home / "dagster.yaml")
    with _instance(home, monkeypatch) as again:  # ...is read back through the kept connections
        assert len(again.get_runs()) == 2
        checks = again.event_log_storage.get_asset_check_execution_history(has_rows.check_key, limit=10)
        assert len(checks) == 2 and all(c.status.value == "SUCCEEDED" for c in checks)


def test_it_keeps_a_bounded_number_of_run_databases_open(tmp_path: Path, monkeypatch):
    home = _home(tmp_path, "home", local_settings=True)
    with _instance(home, monkeypatch) as instance:
        for _ in range(KEPT_SHARDS + 4):
            assert dg.materialize([counted], instance=instance).success
        storage = instance.event_log_storage
        open_runs = [shard for shard in storage._engines if shard != "index"]
        assert len(open_runs) <= KEPT_SHARDS
        # Every run's events are still there, including those whose database was closed.
        assert all(len(instance.all_logs(run.run_id)) > 5 for run in instance.get_runs())
