"""SQL models as Dagster assets: one asset per ``dbt_like_sql/<layer>/<source>/<name>.sql``, its YAML column
tests as asset checks. The SQL machinery is in ``kpi_lake.sql_models``; this module only wires it."""

from collections.abc import Iterable, Sequence
from pathlib import Path

import dagster as dg

from kpi_lake.sql_models import SqlModel, SqlModelError, load_sql_models
from kpi_lake.tables import TableRef
from resources.lake import DeltaLake, data_version

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_MODELS_ROOT = PROJECT_ROOT / "dbt_like_sql"


def sql_model_assets_from_tree(
    root: Path = SQL_MODELS_ROOT, python_assets: Iterable[dg.AssetsDefinition] | None = None
) -> list[dg.AssetsDefinition]:
    """Load every model under ``dbt_like_sql/`` and make its asset.

    A model may read tables that Python assets write; those are ``python_assets`` (by default the bronze and
    silver assets and the mart's Python fact asset), and a model reading any other table fails here, when the
    code location loads.
    """
    if python_assets is None:
        from assets.bronze import bronze_assets
        from assets.gold.kpi_mart import kpi_mart_assets
        from assets.silver import silver_assets

        python_assets = [*bronze_assets, *silver_assets, *kpi_mart_assets]
    known = {TableRef.from_key_path(key.path) for assets_def in python_assets for key in assets_def.keys}
    return sql_model_assets(load_sql_models(root, known_tables=known))


def sql_model_assets(models: Sequence[SqlModel]) -> list[dg.AssetsDefinition]:
    """One asset per model (key ``[layer, source, name]``), its dependencies as parsed from its SQL."""
    return [sql_model_asset(model) for model in models]


def sql_model_asset(model: SqlModel) -> dg.AssetsDefinition:
    key = dg.AssetKey(model.ref.key_path)
    # Failing column tests warn on silver (work in progress) and are errors on gold (what people read).
    severity = dg.AssetCheckSeverity.WARN if model.ref.layer == "silver" else dg.AssetCheckSeverity.ERROR
    tests = model.config.tests
    check_specs = [
        dg.AssetCheckSpec(
            name=test.check_name,
            asset=key,
            description=test.description,
            # A failing gold test stops what depends on the table from being published in the same run.
            blocking=severity == dg.AssetCheckSeverity.ERROR,
            additional_deps=[dg.AssetKey(test.to.key_path)] if test.to and test.to != model.ref else None,
        )
        for test in tests
    ]
    # A relationships check reads its target table; the checks run in the model's own step, so the target is
    # a dependency of the asset (a check spec's additional_deps alone does not order the steps).
    check_targets = [test.to for test in tests if test.to is not None and test.to != model.ref]
    deps = list(dict.fromkeys([*model.inputs, *check_targets]))
    docs = {column.name: column for column in model.config.columns}
    tags = {"layer": model.ref.layer, "source": model.ref.source, **dict.fromkeys(model.config.tags, "")}

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(ref.key_path) for ref in deps],
        description=model.description,
        group_name=model.ref.group_name,
        kinds={"sql", model.engine, "delta"},
        tags=tags,
        code_version=model.code_version,
        check_specs=check_specs,
        pool=model.ref.path,  # one writer per table across runs (pools in deploy/local/dagster.yaml)
        metadata={
            **_definition_column_schema(model),
            "model_file": model.display_path,
            "materialized": model.config.materialized,
            "unique_key": ", ".join(model.config.unique_key),
            "sql_engine": model.engine,
            "lake_path": model.ref.path,
            "sql": dg.MetadataValue.md(f"```sql\n{model.sql.strip()}\n```"),
        },
    )
    def _sql_model(context: dg.AssetExecutionContext, lake: DeltaLake) -> dg.MaterializeResult:
        # The engines (sqlglot, polars, DuckDB) are imported when a model is built, not when the code location loads.
        from kpi_lake.sql_models import build_model, evaluate_test

        try:
            built = build_model(model, lake)
        except SqlModelError as error:
            raise dg.Failure(description=str(error)) from error
        if built.skipped:
            context.log.info(f"{model.ref}: inputs and SQL unchanged since the last build; nothing to do")
        metadata = built.state.to_metadata()
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name, dtype, description=(docs[name].description or None) if name in docs else None
                )
                for name, dtype in built.state.schema.items()
            ]
        )
        undocumented = [name for name in built.state.schema if docs and name not in docs]
        if undocumented:
            context.log.warning(
                f"{model.display_path}: columns not documented in its YAML: {', '.join(undocumented)}"
            )
        metadata.update(sql_engine=built.engine, build_seconds=round(built.seconds, 3))

        selected = context.selected_asset_check_keys
        results = []
        table = lake.scan(model.ref)
        for test in tests:
            if dg.AssetCheckKey(key, test.check_name) not in selected:
                continue
            parent = lake.scan(test.to) if test.to is not None and lake.exists(test.to) else None
            outcome = evaluate_test(test, table, model.config.unique_key, parent)
            results.append(
                dg.AssetCheckResult(
                    check_name=test.check_name,
                    passed=outcome.passed,
                    severity=severity,
                    description=outcome.message or test.description,
                    metadata={
                        "failing_rows": outcome.failing_rows,
                        "sample_failing_rows": dg.MetadataValue.json(outcome.sample),
                    },
                )
            )
        return dg.MaterializeResult(
            metadata=metadata, check_results=results, data_version=data_version(metadata)
        )

    return _sql_model


def _definition_column_schema(model: SqlModel) -> dict[str, dg.TableSchema]:
    """The YAML's columns as the definition's column schema, unless the UI would misname them.

    Dagster's UI (1.13, ``buildConsolidatedColumnSchema``) merges a definition's column schema with the
    latest materialisation's by lower-casing every name, so ``KPI_Code`` would show as ``kpi_code``. A model
    with any upper-case column name therefore declares none here: its page shows the materialisation's schema
    (the Delta table's names and types, with the YAML's descriptions), exactly as the table has them.
    """
    columns = model.config.columns
    if not columns or any(c.name != c.name.lower() for c in columns):
        return {}
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(c.name, c.data_type or "", description=c.description or None) for c in columns
            ]
        )
    }
