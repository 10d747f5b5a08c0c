"""A quiet night recognises unchanged landed files by a fingerprint (size, time and inode; an Azure blob's ETag)
recorded with their hash, without reading them again or downloading them from Azure; any change to a file,
or a file too fresh to trust its time, is hashed as before."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from assets.bronze import FILE_TABLES
from kpi_lake import bronze
from kpi_lake.landed_hashes import LandedHashes, local_fingerprint
from kpi_lake.raw_files import SOURCE_FILE
from resources.lake import DeltaLake
from resources.landing import LandingZone
from tests.pipeline_helpers import azurite_landing, local_resources

EES_DATA = next(spec for spec in FILE_TABLES if spec.ref.path == "bronze/education/ees_data")
SIBLINGS = [spec for spec in FILE_TABLES if spec.source == "education"]
FILES = ["ks2_la.csv", "absence_by_term.csv", "cin_sen_la.csv"]
AN_HOUR_AGO = time.time() - 3600


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files bronze reads to hash, in order."""
    read: list[Path] = []
    real = bronze.file_digest
    monkeypatch.setattr(bronze, "file_digest", lambda path, **kw: read.append(Path(path)) or real(path, **kw))
    return read


def _landing(tmp_path: Path, real_samples: Path) -> Path:
    folder = tmp_path / "landing" / "education"
    folder.mkdir(parents=True)
    for name in FILES:
        shutil.copy(real_samples / "education" / name, folder / name)
        os.utime(folder / name, (AN_HOUR_AGO, AN_HOUR_AGO))  # settled long ago
    return folder


def _land(lake: DeltaLake, landing: LandingZone) -> bronze.LandingReport:
    return bronze.land_files(EES_DATA, lake=lake, landing=landing, run_id="r", siblings=SIBLINGS)


def test_unchanged_files_are_not_read_again_and_every_change_is(
    tmp_path: Path, real_samples: Path, hashed: list[Path]
):
    folder = _landing(tmp_path, real_samples)
    resources = local_resources(tmp_path / "lake", tmp_path / "landing")
    lake, landing = resources["lake"], resources["landing"]
    first = _land(lake, landing)
    assert sorted(first.loaded) == sorted(f"education/{n}" for n in FILES)
    assert len(hashed) == len(FILES)

    hashed.clear()
    quiet = _land(lake, landing)
    assert hashed == [], "an unchanged file is recognised by its fingerprint, not read"
    assert sorted(quiet.skipped_unchanged) == sorted(first.loaded) and not quiet.loaded

    # Touched (a copy that kept the bytes): read once to find it unchanged, then recognised again.
    touched = folder / "ks2_la.csv"
    os.utime(touched, (AN_HOUR_AGO + 60, AN_HOUR_AGO + 60))
    report = _land(lake, landing)
    assert hashed == [touched] and "education/ks2_la.csv" in report.skipped_unchanged
    hashed.clear()
    _land(lake, landing)
    assert hashed == []

    # Changed bytes, even with the old time put back: the size differs, so it is read and lands again.
    stat = touched.stat()
    with touched.open("ab") as handle:
        handle.write(touched.read_bytes().splitlines(keepends=True)[-1])
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rows_before = (
        lake.scan(EES_DATA.ref).filter(pl.col(SOURCE_FILE) == "education/ks2_la.csv").collect().height
    )
    report = _land(lake, landing)
    assert hashed == [touched] and report.loaded == ["education/ks2_la.csv"]
    rows_after = (
        lake.scan(EES_DATA.ref).filter(pl.col(SOURCE_FILE) == "education/ks2_la.csv").collect().height
    )
    assert rows_after == rows_before + 1

    # Replaced by another file of the same size and time (a new inode): read, as it may differ.
    replacement = folder / "replacement.tmp"
    shutil.copy(touched, replacement)
    os.utime(replacement, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns))
    os.replace(replacement, touched)
    hashed.clear()
    _land(lake, landing)
    assert hashed == [touched]

    # A file gone from the landing zone leaves the record.
    (folder / "cin_sen_la.csv").unlink()
    _land(lake, landing)
    assert "education/cin_sen_la.csv" not in LandedHashes(lake, EES_DATA.ref).load()


