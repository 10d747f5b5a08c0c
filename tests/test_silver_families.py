"""Silver for SPAR.net, the business systems and the survey: built by the real nightly job from the generated
landing zone and checked against the generator's ground truth (``SampleStory``), plus their bad input."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from kpi_lake.conform import ConformError
from kpi_lake.conform.business_systems import conform_foi
from kpi_lake.conform.qol_survey import PERSONAL_COLUMNS, conform_responses
from kpi_lake.conform.spar_net import conform_kpi_definitions, conform_kpi_values
from kpi_lake.periods import parse_period
from kpi_lake.raw_files import RawFileError, read_raw_file
from kpi_lake.sample_data import generate_landing
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake
from tests.pipeline_helpers import local_resources, run_nightly

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b")


@pytest.fixture(scope="module")
def story_and_lake(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("silver")
    story = generate_landing(root / "landing", scale=0.3, seed=11)
    resources = local_resources(root / "lake", root / "landing")
    assert run_nightly(resources).success
    return story, resources["lake"], root / "landing"


def _silver(lake: DeltaLake, source: str, table: str) -> pl.DataFrame:
    return lake.scan(TableRef("silver", source, table)).collect()


def _story_values(story) -> pl.DataFrame:
    """The story's computed values with the period keys each label can stand for (parsed in one go: a bare
    '2024/25' is a financial or an academic year, by the KPI's frequency)."""
    frame = pl.DataFrame(
        [(kpi, label, value) for (kpi, label), value in story.computed_values.items()],
        schema={"kpi_code": pl.String, "label": pl.String, "value": pl.Float64},
        orient="row",
    )
    frame = frame.with_columns(parse_period("label").struct.field("period_key").alias("period_key"))
    academic = frame.filter(pl.col("period_key").str.contains(r"^FY\d{4}-\d{2}$")).with_columns(
        pl.col("period_key").str.replace("FY", "AY")
    )
    return pl.concat([frame, academic])


# ---- SPAR.net ----------------------------------------------------------------------------------------------
def test_spar_net_values_are_what_the_exports_say(story_and_lake):
    story, lake, _ = story_and_lake
    values = _silver(lake, "spar_net", "kpi_values")
    assert values.select("kpi_code", "period_key").is_duplicated().sum() == 0
    assert set(values["kpi_code"]) <= set(story.kpi_codes)
    mismatched = pl.DataFrame(
        [(m.kpi_code, m.period, m.reported_value) for m in story.mismatches],
        schema={"kpi_code": pl.String, "label": pl.String, "reported": pl.Float64},
        orient="row",
    )
    expected = (
        _story_values(story)
        .join(mismatched, on=["kpi_code", "label"], how="left")
        .with_columns(pl.coalesce("reported", "value").alias("expected"))
        .join(values.select("kpi_code", "period_key", "actual"), on=["kpi_code", "period_key"], how="inner")
    )
    assert expected.height > 100, "too few computed KPI values found in silver to trust the comparison"
    wrong = expected.filter((pl.col("actual") - pl.col("expected")).abs() > 0.051)
    assert wrong.height == 0, wrong.head(5)
    assert expected.filter(pl.col("reported").is_not_null()).height == len(story.mismatches)


def test_spar_net_definitions_one_row_per_kpi_with_a_theme(story_and_lake):
    story, lake, _ = story_and_lake
    definitions = _silver(lake, "spar_net", "kpi_definitions")
    assert sorted(definitions["kpi_code"]) == sorted(story.kpi_codes)
    assert definitions["primary_theme"].null_count() == 0
    assert set(definitions["polarity"]) <= {"higher_is_better", "lower_is_better", "neither"}
    assert (definitions["themes"].list.len() >= 1).all()
    assert (definitions["themes"].list.len() > 1).sum() >= 5  # the cross-cutting KPIs


def test_commentary_survives_whole(story_and_lake):
    _, lake, _ = story_and_lake
    commentary = _silver(lake, "spar_net", "kpi_values")["commentary"].drop_nulls()
    assert commentary.str.contains("\n").any()  # multi-line narratives kept whole
    assert commentary.str.contains("£").any() and commentary.str.contains("–").any()  # cp1252 decoded


