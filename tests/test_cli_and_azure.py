"""The console command end to end: `kpi-lake generate` and `kpi-lake sync`, locally and with Azure (Azurite)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.conftest import PROJECT_ROOT
from tests.pipeline_helpers import bronze_refs, run_cli


def test_generate_then_sync_locally_prints_a_summary(tmp_path: Path):
    env = {"KPI_LAKE_ROOT": str(tmp_path / "lake"), "KPI_LAKE_LANDING": str(tmp_path / "landing")}
    generated = run_cli(["generate", "--scale", "0.1"], env)
    assert generated.returncode == 0, generated.stderr
    assert (tmp_path / "landing" / "spar_net").is_dir()
    again = run_cli(["generate", "--if-empty"], env)
    assert "already holds files" in again.stdout

    synced = run_cli(["sync"], env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "kpi-lake sync succeeded" in synced.stdout
    assert "bronze/spar_net/kpi_values" in synced.stdout
    assert "make dev" in synced.stdout
    # Progress as it goes (plain lines: not a terminal), every step counted, and a summary in flow order.
    steps = synced.stderr.split(" steps to run", 1)[0].rsplit(" ", 1)[-1]
    assert f"[{steps}/{steps} " in synced.stderr
    table_lines = [
        line.split()[0]
        for line in synced.stdout.splitlines()
        if line.startswith(("bronze/", "silver/", "gold/"))
    ]
    layers = [name.split("/")[0] for name in table_lines]
    assert layers == sorted(layers, key=["bronze", "silver", "gold"].index)
    assert not any(name.endswith("_quarantine") for name in table_lines), (
        "empty quarantines hidden by default"
    )
    assert "Data Docs:" in synced.stdout and "slowest steps:" in synced.stdout

    # Nothing changed at any source: no run at all (tests/test_sync_plan.py); with --all, every step runs and
    # finds nothing new.
    rerun = run_cli(["sync"], env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "nothing to run" in rerun.stdout
    forced = run_cli(["sync", "--all"], env)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "no new files" in forced.stdout and "unchanged" in forced.stdout
    assert "Data Docs:" in forced.stdout
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    for ref in bronze_refs():
        assert lake.exists(ref), ref


def test_sync_exits_non_zero_and_names_the_failure(tmp_path: Path):
    landing = tmp_path / "landing"
    (landing / "spar_net").mkdir(parents=True)
    (landing / "spar_net" / "spar_export_2025-26_Q1.csv").write_bytes(b"")
    env = {"KPI_LAKE_ROOT": str(tmp_path / "lake"), "KPI_LAKE_LANDING": str(landing)}
    synced = run_cli(["sync"], env)
    assert synced.returncode != 0
    assert "FAILED" in synced.stdout
    assert "spar_export_2025-26_Q1.csv" in synced.stderr


@pytest.mark.azure
def test_whole_sync_on_azure_by_environment_alone(sample_landing: Path, azurite: str, tmp_path: Path):
    """Landing zone and lake both in (emulated) Azure blob storage; only environment variables differ."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURITE_BLOB_STORAGE_URL": azurite,
        "KPI_LAKE_ROOT": f"az://lake-{suffix}/kpi",
        "KPI_LAKE_LANDING": f"az://landing-{suffix}/incoming",
    }
    azure = AzureStorage(use_emulator=True, emulator_url=azurite)
    fs = azure.filesystem(env["KPI_LAKE_LANDING"])
    fs.mkdir(f"landing-{suffix}")
    for path in sample_landing.rglob("*"):
        if path.is_file():
            fs.put_file(str(path), f"landing-{suffix}/incoming/{path.relative_to(sample_landing).as_posix()}")

    synced = run_cli(["sync"], env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "az://lake-" in synced.stdout

    local_lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    local = run_cli(["sync"], {"KPI_LAKE_ROOT": local_lake.root, "KPI_LAKE_LANDING": str(sample_landing)})
    assert local.returncode == 0, local.stderr

    remote_lake = DeltaLake(root=env["KPI_LAKE_ROOT"], azure=azure)
    with dg.build_resources({"lake": remote_lake}) as resources:
        for ref in bronze_refs():
            remote = resources.lake.scan(ref).select(pl.len()).collect().item()
            assert remote == local_lake.scan(ref).select(pl.len()).collect().item(), ref
        values = resources.lake.scan(TableRef("bronze", "spar_net", "kpi_values")).collect()
        assert values["_source_file"].str.starts_with("spar_net/").all()
        # A rerun against Azure is idempotent too.
        versions = {ref: resources.lake.state(ref).version for ref in bronze_refs()}
        assert run_cli(["sync"], env).returncode == 0
        assert {ref: resources.lake.state(ref).version for ref in bronze_refs()} == versions


def test_sync_called_from_python_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path):
    """The command pauses and freezes Python's collector while it starts; called from Python (a script, a
    notebook), the caller's process must get its collector back, enabled and with nothing frozen."""
    (tmp_path / "landing" / "education").mkdir(parents=True)
    script = (
        "import gc; from kpi_lake.cli import main; "
        "code = main(['sync', '--select', 'key:\"bronze/education/ees_data\"']); "
        "print(code, gc.isenabled(), gc.get_freeze_count())"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KPI_LAKE_", "AZURE", "DAGSTER_HOME"))}
    env = {**clean, "KPI_LAKE_ROOT": str(tmp_path / "lake"), "KPI_LAKE_LANDING": str(tmp_path / "landing")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 True 0"
