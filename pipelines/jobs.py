"""Jobs and schedules: the nightly sync of everything, at 02:00 UK time; after it, the current quarter's
report when the mart changed."""

import dagster as dg

from assets.gold.reports import REPORT_KEY, quarterly_partitions
from kpi_lake.reports import ReportError, input_versions, latest_reported_quarter
from pipelines.executors import executor_from_env
from pipelines.locked_executor import lake_locked
from resources.lake import DeltaLake

nightly_sync = dg.define_asset_job(
    name="nightly_sync",
    # The report is partitioned by quarter: it runs in its own job, after this one (below).
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(REPORT_KEY),
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

quarterly_report = dg.define_asset_job(
    name="quarterly_report",
    selection=dg.AssetSelection.assets(REPORT_KEY),
    description="Build the quarterly performance report of one quarter (any past quarter: pick its partition).",
    tags={"kpi_lake/job": "quarterly_report"},
)


@dg.run_status_sensor(
    name="quarterly_report_after_sync",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[nightly_sync],
    request_job=quarterly_report,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a successful nightly sync, rebuild the latest quarter's report if the mart changed.",
)
def quarterly_report_after_sync(context: dg.RunStatusSensorContext, lake: DeltaLake):
    try:
        period_key = latest_reported_quarter(lake)
    except ReportError as error:
        return dg.SkipReason(str(error))
    if period_key not in quarterly_partitions.get_partition_keys():
        return dg.SkipReason(f"{period_key} is not a reporting quarter yet")
    # The run key is the quarter and the mart's table versions: unchanged inputs, no second run.
    versions = ",".join(f"{path}={version}" for path, version in sorted(input_versions(lake).items()))
    return dg.RunRequest(run_key=f"{period_key}|{versions}", partition_key=period_key)
