"""The whole nightly sync, materialised into a temporary lake from the generated landing zone."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.bronze import DATABASE_TABLES, FILE_TABLES
from kpi_lake.raw_files import SOURCE_FILE, SOURCE_HASH, SOURCE_ROW
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake
from tests.pipeline_helpers import bronze_refs, local_resources, run_nightly, silver_refs, snapshot

DATABASE = "business_systems/council_systems.sqlite"


@pytest.fixture
def synced(landing_copy: Path, tmp_path: Path):
    resources = local_resources(tmp_path / "lake", landing_copy)
    result = run_nightly(resources)
    assert result.success
    return resources, result


def _sqlite_count(landing: Path, table: str, where: str = "1=1") -> int:
    with sqlite3.connect(landing / DATABASE) as connection:
        return connection.execute(f"select count(*) from {table} where {where}").fetchone()[0]


def test_every_source_table_lands_in_bronze(synced, landing_copy: Path):
    resources, result = synced
    lake: DeltaLake = resources["lake"]
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    for spec in FILE_TABLES:
        assert tuple(spec.ref.key_path) in materialised
        table = lake.scan(spec.ref).collect()
        assert table.height > 0, f"{spec.ref} is empty"
        landed = {p.relative_to(landing_copy).as_posix() for p in (landing_copy / spec.source).iterdir()}
        assert set(table[SOURCE_FILE].unique()) <= landed
        assert table[SOURCE_HASH].str.len_chars().unique().to_list() == [64]
        # One row per record: (file, sheet, row) identifies a bronze row.
        keys = [c for c in (SOURCE_FILE, "_source_sheet", SOURCE_ROW) if c in table.columns]
        assert table.select(keys).is_duplicated().sum() == 0
    for spec in DATABASE_TABLES:
        table = lake.scan(spec.ref).collect()
        assert table.height == _sqlite_count(landing_copy, spec.table), spec.table
        assert table[spec.primary_key].is_unique().all()
        assert table["_deleted_in_source"].sum() == 0


def test_every_landed_file_reaches_a_bronze_table(synced, landing_copy: Path):
    resources, _ = synced
    lake: DeltaLake = resources["lake"]
    loaded = set()
    for spec in FILE_TABLES:
        loaded |= set(lake.scan(spec.ref).select(SOURCE_FILE).unique().collect()[SOURCE_FILE])
    landed = {
        p.relative_to(landing_copy).as_posix()
        for p in landing_copy.rglob("*")
        if p.is_file() and p.suffix in (".csv", ".xlsx") and p.parent.name != "business_systems"
    }
    assert landed - loaded == set(), "files that no bronze table picked up"


def test_rerun_changes_no_row_and_writes_no_version(synced):
    resources, _ = synced
    lake: DeltaLake = resources["lake"]
    gold_root = Path(lake.root) / "gold"
    mart = [
        TableRef.from_key_path(p.parent.relative_to(Path(lake.root)).parts)
        for p in gold_root.glob("*/*/_delta_log")
    ]
    refs = bronze_refs() + silver_refs() + mart
    before = snapshot(lake, refs)
    assert run_nightly(resources).success
    after = snapshot(lake, refs)
    for ref, (version, data) in before.items():
        assert after[ref][0] == version, f"{ref} got a new version on a rerun with nothing new"
        assert after[ref][1].equals(data), f"{ref} changed on a rerun"


def test_only_new_or_changed_files_are_loaded(synced, landing_copy: Path):
    resources, _ = synced
    lake: DeltaLake = resources["lake"]
    ref = next(s.ref for s in FILE_TABLES if s.table == "kpi_values")
    table = lake.scan(ref).collect()
    csv_name = sorted(n for n in table[SOURCE_FILE].unique() if n.endswith(".csv"))[0]
    rows_of_file = table.filter(pl.col(SOURCE_FILE) == csv_name).height
    path = landing_copy / csv_name

    # The same file re-exported with one more line (a changed export): its rows are replaced, not added.
    original = path.read_bytes()
    newline = b"\r\n" if b"\r\n" in original else b"\n"
    last_line = original.rstrip(newline).split(newline)[-1]
    path.write_bytes(original.rstrip(newline) + newline + last_line + newline)
    # A copy under another name with the same bytes as before: already loaded, so not loaded again.
    shutil.copyfile(
        landing_copy / sorted(n for n in table[SOURCE_FILE].unique())[-1],
        path.with_name("spar_export_copy.csv"),
    )

    result = run_nightly(resources)
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.path == ref.key_path)
    metadata = event.materialization.metadata
    assert metadata["files_loaded"].value == 1
    assert metadata["files_unchanged"].value >= 2
    after = lake.scan(ref).collect()
    assert after.filter(pl.col(SOURCE_FILE) == csv_name).height == rows_of_file + 1
    assert after.height == table.height + 1
    assert "spar_export_copy.csv" not in set(after[SOURCE_FILE])
    # Only what depends on the changed source was rebuilt: work proportional to what changed.
    for silver in silver_refs():
        expected = 1 if silver.source == "spar_net" else 0
        assert lake.version(silver) == expected, silver
    emissions_kpis = TableRef("silver", "kpi_catalogue", "kpi_emissions")  # reads no SPAR.net table
    assert lake.version(emissions_kpis) == 0
    assert lake.version(TableRef("gold", "kpi_mart", "fact_kpi_value")) == 1  # SPAR.net values feed it


def test_database_changes_arrive_incrementally(synced, landing_copy: Path):
    resources, _ = synced
    lake: DeltaLake = resources["lake"]
    spec = next(s for s in DATABASE_TABLES if s.table == "foi_requests")
    key = spec.primary_key
    with sqlite3.connect(landing_copy / DATABASE) as connection:
        ids = [r[0] for r in connection.execute(f"select {key} from foi_requests order by {key} limit 3")]
        latest = connection.execute("select max(updated_at) from foi_requests").fetchone()[0]
        changed_at = "2026-11-01 09:00:00.000000"
        assert changed_at > latest
        connection.execute(
            f"update foi_requests set deleted_at = ?, updated_at = ? where {key} = ?",
            (changed_at, changed_at, ids[0]),
        )
        connection.execute(f"delete from foi_requests where {key} = ?", (ids[1],))
    before = lake.state(spec.ref)
    result = run_nightly(resources)
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path == spec.ref.key_path
    )
    assert event.materialization.metadata["rows_written"].value == 2  # one update, one delete flag
    table = lake.scan(spec.ref).collect()
    assert table.height == before.row_count  # nothing removed from bronze: deletes are carried as flags
    soft = table.filter(pl.col(key) == ids[0])
    assert soft["deleted_at"].item() is not None and not soft["_deleted_in_source"].item()
    assert table.filter(pl.col(key) == ids[1])["_deleted_in_source"].item()
    assert table.filter(pl.col(key) == ids[2])["_deleted_in_source"].item() is False
    # Only foi_requests got a new version.
    for other in DATABASE_TABLES:
        if other.table != "foi_requests":
            assert lake.state(other.ref).version == 0, other.table


def test_unreadable_file_is_set_aside_naming_the_file_and_keeps_its_earlier_rows(synced, landing_copy: Path):
    resources, _ = synced
    lake: DeltaLake = resources["lake"]
    spec = next(s for s in FILE_TABLES if s.table == "kpi_values")
    before = snapshot(lake, [spec.ref])
    (landing_copy / "spar_net" / "spar_export_2026-27_Q3.csv").write_bytes(b"")
    result = run_nightly(resources, raise_on_error=False)
    assert result.success  # one bad file does not stop its table, nor the night
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path == spec.ref.key_path
    )
    errors = event.materialization.metadata["bad_file_errors"].value
    assert "spar_net/spar_export_2026-27_Q3.csv" in errors and "empty" in errors
    bad = lake.scan(spec.bad_files_ref).collect()
    assert bad["source_file"].to_list() == ["spar_net/spar_export_2026-27_Q3.csv"]
    # The file's earlier version stays in bronze, unchanged.
    after = snapshot(lake, [spec.ref])
    assert after[spec.ref][0] == before[spec.ref][0] and after[spec.ref][1].equals(before[spec.ref][1])


def test_job_metadata_reports_rows_version_and_schema(synced):
    _, result = synced
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        assert isinstance(metadata["dagster/row_count"].value, int)
        assert metadata["delta_version"].value >= 0
        assert isinstance(metadata["dagster/column_schema"].value, dg.TableSchema)
