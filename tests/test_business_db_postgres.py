"""Business systems from a real PostgreSQL server: first load, incremental watermark, soft and hard deletes."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from assets.bronze import DATABASE_TABLES
from assets.bronze.factory import database_bronze_asset
from assets.silver import SILVER_TABLES
from assets.silver.factory import silver_asset
from kpi_lake.sample_data import write_business_database
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone

pytestmark = pytest.mark.postgres


@pytest.fixture
def business_db(postgres: str) -> str:
    """A fresh database on the test server, filled by the sample generator through SQLAlchemy."""
    name = f"council_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"create database {name}"))
    admin.dispose()
    url = postgres.rsplit("/", 1)[0] + f"/{name}"
    write_business_database(url, scale=0.2, seed=7)
    return url


def _materialise(url: str, lake_root: Path, landing_root: Path):
    azure = AzureStorage()
    landing = LandingZone(root=str(landing_root), azure=azure)
    resources = {
        "lake": DeltaLake(root=str(lake_root), azure=azure),
        "landing": landing,
        "business_db": BusinessDatabase(url=url, landing=landing),
    }
    business_silver = [s for s in SILVER_TABLES if s.ref.source == "business_systems"]
    assets = [database_bronze_asset(spec) for spec in DATABASE_TABLES] + [
        silver_asset(s) for s in business_silver
    ]
    result = dg.materialize(assets, resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return resources["lake"], result


def test_postgres_extract_is_incremental_and_carries_deletes(business_db: str, tmp_path: Path):
    lake, _ = _materialise(business_db, tmp_path / "lake", tmp_path / "landing")
    engine = sa.create_engine(business_db)
    with engine.connect() as connection:
        for spec in DATABASE_TABLES:
            count = connection.execute(sa.text(f"select count(*) from {spec.table}")).scalar_one()
            assert lake.scan(spec.ref).select(pl.len()).collect().item() == count, spec.table

    bronze = TableRef("bronze", "business_systems", "service_requests")
    versions = {spec.table: lake.state(spec.ref).version for spec in DATABASE_TABLES}
    later = dt.datetime(2026, 11, 2, 8, 0, 0)
    with engine.begin() as connection:
        ids = (
            connection.execute(sa.text("select request_id from service_requests order by request_id limit 3"))
            .scalars()
            .all()
        )
        connection.execute(
            sa.text(
                "update service_requests set status = 'Closed', closed_at = :t, updated_at = :t where request_id = :i"
            ),
            {"t": later, "i": ids[0]},
        )
        connection.execute(
            sa.text("update service_requests set deleted_at = :t, updated_at = :t where request_id = :i"),
            {"t": later, "i": ids[1]},
        )
        connection.execute(sa.text("delete from service_requests where request_id = :i"), {"i": ids[2]})
    engine.dispose()

    _materialise(business_db, tmp_path / "lake", tmp_path / "landing")
    table = lake.scan(bronze).collect()
    updated = table.filter(pl.col("request_id") == ids[0])
    assert updated["status"].item() == "Closed"
    assert updated["updated_at"].item() == later.replace(tzinfo=dt.UTC)
    assert table.filter(pl.col("request_id") == ids[1])["deleted_at"].item() is not None
    assert table.filter(pl.col("request_id") == ids[2])["_deleted_in_source"].item() is True
    # Only the changed table got a new Delta version; the others read nothing new and wrote nothing.
    for spec in DATABASE_TABLES:
        expected = versions[spec.table] + (1 if spec.table == "service_requests" else 0)
        assert lake.state(spec.ref).version == expected, spec.table
    # Silver leaves deleted rows out and sees the new closure.
    silver = lake.scan(TableRef("silver", "business_systems", "service_requests")).collect()
    assert ids[1] not in silver["request_id"] and ids[2] not in silver["request_id"]
    assert silver.filter(pl.col("request_id") == ids[0])["is_closed"].item() is True


def test_postgres_tables_are_checked_without_reading_them_and_each_change_is_seen(business_db: str):
    """The nightly's plan (pipelines/planning.py) checks each table on the server: the same answer twice when
    nothing changed; a new stamp, a hard delete and a late commit inside the look-back window each change it."""
    from kpi_lake.bronze import source_fingerprint

    engine = sa.create_engine(business_db)
    spec = next(s for s in DATABASE_TABLES if s.table == "foi_requests")
    before = source_fingerprint(spec, engine)
    assert source_fingerprint(spec, engine) == before
    with engine.begin() as connection:
        newest, oldest_id = connection.execute(
            sa.text("select max(updated_at), min(request_id) from foi_requests")
        ).one()
    seen = {before}
    changes = [
        (
            "update foi_requests set outcome = 'Withdrawn', updated_at = :at where request_id = :id",
            {"at": newest + dt.timedelta(minutes=5), "id": oldest_id},
        ),
        ("delete from foi_requests where request_id = (select max(request_id) from foi_requests)", {}),
        # Committed late, stamped a minute before the newest row (which stays the newest): the row moves into
        # the look-back window.
        (
            "update foi_requests set outcome = 'Refused', updated_at = :at where request_id = :id",
            {"at": newest + dt.timedelta(minutes=4), "id": oldest_id + 1},
        ),
        # The same row again, late again: count, newest stamp and key sums all stay; only its stamp moves.
        (
            "update foi_requests set outcome = 'Granted', updated_at = :at where request_id = :id",
            {"at": newest + dt.timedelta(minutes=3), "id": oldest_id + 1},
        ),
    ]
    for statement, params in changes:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), params)
        after = source_fingerprint(spec, engine)
        assert after not in seen, statement
        seen.add(after)
    engine.dispose()
