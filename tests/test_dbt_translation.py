"""The dbt-duckdb benchmark's translation of real SQL models into a dbt project (benchmarks/dbt_duckdb.py):
every table a model reads becomes dbt's ``{{ ref() }}`` or ``{{ source() }}``, over the Parquet exports. No dbt
run, no network: the generated files are read back."""

import re
from pathlib import Path

import pytest
import yaml

from benchmarks.dbt_duckdb import MODELS_ROOT, dbt_model_sql, source_tables, write_dbt_project
from kpi_lake.sql_models import load_sql_models

JINJA_REF = re.compile(r"\{\{ ref\('(\w+)'\) \}\}")
JINJA_SOURCE = re.compile(r"\{\{ source\('(\w+)', '(\w+)'\) \}\}")


@pytest.fixture(scope="module")
def models():
    return {model.name: model for model in load_sql_models(MODELS_ROOT)}


def written_reads(sql: str) -> tuple[set[str], set[tuple[str, str]]]:
    """What the model file itself says it reads, from its text: ref('x'), source('l', 's', 't') and l.s.t."""
    sql = re.sub(r"--[^\n]*", "", sql)
    refs = set(re.findall(r"\bref\('(\w+)'\)", sql))
    sources = {
        (f"{layer}__{s}", t) for layer, s, t in re.findall(r"\bsource\('(\w+)', '(\w+)', '(\w+)'\)", sql)
    }
    sources |= {(f"{layer}__{s}", t) for layer, s, t in re.findall(r"\b(silver|gold)\.(\w+)\.(\w+)\b", sql)}
    return refs, sources


@pytest.mark.parametrize(
    "name",
    [
        "kpi_values_combined",  # ref() to three models and source() of a silver table
        "kpi_single_view",  # a plain three-part name of a Python asset's gold table, and ref()s
        "theme_scorecard",
    ],
)
def test_model_reads_become_dbt_ref_and_source(models, name):
    model = models[name]
    names = {m.ref: m.name for m in models.values()}
    sql = dbt_model_sql(model, names)

    expected_refs, expected_sources = written_reads(model.sql)
    # A three-part name of a table a model writes is a ref() in dbt, not a source.
    model_tables = {(f"{m.ref.layer}__{m.ref.source}", m.name): m.name for m in models.values()}
    expected_refs |= {model_tables[s] for s in expected_sources if s in model_tables}
    expected_sources = {s for s in expected_sources if s not in model_tables}

    assert set(JINJA_REF.findall(sql)) == expected_refs
    assert set(JINJA_SOURCE.findall(sql)) == expected_sources
    assert expected_refs or expected_sources
    # Nothing of kpi-lake's own spelling is left for DuckDB to trip on.
    leftover = re.sub(r"\{\{.*?\}\}", "", sql)
    assert not re.search(r"\b(ref|source)\(", leftover)
    assert not re.search(r"\b(silver|gold|bronze)\.\w+\.\w+", leftover)


def test_project_sources_point_at_the_parquet_exports(models, tmp_path: Path):
    chosen = [models[n] for n in ("own_council", "kpi_values_combined", "kpi_computed_values")]
    chosen += [models[n] for n in ("kpi_benchmarks", "benchmark_kpi_indicators", "kpi_catalogue")]
    everything = list(models.values())
    parquet = {
        ref: tmp_path / "parquet" / f"{ref.path.replace('/', '__')}.parquet"
        for ref in source_tables(everything)
    }
    write_dbt_project(tmp_path / "dbt", everything, parquet, tmp_path / "bench.duckdb", threads=1)

    sources = yaml.safe_load((tmp_path / "dbt" / "models" / "sources.yml").read_text())["sources"]
    locations = {
        (source["name"], table["name"]): table["meta"]["external_location"]
        for source in sources
        for table in source["tables"]
    }
    for model in chosen:
        sql = (
            tmp_path / "dbt" / "models" / model.ref.layer / model.ref.source / f"{model.name}.sql"
        ).read_text()
        for source_name, table in JINJA_SOURCE.findall(sql):
            layer, source = source_name.split("__")
            expected = tmp_path / "parquet" / f"{layer}__{source}__{table}.parquet"
            assert locations[(source_name, table)] == f"read_parquet('{expected.as_posix()}')"
        for ref in JINJA_REF.findall(sql):
            assert ref in models
    project = yaml.safe_load((tmp_path / "dbt" / "dbt_project.yml").read_text())
    assert project["models"][project["name"]]["+materialized"] == "table"
    profile = yaml.safe_load((tmp_path / "dbt" / "profiles.yml").read_text())[project["profile"]]
    assert profile["outputs"][profile["target"]]["type"] == "duckdb"
