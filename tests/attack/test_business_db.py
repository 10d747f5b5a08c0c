"""Attack cases on the business-systems databases: late changes, schema drift, bad primary keys.

Each case changes the generated sample's SQLite database (or the real PostgreSQL fixture) behind the lake's
back, then materialises the real bronze assets and the business systems' silver tables, as the nightly job
would, on one Dagster instance (so the lake remembers when it last reconciled a table in full).
"""

from __future__ import annotations

import dataclasses
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
from kpi_lake.bronze import DatabaseTable
from kpi_lake.sample_data import write_business_database
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone

BUSINESS_SILVER = [s for s in SILVER_TABLES if s.ref.source == "business_systems"]


class Extract:
    """The business systems' bronze and silver assets against one database, lake and Dagster instance."""

    def __init__(self, url: str | None, lake_root: Path, landing_root: Path) -> None:
        azure = AzureStorage()
        landing = LandingZone(root=str(landing_root), azure=azure)
        self.lake = DeltaLake(root=str(lake_root), azure=azure)
        self.resources = {
            "lake": self.lake,
            "landing": landing,
            "business_db": BusinessDatabase(url=url, landing=landing),
        }
        self.instance = dg.DagsterInstance.ephemeral()
        self.engine = sa.create_engine(
            url or f"sqlite:///{landing_root / 'business_systems/council_systems.sqlite'}"
        )

    def run(
        self, tables: list[str], *, specs: dict[str, DatabaseTable] | None = None
    ) -> dg.ExecuteInProcessResult:
        chosen = [(specs or {}).get(s.table, s) for s in DATABASE_TABLES if s.table in tables]
        silver = [s for s in BUSINESS_SILVER if {r.table for r in s.inputs} <= set(tables)]
        result = dg.materialize(
            [database_bronze_asset(spec) for spec in chosen] + [silver_asset(s) for s in silver],
            resources=self.resources,
            instance=self.instance,
        )
        assert result.success
        return result

    def bronze(self, table: str) -> pl.DataFrame:
        return self.lake.scan(TableRef("bronze", "business_systems", table)).collect()

    def silver(self, table: str) -> pl.DataFrame:
        return self.lake.scan(TableRef("silver", "business_systems", table)).collect()

    def version(self, layer: str, table: str) -> int | None:
        return self.lake.version(TableRef(layer, "business_systems", table))

    def watermark(self, table: str) -> dt.datetime:
        with self.engine.connect() as connection:
            return _timestamp(
                connection.execute(sa.text(f"select max(updated_at) from {table}")).scalar_one()
            )


def _metadata(result: dg.ExecuteInProcessResult, table: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.path == ["bronze", "business_systems", table]:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no materialisation of bronze/business_systems/{table}")


def _timestamp(value) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value)) if isinstance(value, str) else value


def _without_key_constraint(engine: sa.Engine, table: str) -> None:
    """Rebuild ``table`` with the same columns and types but no primary key or NOT NULL: what a careless
    extract, a view or a legacy system gives, so NULL and repeated keys can exist at source."""
    old = f"{table}_{uuid.uuid4().hex[:6]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"alter table {table} rename to {old}"))
    source = sa.Table(old, sa.MetaData(), autoload_with=engine)
    loose = sa.Table(
        table, sa.MetaData(), *(sa.Column(c.name, c.type, nullable=True) for c in source.columns)
    )
    loose.create(engine)
    with engine.begin() as connection:
        connection.execute(loose.insert().from_select([c.name for c in source.columns], sa.select(source)))
        connection.execute(sa.text(f"drop table {old}"))


@pytest.fixture
def business_pg(postgres: str) -> str:
    """A fresh database on the real PostgreSQL server, filled by the sample generator."""
    name = f"attack_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"create database {name}"))
    admin.dispose()
    url = postgres.rsplit("/", 1)[0] + f"/{name}"
    write_business_database(url, scale=0.2, seed=7)
    return url


