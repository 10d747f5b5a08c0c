"""The business-systems database: any SQLAlchemy URL (SQL Server, PostgreSQL, …), by default the sample SQLite.

The URL can hold a password, so it comes from the environment (``KPI_LAKE_BUSINESS_DB``, bound with
Dagster ``EnvVar``) and is only ever logged with the password hidden.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from resources.landing import LandingZone

SAMPLE_DATABASE = "business_systems/council_systems.sqlite"


class BusinessDatabase(dg.ConfigurableResource):
    """Where the business systems' tables are read from. Without ``url``, the SQLite file in the landing zone."""

    url: str | None = None
    landing: LandingZone

    @contextmanager
    def engine(self) -> Iterator[Any]:
        import sqlalchemy as sa  # imported here: keeps the code location light to load

        if self.url:
            engine = sa.create_engine(self.url)
            try:
                yield engine
            finally:
                engine.dispose()
            return
        files = self.landing.list_files("business_systems", ("council_systems.sqlite",))
        if not files:
            raise FileNotFoundError(
                f"no business-systems database: set KPI_LAKE_BUSINESS_DB to a SQLAlchemy URL, or put "
                f"{SAMPLE_DATABASE} in the landing zone (kpi-lake generate writes one)"
            )
        with self.landing.open_local(files[0]) as path:
            engine = sa.create_engine(f"sqlite:///{path}")
            try:
                yield engine
            finally:
                engine.dispose()

    def describe(self) -> str:
        """The URL with any password hidden, for logs."""
        if not self.url:
            return f"sqlite (landing zone: {SAMPLE_DATABASE})"
        import sqlalchemy as sa

        return sa.engine.make_url(self.url).render_as_string(hide_password=True)
