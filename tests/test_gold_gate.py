"""The gold gate, by real materialisation of the sample: a few bad silver rows are withheld from the fact (with the
expectation and the reason) while the rest of the mart is published; a net carbon sink is published; a duplicate
key keeps the last good version; a clean rerun publishes everything again. Also the translator against GX."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.gold.kpi_mart import FACT, FACT_WITHHELD, OUTCOME_TAG, VALUES, WITHHELD_OUTCOME, fact_suite
from assets.quality import quality_checks
from kpi_lake.quality import validate_table
from kpi_lake.quality.gate import split_rows
from kpi_lake.rules import FACT_KEY
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.conftest import PROJECT_ROOT
from tests.pipeline_helpers import local_resources

DIM_KPI = TableRef("gold", "kpi_mart", "dim_kpi")
DIM_GEOGRAPHY = TableRef("gold", "kpi_mart", "dim_geography")
SINGLE_VIEW = TableRef("gold", "kpi_mart", "kpi_single_view")
SCORECARD = TableRef("gold", "kpi_mart", "theme_scorecard")
KEY = list(FACT_KEY)


def _defs(lake_root: Path, landing_root: Path) -> dg.Definitions:
    from pipelines import definitions

    return dg.Definitions(
        assets=definitions.defs.assets,
        asset_checks=quality_checks(definitions.defs.assets),
        jobs=definitions.defs.jobs,
        resources=local_resources(lake_root, landing_root),
    )


def _run_gold(lake_root: Path, landing_root: Path, instance: dg.DagsterInstance | None = None):
    """The fact and everything after it, with their checks, as the nightly job runs them."""
    job = _defs(lake_root, landing_root).resolve_job_def("nightly_sync")
    graph = job.asset_layer.asset_graph
    selected = dg.AssetSelection.assets(FACT.key_path, FACT_WITHHELD.key_path).downstream().resolve(graph)
    return job.get_subset(asset_selection=set(selected)).execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


@pytest.fixture(scope="module")
def built(sample_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake built by the sample nightly run, with every check: the good version every test starts from."""
    root = tmp_path_factory.mktemp("gate") / "lake"
    result = (
        _defs(root, sample_landing)
        .resolve_job_def("nightly_sync")
        .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert result.success
    return root


def _copy(built: Path, tmp_path: Path) -> DeltaLake:
    shutil.copytree(built, tmp_path / "lake")
    return DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())


def _own_rows(lake: DeltaLake, unit: str) -> pl.DataFrame:
    """The own council's values of KPIs with ``unit``, earliest period first (later rows compare with them)."""
    units = lake.scan(DIM_KPI).select("kpi_code", "unit")
    own = lake.scan(DIM_GEOGRAPHY).filter(pl.col("is_own_council")).select("geography_code")
    return (
        lake.scan(VALUES)
        .join(units, on="kpi_code")
        .join(own, on="geography_code", how="semi")
        .filter((pl.col("unit") == unit) & pl.col("actual").is_not_null())
        .sort("kpi_code", "period_key")
        .collect()
    )


def _set(values: pl.DataFrame, row: dict, **changes: float) -> pl.DataFrame:
    hit = pl.all_horizontal([pl.col(c) == row[c] for c in KEY])
    return values.with_columns(
        [pl.when(hit).then(pl.lit(v, pl.Float64)).otherwise(pl.col(c)).alias(c) for c, v in changes.items()]
    )


