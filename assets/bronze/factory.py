"""Build a bronze asset from a table spec: the Dagster side stays this thin."""

import datetime as dt

import dagster as dg

from kpi_lake.bronze import (
    LAST_FULL_RECONCILIATION,
    DatabaseTable,
    FileTable,
    land_database_table,
    land_files,
)
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone


def file_bronze_asset(spec: FileTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.ref.key_path,
        group_name=spec.ref.group_name,
        description=spec.description,
        kinds={"delta", "polars", "csv"},
        tags={"layer": "bronze", "source": spec.source},
        pool=spec.ref.path,  # one writer per table across runs (pools in dagster.yaml)
        metadata={"landing_patterns": ", ".join(spec.patterns), "lake_path": spec.ref.path},
    )
    def _bronze_files(context: dg.AssetExecutionContext, lake: DeltaLake, landing: LandingZone):
        report = land_files(spec, lake=lake, landing=landing, run_id=context.run.run_id, log=context.log.info)
        if report.state is None:
            context.log.warning(
                f"no files for {spec.ref} in landing/{spec.source}/ matching {', '.join(spec.patterns)}: "
                "the table is not created until one arrives"
            )
        if report.skipped_other_layout:
            context.log.info(
                f"left for other tables (different layout): {', '.join(report.skipped_other_layout)}"
            )
        return dg.MaterializeResult(metadata=report.to_metadata())

    return _bronze_files


def database_bronze_asset(spec: DatabaseTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.ref.key_path,
        group_name=spec.ref.group_name,
        description=spec.description,
        kinds={"delta", "polars", "sql"},
        tags={"layer": "bronze", "source": spec.source},
        pool=spec.ref.path,
        metadata={
            "primary_key": spec.primary_key,
            "watermark": spec.watermark,
            "lookback_hours": spec.lookback.total_seconds() / 3600,
            "full_reconciliation_every_days": spec.full_reconciliation_every.total_seconds() / 86400,
            "lake_path": spec.ref.path,
        },
    )
    def _bronze_table(context: dg.AssetExecutionContext, lake: DeltaLake, business_db: BusinessDatabase):
        with business_db.engine() as engine:
            report = land_database_table(
                spec,
                lake=lake,
                engine=engine,
                run_id=context.run.run_id,
                last_full_reconciliation=last_full_reconciliation(context),
                log=context.log.info,
            )
        if report.columns_added or report.columns_removed:
            context.log.warning(f"{spec.ref}: schema drift at source: {report.to_metadata()['schema_drift']}")
        return dg.MaterializeResult(metadata=report.to_metadata())

    return _bronze_table


def last_full_reconciliation(context: dg.AssetExecutionContext) -> dt.datetime | None:
    """When this table was last read whole, from its latest materialisation (None: never, or unknown)."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    entry = event.asset_materialization.metadata.get(LAST_FULL_RECONCILIATION) if event else None
    if entry is None or not isinstance(entry.value, str):
        return None
    try:
        return dt.datetime.fromisoformat(entry.value)
    except ValueError:
        return None
