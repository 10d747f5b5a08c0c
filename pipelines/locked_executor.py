"""Executors inside the lake lock: any executor (``pipelines/executors.py`` picks which) wrapped by :func:`lake_locked`.

Every run launched by the schedule, a sensor or the UI passes through its executor in the run worker, the one
process that lives for the whole run. This one takes the lake lock there before the first step, logs what it
waits for while another run holds it, marks runs that died as failed and frees their pool slots
(:mod:`kpi_lake.locking`), then runs the steps as Dagster's default executor would, and releases the lock at
the end. ``kpi-lake sync`` (in-process, which replaces the executor) takes the same lock itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.definitions.executor_definition import multi_or_in_process_executor
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.executor.base import Executor

from kpi_lake.locking import (
    held_by_this_process,
    lake_lock,
    lock_timeout_from_env,
    recover_dead_runs,
    run_tags,
)

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode


class LakeLockedExecutor(Executor):
    def __init__(self, inner: Executor):
        self.inner = inner

    @property
    def retries(self) -> RetryMode:
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        from pipelines.environment import lake_root

        root = lake_root()
        instance, run_id = plan_context.instance, plan_context.run_id
        instance.add_run_tags(run_id, run_tags(root))
        # `kpi-lake sync` holds the lock for this very run and executes it here: no waiting for itself.
        if held_by_this_process(root, run_id):
            yield DagsterEvent.engine_event(
                plan_context, f"The lake lock is held by this process ({os.getpid()})", EngineEventData()
            )
            yield from self.inner.execute(plan_context, execution_plan)
            return
        lock = lake_lock(root, None, run_id, f"run of {plan_context.job_name}")
        for holder, waited in lock.waiting(lock_timeout_from_env()):
            who = holder.describe() if holder else "another run"
            yield DagsterEvent.engine_event(
                plan_context,
                f"Waiting for the lake lock on {lock.where}, held by {who} ({waited:.0f}s so far)",
                EngineEventData(),
            )
        try:
            yield DagsterEvent.engine_event(
                plan_context,
                f"Holding the lake lock on {lock.where} (process {os.getpid()})",
                EngineEventData(),
            )
            for line in recover_dead_runs(instance, root, run_id):
                yield DagsterEvent.engine_event(plan_context, line, EngineEventData())
            yield from self.inner.execute(plan_context, execution_plan)
        finally:
            lock.release()


def lake_locked(inner: dg.ExecutorDefinition, name: str | None = None) -> dg.ExecutorDefinition:
    """``inner`` (configured or not: its config schema and mapping are kept) run inside the lake lock."""
    creation_fn = inner.executor_creation_fn
    assert creation_fn is not None, f"executor {inner.name} has no creation function"
    return dg.ExecutorDefinition(
        name=name or inner.name,
        config_schema=inner.config_schema,
        executor_creation_fn=lambda init_context: LakeLockedExecutor(creation_fn(init_context)),
        requirements=inner.get_requirements,
        description=f"{inner.description or inner.name}, inside the lake lock (one run at a time per lake).",
    )


#: Dagster's default executor (multiprocess unless configured ``in_process``), run inside the lake lock: the
#: code location's default for every job that does not choose its own.
lake_locked_executor = lake_locked(multi_or_in_process_executor, name="lake_locked_executor")
