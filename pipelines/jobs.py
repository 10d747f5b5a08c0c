"""Jobs and schedules: the nightly sync at 02:00 UK time, of what changed at the sources (everything weekly);
after it, the current quarter's report when the mart changed."""

import dagster as dg

from assets.gold.reports import REPORT_KEY, quarterly_partitions
from kpi_lake.reports import ReportError, input_versions, latest_reported_quarter
from pipelines.executors import executor_from_env
from pipelines.locked_executor import lake_locked
from pipelines.planning import PLAN_TAG, plan_sync, record_pending, save_pending
from resources.business_db import BusinessDatabase
from resources.lake import DeltaLake
from resources.landing import LandingZone

nightly_sync = dg.define_asset_job(
    name="nightly_sync",
    # The report is partitioned by quarter: it runs in its own job, after this one (below).
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(REPORT_KEY),
    description="Sync every source into bronze and rebuild what depends on it.",
    tags={"kpi_lake/job": "nightly_sync"},
    executor_def=lake_locked(executor_from_env()),
)


@dg.schedule(
    name="nightly_sync_schedule",
    job=nightly_sync,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/London",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every night at 02:00 Europe/London (GMT or BST as the clocks say): checks every source and runs the "
        "bronze tables whose source changed, with everything downstream; everything once a week and after a "
        "code change; no run when nothing changed (pipelines/planning.py)."
    ),
)
def nightly_schedule(
    context: dg.ScheduleEvaluationContext,
    lake: DeltaLake,
    landing: LandingZone,
    business_db: BusinessDatabase,
):
    plan = plan_sync(
        lake=lake,
        landing=landing,
        business_db=business_db,
        instance=context.instance,
        asset_graph=context.repository_def.asset_graph,
    )
    context.log.info(plan.summary())
    if plan.nothing_to_do:
        return dg.SkipReason(plan.summary())
    save_pending(lake, plan)  # recorded by sync_plan_recorded once the run succeeds
    return dg.RunRequest(
        run_key=f"nightly-{plan.plan_id}",
        asset_selection=plan.asset_selection,
        tags={PLAN_TAG: plan.plan_id, "kpi_lake/trigger": "schedule"},
    )


@dg.run_status_sensor(
    name="sync_plan_recorded",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[nightly_sync],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After a nightly sync the schedule planned has succeeded, records the sources it found, so the next "
        "night runs only what changed since (a failed run records nothing: its sources run again)."
    ),
)
def sync_plan_recorded(context: dg.RunStatusSensorContext, lake: DeltaLake):
    plan_id = context.dagster_run.tags.get(PLAN_TAG)
    if not plan_id:
        return dg.SkipReason("not a planned sync (a landing-zone or UI run): nothing to record")
    if record_pending(lake, plan_id):
        return dg.SkipReason(f"sync plan {plan_id} recorded")
    return dg.SkipReason(f"sync plan {plan_id} was recorded already (by `kpi-lake sync`)")


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