# ---- late-arriving changes -----------------------------------------------------------------------------------
def _late_change_case(extract: Extract) -> None:
    extract.run(["housing_repairs"])
    watermark = extract.watermark("housing_repairs")
    with extract.engine.begin() as connection:
        jobs = (
            connection.execute(
                sa.text("select job_id from housing_repairs where deleted_at is null order by job_id limit 3")
            )
            .scalars()
            .all()
        )
        # A change stamped an hour before the watermark (clock skew, a late batch): inside the look-back.
        connection.execute(
            sa.text("update housing_repairs set trade = 'Late change', updated_at = :t where job_id = :j"),
            {"t": watermark - dt.timedelta(hours=1), "j": jobs[0]},
        )
        # A change stamped a month back (a restore, a fix that kept the old stamp): outside any look-back.
        connection.execute(
            sa.text("update housing_repairs set trade = 'Restored', updated_at = :t where job_id = :j"),
            {"t": watermark - dt.timedelta(days=30), "j": jobs[1]},
        )
    version = extract.version("bronze", "housing_repairs")

    incremental = extract.run(["housing_repairs"])
    assert _metadata(incremental, "housing_repairs")["full_reconciliation"].startswith("no")
    trades = dict(extract.bronze("housing_repairs").select("job_id", "trade").iter_rows())
    assert trades[jobs[0]] == "Late change"  # caught by the look-back
    assert extract.version("bronze", "housing_repairs") == version + 1
    assert extract.silver("repair_jobs").filter(pl.col("job_id") == jobs[0])["trade"].item() == "Late change"

    # The periodic full reconciliation (due here: its period is set to zero) catches the old-stamped change.
    due = dataclasses.replace(
        next(s for s in DATABASE_TABLES if s.table == "housing_repairs"),
        full_reconciliation_every=dt.timedelta(0),
    )
    full = extract.run(["housing_repairs"], specs={"housing_repairs": due})
    metadata = _metadata(full, "housing_repairs")
    assert metadata["full_reconciliation"].startswith("last full reconciliation"), metadata[
        "full_reconciliation"
    ]
    assert metadata["rows_written"] == 1  # only the row that differs is rewritten
    trades = dict(extract.bronze("housing_repairs").select("job_id", "trade").iter_rows())
    assert trades[jobs[1]] == "Restored"
    assert extract.silver("repair_jobs").filter(pl.col("job_id") == jobs[1])["trade"].item() == "Restored"

    # A row inserted with an old stamp: the key comparison sees a key bronze lacks and reads the table whole.
    with extract.engine.begin() as connection:
        connection.execute(
            sa.text(
                "insert into housing_repairs (job_id, property_ref, ward_code, priority, trade, reported_at, "
                "target_completion_at, completed_at, status, updated_at, deleted_at) "
                "select job_id + 1000000, property_ref, ward_code, priority, 'Back-dated insert', reported_at, "
                "target_completion_at, completed_at, status, :t, null from housing_repairs where job_id = :j"
            ),
            {"t": watermark - dt.timedelta(days=60), "j": jobs[2]},
        )
    inserted = extract.run(["housing_repairs"])
    assert "not in bronze" in _metadata(inserted, "housing_repairs")["full_reconciliation"]
    assert extract.bronze("housing_repairs").filter(pl.col("job_id") == jobs[2] + 1_000_000).height == 1

    # Nothing new: the next run writes no version, although it reads the look-back window again.
    version = extract.version("bronze", "housing_repairs")
    extract.run(["housing_repairs"])
    assert extract.version("bronze", "housing_repairs") == version


def test_late_arriving_change_is_caught_sqlite(landing_copy: Path, tmp_path: Path):
    """A change stamped older than the watermark (skew, restore, back-dated insert) reaches bronze and silver (SQLite)"""
    _late_change_case(Extract(None, tmp_path / "lake", landing_copy))


