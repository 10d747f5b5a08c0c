"""Attack cases on personal data: a survey wave full of contact details, and the pseudonym key.

The survey is the one source with personal data (postcodes, emails, phone numbers, free text). Nothing of
it may reach a table past bronze, quarantine records included; its pseudonymous ids must not be linkable
to respondent ids by anyone who has read kpi-lake's source (where the development key is).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.bronze import FILE_TABLES
from assets.bronze.factory import file_bronze_asset
from assets.silver import qol_survey
from assets.silver.factory import SilverTable, silver_asset
from kpi_lake.conform import Conformed, quarantine
from kpi_lake.personal_data import DEVELOPMENT_KEY, PersonalSource
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake
from tests.pipeline_helpers import local_resources, run_nightly

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "kpi-lake")
RESPONSES = TableRef("silver", "qol_survey", "responses")
BRONZE_RESPONSES = TableRef("bronze", "qol_survey", "responses")
NEW_WAVE = "qol_survey/qol_survey_2026.csv"
GOOD_ROWS = 40


def _planted(i: int) -> dict[str, str]:
    """Contact details of respondent ``i``: values that must never leave bronze."""
    return {
        "telephone": f"07700 900{i:03d}",
        "email_address": f"planted{i:03d}@leak-test.example",
        "home_postcode": f"ZZ{i:02d} 9ZZ",
        "postcode": f"ZY{i:02d} 8ZZ",
        "email": f"other{i:03d}@leak-test.example",
        "free_text_comment": f"ring me on 07700 900{i:03d}, Flat {i} Leak Street",
    }


def _plant_wave(landing: Path) -> list[str]:
    """A new wave with three extra contact columns and 4 bad rows; returns the planted values."""
    header = pl.read_csv(landing / "qol_survey" / "qol_survey_2023.csv", n_rows=1, infer_schema=False).columns
    header = [c.lstrip("\ufeff") for c in header]
    answers = [c for c in header if c.startswith("q")]
    rows = []
    for i in range(GOOD_ROWS + 4):
        row = dict.fromkeys(header, "")
        row.update(
            respondent_id=f"QOL26-{i:05d}",
            survey_year="2026",
            mode="Online",
            ward_code="E05099001",
            imd_decile="5",
            age_band="35-44",
            sex="Female",
            weight="1.0",
            **{q: "3" for q in answers},
            **_planted(i),
        )
        rows.append(row)
    rows[GOOD_ROWS]["weight"] = "heavy"  # not a number
    rows[GOOD_ROWS + 1][answers[0]] = "7"  # not an answer
    rows[GOOD_ROWS + 2]["survey_year"] = "20x6"  # not a year
    rows[GOOD_ROWS + 3]["respondent_id"] = ""  # no id
    frame = pl.DataFrame(rows).select([*header, "telephone", "email_address", "home_postcode"])
    frame.write_csv(landing / NEW_WAVE)
    return [value for i in range(GOOD_ROWS + 4) for value in _planted(i).values()]


def _leaks(lake_root: Path, planted: list[str]) -> list[str]:
    """Every table past bronze (every column, as JSON lines) and every other file of the lake outside bronze
    (Delta logs with their column statistics, quality results, Data Docs) that holds a planted value."""
    found = []
    tables = sorted(
        p.parent for p in lake_root.glob("**/_delta_log") if "bronze" not in p.relative_to(lake_root).parts
    )
    assert len(tables) > 40, tables  # silver and gold were built
    for table in tables:
        text = pl.read_delta(str(table)).write_ndjson()
        found += [f"{table.relative_to(lake_root)}: {v}" for v in planted if v in text]
    for path in lake_root.rglob("*"):
        if path.is_file() and "bronze" not in path.relative_to(lake_root).parts and path.suffix != ".parquet":
            text = path.read_bytes().decode("utf-8", errors="replace")
            found += [f"{path.relative_to(lake_root)}: {v}" for v in planted if v in text]
    return found


def test_survey_wave_with_contact_columns_leaks_nothing_past_bronze(
    landing_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A survey wave with telephone/email/postcode columns and bad rows: no table past bronze holds any of it"""
    monkeypatch.setenv("KPI_LAKE_PSEUDONYM_KEY", "attack-suite-key-" + "x" * 20)
    planted = _plant_wave(landing_copy)
    resources = local_resources(tmp_path / "lake", landing_copy)
    assert run_nightly(resources).success
    lake: DeltaLake = resources["lake"]

    # The planted values did land (in bronze), the bad rows were quarantined and the good ones conformed.
    bronze = lake.scan(BRONZE_RESPONSES).filter(pl.col("_source_file") == NEW_WAVE).collect()
    assert bronze.height == GOOD_ROWS + 4 and "07700 900001" in bronze["telephone"].to_list()
    quarantine = lake.scan(qol_survey.SILVER_TABLES[0].quarantine_ref).collect()
    held = quarantine.filter(pl.col("source_file") == NEW_WAVE)
    assert held.height == 4, held
    assert set(held["column"]) >= {"weight", "survey_year", "respondent_id"}
    assert lake.scan(RESPONSES).filter(pl.col("survey_year") == 2026).collect().height == GOOD_ROWS
    for record in held["raw_record"]:
        assert set(json.loads(record)) <= {*qol_survey.PERSONAL_SOURCE.allowed_columns} | {
            c for c in json.loads(record) if c.startswith("q")
        }

    assert _leaks(Path(lake.root), planted) == []


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KPI_LAKE_", "AZURE", "DAGSTER_HOME"))}
    return subprocess.run(
        [CLI, *args], cwd=PROJECT_ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=900
    )


