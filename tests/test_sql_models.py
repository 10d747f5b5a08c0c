"""SQL models: dependencies parsed from the SQL, helpful errors, both engines, incremental merges, column tests
as asset checks, and rebuilding only what is downstream of a change. Model trees are written per test in
``tmp_path``; inputs are real Delta tables in a temporary lake; assets run with ``dg.materialize``."""

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.bronze import bronze_assets
from assets.gold.sql_models import sql_model_assets, sql_model_assets_from_tree
from assets.silver import silver_assets
from kpi_lake.sql_models import SqlModelError, build_model, compile_model, load_sql_models
from kpi_lake.tables import TableRef
from pipelines.environment import get_resources
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.conftest import PROJECT_ROOT

KPI_VALUES = TableRef("silver", "spar_net", "kpi_values")
KPI_DEFINITIONS = TableRef("silver", "spar_net", "kpi_definitions")

VALUES = pl.DataFrame(
    {
        "kpi_code": ["BP1"] * 3 + ["BP2"] * 3 + ["BP3"] * 2,
        "period_key": ["FY2024-25-Q1", "FY2024-25-Q2", "FY2024-25-Q3"] * 2 + ["FY2024-25-Q2", "FY2024-25-Q3"],
        "period_start": [dt.date(2024, 4, 1), dt.date(2024, 7, 1), dt.date(2024, 10, 1)] * 2
        + [dt.date(2024, 7, 1), dt.date(2024, 10, 1)],
        "actual": [71.0, 74.5, None, 12.0, 9.5, 8.0, 30.0, 28.0],
        "target": [75.0, 75.0, 75.0, 10.0, 10.0, 10.0, None, 25.0],
    }
)
DEFINITIONS = pl.DataFrame(
    {
        "kpi_code": ["BP1", "BP2", "BP3"],
        "kpi_name": ["Households prevented from homelessness", "Days to process benefit claims", "Litter"],
        "polarity": ["higher_is_better", "lower_is_better", "neither"],
        "primary_theme": ["housing", "council", "environment"],
    }
)


@pytest.fixture
def lake(tmp_path: Path) -> DeltaLake:
    return DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())


@pytest.fixture
def silver(lake: DeltaLake) -> DeltaLake:
    """The lake with the two SPAR.net silver tables the models read."""
    lake.overwrite(KPI_VALUES, VALUES)
    lake.overwrite(KPI_DEFINITIONS, DEFINITIONS)
    return lake


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write model files under ``root/dbt_like_sql`` and return that folder."""
    tree = root / "dbt_like_sql"
    for relative, text in files.items():
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    tree.mkdir(parents=True, exist_ok=True)
    return tree


def load_error(tree: Path, **kwargs) -> str:
    with pytest.raises(SqlModelError) as raised:
        load_sql_models(tree, **kwargs)
    return str(raised.value)


DIM_KPI = """
    -- One row per KPI: name, polarity and theme.
    with source as (
        select * from source('silver', 'spar_net', 'kpi_definitions')
    ),
    final as (
        select kpi_code, kpi_name, polarity, primary_theme from source
    )
    select * from final
"""
DIM_KPI_YML = """
    description: One row per KPI the council reports.
    columns:
      - name: kpi_code
        description: SPAR.net indicator id
        tests: [not_null, unique]
      - name: polarity
        description: Which way is good
        tests:
          - accepted_values: {values: [higher_is_better, lower_is_better, neither]}
    tags: [kpi_mart]
"""
FCT_KPI_VALUE = """
    with kpi_values as (
        select * from silver.spar_net.kpi_values
    ),
    dim_kpi as (
        select * from ref('dim_kpi')
    ),
    final as (
        select
            v.kpi_code,
            v.period_key,
            v.actual,
            v.target,
            case
                when v.actual is null or v.target is null then null
                when k.polarity = 'lower_is_better' and v.actual <= v.target then 'green'
                when k.polarity = 'higher_is_better' and v.actual >= v.target then 'green'
                else 'red'
            end as rag_status
        from kpi_values as v
        inner join dim_kpi as k on v.kpi_code = k.kpi_code
    )
    select * from final
