"""The executor a launched run uses, chosen by ``KPI_LAKE_EXECUTOR``: the one place that decides how steps run.

- ``multiprocess`` (default: ``make dev``, the daemon, a run pod on AKS): each step in its own process, at most
  ``KPI_LAKE_MAX_CONCURRENT`` at once (default: the machine's CPUs, at most 4).
- ``in_process``: every step in the run's own process, one after another (what tests and ``kpi-lake sync``
  get anyway: ``execute_in_process`` always runs in process).
- ``celery``: steps sent to Celery workers through a broker (``KPI_LAKE_CELERY_BROKER``, e.g.
  ``redis://…`` or ``pyamqp://…``; results through ``KPI_LAKE_CELERY_BACKEND``, default ``rpc://``). Needs the
  ``dagster-celery`` package on the run worker and every Celery worker.
- ``dask``: steps sent to the workers of a Dask cluster (``KPI_LAKE_DASK_SCHEDULER``, e.g.
  ``tcp://scheduler:8786``), each run inside a worker process. Needs the ``distributed`` package (the project's
  ``dask`` extra) on the run worker and every Dask worker, and a persistent instance that every worker reaches
  (PostgreSQL: ``deploy/dagster/dagster.yaml``). See "A Dask cluster" below.

Whatever the executor, steps share only the lake and the Dagster instance: every asset reads its inputs from
Delta tables and returns a ``MaterializeResult`` (no value handed on through an IO manager), temporary files
live and die inside one step, and each table's writes are serialised by its pool, whose slots are held in the
instance's database, so they hold across processes and machines. The multiprocess, in-process and ``dask``
executors claim those slots; whether the installed ``dagster-celery`` does is to be checked before relying on it
(the releases read while writing this did not).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import dagster as dg
from dagster._core.events import EngineEventData
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.step_delegating import (
    CheckStepHealthResult,
    StepDelegatingExecutor,
    StepHandler,
    StepHandlerContext,
)
from dagster_shared.serdes import deserialize_value, serialize_value

EXECUTOR_VARIABLE = "KPI_LAKE_EXECUTOR"
MAX_CONCURRENT_VARIABLE = "KPI_LAKE_MAX_CONCURRENT"
DASK_SCHEDULER_VARIABLE = "KPI_LAKE_DASK_SCHEDULER"
EXECUTORS = ("multiprocess", "in_process", "celery", "dask")

#: At 10 million rows one step peaked at 2 GB; four at once stay within a 16 GiB machine with room to spare.
DEFAULT_MAX_CONCURRENT = 4


def max_concurrent() -> int:
    """Steps at once for the multiprocess executor: ``KPI_LAKE_MAX_CONCURRENT``, else the CPUs (at most 4)."""
    value = os.environ.get(MAX_CONCURRENT_VARIABLE, "").strip()
    if not value:
        return max(1, min(DEFAULT_MAX_CONCURRENT, os.cpu_count() or 1))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_CONCURRENT_VARIABLE}={value!r}: expected a whole number of steps, 1 or more")
    return int(value)


def executor_from_env() -> dg.ExecutorDefinition:
    """The executor named by ``KPI_LAKE_EXECUTOR`` (default ``multiprocess``), configured from the environment."""
    name = os.environ.get(EXECUTOR_VARIABLE, "").strip().lower() or "multiprocess"
    if name == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": max_concurrent()}, name="multiprocess")
    if name == "in_process":
        return dg.in_process_executor
    if name == "celery":
        return _celery_executor()
    if name == "dask":
        return _dask_executor()
    raise ValueError(f"{EXECUTOR_VARIABLE}={name!r}: expected one of {', '.join(EXECUTORS)}")


def _celery_executor() -> dg.ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as error:
        raise RuntimeError(
            f"{EXECUTOR_VARIABLE}=celery needs the dagster-celery package (the same version as dagster) on the "
            "run worker and on every Celery worker: add it to the image, e.g. `uv add dagster-celery`"
        ) from error
    if not os.environ.get("KPI_LAKE_CELERY_BROKER"):
        raise RuntimeError(
            f"{EXECUTOR_VARIABLE}=celery needs KPI_LAKE_CELERY_BROKER, the broker's URL (redis://… or pyamqp://…)"
        )
    config: dict = {"broker": {"env": "KPI_LAKE_CELERY_BROKER"}}
    if os.environ.get("KPI_LAKE_CELERY_BACKEND"):
        config["backend"] = {"env": "KPI_LAKE_CELERY_BACKEND"}
    return celery_executor.configured(config, name="celery")


# --- A Dask cluster ----------------------------------------------------------------------------------------------
#
# dagster-dask's own executor hands the whole plan to Dask at once and runs each step with ``execute_plan``, which
# never claims a pool slot: under it the one-writer-per-table pools would not hold. So the run is orchestrated by
# Dagster's own step-delegating executor (the one under ``k8s_job_executor`` and ``docker_executor``): it claims
# each step's pool slot in the instance before launching the step, follows the step through the event log, and
# fails a step whose worker died (a health check). Dask only carries the step to a worker: the task runs the
# body of ``dagster api execute_step`` in the worker process (code and Great Expectations are imported once per
# worker, not once per step), and the step writes its events straight into the shared instance.

#: Metadata key of the engine event a worker writes when it starts a step: which Dask worker ran it.
DASK_WORKER_KEY = "dask_worker"


def _dask_executor() -> dg.ExecutorDefinition:
    try:
        import distributed  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"{EXECUTOR_VARIABLE}=dask needs the distributed package on the run worker and on every Dask worker: "
            "install the project's dask extra (`uv sync --extra dask`)"
        ) from error
    if not os.environ.get(DASK_SCHEDULER_VARIABLE):
        raise RuntimeError(
            f"{EXECUTOR_VARIABLE}=dask needs {DASK_SCHEDULER_VARIABLE}, the Dask scheduler's address "
            "(tcp://host:8786)"
        )
    return dask_executor.configured({"scheduler": {"env": DASK_SCHEDULER_VARIABLE}}, name="dask")


@dg.executor(
    name="dask",
    config_schema={
        "scheduler": dg.Field(dg.StringSource, description="The Dask scheduler's address, tcp://host:port."),
        "max_concurrent": dg.Field(
            int,
            is_required=False,
            description="Steps launched at once (default: the cluster's worker threads when the run starts).",
        ),
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def dask_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Steps on a Dask cluster, under Dagster's pools and step health checks (see above)."""
    config = init_context.executor_config
    handler = DaskStepHandler(config["scheduler"])
    return _DaskRunExecutor(
        handler,
        retries=RetryMode.ENABLED,  # the assets' retry policies (transient storage errors) apply
        max_concurrent=config.get("max_concurrent") or handler.cluster_threads(),
        # A step whose task Dask runs again (its first worker died) must not run twice: the step worker checks
        # the event log first and does nothing for a step already started; the health check then fails it.
        should_verify_step=True,
        check_step_health_interval_seconds=5,
    )