def test_production_run_refuses_the_development_key(landing_copy: Path, tmp_path: Path):
    """A production run with no pseudonym key (the development key) fails clearly; --allow-dev-key runs it"""
    _plant_wave(landing_copy)  # a real wave: the landing zone is no longer the generated sample
    env = {"KPI_LAKE_ROOT": str(tmp_path / "lake"), "KPI_LAKE_LANDING": str(landing_copy)}
    survey = ["sync", "--select", "group:bronze_qol_survey or group:silver_qol_survey"]

    refused = _cli(survey, env)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "FAILED" in refused.stdout
    assert "KPI_LAKE_PSEUDONYM_KEY is not set" in output and "--allow-dev-key" in output
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=local_resources(tmp_path, landing_copy)["lake"].azure)
    assert not lake.exists(RESPONSES)  # nothing was pseudonymised with the published key

    allowed = _cli([*survey, "--allow-dev-key"], env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert lake.exists(RESPONSES)
    by_variable = _cli(survey, {**env, "KPI_LAKE_ALLOW_DEV_KEY": "true"})
    assert by_variable.returncode == 0, by_variable.stdout + by_variable.stderr


def _dev_key_ids(bronze: pl.DataFrame) -> set[str]:
    """What anyone with kpi-lake's source can compute from bronze ids: the HMAC under the development key."""
    pairs = bronze.select(
        pl.col("survey_year").str.strip_chars().cast(pl.Float64).cast(pl.Int32),
        pl.col("respondent_id").str.strip_chars(),
    ).drop_nulls()
    return {
        hmac.new(DEVELOPMENT_KEY.encode(), f"{year}:{rid}".encode(), hashlib.sha256).hexdigest()[:20]
        for year, rid in pairs.iter_rows()
    }


def test_key_change_rekeys_silver_and_ids_are_not_reproducible(
    landing_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A pseudonym key change re-keys every silver id; none is reproducible from bronze ids with the dev key"""
    resources = local_resources(tmp_path / "lake", landing_copy)
    lake: DeltaLake = resources["lake"]
    assets = [file_bronze_asset(s) for s in FILE_TABLES if s.source == "qol_survey"] + [
        silver_asset(s) for s in qol_survey.SILVER_TABLES
    ]
    instance = dg.DagsterInstance.ephemeral()

    def build() -> tuple[int, set[str]]:
        assert dg.materialize(assets, resources=resources, instance=instance).success
        return lake.version(RESPONSES), set(lake.scan(RESPONSES).collect()["respondent_key"])

    monkeypatch.delenv("KPI_LAKE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("KPI_LAKE_ALLOW_DEV_KEY", raising=False)
    _, dev_ids = build()  # the generated sample: the development key is accepted
    reproduced = _dev_key_ids(lake.scan(BRONZE_RESPONSES).collect())
    assert len(dev_ids) > 100 and dev_ids <= reproduced  # the attack works on dev-keyed ids

    monkeypatch.setenv("KPI_LAKE_PSEUDONYM_KEY", "first-real-key-" + "a" * 24)
    version, first_ids = build()
    assert len(first_ids) == len(dev_ids) and not first_ids & dev_ids and not first_ids & reproduced
    assert build()[0] == version  # same key, nothing new: not rebuilt

    monkeypatch.setenv("KPI_LAKE_PSEUDONYM_KEY", "second-real-key-" + "b" * 24)
    new_version, second_ids = build()
    assert new_version > version
    assert len(second_ids) == len(first_ids) and not second_ids & first_ids and not second_ids & reproduced
    # The commit records a fingerprint of the key, never the key.
    built_from = lake.last_commit_metadata(RESPONSES)["kpi_lake.built_from"]
    assert "pseudonym_key" in json.loads(built_from) and "second-real-key" not in built_from
    log = "".join(p.read_text() for p in (Path(lake.root) / RESPONSES.path / "_delta_log").glob("*.json"))
    assert "real-key" not in log


def _careless_conform(careless: pl.LazyFrame | None, key: bytes) -> Conformed:
    """A conform function that forgets the allow-list: quarantines every row with its whole record."""
    frame = careless.collect()
    held = quarantine(
        frame, source_table="bronze/qol_survey/responses", column="telephone", reason="careless"
    )
    return Conformed(
        rows=pl.DataFrame({"respondent_key": ["k"], "telephone": ["07700 900999"]}), quarantine=held
    )


def test_personal_source_is_cut_to_its_allow_list_whatever_the_conform_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A personal-data silver table keeps only allow-listed fields even when its conform code leaks them"""
    monkeypatch.delenv("KPI_LAKE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("KPI_LAKE_ALLOW_DEV_KEY", raising=False)
    lake = local_resources(tmp_path / "lake", tmp_path / "landing")["lake"]
    bronze = TableRef("bronze", "qol_survey", "careless")
    lake.overwrite(
        bronze,
        pl.DataFrame(
            {
                "ward_code": ["E05099001"],
                "telephone": ["07700 900999"],
                "note": ["call 07700 900999"],
                "q01": ["3"],
            }
        ),
    )
    spec = SilverTable(
        ref=TableRef("silver", "qol_survey", "careless"),
        inputs=(bronze,),
        conform=_careless_conform,
        description="a careless table",
        columns={"respondent_key": "id"},
        personal=PersonalSource(allowed_columns=("ward_code",), allowed_pattern=r"q\d+"),
    )
    landing = local_resources(tmp_path / "lake", tmp_path / "landing")["landing"]
    result = dg.materialize(
        [silver_asset(spec)],
        resources={"lake": lake, "landing": landing},
        raise_on_error=False,
    )
    assert not result.success  # an empty landing zone is not the sample: the development key is refused
    monkeypatch.setenv("KPI_LAKE_PSEUDONYM_KEY", "careless-test-key")
    assert dg.materialize([silver_asset(spec)], resources={"lake": lake, "landing": landing}).success
    held = lake.scan(spec.quarantine_ref).collect()
    assert json.loads(held["raw_record"].item()) == {"ward_code": "E05099001", "q01": "3"}
    assert held["value"].item() is None and held["column"].item() == "telephone"
    assert lake.scan(spec.ref).collect().columns == ["respondent_key"]