"""
FCT_KPI_VALUE_YML = """
    description: Each KPI value with its RAG status.
    unique_key: [kpi_code, period_key]
    columns:
      - name: kpi_code
        tests:
          - not_null
          - relationships: {to: "ref('dim_kpi')", field: kpi_code}
      - name: rag_status
        tests:
          - accepted_values: {values: [green, amber, red]}
"""


# ---- dependencies ----------------------------------------------------------------------------------------


def test_dependencies_are_parsed_from_ref_source_and_three_part_names(tmp_path: Path):
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/dim_kpi.sql": DIM_KPI,
            "silver/kpi_catalogue/kpi_thresholds.sql": "select kpi_code, 5.0 as tolerance from gold.kpi_mart.dim_kpi",
            "gold/kpi_mart/fct_kpi_value.sql": """
                -- ref('ghost_in_a_comment') and silver.nothing.here are not dependencies
                with values_cte as (
                    select * from source('silver', 'spar_net', 'kpi_values')
                ),
                thresholds as (
                    select * from REF( 'kpi_thresholds' )
                ),
                final as (
                    select
                        v.*,
                        d.kpi_name,
                        t.tolerance,
                        'ref(''ghost'') from silver.spar_net.ghost' as not_a_table,
                        "ref" as quoted_column
                    from values_cte as v
                    left join gold.kpi_mart.dim_kpi as d on v.kpi_code = d.kpi_code
                    left join thresholds as t on v.kpi_code = t.kpi_code
                    cross join (select 1 as ref) as x
                )
                select * from final
            """,
        },
    )
    models = {m.name: m for m in load_sql_models(tree)}
    assert list(models) == ["dim_kpi", "kpi_thresholds", "fct_kpi_value"]  # dependency order
    fact = models["fct_kpi_value"]
    assert set(fact.inputs) == {
        KPI_VALUES,
        TableRef("gold", "kpi_mart", "dim_kpi"),
        TableRef("silver", "kpi_catalogue", "kpi_thresholds"),
    }
    assert fact.model_inputs == ("dim_kpi", "kpi_thresholds")  # CTEs (values_cte, thresholds, final) are not
    assert models["kpi_thresholds"].model_inputs == ("dim_kpi",)  # a three-part name of a model is a model
    assert models["dim_kpi"].inputs == (KPI_DEFINITIONS,)
    assert models["dim_kpi"].description == "One row per KPI: name, polarity and theme."
    compiled = compile_model(fact, "polars").sql
    assert "'ref(''ghost'') from silver.spar_net.ghost'" in compiled  # string literals are left alone


# ---- errors that help ------------------------------------------------------------------------------------


def test_a_sql_error_names_the_file_and_line(tmp_path: Path):
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/dim_kpi.sql": DIM_KPI,
            "gold/kpi_mart/broken.sql": """
                select kpi_code,
                    actual
                from ref('dim_kpi')
                where and actual > 1
            """,
        },
    )
    message = load_error(tree)
    assert "dbt_like_sql/gold/kpi_mart/broken.sql, line 4" in message
    assert "SQL syntax error" in message
    assert str(tmp_path) not in message  # paths as the project knows them, not this machine's


def test_an_unknown_reference_names_the_file_and_the_missing_name(tmp_path: Path):
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/fct.sql": "select *\nfrom ref('dim_kpii')\n",
            "gold/kpi_mart/other.sql": "select * from kpi_values\n",
        },
    )
    message = load_error(tree)
    assert (
        "dbt_like_sql/gold/kpi_mart/fct.sql, line 2, col 6: ref('dim_kpii'): there is no model named 'dim_kpii'"
        in message
    )
    assert (
        "dbt_like_sql/gold/kpi_mart/other.sql, line 1" in message and "unknown table 'kpi_values'" in message
    )

    tree = write_tree(
        tmp_path / "second", {"gold/kpi_mart/fct.sql": "select * from silver.spar_net.kpi_valuez"}
    )
    message = load_error(tree, known_tables=[KPI_VALUES, KPI_DEFINITIONS])
    assert (
        "fct.sql, line 1" in message
        and "silver/spar_net/kpi_valuez, which no model or Python asset writes" in message
    )


def test_a_dependency_cycle_is_found_at_load_and_names_the_models(tmp_path: Path):
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/a.sql": "select * from ref('b')",
            "gold/kpi_mart/b.sql": "select * from silver.kpi_catalogue.c",
            "silver/kpi_catalogue/c.sql": "select * from ref('a')",
            "gold/kpi_mart/d.sql": "select * from ref('a')",
        },
    )
    message = load_error(tree)
    assert "dependency cycle" in message
    for name in ("gold/kpi_mart/a.sql", "gold/kpi_mart/b.sql", "silver/kpi_catalogue/c.sql"):
        assert name in message
    assert "d.sql" not in message


def test_model_names_must_be_unique_and_files_well_placed(tmp_path: Path):
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/dim_kpi.sql": "select 1 as x",
            "silver/kpi_catalogue/dim_kpi.sql": "select 2 as x",
            "gold/loose.sql": "select 3 as x",
            "gold/kpi_mart/orphan.yml": "description: no model",
            "gold/kpi_mart/dim_kpi.yml": "materialized: view\n",
        },
    )
    message = load_error(tree)
    assert "model name 'dim_kpi' is also used by dbt_like_sql/gold/kpi_mart/dim_kpi.sql" in message
    assert "gold/loose.sql: a model lives at <layer>/<source>/<name>.sql" in message
    assert "orphan.yml: no model orphan.sql" in message
    assert "dim_kpi.yml: materialized must be one of table, incremental, not 'view'" in message


def test_an_engine_error_names_the_file_and_line(tmp_path: Path, silver: DeltaLake):
    tree = write_tree(
        tmp_path,
        {"gold/kpi_mart/typo.sql": "select kpi_code,\n    actul\nfrom silver.spar_net.kpi_values\n"},
    )
    (model,) = load_sql_models(tree)
    for engine in ("polars", "duckdb"):
        with pytest.raises(SqlModelError) as raised:
            build_model(model, silver, engine=engine)
        assert str(raised.value).startswith("dbt_like_sql/gold/kpi_mart/typo.sql, line 2")
        assert "actul" in str(raised.value) and engine in str(raised.value)
    result = dg.materialize(sql_model_assets([model]), resources={"lake": silver}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "typo.sql, line 2" in str(failure.event_specific_data.error.message)


# ---- engines ---------------------------------------------------------------------------------------------


MART_SQL = """
    with kpi_values as (
        select * from source('silver', 'spar_net', 'kpi_values')
    ),
    definitions as (
        select * from silver.spar_net.kpi_definitions
    ),
    joined as (
        select
            v.kpi_code,
            v.period_key,
            v.period_start,
            v.actual,
            coalesce(v.target, 0) as target,
            d.polarity,
            d.primary_theme
        from kpi_values as v
        left join definitions as d on v.kpi_code = d.kpi_code
    ),
    with_previous as (
        select
            *,
            lag(actual) over (partition by kpi_code order by period_start) as previous_actual,
            row_number() over (partition by kpi_code order by period_start desc) as recency
        from joined
    ),
    theme_stats as (
        select
            primary_theme,
            median(actual) as theme_median,
            percentile_cont(0.9) within group (order by actual) as theme_p90,
            count(*) as kpi_values
        from joined
        group by primary_theme
    ),
    final as (
        select
            p.kpi_code,
            p.period_key,
            date_trunc('month', p.period_start) as period_month,
            p.actual,
            p.previous_actual,
            round(100.0 * p.actual / nullif(p.target, 0), 1) as percent_of_target,
            case
                when p.actual is null or p.previous_actual is null then 'no_comparison'
                when p.actual = p.previous_actual then 'same'
                when (p.actual > p.previous_actual) = (p.polarity = 'higher_is_better') then 'improving'
                else 'worsening'
            end as direction_of_travel,
            p.recency = 1 as is_latest,
            t.theme_median,
            t.theme_p90,
            t.kpi_values
        from with_previous as p
        left join theme_stats as t on p.primary_theme = t.primary_theme
        union all
        select 'ALL', null, null, avg(actual), null, null, 'no_comparison', false, median(actual), null, count(*)
        from joined
    )
    select * from final
