"""Build a bronze asset from a table spec: the Dagster side stays this thin."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from kpi_lake.bronze import (
    LAST_FULL_RECONCILIATION,
    DatabaseTable,
    FileTable,
    land_database_table,
    land_files,
    unmatched_files,
)
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake, data_version
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
        pool=spec.ref.path,  # one writer per table across runs (pools in deploy/local/dagster.yaml)
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
        return dg.MaterializeResult(metadata=metadata, data_version=data_version(metadata))

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
        metadata = report.to_metadata()
        return dg.MaterializeResult(metadata=metadata, data_version=data_version(metadata))

    return _bronze_table


def last_full_reconciliation(context: dg.AssetExecutionContext) -> dt.datetime | None:
    """When this table was last read whole, from its latest materialisation (None: never, or unknown)."""
    return full_reconciliation_of(context.instance.get_latest_materialization_event(context.asset_key))


def full_reconciliation_of(event: dg.EventLogEntry | None) -> dt.datetime | None:
    """When a bronze database table was last read whole, by one of its materialisation events."""
    entry = event.asset_materialization.metadata.get(LAST_FULL_RECONCILIATION) if event else None
    if entry is None or not isinstance(entry.value, str):
        return None
    try:
        return dt.datetime.fromisoformat(entry.value)
    except ValueError:
        return None
