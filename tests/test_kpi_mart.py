"""The single-view KPI mart, built by one real nightly run from the generated landing zone and checked against the
generator's ground truth (``SampleStory``): the contract's tables, re-derivable statuses, one owner per theme and
one primary theme per KPI, every KPI family in the single view, reconciliation with SPAR.net, comparators,
the theme scorecard, and the mart read as BI tools read it (DuckDB over Arrow, pyarrow, polars)."""

from __future__ import annotations

import math

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

from assets.gold.kpi_mart import FACT
from kpi_lake.rules import FACT_COLUMNS, FACT_KEY, direction_of_travel, rag_status
from kpi_lake.sample_data import SampleStory, generate_landing
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake
from tests.conftest import PROJECT_ROOT
from tests.pipeline_helpers import local_resources, run_nightly

MART = "kpi_mart"
CONTRACT = {
    "dim_kpi": [
        "kpi_code",
        "kpi_name",
        "definition",
        "unit",
        "polarity",
        "frequency",
        "directorate",
        "service",
        "responsible_officer",
        "primary_theme_code",
        "is_cross_cutting",
        "rag_tolerance_pct",
        "source_system",
    ],
    "dim_theme": ["theme_code", "theme_name", "owning_director"],
    "bridge_kpi_theme": ["kpi_code", "theme_code", "is_primary"],
    "dim_period": [
        "period_key",
        "period_type",
        "period_start",
        "period_end",
        "financial_year",
        "quarter",
        "label",
    ],
    "dim_geography": [
        "geography_code",
        "geography_name",
        "geography_level",
        "parent_code",
        "is_own_council",
        "is_comparator",
    ],
    "fact_kpi_value": list(FACT_COLUMNS[:23]),
    "kpi_single_view": ["KPI_Code", "Period_Key", "Actual", "Target", "RAG_Status", "Direction_Of_Travel"],
    "theme_scorecard": [
        "theme_code",
        "owning_director",
        "period_key",
        "green_count",
        "amber_count",
        "red_count",
        "no_data_count",
        "improving_count",
        "worsening_count",
    ],
}
FAMILIES = ("spar_net", "business_systems", "emissions", "education", "qol_survey")


@pytest.fixture(scope="module")
def mart(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("kpi_mart")
    story = generate_landing(root / "landing", scale=0.3)
    resources = local_resources(root / "lake", root / "landing")
    result = run_nightly(resources)
    assert result.success
    return story, resources["lake"], result


def _gold(lake: DeltaLake, table: str) -> pl.DataFrame:
    return lake.scan(TableRef("gold", MART, table)).collect()


def _own(story: SampleStory, frame: pl.DataFrame, column: str = "geography_code") -> pl.DataFrame:
    return frame.filter(pl.col(column) == story.council_code)


def period_key(story: SampleStory, kpi_code: str, label: str) -> str:
    """The mart's period key of a story period label ('2024/25 Q2', '2024/25', '2023')."""
    if " Q" in label:
        year, quarter = label.split(" Q")
        return f"FY{year.replace('/', '-')}-Q{quarter}"
    if "/" in label:
        prefix = "AY" if story.computed_kpis.get(kpi_code) == "education" else "FY"
        return f"{prefix}{label.replace('/', '-')}"
    return f"CY{label}"


# ---- the whole mart ----------------------------------------------------------------------------------------


def test_the_whole_mart_is_built_with_the_contract_names_and_every_check_passes(mart):
    _, lake, result = mart
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    for table, columns in CONTRACT.items():
        assert ("gold", MART, table) in materialised, table
        frame = _gold(lake, table)
        assert frame.height > 0, table
        missing = [c for c in columns if c not in frame.columns]
        assert not missing, f"{table} lacks {missing}"
    fact = _gold(lake, "fact_kpi_value")
    assert fact.columns[:23] == CONTRACT["fact_kpi_value"]
    for model in (PROJECT_ROOT / "dbt_like_sql").glob("*/*/*.sql"):
        layer, source = model.parent.parent.name, model.parent.name
        assert (layer, source, model.stem) in materialised, model.name
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed]
    assert not failed, failed
    fact_checks = {e.check_name for e in evaluations if e.asset_key == dg.AssetKey(FACT.key_path)}
    assert {"fact_key_unique", "rag_status_accepted_values", "kpi_code_relationships"} <= fact_checks


