"""Silver business facts merge what changed: after the business systems change (updates, soft and hard deletes,
inserts, a row turning bad and a bad row fixed), each merge-changed silver table conforms only the bronze rows
loaded since its last build, and ends up exactly as a whole rebuild from bronze would be, quarantine included."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import dagster as dg
import polars as pl

from assets.bronze import DATABASE_TABLES
from assets.bronze.factory import database_bronze_asset
from assets.silver import SILVER_TABLES
from assets.silver.factory import silver_asset
from kpi_lake.sample_data import BUSINESS_DATABASE
from kpi_lake.tables import TableRef
from tests.pipeline_helpers import local_resources

MERGED = [spec for spec in SILVER_TABLES if spec.merge_changed]


def _materialise(resources: dict, *, bronze: bool = True) -> dg.ExecuteInProcessResult:
    business_silver = [s for s in SILVER_TABLES if s.ref.source == "business_systems"]
    assets = [database_bronze_asset(spec) for spec in DATABASE_TABLES] if bronze else []
    assets += [silver_asset(s) for s in business_silver]
    result = dg.materialize(assets, resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return result


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def _change(database: Path) -> dict[str, int]:
    """In every merged table's source: two rows updated, one soft-deleted, one hard-deleted, one inserted.
    In service requests also a row turned bad (closed before it was raised)."""
    counts = {}
    with sqlite3.connect(database) as db:
        for spec in MERGED:
            [source] = spec.inputs
            key = spec.primary_key[0]
            table = source.table
            newest = dt.datetime.fromisoformat(
                db.execute(f"select max(updated_at) from {table}").fetchone()[0]
            )
            stamp = (newest + dt.timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S.%f")
            keys = [row[0] for row in db.execute(f"select {key} from {table} order by {key} limit 4")]
            db.execute(f"update {table} set updated_at = ? where {key} in (?, ?)", (stamp, keys[0], keys[1]))
            db.execute(
                f"update {table} set deleted_at = ?, updated_at = ? where {key} = ?", (stamp, stamp, keys[2])
            )
            db.execute(f"delete from {table} where {key} = ?", (keys[3],))
            columns = [row[1] for row in db.execute(f"pragma table_info({table})")]
            if isinstance(keys[0], int):
                new_key = f"(select max({key}) + 1 from {table})"
            else:
                new_key = f"{key} || '-NEW'"
            select = ", ".join(new_key if c == key else ("?" if c == "updated_at" else c) for c in columns)
            db.execute(
                f"insert into {table} ({', '.join(columns)}) select {select} from {table} limit 1", (stamp,)
            )
            counts[table] = 5
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
        db.execute(
            "update service_requests set closed_at = datetime(created_at, '-1 day'), updated_at = ? where "
            "request_id = (select min(request_id) + 10 from service_requests)",
            (stamp,),
        )
    return counts


def test_merged_silver_equals_a_whole_rebuild_after_every_kind_of_change(landing_copy: Path, tmp_path: Path):
    resources = local_resources(tmp_path / "lake", landing_copy)
    lake = resources["lake"]
    _materialise(resources)
    versions = {spec.ref: lake.version(spec.ref) for spec in MERGED}
    before = {spec.ref: lake.scan(spec.ref).collect() for spec in MERGED}

    database = landing_copy / BUSINESS_DATABASE
    _change(database)
    result = _materialise(resources)
    _assert_merged_as_rebuilt(lake, result, versions, before)
    requests = TableRef("silver", "business_systems", "service_requests_quarantine")
    reasons = lake.scan(requests).collect()["reason"].to_list()
    assert reasons == ["closed before it was raised"]

    # The bad row fixed at source leaves the quarantine and comes back into the table.
    with sqlite3.connect(database) as db:
        db.execute(
            "update service_requests set closed_at = datetime(created_at, '+1 day'), updated_at = ? "
            "where closed_at < created_at",
            (dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f"),),
        )
    service_requests = next(s for s in MERGED if s.ref.table == "service_requests")
    versions = {spec.ref: lake.version(spec.ref) for spec in MERGED}
    result = _materialise(resources)
    assert lake.scan(requests).collect().height == 0
    _assert_merged_as_rebuilt(lake, result, versions, before, only=[service_requests])

    # Nothing new: no table is written again.
    versions = {spec.ref: lake.version(spec.ref) for spec in MERGED}
    _materialise(resources)
    assert {spec.ref: lake.version(spec.ref) for spec in MERGED} == versions


def _assert_merged_as_rebuilt(lake, result, versions: dict, before: dict, only: list | None = None) -> None:
    for spec in only or MERGED:
        [source] = spec.inputs
        history = lake.delta_table(spec.ref).history(1)[0]
        assert history["operation"] == "MERGE", (spec.ref, history["operation"])
        assert lake.version(spec.ref) == versions[spec.ref] + 1
        events = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(spec.ref.key_path)
        ]
        conformed = events[0].materialization.metadata["bronze_rows_conformed"].value
        assert 0 < conformed <= 10, (spec.ref, conformed)  # the night's changes, not the table

        whole = spec.conform(**{source.table: lake.scan(source)})
        table = lake.scan(spec.ref).collect()
        assert _sorted(table).equals(_sorted(whole.rows.select(table.columns))), spec.ref
        quarantine = lake.scan(spec.quarantine_ref).collect()
        assert _sorted(quarantine).equals(_sorted(whole.quarantine.select(quarantine.columns))), spec.ref
        assert not table.equals(before[spec.ref]), spec.ref


def test_a_bronze_table_taken_back_rebuilds_its_silver_whole(landing_copy: Path, tmp_path: Path):
    """A bronze version restored by hand (a bad load undone): rows loaded since the last build are not the
    whole change, so the silver table is rebuilt, not merged, and matches its bronze again."""
    resources = local_resources(tmp_path / "lake", landing_copy)
    lake = resources["lake"]
    _materialise(resources)
    _change(landing_copy / BUSINESS_DATABASE)
    _materialise(resources)
    spec = next(s for s in MERGED if s.ref.table == "service_requests")
    [source] = spec.inputs
    table = lake.delta_table(source)
    table.restore(table.version() - 1)

    _materialise(resources, bronze=False)  # silver alone, from bronze as restored
    whole = spec.conform(**{source.table: lake.scan(source)})
    rebuilt = lake.scan(spec.ref).collect()
    assert _sorted(rebuilt).equals(_sorted(whole.rows.select(rebuilt.columns)))
    assert lake.delta_table(spec.ref).history(1)[0]["operation"] == "WRITE"
