"""The executor a launched run uses, chosen by ``KPI_LAKE_EXECUTOR``: the one place that decides how steps run.

- ``multiprocess`` (default: ``make dev``, the daemon, a run pod on AKS): each step in its own process, at most
  ``KPI_LAKE_MAX_CONCURRENT`` at once (default: the machine's CPUs, at most 4).
- ``in_process``: every step in the run's own process, one after another (what tests and ``kpi-lake sync``
  get anyway: ``execute_in_process`` always runs in process).
- ``celery``: steps sent to Celery workers through a broker (``KPI_LAKE_CELERY_BROKER``, e.g.
  ``redis://…`` or ``pyamqp://…``; results through ``KPI_LAKE_CELERY_BACKEND``, default ``rpc://``). Needs the
  ``dagster-celery`` package on the run worker and every Celery worker.

Whatever the executor, steps share only the lake and the Dagster instance: every asset reads its inputs from
Delta tables and returns a ``MaterializeResult`` (no value handed on through an IO manager), temporary files
live and die inside one step, and each table's writes are serialised by its pool, whose slots are held in the
instance's database, so they hold across processes and machines.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_VARIABLE = "KPI_LAKE_EXECUTOR"
MAX_CONCURRENT_VARIABLE = "KPI_LAKE_MAX_CONCURRENT"
EXECUTORS = ("multiprocess", "in_process", "celery")

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