"""


def test_both_engines_give_the_same_result(tmp_path: Path, silver: DeltaLake):
    (model,) = load_sql_models(write_tree(tmp_path, {"gold/kpi_mart/kpi_performance.sql": MART_SQL}))
    results = {}
    for engine in ("polars", "duckdb"):
        built = build_model(model, silver, engine=engine)
        assert built.engine == engine
        results[engine] = silver.scan(model.ref).collect().sort("kpi_code", "period_key", nulls_last=True)
    assert results["polars"].height == VALUES.height + 1
    # Integers are widened alike and decimal-point literals are doubles in both, so the types match too.
    assert results["polars"].schema == results["duckdb"].schema
    assert results["polars"].schema["percent_of_target"] == pl.Float64
    assert_frame_equal(results["polars"], results["duckdb"])
    bp1 = results["polars"].filter(pl.col("kpi_code") == "BP1")
    assert bp1["direction_of_travel"].to_list() == ["no_comparison", "improving", "no_comparison"]
    assert bp1["is_latest"].to_list() == [False, False, True]


# ---- Dagster: assets, checks, incremental --------------------------------------------------------------


def test_models_become_assets_with_deps_docs_and_checks(tmp_path: Path, silver: DeltaLake):
    rows = VALUES.with_columns(
        pl.when(pl.col("kpi_code") == "BP3")
        .then(pl.lit("XX9"))
        .otherwise(pl.col("kpi_code"))
        .alias("kpi_code")
    )
    silver.overwrite(KPI_VALUES, rows)  # XX9 has no definition: the relationships check must say so
    # A definition with no code and an unknown polarity: the not_null and accepted_values checks must fail.
    bad_definition = pl.DataFrame(
        {"kpi_code": [None], "kpi_name": ["?"], "polarity": ["sideways"], "primary_theme": ["x"]},
        schema=DEFINITIONS.schema,
    )
    silver.overwrite(KPI_DEFINITIONS, pl.concat([DEFINITIONS, bad_definition]))
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/dim_kpi.sql": DIM_KPI,
            "gold/kpi_mart/dim_kpi.yml": DIM_KPI_YML,
            "gold/kpi_mart/fct_kpi_value.sql": FCT_KPI_VALUE.replace("inner join", "left join"),
            "gold/kpi_mart/fct_kpi_value.yml": FCT_KPI_VALUE_YML,
            "silver/kpi_catalogue/kpi_count.sql": "-- How many KPIs.\nselect count(*) as kpis from ref('dim_kpi')\n",
            "silver/kpi_catalogue/kpi_count.yml": "columns:\n  - name: kpis\n    tests: [unique, not_null]\n",
        },
    )
    assets = sql_model_assets(load_sql_models(tree))
    graph = dg.Definitions(assets=assets, resources={"lake": silver}).resolve_asset_graph()
    dim_key, fact_key = (
        dg.AssetKey(["gold", "kpi_mart", "dim_kpi"]),
        dg.AssetKey(["gold", "kpi_mart", "fct_kpi_value"]),
    )
    fact = graph.get(fact_key)
    assert fact.parent_keys == {dim_key, dg.AssetKey(KPI_VALUES.key_path)}
    assert fact.group_name == "gold_kpi_mart"
    assert fact.description == "Each KPI value with its RAG status."
    assert graph.get(dg.AssetKey(["silver", "kpi_catalogue", "kpi_count"])).description == "How many KPIs."
    dim = graph.get(dim_key)
    assert dim.kinds == {"sql", "polars", "delta"}
    assert "kpi_mart" in dim.tags
    columns = {c.name: c.description for c in dim.metadata["dagster/column_schema"].columns}
    assert columns == {"kpi_code": "SPAR.net indicator id", "polarity": "Which way is good"}
    assert {key.name for key in graph.asset_check_keys} == {
        "kpi_code_not_null",
        "kpi_code_unique",
        "polarity_accepted_values",
        "kpi_code_relationships",
        "rag_status_accepted_values",
        "kpis_unique",
        "kpis_not_null",
    }

    result = dg.materialize(assets, resources={"lake": silver}, raise_on_error=False)
    # Gold tests block: dim_kpi fails its checks, so the fact built on it is not published in this run.
    assert not result.success
    assert not result.asset_materializations_for_node("gold__kpi_mart__fct_kpi_value")
    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    # Built on their own (a deliberate re-run), the blocked assets' own checks are evaluated.
    fact_only = dg.materialize(
        assets,
        resources={"lake": silver},
        selection=[dg.AssetKey(["gold", "kpi_mart", "fct_kpi_value"])],
        raise_on_error=False,
    )
    count_only = dg.materialize(
        assets, resources={"lake": silver}, selection=[dg.AssetKey(["silver", "kpi_catalogue", "kpi_count"])]
    )
    for run in (fact_only, count_only):
        checks |= {(e.asset_key.path[-1], e.check_name): e for e in run.get_asset_check_evaluations()}
    result = fact_only
    not_null = checks[("dim_kpi", "kpi_code_not_null")]
    assert not not_null.passed and not_null.metadata["failing_rows"].value == 1
    assert not_null.severity == dg.AssetCheckSeverity.ERROR  # gold
    polarity = checks[("dim_kpi", "polarity_accepted_values")]
    assert not polarity.passed and polarity.metadata["sample_failing_rows"].value[0]["polarity"] == "sideways"
    related = checks[("fct_kpi_value", "kpi_code_relationships")]
    assert not related.passed and related.metadata["failing_rows"].value == 2
    assert {row["kpi_code"] for row in related.metadata["sample_failing_rows"].value} == {"XX9"}
    assert "period_key" in related.metadata["sample_failing_rows"].value[0]  # the failing rows' keys
    assert checks[("dim_kpi", "kpi_code_unique")].passed
    assert checks[("fct_kpi_value", "rag_status_accepted_values")].passed
    assert checks[("kpi_count", "kpis_not_null")].passed
    assert checks[("kpi_count", "kpis_not_null")].severity == dg.AssetCheckSeverity.WARN  # silver

    materialised = result.asset_materializations_for_node("gold__kpi_mart__fct_kpi_value")[0].metadata
    assert materialised["dagster/row_count"].value == VALUES.height
    assert materialised["delta_version"].value == 0
    schema = {c.name: (c.type, c.description) for c in materialised["dagster/column_schema"].schema.columns}
    assert schema["kpi_code"][0] == "String" and schema["rag_status"][0] == "String"


INCREMENTAL_SQL = """
    -- The latest reported value per KPI and period, merged in: only rows that changed are rewritten.
    with kpi_values as (
        select * from source('silver', 'spar_net', 'kpi_values')
    ),
    final as (
        select kpi_code, period_key, actual, target from kpi_values
    )
    select * from final
