"""Data quality with real parts: the suite files, the sample nightly run with every check, a corrupted silver
table that a blocking gold check stops before anything is published, the history table and the Data Docs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.quality import EXPECTATIONS_ROOT, quality_checks
from assets.silver import SILVER_TABLES
from kpi_lake.quality import HISTORY, SuiteError, load_suite, load_suites, validate_table
from kpi_lake.quality.gate import split_rows, withheld_ref
from kpi_lake.quality.native import freshness, row_count_change, schema_drift
from kpi_lake.quality.suites import NativeRule, parse_suite
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.pipeline_helpers import local_resources

GOLD_CONTRACT = [
    "dim_kpi",
    "dim_theme",
    "bridge_kpi_theme",
    "dim_period",
    "dim_geography",
    "fact_kpi_value",
    "kpi_single_view",
    "theme_scorecard",
]
FACT = TableRef("gold", "kpi_mart", "fact_kpi_value")
DIM_KPI = TableRef("gold", "kpi_mart", "dim_kpi")
DIM_PERIOD = TableRef("gold", "kpi_mart", "dim_period")
DIM_GEOGRAPHY = TableRef("gold", "kpi_mart", "dim_geography")
REPORT = TableRef("gold", "kpi_mart", "cabinet_report")  # the stand-in's downstream: what councillors read
SILVER_VALUES = TableRef("silver", "spar_net", "kpi_values")
SILVER_DEFINITIONS = TableRef("silver", "spar_net", "kpi_definitions")


# ---- the suite files ---------------------------------------------------------------------------------------------
def test_every_silver_and_gold_table_has_a_suite_that_gx_accepts():
    suites = {suite.ref: suite for suite in load_suites(EXPECTATIONS_ROOT)}
    for spec in SILVER_TABLES:
        assert spec.ref in suites, f"no suite for {spec.ref}: add expectations/{spec.ref.path}.yml"
        # The suite declares exactly the columns the silver asset documents (schema drift compares both).
        assert list(suites[spec.ref].columns) == list(spec.columns), spec.ref
    for name in GOLD_CONTRACT:
        assert TableRef("gold", "kpi_mart", name) in suites
    for suite in suites.values():
        gx_suite = suite.to_gx_suite()  # GX validates every type and its kwargs here
        assert len(gx_suite.expectations) == len(suite.gx_expectations), suite.file
        severities = {e.severity for e in suite.expectations}
        if suite.ref.layer == "gold":
            assert "error" in severities, f"{suite.file}: gold suites block publication"


def test_a_bad_suite_file_names_every_problem():
    raw = {
        "table": "silver/spar_net/kpi_values",
        "columns": {"kpi_code": "string", "actual": "float"},
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "kpi_cod"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "actual"},
                "severity": "fatal",
            },
            {"type": "relationship", "kwargs": {"column": "kpi_code"}},
            {"type": "not_an_expectation"},
        ],
    }
    with pytest.raises(SuiteError) as error:
        parse_suite(raw, "silver/spar_net/kpi_values.yml")
    message = str(error.value)
    for part in (
        "kpi_cod are not declared",
        "severity must be one of",
        "kwargs need to, field",
        "not_an_expectation",
    ):
        assert part in message


def test_delta_log_checks_judge_age_schema_and_row_counts():
    now = dt.datetime(2026, 11, 26, 2, 30, tzinfo=dt.UTC)
    rule = NativeRule("warn", {"max_age_hours": 26})
    assert freshness(rule, now - dt.timedelta(hours=3), now).success
    stale = freshness(rule, now - dt.timedelta(hours=30), now)
    assert not stale.success and "30.0 hours ago" in stale.message

    drift = schema_drift(
        NativeRule("error", {"extra_columns": "fail"}),
        actual={"kpi_code": "String", "actual": "String", "surprise": "Int64"},
        declared={"kpi_code": "string", "actual": "float", "target": "float"},
    )
    assert not drift.success
    assert drift.observed_value["missing"] == ["target"] and drift.observed_value["extra"] == ["surprise"]
    assert "actual: String (declared float)" in drift.message

    bound = NativeRule("warn", {"max_change_pct": 50, "min_previous_rows": 20})
    assert row_count_change(bound, 900, 1000, 3).success
    assert not row_count_change(bound, 400, 1000, 3).success
    assert row_count_change(bound, 5, 2, 1).success  # too small before to judge
    assert row_count_change(bound, 10, None, 0).success  # the first version


# ---- the sample nightly run, with every check ------------------------------------------------------------------
def _nightly_defs(lake_root: Path, landing_root: Path) -> dg.Definitions:
    from pipelines import definitions

    checks = list(definitions.defs.asset_checks or []) or quality_checks(definitions.defs.assets)
    return dg.Definitions(
        assets=definitions.defs.assets,
        asset_checks=checks,
        jobs=definitions.defs.jobs,
        resources=local_resources(lake_root, landing_root),
    )


@pytest.fixture(scope="module")
def nightly(sample_landing: Path, tmp_path_factory: pytest.TempPathFactory):
    """The sample nightly run (scale 0.2) with every data-quality check, into a fresh lake."""
    lake_root = tmp_path_factory.mktemp("quality") / "lake"
    defs = _nightly_defs(lake_root, sample_landing)
    result = defs.resolve_job_def("nightly_sync").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    return defs, result, DeltaLake(root=str(lake_root), azure=AzureStorage())


def _quality_specs(defs: dg.Definitions) -> list[dg.AssetCheckSpec]:
    return [
        spec
        for checks in (defs.asset_checks or [])
        if checks.node_def.name.startswith("quality_")
        for spec in checks.check_specs
    ]


def test_the_nightly_run_reports_every_check(nightly):
    defs, result, _ = nightly
    assert result.success
    specs = _quality_specs(defs)
    suites = load_suites(EXPECTATIONS_ROOT)
    assert len({spec.asset_key for spec in specs}) >= len(SILVER_TABLES) + 1
    evaluations = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    missing = [spec.key for spec in specs if (spec.asset_key, spec.name) not in evaluations]
    assert not missing, f"checks without a result: {missing[:5]}"
    errors = [
        key for key, e in evaluations.items() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert not errors, f"gold checks fail on the sample data: {errors}"
    # What the UI shows for one expectation: severity, observed value, the Delta version and rows validated.
    unique = evaluations[(dg.AssetKey(SILVER_VALUES.key_path), "gx_kpi_period_unique")]
    metadata = {k: v.value for k, v in unique.metadata.items()}
    assert metadata["severity"] == "warn" and metadata["rows_validated"] > 0
    assert metadata["delta_version"] == 0 and metadata["unexpected_count"] == 0
    checked = {spec.asset_key for spec in specs}
    assert {dg.AssetKey(spec.ref.key_path) for spec in SILVER_TABLES} <= checked
    assert {dg.AssetKey(s.ref.key_path) for s in suites} & checked == checked


def test_history_rows_and_data_docs_are_in_the_lake(nightly):
    defs, result, lake = nightly
    history = lake.scan(HISTORY).filter(pl.col("run_id") == result.run_id).collect()
    assert history.height == len(_quality_specs(defs))
    row = history.filter(
        (pl.col("table") == SILVER_VALUES.path) & (pl.col("check_name") == "gx_actual_percentage_0_100")
    ).row(0, named=True)
    assert row["success"] and row["delta_version"] == 0 and row["severity"] == "warn"
    assert row["expectation_type"] == "expect_column_values_to_be_between" and row["observed_value"]

    # As the data_docs sensors run it after a run: the publish_data_docs job, for this run.
    from pipelines.sensors import publish_data_docs

    docs_run = publish_data_docs.execute_in_process(
        run_config={"ops": {"render_data_docs": {"config": {"run_id": result.run_id}}}},
        resources={"lake": lake},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert docs_run.success
    site = Path(lake.root) / "docs" / "data_quality"
    assert "silver.spar_net.kpi_values" in (site / "index.html").read_text()
    assert (site / "expectations" / "silver" / "spar_net" / "kpi_values.html").exists()
    pages = list(
        (site / "validations" / "silver" / "spar_net" / "kpi_values" / result.run_id).rglob("*.html")
    )
    assert len(pages) == 1


def test_a_rerun_with_nothing_new_reuses_the_results_without_validating(nightly, sample_landing: Path):
    defs, first, lake = nightly
    history_before = lake.version(HISTORY)
    again = defs.resolve_job_def("nightly_sync").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert again.success
    # Nothing was validated again, so nothing new is recorded: the rows of the run that validated stand.
    assert lake.version(HISTORY) == history_before
    assert lake.scan(HISTORY).filter(pl.col("run_id") == again.run_id).collect().height == 0
    quality = [e for e in again.get_asset_check_evaluations() if "suite_seconds" in e.metadata]
    assert quality
    for evaluation in quality:
        metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        assert metadata["rows_validated"] == 0, evaluation.check_name
        if evaluation.check_name == "freshness":  # depends on the clock: evaluated anew
            assert "reused" not in metadata
            continue
        assert metadata["reused"] is True, (evaluation.asset_key, evaluation.check_name)
        assert metadata["reused_from_run"] == first.run_id
        assert metadata["validated_scope"].startswith(f"unchanged since version {metadata['delta_version']}")
    # The reused results are the first run's, check by check.
    before = {(e.asset_key, e.check_name): e.passed for e in first.get_asset_check_evaluations()}
    assert all(before[(e.asset_key, e.check_name)] == e.passed for e in quality)


def test_a_table_written_again_or_a_changed_lookup_is_validated_again(nightly, tmp_path: Path):
    from kpi_lake.quality.reuse import reused_report

    _, _, nightly_lake = nightly
    shutil.copytree(nightly_lake.root, tmp_path / "lake")  # a copy: the other tests keep the nightly's lake
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    suites = {suite.ref: suite for suite in load_suites(EXPECTATIONS_ROOT)}
    suite = next(s for s in suites.values() if s.depends_on and lake.exists(s.ref))
    assert reused_report(lake, suite, "a-later-run") is not None
    # A table the suite also reads is written (same rows, a new version): its checks are validated again.
    dependency = suite.depends_on[0]
    lake.overwrite(dependency, lake.scan(dependency).collect())
    assert reused_report(lake, suite, "another-run") is None
    # So is the table itself once written again, whatever it holds.
    plain = next(s for s in suites.values() if not s.depends_on and lake.exists(s.ref))
    assert reused_report(lake, plain, "a-third-run") is not None
    lake.overwrite(plain.ref, lake.scan(plain.ref).collect())
    assert reused_report(lake, plain, "a-fourth-run") is None


# ---- a corrupted silver table: bad rows withheld, a structural failure stops publication----------------------------------------------------
def _stand_in_graph(suites: Path) -> list:
    """silver kpi_values (already in the lake) → a gold fact built here, through the gate of its suite in
    ``suites`` → the report councillors read."""
    external = [
        dg.AssetSpec(ref.key_path) for ref in (SILVER_VALUES, SILVER_DEFINITIONS, DIM_KPI, DIM_PERIOD)
    ]
    external.append(dg.AssetSpec(DIM_GEOGRAPHY.key_path))

    @dg.asset(key=FACT.key_path, deps=[s.key for s in external], group_name="gold_kpi_mart")
    def fact_kpi_value(context, lake: DeltaLake) -> dg.MaterializeResult:
        values = lake.scan(SILVER_VALUES)
        fact = values.select(
            "kpi_code",
            "period_key",
            pl.lit("E06009901").alias("geography_code"),
            "actual",
            "target",
            "numerator",
            "denominator",
            pl.lit(None, pl.Float64).alias("lower_ci"),
            pl.lit(None, pl.Float64).alias("upper_ci"),
            pl.lit(None, pl.Int64).alias("base"),
            pl.when(pl.col("actual").is_null())
            .then(pl.lit("no_data"))
            .otherwise(pl.col("rag_as_reported").fill_null("no_target"))
            .alias("rag_status"),
            pl.lit("not_comparable").alias("direction_of_travel"),
            *(
                pl.lit(None, pl.Float64).alias(c)
                for c in ("previous_period_actual", "same_period_last_year_actual")
            ),
            pl.lit(None, pl.Float64).alias("comparator_median"),
            *(
                pl.lit(None, pl.Int64).alias(c)
                for c in ("comparator_quartile", "comparator_rank", "comparator_count")
            ),
            pl.col("commentary").alias("narrative"),
            pl.lit("spar_net").alias("source_system"),
            pl.col("source_file").alias("source_lineage"),
            pl.lit(None, pl.Boolean).alias("is_reconciled"),
            pl.lit(None, pl.String).alias("reconciliation_note"),
        )
        gate = split_rows(
            fact,
            load_suite(suites / f"{FACT.path}.yml", suites),
            context.run.run_id,
            tables=lambda ref: lake.scan(ref) if lake.exists(ref) else None,
        )
        lake.overwrite(withheld_ref(FACT), gate.withheld)
        return dg.MaterializeResult(metadata=lake.overwrite(FACT, gate.published).to_metadata())

    @dg.asset(key=REPORT.key_path, deps=[FACT.key_path], group_name="gold_kpi_mart")
    def cabinet_report(lake: DeltaLake) -> dg.MaterializeResult:
        report = lake.scan(FACT).filter(pl.col("rag_status") == "red")
        return dg.MaterializeResult(metadata=lake.overwrite(REPORT, report).to_metadata())

    return [*external, fact_kpi_value, cabinet_report]


def _lake_with_silver(source: DeltaLake, root: Path, corrupt: bool, duplicate: bool = False) -> DeltaLake:
    """A fresh lake with the sample's SPAR.net silver tables (a few bad rows, or a duplicated key, on request)
    and the dimensions."""
    lake = DeltaLake(root=str(root), azure=AzureStorage())
    definitions = source.scan(SILVER_DEFINITIONS).collect()
    values = source.scan(SILVER_VALUES).collect()
    if corrupt:
        percent_kpi = definitions.filter(pl.col("unit") == "%")["kpi_code"][0]
        row = pl.int_range(pl.len())
        indexed = values.with_row_index()
        first_percent = indexed.filter((pl.col("kpi_code") == percent_kpi) & (pl.col("index") > 0))["index"][
            0
        ]
        values = values.with_columns(
            pl.when(row == 0).then(None).otherwise(pl.col("kpi_code")).alias("kpi_code"),  # null in the key
            pl.when(row == first_percent).then(140.0).otherwise(pl.col("actual")).alias("actual"),  # 140%
        )
        values = pl.concat([values, values.head(1).with_columns(pl.lit("ZZZ999").alias("kpi_code"))])
    if duplicate:  # structural: no row is wrong on its own, the table is
        values = pl.concat([values, values.head(1)])
    lake.overwrite(SILVER_DEFINITIONS, definitions)
    lake.overwrite(SILVER_VALUES, values)
    lake.overwrite(DIM_KPI, definitions.select("kpi_code", "unit"))
    lake.overwrite(DIM_PERIOD, values.select("period_key").unique())
    lake.overwrite(DIM_GEOGRAPHY, pl.DataFrame({"geography_code": ["E06009901"]}))
    return lake


def _run_stand_in(lake: DeltaLake, suites: Path):
    graph = _stand_in_graph(suites)
    defs = dg.Definitions(
        assets=graph,
        asset_checks=quality_checks(graph, suites_root=suites),
        jobs=[dg.define_asset_job("publish", selection=dg.AssetSelection.all())],
        resources={"lake": lake},
    )
    return defs.resolve_job_def("publish").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


@pytest.fixture
def fact_suites(tmp_path: Path) -> Path:
    """The real suite files of the tables in the stand-in graph (the fact's, and silver kpi_values')."""
    for ref in (FACT, SILVER_VALUES):
        target = tmp_path / "expectations" / f"{ref.path}.yml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXPECTATIONS_ROOT / f"{ref.path}.yml", target)
    return tmp_path / "expectations"


def test_a_clean_silver_table_is_published(nightly, fact_suites: Path, tmp_path: Path):
    _, _, sample = nightly
    result = _run_stand_in(_lake_with_silver(sample, tmp_path / "lake", corrupt=False), fact_suites)
    assert result.success
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert tuple(REPORT.key_path) in materialised


def test_a_corrupted_silver_table_has_its_bad_rows_withheld_from_gold(
    nightly, fact_suites: Path, tmp_path: Path
):
    _, _, sample = nightly
    lake = _lake_with_silver(sample, tmp_path / "lake", corrupt=True)
    result = _run_stand_in(lake, fact_suites)

    # The three bad rows are withheld, each with the expectation it breaks and why.
    withheld = lake.scan(withheld_ref(FACT)).collect()
    by_expectation = {row["expectation"]: row for row in withheld.iter_rows(named=True)}
    assert set(by_expectation) == {
        "gx_kpi_code_not_null",
        "gx_actual_percentage_0_100",
        "rel_kpi_code_in_dim_kpi",
    }
    assert by_expectation["gx_kpi_code_not_null"]["kpi_code"] is None
    assert by_expectation["gx_actual_percentage_0_100"]["observed_value"] == "140.0"
    assert "ZZZ999 is not in gold/kpi_mart/dim_kpi" in by_expectation["rel_kpi_code_in_dim_kpi"]["reason"]
    assert (withheld["run_id"] == result.run_id).all()

    # None of them reaches a reader: not the fact, not the report built on it; the rest is published.
    fact = lake.scan(FACT).collect()
    assert fact.height == lake.scan(SILVER_VALUES).select(pl.len()).collect().item() - 3
    assert fact["kpi_code"].null_count() == 0 and "ZZZ999" not in fact["kpi_code"].to_list()
    assert 140.0 not in fact["actual"].to_list()
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert tuple(REPORT.key_path) in materialised
    report = lake.scan(REPORT).collect()
    assert report["kpi_code"].null_count() == 0 and 140.0 not in report["actual"].to_list()
    # The blocking checks see only what was published, and pass: nothing was blocked or withdrawn.
    fact_checks = [
        e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(FACT.key_path)
    ]
    assert fact_checks and all(e.passed for e in fact_checks if e.severity == dg.AssetCheckSeverity.ERROR)
    assert "kpi_lake.withdrawn_version" not in lake.last_commit_metadata(FACT)
    # Silver's own checks saw the same rows, as warnings.
    silver = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(SILVER_VALUES.key_path)
    }
    if silver:  # checks of a table the run did not build run when the job includes them
        assert not silver["gx_kpi_code_not_null"].passed
        assert silver["gx_kpi_code_not_null"].severity == dg.AssetCheckSeverity.WARN


def test_a_structural_failure_blocks_gold_publication_and_withdraws_the_version(
    nightly, fact_suites: Path, tmp_path: Path
):
    _, _, sample = nightly
    lake = _lake_with_silver(sample, tmp_path / "lake", corrupt=False, duplicate=True)
    result = _run_stand_in(lake, fact_suites)

    assert not result.success
    failed = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.asset_key == dg.AssetKey(FACT.key_path)
    }
    assert "gx_fact_key_unique" in failed and failed["gx_fact_key_unique"].blocking
    # The fact was written and checked, but nothing built on it was published.
    materialised = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert tuple(FACT.key_path) in materialised and tuple(REPORT.key_path) not in materialised
    assert not lake.exists(REPORT)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "gx_fact_key_unique" in failure.event_specific_data.error.message  # the run names the expectation
    history = lake.scan(HISTORY).filter(pl.col("table") == FACT.path).collect()
    assert not history.filter(pl.col("check_name") == "gx_fact_key_unique")["success"].any()
    # Readers (Power BI, Excel) do not see the failed numbers either: the first version was withdrawn.
    assert lake.scan(FACT).select(pl.len()).collect().item() == 0
    assert lake.last_commit_metadata(FACT)["kpi_lake.withdrawn_version"] == "0"


def test_a_failed_gold_version_is_withdrawn_back_to_the_last_good_one(
    nightly, fact_suites: Path, tmp_path: Path
):
    _, _, sample = nightly
    root = tmp_path / "lake"
    clean_lake = _lake_with_silver(sample, root, corrupt=False)
    assert _run_stand_in(clean_lake, fact_suites).success
    published = clean_lake.scan(FACT).collect()
    corrupted_lake = _lake_with_silver(sample, root, corrupt=False, duplicate=True)
    assert not _run_stand_in(corrupted_lake, fact_suites).success
    after = corrupted_lake.scan(FACT).collect()
    assert after.sort(FACT_KEY_COLUMNS).equals(published.sort(FACT_KEY_COLUMNS))
    assert corrupted_lake.last_commit_metadata(FACT)["kpi_lake.withdrawn_version"] == "1"
    assert corrupted_lake.delta_table(FACT).version() == 2  # the bad version stays in the history


FACT_KEY_COLUMNS = ["kpi_code", "period_key", "geography_code"]


# ---- large tables: only the changed rows ------------------------------------------------------------------------
def test_a_large_table_is_validated_on_its_changed_rows(tmp_path: Path):
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    ref = TableRef("silver", "business_systems", "service_requests")
    suite = parse_suite(
        {
            "table": ref.path,
            "columns": {"request_id": "int", "sla_days": "int"},
            "sample_columns": ["request_id"],
            "changed_slice": {"min_rows": 1000},
            "freshness": False,
            "expectations": [
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "sla_days", "min_value": 1},
                },
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "request_id"}},
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            ],
        },
        "service_requests.yml",
        content_hash="slice-test",
    )
    lake.overwrite(ref, pl.DataFrame({"request_id": range(5000), "sla_days": [5] * 5000}))
    first = validate_table(lake, suite, "run-1")
    assert first.validated_scope == "all 5000 rows" and not first.failures()
    from kpi_lake.quality import append_history

    append_history(lake, first)

    lake.append(ref, pl.DataFrame({"request_id": [5000, 5001, 42], "sla_days": [3, 0, 5]}))
    second = validate_table(lake, suite, "run-2")
    # Only the rows of the file the append added are validated row by row (the Delta log says which).
    assert second.rows_validated == 3 and second.validated_scope.startswith("3 changed rows of 5003")
    failed = {o.name: o for o in second.failures()}
    assert failed["gx_sla_days_between"].sample == [{"request_id": 5001, "sla_days": 0}]
    # Uniqueness looks at every row, not only the changed ones: 42 was already there.
    assert failed["gx_request_id_unique"].unexpected_count == 2


def test_a_table_too_large_for_pandas_is_sampled_row_by_row_and_aggregated_table_wide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from kpi_lake.quality import validate

    monkeypatch.setattr(validate, "FULL_COPY_MAX_ROWS", 1000)
    monkeypatch.setattr(validate, "SAMPLE_ROWS", 500)
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    ref = TableRef("silver", "business_systems", "service_requests")
    suite = parse_suite(
        {
            "table": ref.path,
            "columns": {"request_id": "int", "sla_days": "int"},
            "sample_columns": ["request_id"],
            "freshness": False,
            "expectations": [
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "sla_days", "min_value": 1},
                },
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "request_id"}},
                {
                    "type": "expect_table_row_count_to_be_between",
                    "kwargs": {"min_value": 1, "max_value": 4000},
                },
            ],
        },
        "service_requests.yml",
        content_hash="sample-test",
    )
    # Row 0 (in the sample: every 10th row from the first) breaks the row rule; 4321 appears twice.
    ids = [*range(4999), 4321]
    lake.overwrite(ref, pl.DataFrame({"request_id": ids, "sla_days": [0] + [5] * 4999}))
    report = validate.validate_table(lake, suite, "run-1")
    assert report.rows_validated == 500
    assert "a sample of 500 of 5000 rows" in report.validated_scope
    failed = {o.name: o for o in report.failures()}
    assert set(failed) == {"gx_sla_days_between", "gx_request_id_unique", "gx_row_count"}
    assert failed["gx_sla_days_between"].sample == [{"request_id": 0, "sla_days": 0}]
    unique = failed["gx_request_id_unique"]
    assert unique.unexpected_count == 2 and unique.element_count == 5000
    assert "polars aggregates" in unique.message
    assert failed["gx_row_count"].observed_value == 5000


def test_the_history_of_many_runs_is_compacted_and_keeps_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Each suite's results are one small file; every COMPACT_EVERY versions they are packed together, so the
    checks of a run, which read the history first, do not open a file per earlier validation."""
    from kpi_lake.quality import append_history, history

    monkeypatch.setattr(history, "COMPACT_EVERY", 10)
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    ref = TableRef("silver", "business_systems", "service_requests")
    suite = parse_suite(
        {
            "table": ref.path,
            "columns": {"request_id": "int"},
            "freshness": False,
            "expectations": [
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "request_id"}}
            ],
        },
        "service_requests.yml",
        content_hash="compact-test",
    )
    lake.overwrite(ref, pl.DataFrame({"request_id": range(50)}))
    report = validate_table(lake, suite, "run-0")
    per_run = len(report.outcomes)
    for night in range(25):
        append_history(lake, dataclasses.replace(report, run_id=f"run-{night}"))
    table = lake.delta_table(HISTORY)
    assert len(table.file_uris()) < 10  # 25 appends, compacted at versions 10 and 20
    assert any(c.get("operation") == "OPTIMIZE" for c in table.history())
    kept = lake.scan(HISTORY).collect()
    assert kept.height == 25 * per_run and kept["run_id"].n_unique() == 25
