"""Run the real nightly job against a chosen lake and landing zone, as the schedule would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import sqlalchemy as sa

from assets.bronze import DATABASE_TABLES, FILE_TABLES
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone

#: The console command of this environment.
CLI = str(Path(sys.executable).parent / "kpi-lake")


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``kpi-lake`` with ``args`` in a child process, with ``env`` as its only lake, landing and Azure
    settings (none inherited from this process)."""
    from tests.conftest import PROJECT_ROOT

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KPI_LAKE_", "AZURE", "DAGSTER_HOME"))}
    return subprocess.run(
        [CLI, *args], cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=900
    )


def local_resources(lake_root: Path, landing_root: Path) -> dict[str, dg.ConfigurableResource]:
    azure = AzureStorage()
    landing = LandingZone(root=str(landing_root), azure=azure)
    return {
        "lake": DeltaLake(root=str(lake_root), azure=azure),
        "landing": landing,
        "business_db": BusinessDatabase(landing=landing),
    }


def run_nightly(resources: dict[str, dg.ConfigurableResource], *, raise_on_error: bool = True):
    from pipelines import definitions

    defs = dg.Definitions(
        assets=definitions.defs.assets,
        jobs=definitions.defs.jobs,
        resources=resources,
    )
    return defs.resolve_job_def("nightly_sync").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error
    )


def bronze_refs() -> list[TableRef]:
    return [spec.ref for spec in FILE_TABLES] + [spec.ref for spec in DATABASE_TABLES]


def silver_refs() -> list[TableRef]:
    from assets.silver import SILVER_TABLES

    return [spec.ref for spec in SILVER_TABLES] + [spec.quarantine_ref for spec in SILVER_TABLES]


def snapshot(lake: DeltaLake, refs: list[TableRef]) -> dict[TableRef, tuple[int, pl.DataFrame]]:
    """Version and sorted content of each table (lineage run columns left out: they say when, not what)."""
    result = {}
    for ref in refs:
        frame = lake.scan(ref).collect()
        data = frame.drop([c for c in ("_loaded_at", "_run_id") if c in frame.columns])
        result[ref] = (lake.state(ref).version, data.sort(data.columns))
    return result


def sqlite_table(path: Path, create: str, insert: str, rows: list[dict]) -> sa.Engine:
    """A SQLite database at ``path`` with one table made by ``create`` and filled by ``insert`` with ``rows``:
    a business system's table for the bronze extract tests."""
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(sa.text(create))
        connection.execute(sa.text(insert), rows)
    return engine


def azurite_landing(azurite: str, files: dict[str, Path]) -> tuple[LandingZone, AzureStorage, str]:
    """A landing zone in a fresh Azurite container holding ``files`` (landing-relative name → local file):
    the zone, the storage it uses and the container's name."""
    import uuid

    container = f"landing-{uuid.uuid4().hex[:8]}"
    azure = AzureStorage(use_emulator=True, emulator_url=azurite)
    fs = azure.filesystem(f"az://{container}/incoming")
    fs.mkdir(container)
    for name, local in files.items():
        fs.put_file(str(local), f"{container}/incoming/{name}")
    return LandingZone(root=f"az://{container}/incoming", azure=azure), azure, container
