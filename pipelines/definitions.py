"""The kpi-lake code location: every asset and its quality checks, the nightly job and its schedule, the
operations sensors (files landing, run failures, Data Docs) and the resources."""

import dagster as dg

from assets.bronze import bronze_assets
from assets.gold import kpi_mart_assets, spc_assets, sql_model_assets_from_tree
from assets.gold.reports import report_assets
from assets.quality import quality_checks
from assets.silver import silver_assets
from pipelines import sensors
from pipelines.environment import get_resources
from pipelines.jobs import (
    nightly_schedule,
    nightly_sync,
    quarterly_report,
    quarterly_report_after_sync,
    sync_plan_recorded,
)
from pipelines.locked_executor import lake_locked_executor

all_assets = [
    *bronze_assets,
    *silver_assets,
    *kpi_mart_assets,
    *sql_model_assets_from_tree(python_assets=[*bronze_assets, *silver_assets, *kpi_mart_assets]),
    *spc_assets,
    *report_assets,
]

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=quality_checks(all_assets),
    jobs=[nightly_sync, quarterly_report, *sensors.jobs],
    schedules=[nightly_schedule],
    sensors=[*sensors.sensors, quarterly_report_after_sync, sync_plan_recorded],
    resources={**get_resources(), **sensors.operations_resources()},
    # Every run (schedule, sensor, UI) holds the lake lock for its whole length: see kpi_lake/locking.py.
    executor=lake_locked_executor,
)
