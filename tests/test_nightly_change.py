"""A nightly costs what changed: after a business system changes 1 % of its rows (updates with a new
``updated_at``, inserts, hard deletes scattered over the whole key space), the extract reads those rows, not
the table, and bronze ends up as a from-scratch load of the changed source would. A real SQLite database and
lake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from kpi_lake.bronze import DELETED_IN_SOURCE, DatabaseTable, land_database_table
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.pipeline_helpers import sqlite_table

ROWS = 30_000
OLD = dt.datetime(2025, 6, 1, 9, 30)
TONIGHT = dt.datetime(2026, 1, 6, 1, 0)
LINEAGE = ["_loaded_at", "_run_id", "_source_table"]


def _database(path: Path) -> sa.Engine:
    return sqlite_table(
        path,
        "create table cases (case_id integer primary key, status text, updated_at timestamp)",
        "insert into cases values (:id, 'open', :at)",
        [{"id": i * 2 + 1, "at": OLD + dt.timedelta(seconds=61 * i)} for i in range(ROWS)],
    )


def _change_one_percent(engine: sa.Engine) -> dict[str, int]:
    """1 % updated (new status and stamp), 0.1 % inserted past the newest key, 0.5 % hard-deleted, the
    deletes spread over every part of the key space (more ranges than a query lists one by one)."""
    with engine.begin() as connection:
        updated = connection.execute(
            sa.text("update cases set status = 'closed', updated_at = :at where case_id % 200 = 1"),
            {"at": TONIGHT},
        ).rowcount
        deleted = connection.execute(sa.text("delete from cases where case_id % 400 = 3")).rowcount
        inserted = connection.execute(
            sa.text(
                "insert into cases select case_id + 2 * (select max(case_id) from cases), 'new', :at "
                "from cases where case_id % 2000 = 5"
            ),
            {"at": TONIGHT},
        ).rowcount
    return {"updated": updated, "deleted": deleted, "inserted": inserted}


def _mirror(lake: DeltaLake, spec: DatabaseTable) -> pl.DataFrame:
    return lake.scan(spec.ref).drop(LINEAGE).collect().sort("case_id")


def test_a_nightly_with_one_percent_changed_reads_the_change_and_matches_a_fresh_load(tmp_path: Path):
    engine = _database(tmp_path / "systems.sqlite")
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    first_version = lake.version(spec.ref)

    # Nothing new: only the rows within the look-back of the newest change are read again; nothing written.
    quiet = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    newest = OLD + dt.timedelta(seconds=61 * (ROWS - 1))
    in_lookback = sum(OLD + dt.timedelta(seconds=61 * i) >= newest - spec.lookback for i in range(ROWS))
    assert quiet.rows_read == in_lookback < ROWS / 5
    assert quiet.full_reconciliation is None and quiet.rows_written == 0 and quiet.rows_deleted == 0
    assert lake.version(spec.ref) == first_version  # no commit either
    # The rows read again are compared with bronze first: identical, so no merge at all (a merge of unchanged
    # rows writes nothing but scans the whole table).
    assert quiet.state is not None and quiet.state.operation == "unchanged"

    changes = _change_one_percent(engine)
    assert changes["deleted"] > 100 and changes["updated"] > ROWS / 200
    statements: list[str] = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda *args: statements.append(" ".join(args[2].split()))
    )
    with engine.connect() as connection:  # what the look-back from the old watermark takes in
        since = newest - spec.lookback
        window = connection.execute(
            sa.text("select count(*) from cases where updated_at >= :since"), {"since": since}
        ).scalar_one()
    report = land_database_table(
        spec, lake=lake, engine=engine, run_id="r3", loaded_at=now, last_full_reconciliation=now
    )
    # Incremental: the new rows past the watermark are not "unseen keys" forcing a read of the whole table.
    assert report.full_reconciliation is None, report.full_reconciliation
    assert report.rows_deleted == changes["deleted"]
    assert report.rows_written == changes["updated"] + changes["inserted"] + changes["deleted"]
    assert report.rows_read == window < changes["updated"] + changes["inserted"] + in_lookback
    # The deletes are spread over more than a hundred key ranges. SQLite's keys come in one value, read once
    # (a streamed aggregate over an index), not row by row and not again per range (the per-range read of a
    # server database: tests/test_bronze_key_ranges.py).
    key_reads = [s for s in statements if s.startswith("SELECT cases.case_id FROM cases")]
    at_once = [s for s in statements if "group_concat(case_id" in s]
    assert key_reads == [] and len(at_once) == 1, statements

    # Bronze is what a from-scratch load of the changed source holds, plus the deleted rows, flagged.
    fresh = DeltaLake(root=str(tmp_path / "fresh"), azure=AzureStorage())
    land_database_table(spec, lake=fresh, engine=engine, run_id="f1", loaded_at=now)
    mirrored = _mirror(lake, spec)
    assert mirrored["case_id"].is_unique().all()
    assert mirrored.filter(~pl.col(DELETED_IN_SOURCE)).equals(_mirror(fresh, spec))
    assert mirrored.filter(pl.col(DELETED_IN_SOURCE)).height == changes["deleted"]

    # Idempotent: the same night again writes nothing.
    again = land_database_table(
        spec, lake=lake, engine=engine, run_id="r4", loaded_at=now, last_full_reconciliation=now
    )
    assert again.rows_written == 0 and again.rows_deleted == 0 and again.full_reconciliation is None
    assert again.rows_read == changes["updated"] + changes["inserted"]  # tonight's rows: the new watermark
    assert _mirror(lake, spec).equals(mirrored)
    assert lake.version(spec.ref) == report.state.version