@pytest.mark.postgres
def test_late_arriving_change_is_caught_postgres(business_pg: str, tmp_path: Path):
    """A change stamped older than the watermark (skew, restore, back-dated insert) reaches bronze and silver (PostgreSQL)"""
    _late_change_case(Extract(business_pg, tmp_path / "lake", tmp_path / "landing"))


# ---- a column added at source ----------------------------------------------------------------------------------
def _new_column_case(extract: Extract) -> None:
    tables = ["employees", "sickness_absence"]
    extract.run(tables)
    staff_version = extract.version("silver", "staff_in_post")
    with extract.engine.begin() as connection:
        connection.execute(sa.text("alter table employees add column shoe_size integer"))
        # Filled in without touching updated_at, as a DBA's backfill would.
        connection.execute(sa.text("update employees set shoe_size = 9 + employee_id % 4"))
        employees = connection.execute(sa.text("select count(*) from employees")).scalar_one()

    drifted = extract.run(tables)
    metadata = _metadata(drifted, "employees")
    assert "added at source: shoe_size" in metadata["schema_drift"]
    assert metadata["full_reconciliation"] == "the source's columns changed"
    bronze = extract.bronze("employees")
    assert bronze.height == employees
    assert bronze["shoe_size"].null_count() == 0  # every row has the new column's value, not just new ones
    assert (bronze["shoe_size"] == 9 + bronze["employee_id"] % 4).all()
    # Downstream builds, without the new column (silver chooses its columns by name).
    assert extract.version("silver", "staff_in_post") > staff_version
    assert "shoe_size" not in extract.silver("staff_in_post").columns
    assert extract.silver("sickness_spells").height > 0

    versions = (extract.version("bronze", "employees"), extract.version("silver", "staff_in_post"))
    again = extract.run(tables)
    assert "schema_drift" not in _metadata(again, "employees")
    assert (extract.version("bronze", "employees"), extract.version("silver", "staff_in_post")) == versions


def test_column_added_at_source_lands_and_downstream_builds_sqlite(landing_copy: Path, tmp_path: Path):
    """A column added to a source table (employees.shoe_size) lands in bronze, is reported as drift, silver builds (SQLite)"""
    _new_column_case(Extract(None, tmp_path / "lake", landing_copy))


@pytest.mark.postgres
def test_column_added_at_source_lands_and_downstream_builds_postgres(business_pg: str, tmp_path: Path):
    """A column added to a source table (employees.shoe_size) lands in bronze, is reported as drift, silver builds (PostgreSQL)"""
    _new_column_case(Extract(business_pg, tmp_path / "lake", tmp_path / "landing"))


# ---- bad primary keys ------------------------------------------------------------------------------------------
def _copy_row(
    connection, table: str, key: str, source_key, new_key, updated_at: dt.datetime, **changes
) -> None:
    columns = [c for c in sa.inspect(connection).get_columns(table)]
    names = [c["name"] for c in columns]
    values = {n: sa.literal_column(n) for n in names}
    values[key] = sa.literal(new_key, type_=next(c["type"] for c in columns if c["name"] == key))
    values["updated_at"] = sa.literal(updated_at, type_=sa.DateTime())
    for name, value in changes.items():
        values[name] = sa.literal(value)
    source = sa.table(table, *(sa.column(n) for n in names))
    select = (
        sa.select(*(values[n].label(n) for n in names))
        .select_from(source)
        .where(sa.column(key) == source_key)
    )
    connection.execute(sa.insert(source).from_select(names, select))