def test_fact_key_is_unique(mart):
    _, lake, _ = mart
    fact = _gold(lake, "fact_kpi_value")
    assert fact.select(FACT_KEY).is_duplicated().sum() == 0
    assert fact.select(pl.col(FACT_KEY).null_count()).sum_horizontal().item() == 0


def test_every_status_rederives_from_its_own_row_and_dim_kpi(mart):
    _, lake, _ = mart
    fact = _gold(lake, "fact_kpi_value").join(
        _gold(lake, "dim_kpi").select("kpi_code", "polarity", "rag_tolerance_pct"), on="kpi_code", how="left"
    )
    derived = fact.with_columns(
        rag_status("actual", "target", "polarity", "rag_tolerance_pct").alias("derived_rag"),
        direction_of_travel(
            "actual",
            pl.coalesce("same_period_last_year_actual", "previous_period_actual"),
            "polarity",
            "lower_ci",
            "upper_ci",
            "comparison_lower_ci",
            "comparison_upper_ci",
        ).alias("derived_direction"),
    )
    wrong = derived.filter(
        (pl.col("rag_status") != pl.col("derived_rag"))
        | (pl.col("direction_of_travel") != pl.col("derived_direction"))
    )
    assert wrong.height == 0, wrong.head()
    # Every status and trend occurs, so the check above checks something.
    assert set(fact["rag_status"]) == {"green", "amber", "red", "no_target", "no_data"}
    assert set(fact["direction_of_travel"]) == {"improving", "stable", "worsening", "not_comparable"}
    # Survey values with intervals on both sides were judged on the intervals.
    surveyed = fact.filter(pl.col("lower_ci").is_not_null() & pl.col("comparison_lower_ci").is_not_null())
    assert surveyed.height > 100


def test_one_owner_per_theme_and_one_primary_theme_per_kpi(mart):
    _, lake, _ = mart
    themes = _gold(lake, "dim_theme")
    assert themes.height == 7 and themes["theme_code"].is_unique().all()
    assert themes["owning_director"].null_count() == 0
    bridge = _gold(lake, "bridge_kpi_theme")
    kpis = _gold(lake, "dim_kpi")
    primaries = bridge.filter("is_primary").group_by("kpi_code").agg(pl.col("theme_code"))
    assert primaries.height == kpis.height
    assert primaries["theme_code"].list.len().unique().to_list() == [1]
    joined = kpis.join(primaries.explode("theme_code"), on="kpi_code")
    assert (joined["primary_theme_code"] == joined["theme_code"]).all()
    cross_cutting = bridge.group_by("kpi_code").len().filter(pl.col("len") > 1)["kpi_code"]
    assert set(kpis.filter("is_cross_cutting")["kpi_code"]) == set(cross_cutting)
    assert set(bridge["theme_code"]) <= set(themes["theme_code"])


def test_single_view_holds_the_own_councils_kpis_from_all_five_families(mart):
    story, lake, _ = mart
    view = _gold(lake, "kpi_single_view")
    assert set(view["Council"]) == {"Kestrelford"}
    kpis = _gold(lake, "dim_kpi")
    family_of = dict(kpis.select("kpi_code", "source_system").iter_rows())
    with_values = set(view.filter(pl.col("Actual").is_not_null())["KPI_Code"])
    for code in story.kpi_codes:
        expected = story.computed_kpis.get(code, "spar_net")
        assert family_of[code] == expected, code
        assert code in with_values, f"{code} ({expected}) has no value in kpi_single_view"
    families = {family_of[code] for code in with_values}
    assert set(FAMILIES) <= families
    # The KPI only the lake's catalogue declares is there too, with its definition.
    assert family_of["DCS202"] == "education" and "DCS202" in with_values
    assert view.select("KPI_Code", "Period_Key").is_duplicated().sum() == 0
    latest = view.filter("Is_Latest_Period").group_by("KPI_Code", "Period_Type").len()
    assert latest["len"].unique().to_list() == [1]