"""
LOOKBACK_SQL = """
    -- Only the newest period and later are recomputed; `this` is the table before this run.
    with kpi_values as (
        select * from source('silver', 'spar_net', 'kpi_values')
    ),
    final as (
        select kpi_code, period_start, actual from kpi_values
        where period_start >= (
            select coalesce(max(period_start), date '1900-01-01') from {{ this }}
        )
    )
    select * from final
"""
LOOKBACK_YML = """
    materialized: incremental
    unique_key: [kpi_code, period_start]
    columns:
      - {name: kpi_code, data_type: varchar}
      - {name: period_start, data_type: date}
      - {name: actual, data_type: double}
"""


def test_incremental_models_merge_changed_rows_only(tmp_path: Path, silver: DeltaLake):
    tree = write_tree(
        tmp_path,
        {
            "gold/kpi_mart/fct_values.sql": INCREMENTAL_SQL,
            "gold/kpi_mart/fct_values.yml": "materialized: incremental\nunique_key: [kpi_code, period_key]\n",
            "gold/kpi_mart/fct_lookback.sql": LOOKBACK_SQL,
            "gold/kpi_mart/fct_lookback.yml": LOOKBACK_YML,
        },
    )
    models = load_sql_models(tree)
    assert {m.name: m.reads_this for m in models} == {"fct_values": False, "fct_lookback": True}
    assets = sql_model_assets(models)

    def run() -> dict[str, dict]:
        result = dg.materialize(assets, resources={"lake": silver})
        return {
            e.asset_key.path[-1]: {
                k: v.value for k, v in e.materialization.metadata.items() if k.startswith("delta_")
            }
            for e in result.get_asset_materialization_events()
        }

    first = run()
    assert first["fct_values"]["delta_version"] == 0
    assert (
        silver.state(TableRef("gold", "kpi_mart", "fct_lookback")).row_count == VALUES.height
    )  # `this` was empty

    unchanged = run()
    for name in ("fct_values", "fct_lookback"):
        assert unchanged[name]["delta_num_target_rows_updated"] == 0
        assert unchanged[name]["delta_num_target_rows_inserted"] == 0
        assert unchanged[name]["delta_version"] == 0  # nothing changed, so no new Delta version

    changed = VALUES.with_columns(
        pl.when(pl.col("kpi_code") == "BP2")
        .then(pl.col("actual") + 1)
        .otherwise(pl.col("actual"))
        .alias("actual")
    )
    new_quarter = VALUES.head(1).with_columns(
        period_key=pl.lit("FY2024-25-Q4"), period_start=dt.date(2025, 1, 1)
    )
    silver.overwrite(KPI_VALUES, pl.concat([changed, new_quarter]))
    after = run()
    assert after["fct_values"]["delta_num_target_rows_updated"] == 3  # BP2's three quarters
    assert after["fct_values"]["delta_num_target_rows_inserted"] == 1
    assert after["fct_values"]["delta_version"] == 1
    # The lookback model only recomputes from its newest period (2024-10-01): BP2's Q3 changed, Q1-Q2 did not.
    assert after["fct_lookback"]["delta_num_target_rows_updated"] == 1
    assert after["fct_lookback"]["delta_num_target_rows_inserted"] == 1
    table = silver.scan(TableRef("gold", "kpi_mart", "fct_values")).collect()
    assert table.height == VALUES.height + 1
    assert table.filter(pl.col("kpi_code") == "BP2")["actual"].sort().to_list() == [9.0, 10.5, 13.0]


def _python_input(ref: TableRef, frame: pl.DataFrame) -> dg.AssetsDefinition:
    """A stand-in for a Python silver asset: writes its table."""

    @dg.asset(key=ref.key_path, group_name=ref.group_name)
    def _input(lake: DeltaLake) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=lake.overwrite(ref, frame).to_metadata())

    return _input


def test_only_models_downstream_of_a_changed_input_are_rebuilt(tmp_path: Path, lake: DeltaLake):
    tree = write_tree(
        tmp_path,
        {
            "silver/kpi_catalogue/from_values.sql": "select kpi_code, actual from silver.spar_net.kpi_values",
            "silver/kpi_catalogue/from_definitions.sql": "select kpi_code, polarity from silver.spar_net.kpi_definitions",
            "gold/kpi_mart/definitions_only.sql": "select * from ref('from_definitions')",
            "gold/kpi_mart/both.sql": """
                select v.kpi_code, v.actual, d.polarity
                from ref('from_values') as v
                left join ref('from_definitions') as d on v.kpi_code = d.kpi_code
            """,
        },
    )
    assets = [
        _python_input(KPI_VALUES, VALUES),
        _python_input(KPI_DEFINITIONS, DEFINITIONS),
        *sql_model_assets(load_sql_models(tree)),
    ]
    dg.materialize(assets, resources={"lake": lake})
    names = ("from_values", "from_definitions", "definitions_only", "both")
    refs = {
        name: TableRef(
            "silver" if name.startswith("from") else "gold",
            "kpi_catalogue" if name.startswith("from") else "kpi_mart",
            name,
        )
        for name in names
    }
    before = {name: lake.state(ref).version for name, ref in refs.items()}

    selection = dg.AssetSelection.assets(dg.AssetKey(KPI_VALUES.key_path)).downstream()
    result = dg.materialize(assets, resources={"lake": lake}, selection=selection)
    rebuilt = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert rebuilt == {"kpi_values", "from_values", "both"}
    after = {name: lake.state(ref).version for name, ref in refs.items()}
    assert {name for name in names if after[name] != before[name]} == {"from_values", "both"}


# ---- the real tree and load cost -------------------------------------------------------------------------


def test_the_project_tree_loads():
    """``dbt_like_sql/`` loads against the real bronze and silver assets (it may hold no models yet)."""
    assets = sql_model_assets_from_tree()
    for assets_def in assets:
        (key,) = assets_def.keys
        ref = TableRef.from_key_path(key.path)
        assert ref.layer in ("silver", "gold")
        assert (PROJECT_ROOT / "dbt_like_sql" / ref.layer / ref.source / f"{ref.table}.sql").exists()


def test_models_join_the_python_assets_graph(tmp_path: Path):
    """Models read the real silver assets' tables; a table no asset writes fails the load."""
    tree = write_tree(
        tmp_path, {"gold/kpi_mart/dim_kpi.sql": DIM_KPI, "gold/kpi_mart/dim_kpi.yml": DIM_KPI_YML}
    )
    models = sql_model_assets_from_tree(tree)
    defs = dg.Definitions(assets=[*bronze_assets, *silver_assets, *models], resources=get_resources())
    graph = defs.resolve_asset_graph()
    dim_kpi = graph.get(dg.AssetKey(["gold", "kpi_mart", "dim_kpi"]))
    assert dim_kpi.parent_keys == {dg.AssetKey(KPI_DEFINITIONS.key_path)}
    assert dg.AssetKey(KPI_DEFINITIONS.key_path) in graph.executable_asset_keys

    write_tree(tmp_path, {"gold/kpi_mart/typo.sql": "select * from silver.spar_net.kpi_definition"})
    with pytest.raises(
        SqlModelError, match=r"typo.sql, line 1.*silver/spar_net/kpi_definition, which no model"
    ):
        sql_model_assets_from_tree(tree)


