"""The nightly sync on a real Dask cluster (a scheduler and two worker processes on loopback), the instance on the
real PostgreSQL server, the lake on Azurite: the same code as `make demo-distributed` (deploy/demo_distributed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import demo_distributed


def test_dask_is_chosen_by_the_environment_and_needs_the_scheduler(monkeypatch: pytest.MonkeyPatch):
    from pipelines import executors

    monkeypatch.setenv("KPI_LAKE_EXECUTOR", "dask")
    monkeypatch.delenv("KPI_LAKE_DASK_SCHEDULER", raising=False)
    with pytest.raises(RuntimeError, match="KPI_LAKE_DASK_SCHEDULER"):
        executors.executor_from_env()
    monkeypatch.setenv("KPI_LAKE_DASK_SCHEDULER", "tcp://127.0.0.1:8786")
    assert executors.executor_from_env().name == "dask"


def test_content_hash_ignores_row_order_and_run_lineage_but_not_values():
    import polars as pl

    frame = pl.DataFrame({"kpi": ["a", "b"], "value": [1.0, 2.0], "_run_id": ["r1", "r1"]})
    shuffled = pl.DataFrame({"_run_id": ["r2", "r2"], "value": [2.0, 1.0], "kpi": ["b", "a"]})
    changed = pl.DataFrame({"kpi": ["a", "b"], "value": [1.0, 2.5], "_run_id": ["r1", "r1"]})
    retyped = frame.with_columns(pl.col("value").cast(pl.Float32))
    assert demo_distributed.content_hash(frame) == demo_distributed.content_hash(shuffled)
    assert demo_distributed.content_hash(frame) != demo_distributed.content_hash(changed)
    assert demo_distributed.content_hash(frame) != demo_distributed.content_hash(retyped)
    assert demo_distributed.content_hash(frame) != demo_distributed.content_hash(frame.head(1))
    # The same sum added in another order differs in its last bits only: still the same content.
    added = frame.with_columns(pl.Series("value", [0.7 + 0.2 + 0.1, 2.0]))
    assert added["value"][0] != 1.0
    assert demo_distributed.content_hash(added) == demo_distributed.content_hash(frame)


def test_the_best_comparator_does_not_depend_on_the_order_of_tied_rows():
    """Two comparators tied on the best value: the same one is named whatever order the rows came in (a build
    on other workers or threads must give the same mart)."""
    from kpi_lake.target_review import peer_statistics

    values, codes = [70.0, 90.0, 90.0, 60.0], ["OWN", "E06000002", "E06000001", "E06000003"]
    forward = peer_statistics(values, codes, "OWN", sign=1)
    backward = peer_statistics(values[::-1], codes[::-1], "OWN", sign=1)
    assert forward["best_comparator_code"] == backward["best_comparator_code"] == "E06000001"
    lower = peer_statistics([70.0, 50.0, 50.0], ["OWN", "B", "A"], "OWN", sign=-1)
    assert (lower["best_comparator_code"], lower["best_comparator_value"]) == ("A", 50.0)


@pytest.mark.azure
@pytest.mark.postgres
@pytest.mark.slow
def test_nightly_sync_on_a_dask_cluster_matches_the_in_process_build(
    postgres: str, azurite: str, tmp_path: Path
):
    from dagster._core.execution.api import create_execution_plan

    from pipelines.definitions import defs

    result = demo_distributed.run_demo(
        tmp_path, postgres_url=postgres, azurite_url=azurite, scale=0.2, workers=2
    )
    demo_distributed.report(result)

    assert result.run_succeeded
    assert result.differences == []
    # Every layer is there, in both lakes: the comparison covered the whole build, not an empty lake.
    assert {table.split("/")[0] for table in result.distributed} == {"bronze", "silver", "gold"}
    assert len(result.distributed) > 80

    # Every step of the nightly job ran on a Dask worker, and both workers took a share.
    plan = create_execution_plan(defs.resolve_job_def("nightly_sync"))  # the job's own steps
    assert set(result.step_workers) == set(plan.step_keys_to_execute)
    assert set(result.step_workers.values()) == {"worker-1", "worker-2"}

    # Each table's writer ran in its pool (limit 1), created in the shared PostgreSQL instance by the run.
    job = defs.resolve_job_def("nightly_sync")
    table_pools = {node.definition.pool for node in job.graph.node_dict.values()} - {None}
    assert "silver/spar_net/kpi_values" in table_pools and len(table_pools) > 60
    assert table_pools <= set(result.pools)
    assert set(result.pools.values()) == {1}
    # Nothing was handed between steps through the instance's local storage (where an IO manager writes).
    assert result.stored_outputs == []


@pytest.mark.azure
@pytest.mark.postgres
@pytest.mark.slow
def test_a_table_whose_slot_another_run_holds_waits_on_the_dask_cluster(
    postgres: str, azurite: str, landing_copy: Path, tmp_path: Path
):
    """Another run (on any machine) holds the pool slot of bronze/reference/corporate_themes in the shared
    instance: a run on the Dask cluster that writes that table does not start the step until the slot is freed,
    then writes the table."""
    import time

    import dagster as dg
    from dagster._core.utils import make_new_run_id

    table = "bronze/reference/corporate_themes"
    processes = demo_distributed.Processes(tmp_path)
    env = demo_distributed.cluster_environment(tmp_path, postgres, azurite, landing_copy)
    try:
        scheduler = demo_distributed.start_dask_cluster(processes, env, workers=2)
        with (
            demo_distributed.environment(demo_distributed.instance_settings(env)),
            dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance,
        ):
            storage = instance.event_log_storage
            storage.set_concurrency_slots(table, 1)
            other_run = make_new_run_id()
            assert storage.claim_concurrency_slot(table, other_run, "writing_the_table").is_claimed

            run_worker = demo_distributed.launch_run(
                processes, {**env, "KPI_LAKE_DASK_SCHEDULER": scheduler}, select=f"key:{table}"
            )
            deadline = time.monotonic() + 120
            runs = []
            while not runs and time.monotonic() < deadline and run_worker.poll() is None:
                runs = instance.get_runs()
                time.sleep(0.5)
            assert runs, "the run worker never created its run"
            run_id = runs[0].run_id
            time.sleep(20)  # ample time for the step to be sent to a worker and start, were the pool ignored
            started = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
            assert started == []
            assert run_worker.poll() is None
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

            storage.free_concurrency_slots_for_run(other_run)
            outcome = demo_distributed.run_outcome(processes, run_worker, timeout=180)
            assert outcome == {"run_id": run_id, "success": True}
            assert set(demo_distributed.step_workers(instance, run_id)) == {
                "bronze__reference__corporate_themes"
            }
    finally:
        processes.stop()
    from resources.azure import AzureStorage

    azure = AzureStorage(use_emulator=True, emulator_url=azurite)
    lake = env["KPI_LAKE_ROOT"]
    tables = demo_distributed.summarise_lake(
        lake, storage_options=azure.delta_storage_options(lake), filesystem=azure.filesystem(lake)
    )
    assert list(tables) == [table] and tables[table].rows > 0
