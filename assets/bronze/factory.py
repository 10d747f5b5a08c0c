"""Build a bronze asset from a table spec: the Dagster side stays this thin."""

from collections.abc import Sequence

import dagster as dg

from kpi_lake.bronze import DatabaseTable, FileTable, land_database_table, land_files, unmatched_files
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone


def file_bronze_asset(spec: FileTable, siblings: Sequence[FileTable] = ()) -> dg.AssetsDefinition:
    """``siblings``: every table of the same landing folder (``spec`` among them), so that a file of another
    layout is left to its table, and a file no table takes is reported once, by the table it is closest to."""
    folder_tables = tuple(siblings) or (spec,)

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
        report = land_files(
            spec,
            lake=lake,
            landing=landing,
            run_id=context.run.run_id,
            siblings=folder_tables,
            log=context.log.info,
        )
        if report.state is None:
            context.log.warning(
                f"no readable files for {spec.ref} in landing/{spec.source}/ matching {', '.join(spec.patterns)}: "
                "the table is not created until one arrives"
            )
        if report.skipped_other_layout:
            context.log.info(
                f"left for other tables (different layout): {', '.join(report.skipped_other_layout)}"
            )
        for bad in report.bad_files:
            context.log.warning(f"bad file, not landed (recorded in {spec.bad_files_ref}): {bad.error}")
        if report.bad_files_unchanged:
            context.log.warning(
                f"still bad, unchanged since recorded in {spec.bad_files_ref} (not read again): "
                + ", ".join(report.bad_files_unchanged)
            )
        metadata = report.to_metadata()
        # Files in the folder that no table's patterns take: reported by the table they are closest to.
        names = [f.name for f in landing.list_files(spec.source)]
        unmatched = [u for u in unmatched_files(names, folder_tables) if u.closest == spec]
        for file in unmatched:
            context.log.warning(file.message)
        if unmatched:
            metadata["unmatched_files"] = "\n".join(file.message for file in unmatched)
        return dg.MaterializeResult(metadata=metadata)

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