def test_deliberate_mismatches_are_not_reconciled_and_the_rest_are(mart):
    story, lake, _ = mart
    fact = _own(story, _gold(lake, "fact_kpi_value"))
    mismatched = set()
    for mismatch in story.mismatches:
        key = period_key(story, mismatch.kpi_code, mismatch.period)
        mismatched.add((mismatch.kpi_code, key))
        row = fact.filter(kpi_code=mismatch.kpi_code, period_key=key).row(0, named=True)
        assert row["is_reconciled"] is False, mismatch
        assert row["actual"] == mismatch.true_value, "the computed figure is the one used"
        note = row["reconciliation_note"]
        assert f"reports {mismatch.reported_value}" in note and f"computes {mismatch.true_value}" in note
        assert f"SPAR.net reported {mismatch.reported_value}" in row["source_lineage"]
    assert len(mismatched) == len(story.mismatches) == 5
    reconciled = fact.filter(pl.col("is_reconciled").is_not_null())
    assert set(reconciled.filter(~pl.col("is_reconciled")).select("kpi_code", "period_key").iter_rows()) == (
        mismatched
    )
    for code, label in story.computed_values:
        key = period_key(story, code, label)
        if (code, key) not in mismatched:
            row = fact.filter(kpi_code=code, period_key=key).row(0, named=True)
            assert row["is_reconciled"] is True and row["reconciliation_note"] is None, (code, key)


def test_computed_actuals_equal_the_ground_truth(mart):
    story, lake, _ = mart
    fact = _own(story, _gold(lake, "fact_kpi_value"))
    actuals = {
        (k, p): (a, s)
        for k, p, a, s in fact.select("kpi_code", "period_key", "actual", "source_system").iter_rows()
    }
    assert len(story.computed_values) > 200
    for (code, label), truth in story.computed_values.items():
        actual, source = actuals[(code, period_key(story, code, label))]
        assert actual is not None and math.isclose(actual, truth, abs_tol=1e-9), (code, label, actual, truth)
        assert source == story.computed_kpis[code], (code, label, source)


def test_comparator_rank_one_is_best_by_polarity(mart):
    _, lake, _ = mart
    geographies = _gold(lake, "dim_geography").filter(pl.col("is_own_council") | pl.col("is_comparator"))
    assert geographies.height == 16
    fact = _gold(lake, "fact_kpi_value").join(geographies.select("geography_code"), on="geography_code")
    fact = fact.join(_gold(lake, "dim_kpi").select("kpi_code", "polarity"), on="kpi_code")
    compared = fact.filter(pl.col("comparator_count").is_not_null())
    groups = compared.group_by("kpi_code", "period_key").agg(
        pl.col("actual").drop_nulls().len().alias("councils"),
        pl.col("actual").median().alias("median"),
        pl.col("actual").max().alias("highest"),
        pl.col("actual").min().alias("lowest"),
        pl.col("actual").filter(pl.col("comparator_rank") == 1).first().alias("best"),
        pl.col("comparator_count").first(),
        pl.col("comparator_median").first(),
        pl.col("polarity").first(),
    )
    assert groups.height > 50  # emissions, education and the benchmarked KPIs, every period
    assert (groups["councils"] == groups["comparator_count"]).all()
    assert ((groups["median"] - groups["comparator_median"]).abs() < 1e-9).all()
    higher = groups.filter(polarity="higher_is_better")
    lower = groups.filter(polarity="lower_is_better")
    assert higher.height and lower.height
    assert (higher["best"] == higher["highest"]).all()
    assert (lower["best"] == lower["lowest"]).all()
    assert compared["comparator_quartile"].drop_nulls().unique().sort().to_list() == [1, 2, 3, 4]
    # What good looks like agrees with the ranking: quartile 1 is exactly the councils at least as good as
    # top_quartile_value, and the best comparator is the best council other than the own one.
    sign = pl.when(pl.col("polarity") == "higher_is_better").then(1.0).otherwise(-1.0)
    ranked = compared.filter(pl.col("top_quartile_value").is_not_null() & pl.col("actual").is_not_null())
    assert ranked.height > 0
    at_least_as_good = (pl.col("actual") - pl.col("top_quartile_value")) * sign >= -1e-9
    assert ranked.filter(at_least_as_good)["comparator_quartile"].unique().to_list() == [1]
    assert 1 not in ranked.filter(~at_least_as_good)["comparator_quartile"].unique().to_list()
    assert (
        ranked["gap_to_top_quartile"] - (ranked["actual"] - ranked["top_quartile_value"])
    ).abs().max() < 1e-9


