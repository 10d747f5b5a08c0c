"""The sample-data generator: byte-for-byte determinism, the promised formats and quirks, the business
database's keys, linear scaling, and one coherent story (SPAR.net agrees with the source data except
for the recorded mismatches)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sqlite3
from pathlib import Path

import holidays
import openpyxl
import polars as pl
import pytest

from kpi_lake.sample_data import BUSINESS_DATABASE, BUSINESS_TABLES, FAMILIES, SampleStory, generate_landing

SEED = 20261126
OWN = "E06009901"
REAL_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "real-samples"
UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$")

Landing = tuple[Path, SampleStory]


def _generate(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs) -> Landing:
    root = tmp_path_factory.mktemp(name)
    return root, generate_landing(root, **kwargs)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    return _generate(tmp_path_factory, "landing", scale=1.0, seed=SEED)


@pytest.fixture(scope="module")
def landing_twin(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    return _generate(tmp_path_factory, "landing_twin", scale=1.0, seed=SEED)


@pytest.fixture(scope="module")
def half(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    return _generate(tmp_path_factory, "half", scale=0.5, seed=SEED)


@pytest.fixture(scope="module")
def half_other_seed(tmp_path_factory: pytest.TempPathFactory) -> Landing:
    return _generate(tmp_path_factory, "half_other_seed", scale=0.5, seed=7)


def _hashes(root: Path, story: SampleStory) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in story.files}


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_same_arguments_write_identical_bytes(landing: Landing, landing_twin: Landing) -> None:
    (root_a, story_a), (root_b, story_b) = landing, landing_twin
    assert story_a.files == story_b.files
    assert _hashes(root_a, story_a) == _hashes(root_b, story_b)
    assert story_a.computed_values == story_b.computed_values
    assert story_a.mismatches == story_b.mismatches


def test_a_different_seed_changes_the_data(half: Landing, half_other_seed: Landing) -> None:
    (root_a, story_a), (root_b, story_b) = half, half_other_seed
    hashes_a, hashes_b = _hashes(root_a, story_a), _hashes(root_b, story_b)
    for name in (
        BUSINESS_DATABASE,
        "spar_net/spar_export_2024-25_Q2.csv",
        "spar_net/spar_export_2026-27_Q2.xlsx",
        "emissions/2005-23_UK_local_authority_ghg_emissions.csv",
        "education/ks2_attainment_la_202122_to_202425.csv",
        "qol_survey/qol_survey_2025.xlsx",
        "benchmarks/oflog_indicators.csv",
    ):
        assert hashes_a[name] != hashes_b[name], name
    assert story_a.computed_values != story_b.computed_values
    assert story_a.mismatches != story_b.mismatches


def test_rerun_overwrites_its_own_files_and_leaves_others(tmp_path: Path) -> None:
    fresh_root = tmp_path / "fresh"
    fresh = generate_landing(fresh_root, scale=0.1, seed=SEED)
    dirty = tmp_path / "dirty"
    (dirty / "spar_net").mkdir(parents=True)
    (dirty / "business_systems").mkdir()
    (dirty / "spar_net" / "kpi_definitions.csv").write_text("stale")
    (dirty / BUSINESS_DATABASE).write_bytes(b"not a database")
    (dirty / "notes.txt").write_text("keep me")
    (dirty / "spar_net" / "manual_upload.csv").write_text("keep me too")

    story = generate_landing(dirty, scale=0.1, seed=SEED)

    assert _hashes(dirty, story) == _hashes(fresh_root, fresh)
    assert (dirty / "notes.txt").read_text() == "keep me"
    assert (dirty / "spar_net" / "manual_upload.csv").read_text() == "keep me too"


# ---------------------------------------------------------------------------------------------
# Files, encodings and quirks
# ---------------------------------------------------------------------------------------------


def test_every_family_writes_its_files(landing: Landing) -> None:
    root, story = landing
    for family in FAMILIES:
        assert story.files_of(family), family
    for name in story.files:
        assert (root / name).is_file() and (root / name).stat().st_size > 0, name
    spar = story.files_of("spar_net")
    assert sum(f.endswith(".csv") and "export" in f for f in spar) == 18
    assert sum(f.endswith(".xlsx") for f in spar) == 4
    assert "spar_net/spar_export_2024-25_Q2.csv" in spar
    assert "spar_net/spar_export_2026-27_Q2.xlsx" in spar
    assert sum(f.endswith(".meta.csv") for f in story.files_of("education")) == 4


def _is_crlf(data: bytes) -> bool:
    return data.count(b"\n") > 0 and data.count(b"\n") == data.count(b"\r\n")


def test_encodings_boms_and_line_endings(landing: Landing) -> None:
    root, _story = landing

    def read(name: str) -> bytes:
        return (root / name).read_bytes()

    bom = b"\xef\xbb\xbf"
    for name in (
        "emissions/2005-23_UK_local_authority_ghg_emissions.csv",
        "emissions/2005-19_UK_local_and_regional_CO2_emissions_subset.csv",
        "education/ks2_attainment_la_202122_to_202425.csv",
        "reference/la_lookup.csv",
        "qol_survey/qol_survey_2023.csv",
    ):
        assert read(name).startswith(bom), name
    for name in ("spar_net/spar_export_2024-25_Q2.csv", "education/ks4_attainment_la_202122_to_202425.csv"):
        assert not read(name).startswith(bom), name

    for name in (
        "emissions/2005-23_UK_local_authority_ghg_emissions.csv",
        "emissions/2005-19_UK_local_and_regional_CO2_emissions_subset.csv",
        "education/pupil_absence_la_202122_to_202425.csv",
        "spar_net/kpi_definitions.csv",
        "spar_net/spar_export_2021-22_Q1.csv",
        "spar_net/spar_export_2025-26_Q2.csv",
    ):
        assert _is_crlf(read(name)), name
    assert b"\r" not in read("education/ks2_attainment_la_202122_to_202425.csv")
    assert b"\r" not in read("reference/ward_lookup.csv")

    # Windows-1252 exports: not valid UTF-8, but valid cp1252 with the typographic characters.
    for name in (
        "spar_net/kpi_definitions.csv",
        "spar_net/spar_export_2023-24_Q3.csv",
        "qol_survey/qol_survey_2022.csv",
    ):
        with pytest.raises(UnicodeDecodeError):
            read(name).decode("utf-8")
        text = read(name).decode("cp1252")
        assert "–" in text or "£" in text or "’" in text, name

    # Excel-style CSVs: CRLF between records, bare LF inside quoted free text.
    survey = read("qol_survey/qol_survey_2022.csv")
    assert survey.count(b"\r\n") > 1000 and survey.count(b"\n") > survey.count(b"\r\n")
    ons = read("benchmarks/ons_life_satisfaction_table1_2024-25.csv")
    assert ons.startswith(b"Indicator:,") and b"\r\n" in ons and not ons.endswith(b"\n")


def test_spreadsheets_open_and_have_the_export_layout(landing: Landing) -> None:
    root, story = landing
    for name in story.files_of("spar_net"):
        if not name.endswith(".xlsx"):
            continue
        sheet = openpyxl.load_workbook(root / name, read_only=True)["Export"]
        first_rows = [row for _, row in zip(range(2), sheet.iter_rows(values_only=True), strict=False)]
        assert any(row[0] == "indicator_id" for row in first_rows), name
    survey = pl.read_excel(root / "qol_survey/qol_survey_2025.xlsx")
    assert {"respondent_id", "weight", "q01", "q20", "postcode", "email"} <= set(survey.columns)


@pytest.mark.skipif(not REAL_SAMPLES.is_dir(), reason="real published samples not available")
def test_layouts_match_the_real_published_files(landing: Landing) -> None:
    root, _story = landing
    real_wide = (
        (REAL_SAMPLES / "emissions/beis_2005-19_local_co2_subset_wide.csv").read_bytes().split(b"\r\n")
    )
    ours_wide = (
        (root / "emissions/2005-19_UK_local_and_regional_CO2_emissions_subset.csv")
        .read_bytes()
        .split(b"\r\n")
    )
    assert ours_wide[0] == real_wide[0]  # the title row, BOM included
    assert ours_wide[1] == real_wide[1]  # header with its trailing spaces and quoted population column
    assert ours_wide[-1] == real_wide[-1]  # trailing empty row without a final newline

    real_neet = (REAL_SAMPLES / "education/UD_NEETNK_LA_dashboard_2025.csv").read_text().splitlines()[0]
    ours_neet = (root / "education/UD_NEETNK_LA_dashboard_2025.csv").read_text().splitlines()[0]
    assert ours_neet == real_neet

    real_ons = (REAL_SAMPLES / "survey/ons_life_satisfaction_table1.csv").read_bytes().split(b"\r\n")
    ours_ons = (root / "benchmarks/ons_life_satisfaction_table1_2024-25.csv").read_bytes().split(b"\r\n")
    assert [line.split(b",")[0] for line in ours_ons[:6]] == [line.split(b",")[0] for line in real_ons[:6]]
    assert ours_ons[5].split(b",")[2:] == real_ons[5].split(b",")[2:]

    real_lg = (REAL_SAMPLES / "benchmarks/trafford_expected_standard_ks2.csv").read_text().splitlines()[0]
    assert (root / "benchmarks/lginform_ks2_expected_standard.csv").read_text().splitlines()[0] == real_lg
    real_oflog = (REAL_SAMPLES / "benchmarks/oflog_asc_data.csv").read_text().splitlines()[0]
    assert (root / "benchmarks/oflog_indicators.csv").read_text().splitlines()[0] == real_oflog


# ---------------------------------------------------------------------------------------------
# The business database
# ---------------------------------------------------------------------------------------------


def test_business_tables_have_keys_audit_columns_and_soft_deletes(landing: Landing) -> None:
    root, story = landing
    assert set(story.business_rows) == set(BUSINESS_TABLES)
    with sqlite3.connect(root / BUSINESS_DATABASE) as conn:
        for table, key in BUSINESS_TABLES.items():
            columns = {row[1]: row for row in conn.execute(f"pragma table_info({table})")}
            assert columns[key][5] == 1, f"{table}.{key} is not the primary key"
            assert [name for name, row in columns.items() if row[5]] == [key]
            assert {"updated_at", "deleted_at"} <= set(columns)
            rows, distinct, null_keys, null_updated, deleted = conn.execute(
                f"select count(*), count(distinct {key}), sum({key} is null), sum(updated_at is null),"
                f" sum(deleted_at is not null) from {table}"
            ).fetchone()
            assert rows == story.business_rows[table] > 0
            assert distinct == rows and null_keys == 0, table
            assert null_updated == 0, table
            assert 0 < deleted < 0.05 * rows, table
            latest = conn.execute(f"select max(updated_at) from {table}").fetchone()[0]
            assert latest <= "2026-10-31 23:59:59", table


def test_row_counts_grow_linearly_with_scale(landing: Landing, half: Landing) -> None:
    full, halved = landing[1].business_rows, half[1].business_rows
    assert 0.47 < sum(halved.values()) / sum(full.values()) < 0.53
    for table in BUSINESS_TABLES:
        assert 0.4 < halved[table] / full[table] < 0.6, table
    assert 40_000 < sum(full.values()) < 60_000


# ---------------------------------------------------------------------------------------------
# One coherent story
# ---------------------------------------------------------------------------------------------


def _england_holidays() -> list[dt.date]:
    return sorted(holidays.country_holidays("GB", subdiv="ENG", years=range(2020, 2028)))


def _foi_on_time_by_quarter(database: Path) -> dict[str, float]:
    """The documented FOI rule, computed here independently from the SQLite rows."""
    with sqlite3.connect(database) as conn:
        foi = pl.read_database(
            "select received_on, responded_on, outcome from foi_requests where deleted_at is null", conn
        )
    foi = foi.with_columns(pl.col("received_on", "responded_on").str.to_date("%Y-%m-%d"))
    foi = foi.filter(pl.col("outcome").is_null() | (pl.col("outcome") != "Withdrawn"))
    foi = foi.with_columns(
        pl.business_day_count(
            pl.col("received_on") + pl.duration(days=1),
            pl.col("responded_on") + pl.duration(days=1),
            holidays=_england_holidays(),
        ).alias("working_days"),
        (pl.col("received_on").dt.month() >= 4).alias("_late_in_year"),
    )
    foi = foi.with_columns(
        pl.when(pl.col("_late_in_year"))
        .then(pl.col("received_on").dt.year())
        .otherwise(pl.col("received_on").dt.year() - 1)
        .alias("fy"),
        (((pl.col("received_on").dt.month() + 8) % 12) // 3 + 1).alias("quarter"),
    )
    by_quarter = foi.group_by("fy", "quarter").agg(
        (
            100 * (pl.col("responded_on").is_not_null() & (pl.col("working_days") <= 20)).sum() / pl.len()
        ).alias("pct")
    )
    return {f"{fy}/{(fy + 1) % 100:02d} Q{q}": pct for fy, q, pct in by_quarter.iter_rows()}


def _read_spar_export(path: Path) -> pl.DataFrame:
    """indicator_id, frequency, period_start (dd/mm/yyyy) and actual (text) from a CSV or xlsx export."""
    if path.suffix == ".csv":
        frame = pl.read_csv(path.read_bytes().decode("cp1252").encode("utf-8"), infer_schema=False)
        return frame.select("indicator_id", "frequency", "period_start", "actual")
    rows = list(openpyxl.load_workbook(path, read_only=True)["Export"].iter_rows(values_only=True))
    header_at = next(i for i, row in enumerate(rows) if row[0] == "indicator_id")
    header = list(rows[header_at])
    records = []
    for row in rows[header_at + 1 :]:
        record = dict(zip(header, row, strict=True))
        start = record["period_start"]
        records.append(
            {
                "indicator_id": record["indicator_id"],
                "frequency": record["frequency"],
                "period_start": start.strftime("%d/%m/%Y") if start else None,
                "actual": None if record["actual"] is None else str(record["actual"]),
            }
        )
    return pl.DataFrame(
        records, schema={c: pl.String for c in ("indicator_id", "frequency", "period_start", "actual")}
    )


def _spar_actuals(root: Path, story: SampleStory) -> dict[tuple[str, str], float | None]:
    """Every exported actual keyed like SampleStory: (kpi_code, canonical period)."""
    out: dict[tuple[str, str], float | None] = {}
    for name in story.files_of("spar_net"):
        if "spar_export_" not in name:
            continue
        for code, frequency, start, actual in _read_spar_export(root / name).iter_rows():
            day = dt.datetime.strptime(start, "%d/%m/%Y").date()
            if frequency == "Quarterly":
                fy = day.year if day.month >= 4 else day.year - 1
                period = f"{fy}/{(fy + 1) % 100:02d} Q{(day.month - 4) % 12 // 3 + 1}"
            elif day.month == 1:
                period = str(day.year)
            else:
                period = f"{day.year}/{(day.year + 1) % 100:02d}"
            text = (actual or "").replace("%", "").replace(",", "").strip()
            out[(code, period)] = None if text in ("", "n/a") else float(text)
    return out


def test_foi_kpi_from_the_database_matches_spar_net_except_the_mismatch(landing: Landing) -> None:
    root, story = landing
    computed = _foi_on_time_by_quarter(root / BUSINESS_DATABASE)
    reported = _spar_actuals(root, story)
    mismatch = next(m for m in story.mismatches if m.kpi_code == "BPC352b")

    matching = [q for q in ("2024/25 Q2", "2025/26 Q4", "2022/23 Q1") if q != mismatch.period]
    for quarter in matching:  # a CSV quarter, an xlsx quarter, an older label style
        assert reported[("BPC352b", quarter)] == pytest.approx(computed[quarter], abs=0.05 + 1e-9), quarter

    assert reported[("BPC352b", mismatch.period)] == mismatch.reported_value
    assert computed[mismatch.period] == pytest.approx(mismatch.true_value, abs=0.05 + 1e-9)
    assert abs(reported[("BPC352b", mismatch.period)] - computed[mismatch.period]) >= 0.5


def test_spar_net_reports_every_computed_value_except_the_mismatches(landing: Landing) -> None:
    root, story = landing
    reported = _spar_actuals(root, story)
    mismatched = {(m.kpi_code, m.period): m for m in story.mismatches}
    assert len(mismatched) == 5
    assert {code for code, _ in story.computed_values} == set(story.computed_kpis)
    assert {story.computed_kpis[code] for code in story.computed_kpis} == {
        "business_systems",
        "emissions",
        "education",
        "qol_survey",
    }
    for key, value in story.computed_values.items():
        if key in mismatched:
            assert reported[key] == mismatched[key].reported_value != value, key
        else:
            assert reported[key] == value, key


def test_survey_waves_carry_the_personal_fields_the_pipeline_must_remove(landing: Landing) -> None:
    root, story = landing
    waves = [name for name in story.files_of("qol_survey") if "codebook" not in name]
    assert len(waves) == 5
    comments_with_line_breaks = 0
    for name in waves:
        path = root / name
        if path.suffix == ".xlsx":
            frame = pl.read_excel(path, infer_schema_length=0)
        else:
            text = path.read_bytes().decode("cp1252" if name.endswith("2022.csv") else "utf-8-sig")
            frame = pl.read_csv(text.encode("utf-8"), infer_schema=False)
        for column in ("postcode", "email", "free_text_comment"):
            assert frame[column].drop_nulls().len() > 0.2 * frame.height, (name, column)
        postcodes = frame["postcode"].drop_nulls()
        assert postcodes.str.contains(UK_POSTCODE.pattern).all(), name
        assert frame["email"].drop_nulls().str.contains("@").all(), name
        comments_with_line_breaks += frame["free_text_comment"].drop_nulls().str.contains("\n").sum()
        weights = frame["weight"].cast(pl.Float64)
        assert 0.99 < weights.mean() < 1.01 and weights.min() > 0, name
    assert comments_with_line_breaks > 0


def test_wide_co2_table_agrees_with_the_long_file(landing: Landing) -> None:
    root, _story = landing
    long = pl.read_csv(root / "emissions/2005-23_UK_local_authority_ghg_emissions.csv", infer_schema=False)
    within = (
        long.filter((pl.col("Local Authority Code") == OWN) & (pl.col("Calendar Year") == "2019"))
        .select(pl.col("CO2 emissions within the scope of influence of LAs (kt CO2e)").cast(pl.Float64).sum())
        .item()
    )
    wide = pl.read_csv(
        root / "emissions/2005-19_UK_local_and_regional_CO2_emissions_subset.csv",
        skip_rows=1,
        infer_schema=False,
    )
    grand_total = wide.filter((pl.col("Code") == OWN) & (pl.col("Year") == "2019"))["Grand Total"].item()
    assert float(grand_total.replace(",", "")) == pytest.approx(within, abs=0.051)