@pytest.fixture(scope="module")
def corrupted(built: Path, sample_landing: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three silver values made wrong (a count negative, a percentage 140) and one net carbon sink (negative net
    emissions, which is true), then the fact and what follows rebuilt."""
    tmp = tmp_path_factory.mktemp("corrupted")
    lake = _copy(built, tmp)
    original = lake.scan(VALUES).collect()
    count = _own_rows(lake, "Number").row(0, named=True)
    percent = _own_rows(lake, "%").row(0, named=True)
    sink = _own_rows(lake, "kt CO2e").row(0, named=True)
    values = _set(original, count, actual=-5.0)
    values = _set(values, percent, actual=140.0)
    values = _set(values, sink, actual=-42.0)
    lake.overwrite(VALUES, values)
    instance = dg.DagsterInstance.ephemeral()
    result = _run_gold(tmp / "lake", sample_landing, instance)
    return lake, result, instance, original, {"count": count, "percent": percent, "sink": sink}


def test_bad_rows_are_withheld_and_the_rest_of_the_mart_is_published(corrupted, built: Path):
    lake, result, instance, _, rows = corrupted
    count, percent = rows["count"], rows["percent"]
    withheld = lake.scan(FACT_WITHHELD).collect()
    by_kpi = {r["kpi_code"]: r for r in withheld.iter_rows(named=True)}
    assert set(by_kpi) == {count["kpi_code"], percent["kpi_code"]}
    assert withheld.height == 2 and withheld["run_id"].to_list() == [result.run_id] * 2
    assert by_kpi[count["kpi_code"]]["expectation"] == "gx_actual_not_negative_unless_unit_is_signed"
    assert by_kpi[count["kpi_code"]]["observed_value"] == "-5.0"
    assert by_kpi[percent["kpi_code"]]["expectation"] == "gx_actual_percentage_0_100"
    assert "between 0 and 100, but actual is 140.0" in by_kpi[percent["kpi_code"]]["reason"]
    assert by_kpi[percent["kpi_code"]]["period_key"] == percent["period_key"]

    # The rest is published: the good version, less the two rows (and rows derived from them, rebuilt).
    before = DeltaLake(root=str(built), azure=AzureStorage()).scan(FACT).collect()
    fact = lake.scan(FACT).collect()
    assert fact.height == before.height - 2
    bad = pl.DataFrame([{c: r[c] for c in KEY} for r in (count, percent)])
    assert fact.join(bad, on=KEY, how="semi").is_empty()
    # No bad value reaches a reader through another row either (last year's, previous period's, comparators).
    derived = ("actual", "previous_period_actual", "same_period_last_year_actual", "comparator_median")
    assert not fact.filter(pl.any_horizontal(pl.col(derived).is_in([-5.0, 140.0]))).height

    # kpi_single_view and theme_scorecard were built, from the published rows only.
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert {
        tuple(SINGLE_VIEW.key_path),
        tuple(SCORECARD.key_path),
        tuple(FACT_WITHHELD.key_path),
    } <= materialised
    view = lake.scan(SINGLE_VIEW).collect()
    assert view.height > 0
    for row in (count, percent):
        assert view.filter(
            (pl.col("KPI_Code") == row["kpi_code"]) & (pl.col("Period_Key") == row["period_key"])
        ).is_empty()
    assert not view.filter(pl.col("Actual").is_in([-5.0, 140.0])).height
    scorecard = lake.scan(SCORECARD).collect()
    assert (
        scorecard["kpi_count"].sum()
        < DeltaLake(root=str(built), azure=AzureStorage()).scan(SCORECARD).collect()["kpi_count"].sum()
    )

    # What a data engineer sees: the run failed, tagged; the check names the KPIs; the materialisation counts.
    assert not result.success
    assert instance.get_run_by_id(result.run_id).tags[OUTCOME_TAG] == WITHHELD_OUTCOME
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "no_rows_withheld")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["kpis_withheld"].value == sorted([count["kpi_code"], percent["kpi_code"]])
    assert check.metadata["rows_withheld"].value == 2
    fact_event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path == FACT.key_path
    )
    assert fact_event.materialization.metadata["rows_withheld"].value == 2
    # The GX checks of the published fact pass: nothing they block was published.
    blocking = [
        e.check_name
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.check_name != "no_rows_withheld"
    ]
    assert not blocking, blocking


def test_the_failure_alert_names_the_kpis_withheld(corrupted, tmp_path: Path):
    from pipelines.sensors import ALERTS, AlertWebhook, alert_on_run_failure

    _, result, instance, _, rows = corrupted
    alerts_lake = DeltaLake(root=str(tmp_path / "alerts"), azure=AzureStorage())
    with dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"lake": alerts_lake, "alert_webhook": AlertWebhook()},
    ).for_run_failure() as context:
        alert_on_run_failure(context)
    recorded = alerts_lake.scan(ALERTS).collect().row(0, named=True)
    for row in (rows["count"], rows["percent"]):
        assert row["kpi_code"] in recorded["failed_steps"]
    assert FACT_WITHHELD.path in recorded["failed_steps"]


def test_a_net_carbon_sink_is_published_not_withheld(corrupted):
    lake, _, _, _, rows = corrupted
    sink = rows["sink"]
    fact = lake.scan(FACT).collect()
    published = fact.filter(pl.all_horizontal([pl.col(c) == sink[c] for c in KEY]))
    assert published["actual"].to_list() == [-42.0]
    assert sink["kpi_code"] not in lake.scan(FACT_WITHHELD).collect()["kpi_code"].to_list()


def test_sync_exits_non_zero_naming_what_was_withheld(corrupted, sample_landing: Path):
    lake, _, _, _, rows = corrupted
    before = lake.scan(FACT_WITHHELD).drop("run_id").collect()
    env = os.environ | {"KPI_LAKE_ROOT": lake.root, "KPI_LAKE_LANDING": str(sample_landing)}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "kpi_lake.cli", "sync", "--select", f'key:"{FACT.path}"+'],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "WITHHELD from gold/kpi_mart/fact_kpi_value: 2 row(s)" in done.stderr
    for row in (rows["count"], rows["percent"]):
        assert row["kpi_code"] in done.stderr
    assert "gx_actual_percentage_0_100" in done.stderr and FACT_WITHHELD.path in done.stderr
    # Nothing changed since the run before: the same rows are withheld (idempotent).
    after = lake.scan(FACT_WITHHELD).drop("run_id").collect()
    assert after.sort(KEY).equals(before.sort(KEY))


def test_a_clean_rerun_after_the_fix_publishes_everything(corrupted, built: Path, sample_landing: Path):
    lake, _, _, original, _ = corrupted
    lake.overwrite(VALUES, original)
    result = _run_gold(Path(lake.root), sample_landing)
    assert result.success
    assert lake.scan(FACT_WITHHELD).collect().is_empty()
    good = DeltaLake(root=str(built), azure=AzureStorage()).scan(FACT).collect()
    assert lake.scan(FACT).collect().sort(KEY).equals(good.sort(KEY))


def test_a_duplicate_key_keeps_the_last_good_version(built: Path, sample_landing: Path, tmp_path: Path):
    lake = _copy(built, tmp_path)
    good = lake.scan(FACT).collect()
    good_view = lake.scan(SINGLE_VIEW).collect()
    values = lake.scan(VALUES).collect()
    lake.overwrite(VALUES, pl.concat([values, values.head(1)]))
    version = lake.version(FACT)
    result = _run_gold(tmp_path / "lake", sample_landing)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "share a (kpi_code, period_key, geography_code)" in str(failure.event_specific_data)
    # Readers see the last good version (no bad version was ever written), and nothing was built on it.
    assert lake.version(FACT) == version
    assert lake.scan(FACT).collect().sort(KEY).equals(good.sort(KEY))
    assert lake.scan(SINGLE_VIEW).collect().equals(good_view)


# ---- the translator agrees with Great Expectations -------------------------------------------------------------
def test_the_gate_withholds_exactly_the_rows_gx_fails(built: Path, tmp_path: Path):
    """The gate's polars predicates and GX, on the same corrupted fact: the same rows fail each expectation, and
    GX finds nothing wrong with what the gate publishes."""
    lake = _copy(built, tmp_path)
    suite = fact_suite()
    fact = lake.scan(FACT).collect()
    units = lake.scan(DIM_KPI).select("kpi_code", "unit").collect()
    indexed = fact.join(units, on="kpi_code", how="left").with_row_index()

    def pick(condition: pl.Expr) -> int:
        return indexed.filter(condition & ~pl.col("index").is_in(list(chosen.values())))["index"][0]

    chosen: dict[str, int] = {}
    for name, condition in {
        "count": (pl.col("unit") == "Number") & pl.col("actual").is_not_null(),
        "percent": (pl.col("unit") == "%") & pl.col("actual").is_not_null(),
        "sink": (pl.col("unit") == "t CO2e") & pl.col("numerator").is_not_null(),
        "days_target": (pl.col("unit") == "Days") & pl.col("target").is_not_null(),
        "rag": pl.lit(True),
        "kpi": pl.lit(True),
        "period": pl.lit(True),
        "ci": pl.lit(True),
    }.items():
        chosen[name] = pick(condition)
    row = pl.int_range(pl.len())

    def at(name: str, value, column: str) -> pl.Expr:
        return pl.when(row == chosen[name]).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)

    bad = fact.with_columns(
        pl.when(row == chosen["count"])
        .then(-1.0)
        .when(row == chosen["percent"])
        .then(100.5)
        .otherwise("actual")
        .alias("actual"),
        at("sink", -300.0, "numerator"),  # a net carbon sink: true, so published
        at("days_target", -3.0, "target"),
        at("rag", "purple", "rag_status"),
        at("kpi", "ZZZ999", "kpi_code"),
        pl.when(row == chosen["period"])
        .then(pl.lit(None, pl.String))
        .otherwise("period_key")
        .alias("period_key"),
        at("ci", 0.0, "upper_ci"),
        at("ci", 1.0, "lower_ci"),
    )
    gate = split_rows(
        bad.lazy(), suite, "run", tables=lambda ref: lake.scan(ref) if lake.exists(ref) else None
    )
    assert not gate.untranslated
    lake.overwrite(FACT, bad)
    report = validate_table(lake, suite, "run-gx")
    found = dict(gate.withheld.group_by("expectation").len().iter_rows())
    for outcome in report.outcomes:
        if outcome.name in gate.rules:
            assert (outcome.unexpected_count or 0) == found.get(outcome.name, 0), outcome.summary()
    assert gate.rows_withheld == 7 and gate.published.height == fact.height - 7
    lake.overwrite(FACT, gate.published)
    assert not validate_table(lake, suite, "run-gx-published").failures()
