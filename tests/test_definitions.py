"""The code location as Dagster loads it: keys, groups, the nightly job and schedule, settings from the env."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time

import dagster as dg
import pytest

from kpi_lake.tables import LAYERS, TableRef
from tests.conftest import PROJECT_ROOT


def _load_defs() -> dg.Definitions:
    import pipelines.definitions

    return importlib.reload(pipelines.definitions).defs


def test_every_asset_key_is_a_lake_path_and_grouped_by_layer_and_source():
    defs = _load_defs()
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert len(keys) >= 20
    for key in keys:
        ref = TableRef.from_key_path(key.path)
        assert ref.layer in LAYERS
        assert graph.get(key).group_name == ref.group_name


def test_nightly_job_covers_everything_and_runs_at_two_uk_time():
    from assets.gold.reports import REPORT_KEY

    defs = _load_defs()
    job = defs.resolve_job_def("nightly_sync")
    # Everything but the quarterly report, which is partitioned by quarter and has its own job.
    everything = defs.resolve_asset_graph().get_all_asset_keys()
    assert job.asset_layer.executable_asset_keys == everything - {REPORT_KEY}
    assert defs.resolve_job_def("quarterly_report").asset_layer.executable_asset_keys == {REPORT_KEY}
    schedule = defs.resolve_schedule_def("nightly_sync_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/London"
    assert schedule.job_name == "nightly_sync"


def test_azure_settings_come_from_the_environment_not_from_config(monkeypatch: pytest.MonkeyPatch):
    secret = "not-a-real-key-but-secret-all-the-same=="
    monkeypatch.setenv("KPI_LAKE_ROOT", "abfss://lake@councilperf.dfs.core.windows.net/kpi")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "councilperf")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", secret)
    defs = _load_defs()
    lake = defs.resources["lake"]
    # Bound as EnvVar: the UI and the run config show the variable's name, never its value.
    assert isinstance(lake.root, dg.EnvVar) and lake.root.env_var_name == "KPI_LAKE_ROOT"
    assert isinstance(lake.azure.account_key, dg.EnvVar)
    assert secret not in repr(defs.resources)
    with dg.build_resources({"lake": lake}) as resources:
        options = resources.lake.storage_options()
    assert options == {"account_name": "councilperf", "account_key": secret}


def test_local_defaults_need_no_environment():
    defs = _load_defs()
    with dg.build_resources(
        {"lake": defs.resources["lake"], "landing": defs.resources["landing"]}
    ) as resources:
        assert resources.lake.root == str(PROJECT_ROOT / "lake")
        assert resources.landing.root == str(PROJECT_ROOT / "landing")
        assert resources.lake.storage_options() is None


def test_code_location_loads_quickly(tmp_path):
    """The UI reloads the code location often: importing it must stay cheap (no GX, no Azure SDK, no database
    engine, no Delta reader; and once its SQL models are cached, no SQL parser and no numpy: those load when an
    asset runs)."""
    script = (
        "import sys, time; t = time.perf_counter(); import pipelines.definitions; "
        "print(time.perf_counter() - t); "
        "print('heavy=' + ','.join(m for m in sys.argv[1:] if m in sys.modules))"
    )
    never = [
        "great_expectations",
        "adlfs",
        "azure.storage.blob",
        "sqlalchemy",
        "duckdb",
        "pandas",
        "deltalake",
    ]
    after_first_load = ["sqlglot", "numpy"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_LAKE_")}
    env["KPI_LAKE_CACHE_DIR"] = str(tmp_path / "cache")  # empty: the first load parses the models
    for load, heavy_modules in (("first", never), ("reload", never + after_first_load)):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", script, *heavy_modules],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        load_seconds, heavy = result.stdout.strip().splitlines()[-2:]
        assert heavy == "heavy=", f"imported at {load} load: {heavy}"
        print(
            f"code location import ({load}): {float(load_seconds):.2f}s "
            f"(process {time.perf_counter() - started:.2f}s)"
        )


def test_one_key_selection_picks_what_dagsters_selection_syntax_picks():
    """``kpi-lake sync --select 'key:"a/b/c"'`` skips Dagster's selection parser; the keys must be the same."""
    from pipelines.runs import selected_keys

    graph = _load_defs().resolve_job_def("nightly_sync").asset_layer.asset_graph
    keys = sorted(graph.get_all_asset_keys())
    assert len(keys) >= 20
    for select in [*(f'key:"{key.to_user_string()}"' for key in keys), 'key:"bronze/nowhere/none"']:
        expected = dg.AssetSelection.from_string(select).resolve(graph)
        assert selected_keys(select, graph) == expected, select
        assert len(expected) == (0 if "nowhere" in select else 1)
    # Wildcards and expressions still go through Dagster's parser.
    assert selected_keys('key:"bronze/education/*"', graph) == {
        key for key in keys if key.path[:2] == ["bronze", "education"]
    }
    assert selected_keys("group:bronze_spar_net", graph) == {
        key for key in keys if graph.get(key).group_name == "bronze_spar_net"
    }


def test_the_nightly_job_runs_inside_the_lake_lock_whatever_the_executor(monkeypatch: pytest.MonkeyPatch):
    """Runs launched by the schedule or the UI take the lake lock: the job's executor is the chosen one, wrapped."""
    import importlib

    import pipelines.jobs

    for name, inner in (("multiprocess", "multiprocess"), ("in_process", "in_process")):
        monkeypatch.setenv("KPI_LAKE_EXECUTOR", name)
        job = importlib.reload(pipelines.jobs).nightly_sync
        assert job.executor_def.name == inner
        assert "inside the lake lock" in (job.executor_def.description or "")
    monkeypatch.delenv("KPI_LAKE_EXECUTOR")
    importlib.reload(pipelines.jobs)