# ---- business systems --------------------------------------------------------------------------------------
def test_foi_and_planning_kpis_from_silver_match_the_source_data(story_and_lake):
    story, lake, _ = story_and_lake
    foi = _silver(lake, "business_systems", "foi_requests").filter(~pl.col("is_withdrawn"))
    planning = _silver(lake, "business_systems", "planning_decisions").filter(pl.col("is_determined"))
    quarterly = _story_values(story).filter(pl.col("period_key").str.contains("-Q"))
    foi_rates = foi.group_by(pl.col("received_quarter").alias("period_key")).agg(
        (pl.col("answered_within_20_working_days").mean() * 100).round(1).alias("silver"),
        pl.lit("BPC352b").alias("kpi_code"),
    )
    major_rates = (
        planning.filter(pl.col("development_category") == "major")
        .group_by(pl.col("decision_quarter").alias("period_key"))
        .agg(
            (pl.col("decided_in_time").mean() * 100).round(1).alias("silver"),
            pl.lit("BPB530").alias("kpi_code"),
        )
    )
    compared = quarterly.join(pl.concat([foi_rates, major_rates]), on=["kpi_code", "period_key"], how="inner")
    assert compared.height >= 20
    wrong = compared.filter((pl.col("silver") - pl.col("value")).abs() > 0.051)
    assert wrong.height == 0, wrong.head(5)


def test_deleted_source_rows_are_not_facts(story_and_lake):
    _, lake, landing = story_and_lake
    with sqlite3.connect(landing / "business_systems" / "council_systems.sqlite") as connection:
        deleted = {
            r[0]
            for r in connection.execute("select request_id from foi_requests where deleted_at is not null")
        }
    assert deleted, "the sample should hold soft-deleted rows"
    assert not deleted & set(_silver(lake, "business_systems", "foi_requests")["request_id"])


def test_business_rows_with_impossible_dates_are_quarantined():
    frame = pl.LazyFrame(
        {
            "request_id": [1, 2],
            "directorate": ["Resources", "Resources"],
            "received_on": [dt.date(2024, 5, 1), dt.date(2024, 5, 10)],
            "responded_on": [dt.date(2024, 5, 20), dt.date(2024, 5, 1)],
            "outcome": ["Released", "Released"],
            "exemption": [None, None],
        },
        schema_overrides={"exemption": pl.String},
    ).with_columns(
        pl.lit(None, pl.Datetime("us")).alias("updated_at"),
        pl.lit(None, pl.Datetime("us")).alias("deleted_at"),
    )
    conformed = conform_foi(frame)
    assert conformed.rows["request_id"].to_list() == [1]
    # Working days after Wed 1 May 2024 up to Mon 20 May: 13 weekdays less the early May bank holiday (6 May).
    assert conformed.rows["working_days_to_respond"].item() == 12
    held = conformed.quarantine.row(0, named=True)
    assert held["column"] == "responded_on" and "before it was received" in held["reason"]


def test_database_value_that_does_not_fit_its_type_is_set_aside(landing_copy: Path, tmp_path: Path):
    database = landing_copy / "business_systems" / "council_systems.sqlite"
    with sqlite3.connect(database) as connection:
        bad_id = connection.execute("select min(employee_id) from employees").fetchone()[0]
        connection.execute("update employees set fte = 'about half' where employee_id = ?", (bad_id,))
        expected = connection.execute("select count(*) from employees").fetchone()[0] - 1
    resources = local_resources(tmp_path / "lake", landing_copy)
    result = run_nightly(resources)
    assert result.success
    lake: DeltaLake = resources["lake"]
    assert (
        lake.scan(TableRef("bronze", "business_systems", "employees")).select(pl.len()).collect().item()
        == expected
    )
    rejected = lake.scan(TableRef("bronze", "business_systems", "employees_rejected")).collect()
    assert rejected["employee_id"].to_list() == [str(bad_id)]
    assert "column fte: about half is not a valid Float64" in rejected["_reason"].item()


# ---- the survey --------------------------------------------------------------------------------------------
def test_survey_kpis_equal_the_weighted_source_values(story_and_lake):
    story, lake, _ = story_and_lake
    indicators = _silver(lake, "qol_survey", "indicators").filter(pl.col("breakdown") == "council")
    assert indicators["geography_code"].unique().to_list() == [story.council_code]
    compared = 0
    for row in indicators.filter(pl.col("kpi_code").is_not_null()).iter_rows(named=True):
        label = f"{row['survey_year']}/{(row['survey_year'] + 1) % 100:02d}"
        if (row["kpi_code"], label) in story.computed_values:
            assert round(row["weighted_percentage"], 1) == pytest.approx(
                story.computed_values[(row["kpi_code"], label)], abs=0.051
            )
            assert row["lower_ci"] < row["weighted_percentage"] < row["upper_ci"]
            compared += 1
    assert compared >= 10


def test_small_groups_are_suppressed(story_and_lake):
    _, lake, _ = story_and_lake
    indicators = _silver(lake, "qol_survey", "indicators")
    small = indicators.filter(pl.col("unweighted_base") < 30)
    assert small.height > 0, "scale 0.3 should give some groups under 30"
    assert small["is_suppressed"].all() and small["weighted_percentage"].null_count() == small.height
    assert not indicators.filter(pl.col("unweighted_base") >= 30)["is_suppressed"].any()


