"""The environment an attack case runs the `kpi-lake` command in: its own lake, landing zone and DAGSTER_HOME."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def cli_env(lake: str | Path, landing: Path, home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without its lake, Azure and Dagster settings, pointed at ``lake``, ``landing``
    and ``home`` (given the instance settings `make` copies there), plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KPI_LAKE_", "AZURE", "DAGSTER_HOME"))}
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    return {
        **clean,
        "KPI_LAKE_ROOT": str(lake),
        "KPI_LAKE_LANDING": str(landing),
        "DAGSTER_HOME": str(home),
        **extra,
    }