def test_loading_thirty_models_is_cheap_and_does_not_import_duckdb(tmp_path: Path):
    files = {"gold/kpi_mart/dim_kpi.sql": DIM_KPI, "gold/kpi_mart/dim_kpi.yml": DIM_KPI_YML}
    for i in range(29):
        upstream = "ref('dim_kpi')" if i == 0 else f"ref('model_{i - 1:02d}')"
        files[f"gold/kpi_mart/model_{i:02d}.sql"] = MART_SQL.replace(
            "silver.spar_net.kpi_definitions", upstream
        )
        files[f"gold/kpi_mart/model_{i:02d}.yml"] = FCT_KPI_VALUE_YML
    tree = write_tree(tmp_path, files)
    script = (
        "import sys, time; from assets.gold.sql_models import sql_model_assets; "
        "from kpi_lake.sql_models import load_sql_models; t = time.perf_counter(); "
        "assets = sql_model_assets(load_sql_models(sys.argv[1])); "
        "print(len(assets), time.perf_counter() - t, 'duckdb' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tree)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("KPI_LAKE_")},
    )
    count, seconds, duckdb_imported = done.stdout.split()
    assert int(count) == 30
    assert duckdb_imported == "False"
    assert float(seconds) < 3, f"loading 30 models took {float(seconds):.2f}s"
    print(f"30 models loaded and turned into assets in {float(seconds):.2f}s")


def test_duckdb_engine_filters_on_text_columns(tmp_path: Path, silver: DeltaLake):
    """A string filter must work on the lake's text columns (Arrow's string_view pitfall)."""
    sql = "select kpi_code, actual from source('silver', 'spar_net', 'kpi_values') where kpi_code = 'BP1'\n"
    (model,) = load_sql_models(write_tree(tmp_path, {"gold/kpi_mart/one_kpi.sql": sql}))
    counts = {}
    for engine in ("polars", "duckdb"):
        build_model(model, silver, engine=engine)
        table = silver.scan(model.ref).collect()
        assert set(table["kpi_code"]) == {"BP1"}
        counts[engine] = table.height
    assert counts["polars"] == counts["duckdb"] == VALUES.filter(pl.col("kpi_code") == "BP1").height
