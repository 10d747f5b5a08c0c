"""Hard deletes found without reading every key: per-key-range counts and sums are compared first (in the
database and over bronze), and only ranges that differ have their keys read. A real SQLite database and lake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from kpi_lake.bronze import (
    DELETED_IN_SOURCE,
    DatabaseTable,
    _all_keys,
    _ranges_grouped,
    _ranges_of,
    land_database_table,
    source_fingerprint,
)
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.pipeline_helpers import sqlite_table

ROWS = 20_000
STAMP = dt.datetime(2026, 1, 5, 9, 30)


def _database(path: Path) -> sa.Engine:
    return sqlite_table(
        path,
        "create table cases (case_id integer primary key, status text, updated_at timestamp)",
        "insert into cases values (:id, :status, :at)",
        [{"id": i * 3 + 7, "status": "open", "at": STAMP} for i in range(ROWS)],
    )


class Statements:
    """Every SQL statement the extract sends, and how many rows each key query returned."""

    def __init__(self, engine: sa.Engine) -> None:
        self.sent: list[str] = []
        self.parameters: dict[str, tuple] = {}
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, connection, cursor, statement, parameters, context, executemany) -> None:
        self.sent.append(" ".join(statement.split()))
        self.parameters[self.sent[-1]] = tuple(parameters)

    def range_comparisons(self) -> list[str]:
        """Statements reading what per-range figures are made of: in SQLite every key in one value (grouped in
        polars); a GROUP BY in the database elsewhere."""
        return [s for s in self.sent if "group_concat" in s or "GROUP BY" in s]

    def key_reads(self) -> list[str]:
        """Statements reading the key column alone (not an aggregate)."""
        return [s for s in self.sent if s.startswith("SELECT cases.case_id FROM cases")]


@pytest.mark.parametrize("keys_at_once", [True, False], ids=["keys-in-one-value", "group-by"])
def test_deletes_are_found_by_comparing_key_ranges_not_every_key(tmp_path: Path, monkeypatch, keys_at_once):
    """In SQLite every key is read in one value when the totals differ; a table too large for that (and any
    other database) is compared by a GROUP BY, and only the keys of the differing ranges are read."""
    if not keys_at_once:
        monkeypatch.setattr("kpi_lake.bronze.MAX_KEYS_AT_ONCE", 0)
    engine = _database(tmp_path / "systems.sqlite")
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    first = land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    assert first.rows_written == ROWS

    statements = Statements(engine)
    again = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert again.rows_deleted == 0 and again.rows_written == 0 and again.full_reconciliation is None
    # Nothing differs: the keys are not read at all, and the whole-table count and sum answered (no ranges).
    assert statements.key_reads() == []
    assert any(s.startswith("SELECT sum(") and "cases.case_id" in s for s in statements.sent), statements.sent
    assert statements.range_comparisons() == [], statements.sent

    deleted = 7 + 3 * 12_345
    with engine.begin() as connection:
        connection.execute(sa.text("delete from cases where case_id = :id"), {"id": deleted})
    statements.sent.clear()
    after = land_database_table(
        spec, lake=lake, engine=engine, run_id="r3", loaded_at=now, last_full_reconciliation=now
    )
    assert after.rows_deleted == 1
    bronze = lake.scan(spec.ref).collect()
    assert bronze.filter(pl.col(DELETED_IN_SOURCE))["case_id"].to_list() == [deleted]
    (compared,) = statements.range_comparisons()
    if keys_at_once:  # grouped here, not sorted by SQLite for a GROUP BY; and not read again
        assert "group_concat" in compared and statements.key_reads() == []
        return
    assert "GROUP BY" in compared
    # Only the keys of the one range holding the deleted key were read.
    (read,) = statements.key_reads()
    assert "BETWEEN" in read
    low, high = statements.parameters[read]
    assert low <= deleted <= high and (high - low + 1) / 3 < ROWS / 100  # a range of about ROWS / 1024 keys


def test_a_key_inserted_with_an_old_stamp_is_noticed_in_its_range(tmp_path: Path):
    engine = _database(tmp_path / "systems.sqlite")
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    with engine.begin() as connection:  # a restore: an old row back, with its old updated_at
        connection.execute(
            sa.text("insert into cases values (8, 'open', :at)"), {"at": STAMP - dt.timedelta(days=400)}
        )
    report = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert report.full_reconciliation is not None and "not in bronze" in report.full_reconciliation
    assert 8 in lake.scan(spec.ref).collect()["case_id"].to_list()


def test_without_a_declared_primary_key_the_totals_count_distinct_keys_and_a_repeat_is_found(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'extract.sqlite'}")
    with engine.begin() as connection:  # an extract table: no primary key declared
        connection.execute(sa.text("create table cases (case_id integer, status text, updated_at timestamp)"))
        connection.execute(
            sa.text("insert into cases values (:id, 'open', :at)"),
            [{"id": i, "at": STAMP} for i in range(500)],
        )
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    statements = Statements(engine)
    quiet = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert quiet.rows_written == 0 and quiet.full_reconciliation is None
    assert any("count(DISTINCT cases.case_id)" in s for s in statements.sent)
    assert statements.range_comparisons() == []
    with engine.begin() as connection:  # key 42 twice, the copy with an old stamp (outside the look-back)
        connection.execute(
            sa.text("insert into cases values (42, 'closed', :at)"), {"at": STAMP - dt.timedelta(days=9)}
        )
    statements.sent.clear()
    repeated = land_database_table(
        spec, lake=lake, engine=engine, run_id="r3", loaded_at=now, last_full_reconciliation=now
    )
    # The totals differed: compared range by range, from every key read in one value.
    (compared,) = statements.range_comparisons()
    assert "group_concat" in compared
    assert repeated.rows_rejected == 2, repeated.rejected_reasons  # both rows of key 42 set aside, with why
    rejected = lake.scan(spec.rejected_ref).collect()
    assert rejected["case_id"].to_list() == ["42", "42"]  # set aside as text, as the source gave it


def test_a_night_of_inserts_and_updates_agrees_without_reading_a_key(tmp_path: Path):
    engine = _database(tmp_path / "systems.sqlite")
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    tonight = STAMP + dt.timedelta(days=1)
    with engine.begin() as connection:  # the usual night: new cases, a few closed; nothing deleted
        connection.execute(
            sa.text("insert into cases values (:id, 'open', :at)"),
            [{"id": 10_000_000 + i, "at": tonight} for i in range(5)],
        )
        connection.execute(
            sa.text("update cases set status = 'closed', updated_at = :at where case_id in (7, 10, 13)"),
            {"at": tonight},
        )
    statements = Statements(engine)
    night = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert night.full_reconciliation is None and night.rows_deleted == 0
    assert night.rows_written == 8
    # The new keys are counted on bronze's side: the totals agree, so no range is compared and no key read.
    assert statements.key_reads() == []
    assert statements.range_comparisons() == [], statements.sent
    bronze = lake.scan(spec.ref).collect()
    assert bronze.height == ROWS + 5 and bronze["case_id"].n_unique() == ROWS + 5
    assert sorted(bronze.filter(pl.col("status") == "closed")["case_id"].to_list()) == [7, 10, 13]


def _text_keyed(path: Path) -> sa.Engine:
    return sqlite_table(
        path,
        "create table applications (ref text primary key, status text, updated_at timestamp)",
        "insert into applications values (:ref, 'received', :at)",
        [{"ref": f"25/{i:05d}/FUL", "at": STAMP} for i in range(3_000)],
    )


def test_a_text_key_is_compared_by_counts_and_a_delete_beside_an_insert_is_found(tmp_path: Path):
    engine = _text_keyed(tmp_path / "planning.sqlite")
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="applications", primary_key="ref")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    statements = Statements(engine)
    quiet = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert quiet.rows_written == 0 and quiet.rows_deleted == 0 and quiet.full_reconciliation is None
    # A quiet night reads no key: one count at source, one over bronze.
    assert not any(s.startswith("SELECT applications.ref FROM applications") for s in statements.sent)

    with engine.begin() as connection:  # one withdrawn and removed, one new: the count stays the same
        connection.execute(sa.text("delete from applications where ref = '25/01234/FUL'"))
        connection.execute(
            sa.text("insert into applications values ('25/03000/FUL', 'received', :at)"),
            {"at": STAMP + dt.timedelta(days=1)},
        )
    statements.sent.clear()
    night = land_database_table(
        spec, lake=lake, engine=engine, run_id="r3", loaded_at=now, last_full_reconciliation=now
    )
    assert night.rows_deleted == 1 and night.full_reconciliation is None
    # Every key read, in one value (SQLite): a text key has no ranges to narrow the read.
    assert any("group_concat(ref" in s for s in statements.sent), statements.sent
    bronze = lake.scan(spec.ref).collect()
    assert bronze.filter(pl.col(DELETED_IN_SOURCE))["ref"].to_list() == ["25/01234/FUL"]
    assert "25/03000/FUL" in bronze.filter(~pl.col(DELETED_IN_SOURCE))["ref"].to_list()

    with engine.begin() as connection:  # a restore: a row back with its old stamp, behind the watermark
        connection.execute(
            sa.text("insert into applications values ('19/00001/OUT', 'approved', :at)"),
            {"at": STAMP - dt.timedelta(days=2000)},
        )
    restored = land_database_table(
        spec, lake=lake, engine=engine, run_id="r4", loaded_at=now, last_full_reconciliation=now
    )
    assert restored.full_reconciliation is not None and "not in bronze" in restored.full_reconciliation
    assert "19/00001/OUT" in lake.scan(spec.ref).collect()["ref"].to_list()


def test_deletes_in_more_ranges_than_a_query_lists_are_read_by_range_number(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("kpi_lake.bronze.MAX_KEY_RANGES_IN_QUERY", 5)
    monkeypatch.setattr(
        "kpi_lake.bronze.MAX_KEYS_AT_ONCE", 0
    )  # as a server database: grouped, keys read by range
    engine = _database(tmp_path / "systems.sqlite")
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    deleted = [7 + 3 * i for i in range(0, ROWS, ROWS // 12)][:12]  # twelve keys far apart
    with engine.begin() as connection:
        connection.execute(
            sa.text("delete from cases where case_id in :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": deleted},
        )
    statements = Statements(engine)
    report = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert report.rows_deleted == len(deleted) and report.full_reconciliation is None
    (read,) = statements.key_reads()
    assert " IN (" in read and "BETWEEN" not in read, read  # one condition on the range number
    flagged = lake.scan(spec.ref).filter(pl.col(DELETED_IN_SOURCE)).collect()["case_id"].to_list()
    assert sorted(flagged) == deleted


def test_ranges_from_keys_read_at_once_match_the_database_group_by(tmp_path: Path):
    """SQLite's per-range figures come from every key read in one value and grouped in polars; other databases
    group. The comparison with bronze relies on both giving the same rows, keys and sums per range: gaps, a key
    repeated (an extract's key, not unique), a NULL key and a negative one."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'extract.sqlite'}")
    keys = [k for k in range(-40, 9_000, 7) if not 2_000 <= k < 3_500] + [77, 77, 77, 1_001, None]
    with engine.begin() as connection:
        connection.execute(sa.text("create table cases (case_id integer, status text)"))
        connection.execute(sa.text("insert into cases values (:id, 'open')"), [{"id": k} for k in keys])
    table = sa.Table("cases", sa.MetaData(), autoload_with=engine)
    low, high = -40, max(k for k in keys if k is not None)
    with engine.connect() as connection:
        read = _all_keys(connection, table, "case_id", pl.Int64)
        assert sorted(read.to_list()) == sorted(k for k in keys if k is not None)
        for width in (1, 13, 500, high - low + 1):
            grouped = _ranges_grouped(connection, table.c.case_id, low, width, unique=False)
            ours = _ranges_of(read, low, width, unique=False)
            assert ours.sort("bucket").equals(grouped.sort("bucket")), width
            assert (ours["rows"] - ours["keys"]).sum() == 2  # key 77 three times
            distinct = read.unique()  # as for a declared primary key: both sides skip the distinct count
            assert (
                _ranges_of(distinct, low, width, unique=True)
                .sort("bucket")
                .equals(_ranges_of(distinct, low, width, unique=False).sort("bucket"))
            )


def test_a_merge_told_where_matches_start_still_updates_an_old_row_in_place(tmp_path: Path, monkeypatch):
    """Bronze tells the merge the oldest stamp among the rows it updates, so files of older rows are not read.
    An update to a row last touched years ago, beside recent ones, must still update it in place (a stamp
    taken from the source's new values would insert it a second time); a row with no stamp turns the hint off."""
    monkeypatch.setattr("kpi_lake.bronze.DATABASE_FILE_BYTES", 16 * 1024)  # several files, in stamp order
    engine = sqlite_table(
        tmp_path / "systems.sqlite",
        "create table cases (case_id integer primary key, status text, updated_at timestamp)",
        "insert into cases values (:id, 'open', :at)",
        # Case 5 has no stamp (a system that left it empty): only a full reconciliation reads it.
        [{"id": i, "at": None if i == 5 else STAMP - dt.timedelta(days=ROWS - i)} for i in range(ROWS)],
    )
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    files = set(lake.delta_table(spec.ref).file_uris())
    assert len(files) > 3

    tonight = STAMP + dt.timedelta(days=1)
    with engine.begin() as connection:  # recent cases closed, and one case from years ago reopened
        connection.execute(
            sa.text(
                "update cases set status = 'closed', updated_at = :at where case_id in (19990, 19995, 3)"
            ),
            {"at": tonight},
        )
    night = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert night.rows_written == 3 and night.full_reconciliation is None
    bronze = lake.scan(spec.ref).collect()
    assert bronze.height == ROWS and bronze["case_id"].n_unique() == ROWS
    assert sorted(bronze.filter(pl.col("status") == "closed")["case_id"].to_list()) == [3, 19990, 19995]

    with engine.begin() as connection:  # the unstamped case changes: read by the full reconciliation
        connection.execute(sa.text("update cases set status = 'merged' where case_id = 5"))
    full = land_database_table(spec, lake=lake, engine=engine, run_id="r3", loaded_at=now)
    assert full.full_reconciliation is not None
    bronze = lake.scan(spec.ref).collect()
    assert bronze.height == ROWS and bronze["case_id"].n_unique() == ROWS
    assert bronze.filter(pl.col("case_id") == 5)["status"].to_list() == ["merged"]


def test_text_keys_read_at_once_unless_one_holds_the_separator(tmp_path: Path):
    engine = _text_keyed(tmp_path / "planning.sqlite")
    table = sa.Table("applications", sa.MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        read = _all_keys(connection, table, "ref", pl.String)
        assert read is not None and read.len() == 3_000 and read.n_unique() == 3_000
        assert "25/00007/FUL" in read.to_list()
    with engine.begin() as connection:  # a reference pasted with a control character in it
        connection.execute(
            sa.text("insert into applications values ('25/9\x1f9/FUL', 'received', :at)"), {"at": STAMP}
        )
    with engine.connect() as connection:
        assert _all_keys(connection, table, "ref", pl.String) is None  # read row by row instead

    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="applications", primary_key="ref")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    with engine.begin() as connection:
        connection.execute(sa.text("delete from applications where ref = '25/00007/FUL'"))
    night = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert night.rows_deleted == 1 and night.full_reconciliation is None
    assert (
        "25/9\x1f9/FUL" in lake.scan(spec.ref).filter(~pl.col(DELETED_IN_SOURCE)).collect()["ref"].to_list()
    )


def test_a_typed_in_text_key_in_an_integer_column_is_set_aside_and_deletes_are_still_found(tmp_path: Path):
    """SQLite keeps whatever it is given: '12,5' in an integer key column sorts after every number, so the
    column's max is text. The comparison takes the integer keys alone; the row is set aside, saying why."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'extract.sqlite'}")
    with engine.begin() as connection:
        connection.execute(sa.text("create table cases (case_id integer, status text, updated_at timestamp)"))
        connection.execute(
            sa.text("insert into cases values (:id, 'open', :at)"),
            [{"id": i, "at": STAMP} for i in range(1000)],
        )
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    with engine.begin() as connection:
        connection.execute(sa.text("insert into cases values ('12,5', 'open', :at)"), {"at": STAMP})
        connection.execute(sa.text("delete from cases where case_id = 77"))
    night = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert night.rows_deleted == 1 and night.full_reconciliation is None
    assert lake.scan(spec.ref).filter(pl.col(DELETED_IN_SOURCE)).collect()["case_id"].to_list() == [77]
    assert night.rejected_reasons == {"column case_id: 12,5 is not a valid Int64": 1}
    again = land_database_table(
        spec, lake=lake, engine=engine, run_id="r3", loaded_at=now, last_full_reconciliation=now
    )
    assert again.rows_written == 0 and again.rows_deleted == 0
    assert lake.scan(spec.ref).collect().height == 1000


def test_64_bit_keys_are_summed_without_overflow(tmp_path: Path):
    """Snowflake-style ids (about 1.7e18): a plain sum of a thousand overflows 64 bits, and SQLite raises. The
    keys are summed modulo a prime on both sides: the check of the source works and a delete is found."""
    base = 1_700_000_000_000_000_000
    engine = sqlite_table(
        tmp_path / "systems.sqlite",
        "create table cases (case_id integer primary key, status text, updated_at timestamp)",
        "insert into cases values (:id, 'open', :at)",
        [{"id": base + i * 7919, "at": STAMP} for i in range(1000)],
    )
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    spec = DatabaseTable(source="business_systems", table="cases", primary_key="case_id")
    now = dt.datetime(2026, 1, 6, 2, 0, tzinfo=dt.UTC)
    before = source_fingerprint(spec, engine)
    land_database_table(spec, lake=lake, engine=engine, run_id="r1", loaded_at=now)
    quiet = land_database_table(
        spec, lake=lake, engine=engine, run_id="r2", loaded_at=now, last_full_reconciliation=now
    )
    assert quiet.rows_written == 0 and quiet.rows_deleted == 0 and quiet.full_reconciliation is None
    with engine.begin() as connection:
        connection.execute(sa.text("delete from cases where case_id = :id"), {"id": base + 77 * 7919})
    assert source_fingerprint(spec, engine) != before
    night = land_database_table(
        spec, lake=lake, engine=engine, run_id="r3", loaded_at=now, last_full_reconciliation=now
    )
    assert night.rows_deleted == 1 and night.full_reconciliation is None
    assert lake.scan(spec.ref).filter(pl.col(DELETED_IN_SOURCE)).collect()["case_id"].to_list() == [
        base + 77 * 7919
    ]
