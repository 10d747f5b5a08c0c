"""Silver education in bounded memory: conformed in slices, partitioned by publication and period, and a
changed file rewrites only its publication's partitions. Real published EES files, a real lake, real runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from assets.silver import open_data
from assets.silver.factory import silver_asset
from kpi_lake.conform.education import EDUCATION, EES_DATA, EES_METADATA, conform_education, stream_education
from kpi_lake.raw_files import SOURCE_HASH, read_raw_file
from resources.azure import AzureStorage
from resources.lake import DeltaLake

DATA = ["education/ks2_la.csv", "education/absence_by_term.csv", "education/UD_NEETNK_LA_dashboard_2025.csv"]
META = ["education/absence_by_term.meta.csv"]


def _raw(real_samples: Path, relative: str, *, as_name: str | None = None) -> pl.DataFrame:
    return read_raw_file(real_samples / relative, source_file=as_name or relative).frame


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def test_slices_give_the_rows_and_quarantine_of_one_pass(real_samples: Path):
    # The same KS2 file landed twice under two folders: one publication, every key duplicated across files,
    # so the first-of-each-key rule must hold across slices.
    data = pl.concat(
        [
            *(_raw(real_samples, f) for f in DATA),
            _raw(real_samples, DATA[0], as_name="education/old/ks2_la.csv"),
        ],
        how="diagonal",
    ).lazy()
    meta = pl.concat([_raw(real_samples, f) for f in META], how="diagonal").lazy()
    whole = conform_education(ees_data=data, ees_metadata=meta)
    parts: list[pl.DataFrame] = []
    quarantine = stream_education(data, meta, parts.append, rows_per_batch=997)
    assert len(parts) > 10  # really sliced
    assert_frame_equal(_sorted(pl.concat(parts)), _sorted(whole.rows))
    assert_frame_equal(quarantine, whole.quarantine)
    duplicates = quarantine.filter(pl.col("reason").str.starts_with("duplicate"))
    assert duplicates.height == 3444 * 33  # every KS2 cell of the second copy, none of the first
    assert set(duplicates["source_file"]) == {"education/old/ks2_la.csv"}


def _land(lake: DeltaLake, real_samples: Path, data: dict[str, pl.DataFrame]) -> None:
    lake.overwrite(EES_DATA, pl.concat(list(data.values()), how="diagonal"))
    lake.overwrite(EES_METADATA, pl.concat([_raw(real_samples, f) for f in META], how="diagonal"))


def _log_actions(lake: DeltaLake, version: int) -> tuple[set[str], set[str]]:
    """The publication partitions a Delta commit added files to and removed files from (from its log)."""
    log = Path(lake.uri(EDUCATION)) / "_delta_log" / f"{version:020d}.json"
    actions = pl.read_ndjson(log, infer_schema_length=None)
    found: dict[str, set[str]] = {"add": set(), "remove": set()}
    for kind in found:
        if kind in actions.columns:
            for action in actions[kind].drop_nulls().to_list():
                found[kind].add(action["partitionValues"]["publication"])
    return found["add"], found["remove"]


def test_education_is_partitioned_and_a_changed_file_rewrites_only_its_partitions(
    real_samples: Path, tmp_path: Path
):
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    data = {f: _raw(real_samples, f) for f in DATA}
    _land(lake, real_samples, data)
    asset = silver_asset(next(s for s in open_data.SILVER_TABLES if s.ref == EDUCATION))
    assert dg.materialize([asset], resources={"lake": lake}).success

    table = lake.delta_table(EDUCATION)
    assert table.metadata().partition_columns == ["publication", "time_period"]
    expected = conform_education(lake.scan(EES_DATA), lake.scan(EES_METADATA))
    assert_frame_equal(_sorted(lake.scan(EDUCATION).collect()), _sorted(expected.rows))
    first = table.version()

    # Nothing new: nothing written.
    assert dg.materialize([asset], resources={"lake": lake}).success
    assert lake.delta_table(EDUCATION).version() == first

    # The NEET file is republished with one value corrected: only its publication is rewritten.
    neet = DATA[2]
    corrected = data[neet].with_columns(
        pl.when(pl.col("_source_row") == 2).then(pl.lit("99.9")).otherwise(pl.col("neet_not_known_percent"))
        .alias("neet_not_known_percent"),
        pl.lit("a-new-hash").alias(SOURCE_HASH),
    )  # fmt: skip
    assert corrected["neet_not_known_percent"].to_list() != data[neet]["neet_not_known_percent"].to_list()
    _land(lake, real_samples, {**data, neet: corrected})
    assert dg.materialize([asset], resources={"lake": lake}).success
    version = lake.delta_table(EDUCATION).version()
    assert version == first + 1
    added, removed = _log_actions(lake, version)
    assert added == removed == {"UD_NEETNK_LA_dashboard_2025"}
    expected = conform_education(lake.scan(EES_DATA), lake.scan(EES_METADATA))
    silver = lake.scan(EDUCATION).collect()
    assert_frame_equal(_sorted(silver), _sorted(expected.rows))
    cell = silver.filter(
        pl.col("source_file") == neet,
        pl.col("source_row") == 2,
        pl.col("indicator") == "neet_not_known_percent",
    )
    assert cell["value"].to_list() == [99.9]

    # The absence file is withdrawn: its partitions go, the others stay.
    del data["education/absence_by_term.csv"]
    _land(lake, real_samples, {**data, neet: corrected})
    assert dg.materialize([asset], resources={"lake": lake}).success
    added, removed = _log_actions(lake, lake.delta_table(EDUCATION).version())
    assert removed == {"absence_by_term"} and added == set()
    assert set(lake.scan(EDUCATION).select("publication").unique().collect()["publication"]) == {
        "ks2_la",
        "UD_NEETNK_LA_dashboard_2025",
    }