class DaskStepHandler(StepHandler):
    """Launches each step as a task on the Dask cluster; a step's health is its task's state."""

    def __init__(self, scheduler: str):
        self._scheduler = scheduler
        self._client = None
        self._futures: dict[str, object] = {}

    @property
    def name(self) -> str:
        return "DaskStepHandler"

    def client(self):
        if self._client is None:
            from distributed import Client

            self._client = Client(self._scheduler, timeout="30s", set_as_default=False)
        return self._client

    def cluster_threads(self) -> int:
        """Worker threads in the cluster now (at least 1): how many steps can run at once."""
        return max(1, sum(self.client().nthreads().values()))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @staticmethod
    def _step_key(context: StepHandlerContext) -> str:
        (step_key,) = context.execute_step_args.step_keys_to_execute
        return step_key

    def launch_step(self, step_handler_context: StepHandlerContext) -> Iterator[dg.DagsterEvent]:
        args = step_handler_context.execute_step_args
        step_key = self._step_key(step_handler_context)
        task = f"{args.run_id}.{step_key}"
        self._futures[step_key] = self.client().submit(
            run_step_on_dask_worker, serialize_value(args), key=task, pure=False, retries=0
        )
        yield dg.DagsterEvent.engine_event(
            step_handler_context.get_step_context(step_key),
            f"Step {step_key} sent to the Dask cluster at {self._scheduler} (task {task}).",
            EngineEventData(),
        )

    def check_step_health(self, step_handler_context: StepHandlerContext) -> CheckStepHealthResult:
        future = self._futures.get(self._step_key(step_handler_context))
        if future is None:
            return CheckStepHealthResult.unhealthy("no Dask task was sent for this step by this run")
        status = future.status
        if status in ("pending", "finished") and not (status == "finished" and future.result() is False):
            return CheckStepHealthResult.healthy()
        if status == "finished":
            return CheckStepHealthResult.unhealthy(
                "its Dask task ran again after a worker was lost, and found the step already started"
            )
        reason = f"its Dask task is {status}"
        if status == "error":
            reason += f": {future.exception()!r}"
        return CheckStepHealthResult.unhealthy(reason)

    def terminate_step(self, step_handler_context: StepHandlerContext) -> Iterator[dg.DagsterEvent]:
        step_key = self._step_key(step_handler_context)
        future = self._futures.get(step_key)
        if future is not None:
            future.cancel()
        yield dg.DagsterEvent.engine_event(
            step_handler_context.get_step_context(step_key),
            f"Dask task of step {step_key} cancelled (a step already running finishes on its worker).",
            EngineEventData(),
        )


def run_step_on_dask_worker(serialized_args: str) -> bool:
    """The Dask task: run one step in this worker process, as ``dagster api execute_step`` would.

    Returns False when the step was not run because the event log shows it already started (the task ran
    again after its first worker died). The step's events go to the instance, not back through Dask.
    """
    from dagster._cli.api import _execute_step_command_body
    from dagster._grpc.types import ExecuteStepArgs
    from distributed import get_worker

    args = deserialize_value(serialized_args, ExecuteStepArgs)
    (step_key,) = args.step_keys_to_execute
    worker = get_worker()
    with dg.DagsterInstance.from_ref(args.instance_ref) as instance:
        run = instance.get_run_by_id(args.run_id)
        if run is None:
            raise RuntimeError(f"run {args.run_id} not found in the instance this Dask worker reached")
        instance.report_engine_event(
            f"Step {step_key} running on Dask worker {worker.name} ({worker.address}, pid {os.getpid()}).",
            run,
            EngineEventData(
                metadata={
                    DASK_WORKER_KEY: dg.MetadataValue.text(str(worker.name)),
                    "dask_worker_address": dg.MetadataValue.text(worker.address),
                    "pid": dg.MetadataValue.int(os.getpid()),
                }
            ),
            step_key=step_key,
        )
        events = list(_execute_step_command_body(args, instance, run))
    started = any(event.is_step_start for event in events)
    return started or not args.should_verify_step


class _DaskRunExecutor(StepDelegatingExecutor):
    """Dagster's step-delegating executor, closing the Dask client when the run's orchestration ends."""

    def __init__(self, handler: DaskStepHandler, **kwargs):
        super().__init__(handler, **kwargs)
        self._handler = handler

    def execute(self, plan_context, execution_plan):
        try:
            yield from super().execute(plan_context, execution_plan)
        finally:
            self._handler.close()
