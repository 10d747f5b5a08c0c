"""The lake resource: the same writes, merges and reads on a local folder and on Azurite (blob API)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from kpi_lake.storage import join_uri
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake, LakeWriteError

REF = TableRef("bronze", "business_systems", "foi_requests")


@pytest.fixture(params=["local", "azurite"])
def lake(request: pytest.FixtureRequest, tmp_path) -> Iterator[DeltaLake]:
    if request.param == "local":
        yield DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
        return
    request.getfixturevalue("azure_env")
    # Built from the environment exactly as the code location builds it (EnvVar-bound settings).
    configured = DeltaLake(root=f"az://lake-{uuid.uuid4().hex[:8]}/kpi", azure=AzureStorage.from_env())
    with dg.build_resources({"lake": configured}) as resources:
        resources.lake.ensure_root()  # delta-rs creates no container: the lake does, once
        yield resources.lake


def _requests(ids: list[int], status: str = "open") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "request_id": ids,
            "status": [status] * len(ids),
            "updated_at": [dt.datetime(2025, 1, 1, 9, 30)] * len(ids),  # naive, as databases give them
        }
    )


def test_overwrite_append_and_scan(lake: DeltaLake):
    state = lake.overwrite(REF, _requests([1, 2, 3]).lazy())  # streamed with sink_delta
    assert (state.version, state.row_count) == (0, 3)
    lake.append(REF, _requests([4]))
    assert lake.scan(REF).select(pl.len()).collect().item() == 4
    assert lake.uri(REF).endswith("bronze/business_systems/foi_requests")


def test_tables_stay_readable_by_bi_tools(lake: DeltaLake):
    lake.overwrite(REF, _requests([1]))
    protocol = DeltaTable(lake.uri(REF), storage_options=lake.storage_options()).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert lake.scan(REF).collect_schema()["updated_at"] == pl.Datetime("us", "UTC")
    assert lake.scan(REF).collect()["updated_at"].item() == dt.datetime(2025, 1, 1, 9, 30, tzinfo=dt.UTC)


def test_merge_upserts_and_rerun_changes_nothing(lake: DeltaLake):
    lake.overwrite(REF, _requests([1, 2]))
    change = pl.concat([_requests([2], "closed"), _requests([3])])
    state = lake.merge(REF, change, ["request_id"], only_if_changed=["status", "updated_at"])
    assert state.metrics["num_target_rows_updated"] == 1
    assert state.metrics["num_target_rows_inserted"] == 1
    rows = dict(lake.scan(REF).select("request_id", "status").collect().iter_rows())
    assert rows == {1: "open", 2: "closed", 3: "open"}
    again = lake.merge(REF, change, ["request_id"], only_if_changed=["status", "updated_at"])
    assert again.metrics["num_target_rows_updated"] == 0
    assert again.metrics["num_target_rows_inserted"] == 0
    assert again.row_count == 3


def test_a_table_of_modest_files_has_a_merge_of_recent_changes_rewrite_only_their_file(lake: DeltaLake):
    rows = 200_000
    created = lake.merge(REF, _requests(list(range(rows))), ["request_id"], file_bytes=256 * 1024)
    table = DeltaTable(lake.uri(REF), storage_options=lake.storage_options())
    files = len(table.file_uris())
    assert files >= 4, files  # one file would be rewritten whole by any change
    assert table.metadata().configuration["delta.targetFileSize"] == str(256 * 1024)
    assert created.row_count == rows
    # Tonight's changes are to the newest rows (and new ones): only the file holding them is rewritten.
    change = pl.concat([_requests(list(range(rows - 50, rows)), "closed"), _requests([rows, rows + 1])])
    state = lake.merge(REF, change, ["request_id"], only_if_changed=["status", "updated_at"])
    assert state.metrics["num_target_rows_updated"] == 50
    assert state.metrics["num_target_rows_inserted"] == 2
    assert state.metrics["num_target_files_removed"] == 1, state.metrics
    after = lake.scan(REF).collect()
    assert after.height == rows + 2 and after["request_id"].is_unique().all()
    assert after.filter(pl.col("status") == "closed")["request_id"].sort().to_list() == list(
        range(rows - 50, rows)
    )


def test_merge_refuses_duplicate_keys_and_leaves_table_alone(lake: DeltaLake):
    lake.overwrite(REF, _requests([1]))
    with pytest.raises(LakeWriteError, match="appear more than once"):
        lake.merge(REF, _requests([5, 5]), ["request_id"])
    assert lake.state(REF).version == 0


def test_replace_where_swaps_one_slice_atomically(lake: DeltaLake):
    files = pl.DataFrame({"_source_file": ["a.csv", "a.csv", "b.csv"], "value": ["1", "2", "3"]})
    ref = TableRef("bronze", "education", "ees_data")
    lake.replace_where(ref, files, "_source_file IN ('a.csv', 'b.csv')")
    new_a = pl.DataFrame({"_source_file": ["a.csv"], "value": ["9"], "new_column": ["x"]})
    state = lake.replace_where(ref, new_a, "_source_file IN ('a.csv')")
    table = lake.scan(ref).sort("value").collect()
    assert table["value"].to_list() == ["3", "9"]
    assert table["new_column"].to_list() == [None, "x"]  # schema grows, old rows keep null
    assert state.row_count == 2


def test_reading_a_missing_table_says_what_to_do(lake: DeltaLake):
    with pytest.raises(LakeWriteError, match="does not exist yet"):
        lake.scan(TableRef("silver", "spar_net", "nothing_here"))


def test_metadata_for_dagster(lake: DeltaLake):
    state = lake.overwrite(REF, _requests([1, 2]))
    metadata = state.to_metadata()
    assert metadata["dagster/row_count"] == 2
    assert metadata["delta_version"] == 0
    assert [c.name for c in metadata["dagster/column_schema"].columns] == [
        "request_id",
        "status",
        "updated_at",
    ]


def test_duplicate_key_check_reads_only_the_log_after_a_write_that_promised_unique_keys(
    lake: DeltaLake, monkeypatch: pytest.MonkeyPatch
):
    lake.merge(REF, _requests([1, 2, 3]), ["request_id"])
    assert lake.last_commit_metadata(REF)["kpi_lake.unique_keys"] == "request_id"
    with monkeypatch.context() as patched:  # no row is read: the latest commit promised these keys unique
        patched.setattr(DeltaLake, "scan", lambda *_, **__: pytest.fail("the table was scanned"))
        assert lake.heal_duplicate_keys(REF, ["request_id"]) == 0
    # A writer that promised nothing means a full check, which finds and removes a repeat.
    lake.append(REF, _requests([3, 4]))
    assert "kpi_lake.unique_keys" not in lake.last_commit_metadata(REF)
    assert lake.heal_duplicate_keys(REF, ["request_id"]) == 1
    assert sorted(lake.scan(REF).collect()["request_id"]) == [1, 2, 3, 4]


def test_a_document_in_the_lake_is_replaced_whole_and_read_back(lake: DeltaLake):
    uri = join_uri(lake.root, "_kpi_lake", "notes", "record.json")
    with pytest.raises(FileNotFoundError):
        lake.read_document(uri)
    lake.write_document(uri, b'{"a": 1}')
    lake.write_document(uri, b'{"a": 2, "b": 3}')
    assert lake.read_document(uri) == b'{"a": 2, "b": 3}'
    if not uri.startswith("az://"):  # locally: through a temporary file beside it, renamed over it
        assert [p.name for p in Path(uri).parent.iterdir()] == ["record.json"]


def _data_files(lake: DeltaLake, ref: TableRef) -> set[str]:
    """Names of the Parquet files in the table's folder (or under its prefix), whatever its log names."""
    uri = lake.uri(ref)
    if uri.startswith("az://"):
        fs = lake.azure.filesystem(lake.root)
        prefix = uri.removeprefix("az://")
        return {
            p.rsplit("/", 1)[-1] for p in fs.find(prefix) if p.endswith(".parquet") and "_delta_log" not in p
        }
    return {p.name for p in Path(uri).rglob("*.parquet") if "_delta_log" not in p.parts}


def test_a_streamed_write_that_fails_part_way_leaves_the_table_and_no_stray_file(lake: DeltaLake, tmp_path):
    """A streamed replace whose source breaks after many rows (a ragged last line) has flushed files by then:
    the table stays at its version, with its rows, and the files it never committed are removed."""
    ref = TableRef("bronze", "education", "ees_data")
    lake.overwrite(ref, pl.DataFrame({"a": [-1], "b": ["kept"]}), file_bytes=64 * 1024)
    before = _data_files(lake, ref)
    csv = tmp_path / "release.csv"
    csv.write_text("a,b\n" + "".join(f"{i},{'x' * 20}\n" for i in range(400_000)) + "oops,1,2,3\n")
    with pytest.raises(LakeWriteError, match="ees_data"):
        lake.replace_where(ref, pl.scan_csv(csv, schema={"a": pl.Int64, "b": pl.String}), predicate="a >= 0")
    assert lake.delta_table(ref).version() == 0
    assert lake.scan(ref).collect().to_dicts() == [{"a": -1, "b": "kept"}]
    assert _data_files(lake, ref) == before
