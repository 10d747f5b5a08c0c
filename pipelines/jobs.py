"""Jobs and schedules: the nightly sync of everything, at 02:00 UK time."""

import dagster as dg

from pipelines.executors import executor_from_env
from pipelines.locked_executor import lake_locked

nightly_sync = dg.define_asset_job(
    name="nightly_sync",
    selection=dg.AssetSelection.all(),
    description="Sync every source into bronze and rebuild what depends on it.",
    tags={"kpi_lake/job": "nightly_sync"},
    executor_def=lake_locked(executor_from_env()),
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_sync_schedule",
    job=nightly_sync,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 02:00 Europe/London (GMT or BST as the clocks say).",
)