def test_no_personal_data_outside_bronze(story_and_lake):
    """No silver table, quarantine included, has a personal column or a value that looks like an email or
    a postcode, although the survey files are full of them."""
    _, lake, landing = story_and_lake
    raw = read_raw_file(landing / "qol_survey" / "qol_survey_2021.csv", source_file="x").frame
    assert raw["email"].drop_nulls().str.contains("@").any() and raw["postcode"].drop_nulls().len() > 0
    silver_root = Path(lake.root) / "silver"
    tables = [p.parent for p in silver_root.glob("*/*/_delta_log")]
    assert len(tables) >= 20
    for path in tables:
        frame = pl.read_delta(str(path))
        assert not set(frame.columns) & set(PERSONAL_COLUMNS), path
        for column, dtype in frame.schema.items():
            if dtype == pl.String:
                values = frame[column].drop_nulls()
                assert not values.str.contains(EMAIL.pattern).any(), (path, column)
                assert not values.str.contains(UK_POSTCODE.pattern).any(), (path, column)


# ---- bad input, file by file -------------------------------------------------------------------------------
SPAR_HEADER = "indicator_id,indicator_name,period_label,actual,target,rag_status,commentary\r\n"


def _spar(tmp_path: Path, name: str, body: str, encoding: str = "cp1252") -> pl.LazyFrame:
    path = tmp_path / name
    path.write_bytes(body.encode(encoding))
    return read_raw_file(path, source_file=f"spar_net/{name}").frame.lazy()


def test_spar_net_bad_input(tmp_path: Path):
    # Wrong encoding (cp1252, not UTF-8) is detected and decoded; an extra column is carried harmlessly.
    good = _spar(
        tmp_path,
        "spar_export_a.csv",
        SPAR_HEADER.replace("\r\n", ",extra\r\n")
        + 'BPB530,Majors,2024/25 Q2,85.2%,90%,A,"Costs – £1,200, ""noted""",x\r\n'
        + "BPB530,Majors,2024/25 Q2,86,90%,A,duplicate in the same file,x\r\n"
        + "NH617,Repairs,Q2 2024-25,ninety,95,G,wrong type,x\r\n"
        + "BCP475,Sickness,Jul-Sep 2024,9.1,8.5,R,fine,x\r\n"
        + "BPC210,Council tax,2024/25 Q2,5",  # truncated mid-row
    )
    result = conform_kpi_values(good)
    assert result.rows["kpi_code"].to_list() == ["BCP475"]
    held = {(r["source_row"], r["column"]): r["reason"] for r in result.quarantine.to_dicts()}
    assert "more than once" in held[(2, "indicator_id")] and "more than once" in held[(3, "indicator_id")]
    assert "not a number" in held[(4, "actual")]
    assert "header" in held[(6, "_parse_issue")]
    assert set(result.quarantine["source_file"]) == {"spar_net/spar_export_a.csv"}

    # A missing column names the file and the column.
    missing = _spar(tmp_path, "spar_export_b.csv", "indicator_id,period_label\r\nBPB530,2024/25 Q2\r\n")
    with pytest.raises(ConformError, match=r"actual.*spar_net/spar_export_b\.csv"):
        conform_kpi_values(missing)

    # Header only: no rows, no error. Empty: the reader refuses it, naming the file.
    assert conform_kpi_values(_spar(tmp_path, "spar_export_c.csv", SPAR_HEADER)).rows.height == 0
    (tmp_path / "spar_export_d.csv").write_bytes(b"")
    with pytest.raises(RawFileError, match=r"spar_export_d\.csv: the file is empty"):
        read_raw_file(tmp_path / "spar_export_d.csv", source_file="spar_export_d.csv")


def test_a_broken_line_is_not_taken_for_a_kpi():
    """Half of a multi-line comment that lost its opening quote lands in the indicator column."""
    frame = pl.LazyFrame(
        {
            "indicator_id": ["BPC352b", "Recovery plan agreed with the service, reviewed monthly"],
            "period_label": ["2024/25 Q2", "2024/25 Q2"],
            "actual": ["81.4", None],
            "theme": ["Effective Development Organisation", None],
            "_source_file": ["spar_net/x.csv"] * 2,
            "_source_row": [2, 3],
        }
    )
    assert conform_kpi_values(frame).rows["kpi_code"].to_list() == ["BPC352b"]
    definitions = conform_kpi_definitions(None, frame)
    assert definitions.rows["kpi_code"].to_list() == ["BPC352b"]
    assert definitions.quarantine.row(0, named=True)["reason"] == "not a KPI code (a broken line?)"


