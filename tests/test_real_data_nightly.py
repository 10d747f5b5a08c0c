"""The whole nightly job on real releases: every file in ``../shared/real-samples`` lands beside the generated
council's own sources (SPAR.net, business systems, survey), and the mart must still be built and right.

The landing zone's emissions, education and benchmarks folders hold only real files (files added to
real-samples later are picked up by folder). Expected values are read from the raw files with Python's own csv
module, never from the pipeline's reader.
"""

from __future__ import annotations

import csv
import io
import random
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from kpi_lake.tables import TableRef
from resources.lake import DeltaLake
from tests.pipeline_helpers import bronze_refs, local_resources, run_nightly

pytestmark = pytest.mark.slow

# real-samples folder -> landing folder. The ONS life-satisfaction export is a comparator indicator; the
# CIPFA nearest-neighbour list and ONS lookups are reference data.
LANDING_FOLDER = {
    "emissions": "emissions",
    "education": "education",
    "benchmarks": "benchmarks",
    "survey": "benchmarks",
    "geography": "reference",
}
REPLACED = ("emissions", "education", "benchmarks")
REFERENCE_NAMES = ("cipfa", "comparator")  # a comparator list published beside indicators is reference data


def _landing_name(real: Path) -> str:
    folder = LANDING_FOLDER[real.parent.name]
    if folder == "benchmarks" and any(name in real.name.lower() for name in REFERENCE_NAMES):
        folder = "reference"
    return f"{folder}/real_{real.name}"


@pytest.fixture(scope="module")
def real_lake(sample_landing: Path, real_samples: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("real_nightly")
    landing = root / "landing"
    shutil.copytree(sample_landing, landing)
    for folder in REPLACED:
        shutil.rmtree(landing / folder)
        (landing / folder).mkdir()
    real_files = sorted(p for p in real_samples.rglob("*.csv") if p.parent.name in LANDING_FOLDER)
    assert real_files, "no real samples found"
    placed = {}
    for real in real_files:
        target = landing / _landing_name(real)
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(real, target)
        placed[target.relative_to(landing).as_posix()] = real
    resources = local_resources(root / "lake", landing)
    result = run_nightly(resources, raise_on_error=False)
    return resources["lake"], result, placed


def _silver(lake: DeltaLake, source: str, table: str) -> pl.DataFrame:
    return lake.scan(TableRef("silver", source, table)).collect()


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _raw_records(path: Path) -> tuple[list[str], dict[int, list[str]]]:
    """Header (snake_case) and records by spreadsheet row number; the header is the first row."""
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = [_snake(h) for h in rows[0]]
    return header, {index + 2: row for index, row in enumerate(rows[1:])}


def test_the_nightly_job_succeeds_on_real_releases(real_lake):
    _, result, _ = real_lake
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert result.success, f"steps failed: {failed}"
    failed_checks = [
        (e.asset_check_evaluation_data.asset_key.to_user_string(), e.asset_check_evaluation_data.check_name)
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and not e.asset_check_evaluation_data.passed
        and e.asset_check_evaluation_data.severity.value == "ERROR"
    ]
    assert failed_checks == [], f"blocking checks failed on real data: {failed_checks}"


def test_every_real_file_lands_and_none_of_its_rows_is_quarantined(real_lake):
    lake, _, placed = real_lake
    landed: set[str] = set()
    for ref in bronze_refs():
        if ref.source in {"emissions", "education", "benchmarks", "reference"} and lake.exists(ref):
            landed |= set(lake.scan(ref).select("_source_file").unique().collect()["_source_file"].to_list())
    assert set(placed) - landed == set(), "real files that reached no bronze table"
    quarantined = {}
    for table in ("emissions", "education", "benchmarks"):
        quarantine = _silver(lake, "open_data", f"{table}_quarantine")
        counts = quarantine.filter(pl.col("source_file").is_in(list(placed))).group_by("source_file").len()
        quarantined |= {row["source_file"]: (table, row["len"]) for row in counts.iter_rows(named=True)}
    assert quarantined == {}, f"legitimate real rows quarantined: {quarantined}"


def test_every_ees_cell_sampled_equals_the_raw_file(real_lake):
    lake, _, placed = real_lake
    education = _silver(lake, "open_data", "education")
    ees_files = [name for name in placed if name.startswith("education/") and not name.endswith(".meta.csv")]
    assert ees_files
    rng = random.Random(20261202)
    for name in ees_files:
        rows = education.filter(pl.col("source_file") == name)
        assert rows.height > 0, f"{name}: nothing in silver education"
        header, records = _raw_records(placed[name])
        sample = rows.sample(n=min(300, rows.height), seed=rng.randrange(1 << 30))
        for row in sample.iter_rows(named=True):
            cell = records[row["source_row"]][header.index(row["indicator"])].strip()
            if row["value"] is None:
                assert cell == "" or row["suppression_code"] == cell, (name, row)
            else:
                assert float(cell.replace(",", "")) == pytest.approx(row["value"], rel=1e-12), (name, row)


def test_emissions_components_sum_to_each_files_grand_total(real_lake):
    lake, _, placed = real_lake
    emissions = _silver(lake, "open_data", "emissions")
    wide_files = [name for name in placed if name.startswith("emissions/")]
    assert wide_files
    for name in wide_files:
        real = placed[name]
        lines = real.read_bytes().decode("utf-8-sig").splitlines()
        header_index = next(i for i, line in enumerate(lines) if "Grand Total" in line)
        reader = csv.reader(io.StringIO("\n".join(lines[header_index:])))
        header = [h.strip() for h in next(reader)]
        code_col, year_col, total_col = (
            header.index("Code"),
            header.index("Year"),
            header.index("Grand Total"),
        )
        totals = {}
        for record in reader:
            if len(record) <= total_col or not record[code_col].strip() or not record[total_col].strip():
                continue
            totals[(record[code_col].strip(), int(record[year_col]))] = float(
                record[total_col].replace(",", "")
            )
        measure = "within_scope_kt_co2e" if "subset" in name else "territorial_kt_co2e"
        sums = (
            emissions.filter(pl.col("source_file") == name)
            .group_by("local_authority_code", "calendar_year")
            .agg(pl.col(measure).sum(), pl.col(measure).count().alias("cells"))
        )
        assert sums.height > 0, f"{name}: nothing in silver emissions"
        checked = 0
        for row in sums.iter_rows(named=True):
            key = (row["local_authority_code"], row["calendar_year"])
            if key in totals:
                # Cells are published rounded to 0.1: each may be off by 0.05, and so may the total.
                tolerance = 0.05 * (row["cells"] + 1) + 1e-9
                assert row[measure] == pytest.approx(totals[key], abs=tolerance), (name, key)
                checked += 1
        # Every authority-year with a published grand total is in silver (regional total rows are not).
        assert checked >= 0.9 * sum(1 for code, _ in totals if re.fullmatch(r"[EWSN]\d{8}", code)), name


def test_the_single_view_is_built_and_not_empty(real_lake):
    lake, _, _ = real_lake
    single_view = lake.scan(TableRef("gold", "kpi_mart", "kpi_single_view")).collect()
    assert single_view.height > 0
    scorecard = lake.scan(TableRef("gold", "kpi_mart", "theme_scorecard")).collect()
    assert scorecard.height > 0