def test_a_file_changed_in_the_last_seconds_is_hashed_until_it_settles(
    tmp_path: Path, real_samples: Path, hashed: list[Path]
):
    folder = _landing(tmp_path, real_samples)
    fresh = folder / "absence_by_term.csv"
    os.utime(fresh)  # now: a write in this very instant may not have moved the time yet
    assert local_fingerprint(fresh.stat()) is None
    resources = local_resources(tmp_path / "lake", tmp_path / "landing")
    lake, landing = resources["lake"], resources["landing"]
    _land(lake, landing)
    hashed.clear()
    _land(lake, landing)
    assert hashed == [fresh], "only the fresh file is read again"
    assert "education/absence_by_term.csv" not in LandedHashes(lake, EES_DATA.ref).load()
    assert local_fingerprint(fresh.stat(), now_ns=time.time_ns() + 3_000_000_000) is not None


def test_a_missing_or_corrupt_record_only_means_hashing_again(
    tmp_path: Path, real_samples: Path, hashed: list[Path]
):
    _landing(tmp_path, real_samples)
    resources = local_resources(tmp_path / "lake", tmp_path / "landing")
    lake, landing = resources["lake"], resources["landing"]
    _land(lake, landing)
    record = Path(LandedHashes(lake, EES_DATA.ref).uri)
    assert record.is_file() and str(record).startswith(str(tmp_path / "lake" / "_kpi_lake"))
    for damage in ("{not json", '{"version": 1, "files": [1, 2]}', ""):
        record.write_text(damage)
        hashed.clear()
        report = _land(lake, landing)
        assert len(hashed) == len(FILES) and not report.loaded
        assert len(LandedHashes(lake, EES_DATA.ref).load()) == len(FILES), "written again, whole"
    # A record that names a hash bronze does not hold (its commit failed after all) skips nothing: the files
    # are read and hashed from their bytes (unchanged, so not landed again), and the record is mended.
    LandedHashes(lake, EES_DATA.ref).save(
        {name: (fp, "0" * 64) for name, (fp, _) in LandedHashes(lake, EES_DATA.ref).load().items()}
    )
    hashed.clear()
    report = _land(lake, landing)
    assert len(hashed) == len(FILES) and not report.loaded
    assert sorted(report.skipped_unchanged) == sorted(f"education/{n}" for n in FILES)
    assert {h for _, h in LandedHashes(lake, EES_DATA.ref).load().values()} == set(
        lake.scan(EES_DATA.ref).select("_source_hash").unique().collect().to_series().to_list()
    )


def test_an_azure_landing_zone_is_not_downloaded_again_when_nothing_changed(
    tmp_path: Path, real_samples: Path, azurite: str, monkeypatch: pytest.MonkeyPatch
):
    landing, azure, container = azurite_landing(
        azurite, {f"education/{name}": real_samples / "education" / name for name in FILES}
    )
    lake = DeltaLake(root=f"az://{container}/lake", azure=azure)
    lake.ensure_root()
    downloads: list[str] = []
    real_open = LandingZone.open_local
    monkeypatch.setattr(
        LandingZone, "open_local", lambda self, file: downloads.append(file.name) or real_open(self, file)
    )
    first = _land(lake, landing)
    assert len(first.loaded) == len(FILES) and len(downloads) == len(FILES)
    assert all(f.fingerprint and f.fingerprint.startswith("etag=") for f in landing.list_files("education"))

    downloads.clear()
    quiet = _land(lake, landing)
    assert downloads == [] and not quiet.loaded

    # Uploaded again with one more row: a new ETag, so it is downloaded and lands.
    path = tmp_path / "ks2_la.csv"
    shutil.copy(real_samples / "education" / "ks2_la.csv", path)
    with path.open("ab") as handle:
        handle.write(path.read_bytes().splitlines(keepends=True)[-1])
    azure.filesystem(f"az://{container}/incoming").put_file(
        str(path), f"{container}/incoming/education/ks2_la.csv"
    )
    report = _land(lake, landing)
    assert downloads == ["education/ks2_la.csv"] and report.loaded == ["education/ks2_la.csv"]
