"""Build a bronze asset from a table spec: the Dagster side stays this thin."""

import dagster as dg

from kpi_lake.bronze import DatabaseTable, FileTable, land_database_table, land_files
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
        metadata={"primary_key": spec.primary_key, "watermark": spec.watermark, "lake_path": spec.ref.path},
    )
    def _bronze_table(context: dg.AssetExecutionContext, lake: DeltaLake, business_db: BusinessDatabase):
        with business_db.engine() as engine:
            report = land_database_table(
                spec, lake=lake, engine=engine, run_id=context.run.run_id, log=context.log.info
            )
        return dg.MaterializeResult(metadata=report.to_metadata())

    return _bronze_table