def test_theme_scorecard_counts_equal_counts_from_the_fact(mart):
    story, lake, _ = mart
    fact = _own(story, _gold(lake, "fact_kpi_value"))
    bridge = _gold(lake, "bridge_kpi_theme")
    themes = _gold(lake, "dim_theme")
    expected = (
        fact.join(bridge, on="kpi_code")
        .group_by("theme_code", "period_key")
        .agg(
            pl.len().alias("kpi_count"),
            *(
                (pl.col("rag_status") == status).sum().alias(f"{name}_count")
                for status, name in (
                    ("green", "green"),
                    ("amber", "amber"),
                    ("red", "red"),
                    ("no_data", "no_data"),
                )
            ),
            (pl.col("direction_of_travel") == "improving").sum().alias("improving_count"),
            (pl.col("direction_of_travel") == "worsening").sum().alias("worsening_count"),
        )
        .join(themes.select("theme_code", "owning_director"), on="theme_code")
    )
    scorecard = _gold(lake, "theme_scorecard").select(expected.columns)
    order = ["theme_code", "period_key"]
    assert scorecard.sort(order).equals(expected.sort(order).cast(scorecard.schema))
    assert (
        scorecard.group_by("theme_code")
        .agg(pl.col("owning_director").n_unique())["owning_director"]
        .to_list()
        == [1] * themes.height
    )


def test_bi_readers_see_the_same_mart(mart):
    """Power BI and Fabric read the Delta tables; here DuckDB (over Arrow), pyarrow and polars do."""
    import duckdb

    _, lake, _ = mart
    connection = duckdb.connect()
    for table in CONTRACT:
        uri = lake.uri(TableRef("gold", MART, table))
        arrow_table = DeltaTable(uri).to_pyarrow_table()
        # An Arrow table, not to_pyarrow_dataset(): pyarrow cannot push DuckDB's string filters down to the
        # string_view columns the lake's Parquet files hold (docs/KPI_MART.md, "Reading the mart").
        connection.register(table, arrow_table)
        through_duckdb = connection.sql(f"select count(*) from {table}").fetchall()[0][0]
        through_polars = pl.read_delta(uri).height
        assert arrow_table.num_rows == through_duckdb == through_polars > 0, table
    red = connection.sql(
        "select KPI_Code, Period, Actual, Target from kpi_single_view "
        "where RAG_Status = 'Red' and Is_Latest_Period"
    ).pl()
    assert red.height > 0 and red["Actual"].null_count() == 0


def test_survey_values_carry_intervals_and_wards(mart):
    story, lake, _ = mart
    fact = _gold(lake, "fact_kpi_value").filter(source_system="qol_survey")
    wards = _gold(lake, "dim_geography").filter(geography_level="ward", parent_code=story.council_code)
    assert set(fact["geography_code"]) == {story.council_code, *wards["geography_code"]}
    valued = fact.filter(pl.col("actual").is_not_null())
    assert valued["lower_ci"].null_count() == 0 and valued["base"].null_count() == 0
    assert ((valued["lower_ci"] <= valued["actual"]) & (valued["actual"] <= valued["upper_ci"])).all()
