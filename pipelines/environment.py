"""Resources from the environment: the one place that decides local folder or Azure, sample or real database.

``KPI_LAKE_ROOT`` (lake), ``KPI_LAKE_LANDING`` (landing zone) and ``KPI_LAKE_BUSINESS_DB`` (SQLAlchemy URL)
choose where things are; Azure credentials come from the standard ``AZURE_*`` variables;
``KPI_LAKE_STORAGE_RETRIES`` (default 4) is how many times the lake retries an operation that failed on a
transient storage error (0 = fail at the first outage). Values are bound through Dagster ``EnvVar`` so the UI
shows the variable's name, never a secret.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from resources.azure import AzureStorage
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LAKE = PROJECT_ROOT / "lake"
DEFAULT_LANDING = PROJECT_ROOT / "landing"
#: How many times the lake retries a transient storage error (``DeltaLake.retry_attempts``).
RETRIES = "KPI_LAKE_STORAGE_RETRIES"


def _setting(variable: str, default: str) -> str | dg.EnvVar:
    return dg.EnvVar(variable) if os.environ.get(variable) else default


def lake_root() -> str:
    return os.environ.get("KPI_LAKE_ROOT") or str(DEFAULT_LAKE)


def landing_root() -> str:
    return os.environ.get("KPI_LAKE_LANDING") or str(DEFAULT_LANDING)


def get_resources() -> dict[str, dg.ConfigurableResource]:
    azure = AzureStorage.from_env()
    landing = LandingZone(root=_setting("KPI_LAKE_LANDING", str(DEFAULT_LANDING)), azure=azure)
    return {
        "lake": DeltaLake(
            root=_setting("KPI_LAKE_ROOT", str(DEFAULT_LAKE)),
            azure=azure,
            **({"retry_attempts": dg.EnvVar.int(RETRIES)} if os.environ.get(RETRIES) else {}),
        ),
        "landing": landing,
        "business_db": BusinessDatabase(
            url=dg.EnvVar("KPI_LAKE_BUSINESS_DB") if os.environ.get("KPI_LAKE_BUSINESS_DB") else None,
            landing=landing,
        ),
    }