def test_newest_export_wins_across_files():
    frame = pl.LazyFrame(
        {
            "indicator_id": ["BPB530", "BPB530"],
            "period_label": ["2024/25 Q2", "Jul-Sep 2024"],
            "actual": ["80", "82"],
            "_source_file": ["spar_net/spar_export_2024-25_Q2.csv", "spar_net/spar_export_2024-25_Q3.csv"],
            "_source_row": [2, 9],
        }
    )
    rows = conform_kpi_values(frame).rows
    assert rows.select("actual", "source_file").row(0) == (82.0, "spar_net/spar_export_2024-25_Q3.csv")


def test_survey_bad_input_keeps_personal_data_out_of_quarantine(tmp_path: Path):
    header = "respondent_id,survey_year,postcode,email,ward_code,weight,q01,q02,free_text_comment\r\n"
    path = tmp_path / "qol_survey_2024.csv"
    path.write_bytes(
        (
            header
            + "R1,2024,KF1 2AB,a@example.com,E05099001,1.1,1,2,Great – thanks\r\n"
            + "R2,2024,KF3 4CD,b@example.com,E05099002,heavy,1,2,\r\n"  # wrong type
            + "R3,2024,KF5 6EF,,E05099003,0.9,7,2,\r\n"  # 7 is not an answer
            + "R1,2024,KF1 2AB,,E05099001,1.0,1,1,again\r\n"  # duplicate respondent
            + "R5,2024,KF7 8GH,,E05099004,1.2,3"  # truncated
        ).encode("cp1252")
    )
    frame = read_raw_file(path, source_file="qol_survey/qol_survey_2024.csv").frame.lazy()
    result = conform_responses(frame, key=b"test-key")
    assert result.rows.height == 1  # R5's missing answer is simply unanswered; R1 twice is ambiguous
    reasons = dict(zip(result.quarantine["source_row"], result.quarantine["reason"], strict=True))
    assert "weight" in reasons[3] and "not 1-5" in reasons[4]
    assert "twice" in reasons[2] and "twice" in reasons[5]
    for record in result.quarantine["raw_record"]:
        assert "@" not in record and "KF" not in record and "thanks" not in record
    with pytest.raises(ConformError, match="weight"):
        conform_responses(
            pl.LazyFrame({"respondent_id": ["R1"], "survey_year": ["2024"], "ward_code": ["W"]})
        )


def test_pseudonyms_are_keyed(tmp_path: Path):
    frame = pl.LazyFrame(
        {"respondent_id": ["R1"], "survey_year": ["2024"], "weight": ["1"], "ward_code": ["W"], "q01": ["1"]}
    )
    one = conform_responses(frame, key=b"key-one").rows["respondent_key"].item()
    two = conform_responses(frame, key=b"key-two").rows["respondent_key"].item()
    assert one != two and "R1" not in one


def test_landing_zone_files_parse_like_their_real_counterparts(sample_landing: Path, real_samples: Path):
    """The generated files have the real publishers' layouts: the same reader finds the same header rows
    and the same columns."""
    pairs = [
        ("emissions/2005-19_UK_local_and_regional_CO2_emissions_subset.csv", "emissions/beis_2005-19_local_co2_subset_wide.csv"),
        ("benchmarks/ons_life_satisfaction_table1_2020-21.csv", "survey/ons_life_satisfaction_table1.csv"),
        ("benchmarks/lginform_ks2_expected_standard.csv", "benchmarks/trafford_expected_standard_ks2.csv"),
        ("reference/la_lookup.csv", "geography/LTLA-UTLA_Apr23_Lookup_England-Wales.csv"),
    ]  # fmt: skip
    for generated, real in pairs:
        ours = read_raw_file(sample_landing / generated, source_file=generated)
        theirs = read_raw_file(real_samples / real, source_file=real)
        assert ours.header_row == theirs.header_row, generated
        assert set(theirs.columns) <= set(ours.columns) | {"ltla23nmw", "utla23nmw", "objectid"}, generated
    ours = read_raw_file(sample_landing / "education/ks2_attainment_la_202122_to_202425.csv", source_file="x")
    theirs = read_raw_file(real_samples / "education/ks2_la.csv", source_file="y")
    standard = {"time_period", "time_identifier", "geographic_level", "new_la_code", "la_name", "region_code"}
    assert standard <= set(ours.columns) & set(theirs.columns)
    assert "pt_rwm_met_expected_standard" in ours.columns and ours.encoding == theirs.encoding == "utf-8-sig"