def test_null_primary_key_is_rejected_and_reruns_are_idempotent(landing_copy: Path, tmp_path: Path):
    """A NULL primary key goes to _rejected with the reason, never to bronze or silver; two reruns change no count"""
    extract = Extract(None, tmp_path / "lake", landing_copy)
    extract.run(["planning_applications"])
    _without_key_constraint(extract.engine, "planning_applications")
    newest = extract.watermark("planning_applications") + dt.timedelta(minutes=5)
    with extract.engine.begin() as connection:
        some = connection.execute(
            sa.text("select min(application_ref) from planning_applications")
        ).scalar_one()
        _copy_row(connection, "planning_applications", "application_ref", some, None, newest)
        source_rows = connection.execute(sa.text("select count(*) from planning_applications")).scalar_one()

    first = extract.run(["planning_applications"])
    counts = []
    for _ in range(3):
        bronze, rejected = (
            extract.bronze("planning_applications"),
            extract.bronze("planning_applications_rejected"),
        )
        counts.append((bronze.height, rejected.height, extract.silver("planning_decisions").height))
        assert bronze["application_ref"].null_count() == 0
        assert extract.silver("planning_decisions")["application_ref"].null_count() == 0
        if len(counts) < 3:
            extract.run(["planning_applications"])
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0][0] == source_rows - 1
    assert rejected["application_ref"].to_list() == [None]
    assert rejected["_reason"].to_list() == ["primary key application_ref is NULL"]
    metadata = _metadata(first, "planning_applications")
    assert metadata["rows_rejected"] == 1 and "is NULL (1)" in metadata["rejected_reasons"]


def test_duplicate_primary_keys_at_source_are_rejected_and_reported(landing_copy: Path, tmp_path: Path):
    """Duplicate primary keys at source: every row of the key goes to _rejected with the reason, none is kept silently"""
    extract = Extract(None, tmp_path / "lake", landing_copy)
    extract.run(["planning_applications"])
    before = extract.bronze("planning_applications")
    _without_key_constraint(extract.engine, "planning_applications")
    newest = extract.watermark("planning_applications") + dt.timedelta(minutes=5)
    with extract.engine.begin() as connection:
        refs = (
            connection.execute(
                sa.text("select application_ref from planning_applications order by application_ref limit 2")
            )
            .scalars()
            .all()
        )
        # A key bronze already holds gets a second, different row at source...
        _copy_row(
            connection,
            "planning_applications",
            "application_ref",
            refs[0],
            refs[0],
            newest,
            decision="Refused",
        )
        # ...and a new key arrives twice, with different contents.
        _copy_row(
            connection,
            "planning_applications",
            "application_ref",
            refs[1],
            "DUP/0001",
            newest,
            decision="Granted",
        )
        _copy_row(
            connection,
            "planning_applications",
            "application_ref",
            refs[1],
            "DUP/0001",
            newest,
            decision="Refused",
        )

    result = extract.run(["planning_applications"])
    rejected = extract.bronze("planning_applications_rejected")
    # All rows of a repeated key are set aside (nothing says which is right), the old one included.
    assert sorted(rejected["application_ref"].to_list()) == sorted([refs[0], refs[0], "DUP/0001", "DUP/0001"])
    assert rejected["_reason"].str.contains("appears more than once at source").all()
    bronze = extract.bronze("planning_applications")
    assert "DUP/0001" not in bronze["application_ref"].to_list()
    # Bronze keeps the version of refs[0] it held before the source repeated the key.
    kept = bronze.filter(pl.col("application_ref") == refs[0]).drop("_loaded_at", "_run_id")
    assert kept.equals(before.filter(pl.col("application_ref") == refs[0]).drop("_loaded_at", "_run_id"))
    silver = extract.silver("planning_decisions")
    assert (
        silver["application_ref"].is_unique().all() and "DUP/0001" not in silver["application_ref"].to_list()
    )
    metadata = _metadata(result, "planning_applications")
    assert metadata["rows_rejected"] == 4 and "appears more than once" in metadata["rejected_reasons"]

    counts = (bronze.height, rejected.height)
    extract.run(["planning_applications"])
    assert (
        extract.bronze("planning_applications").height,
        extract.bronze("planning_applications_rejected").height,
    ) == counts
