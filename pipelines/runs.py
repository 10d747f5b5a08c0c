"""Run the nightly job from the command line as a real run of the code location's ``nightly_sync`` job.

``execute_in_process`` makes runs with no code-location origin, which the Dagster UI leaves off the job's page
and the timeline. Here the run is created with the same origin the UI's workspace gives it (location
``kpi_lake`` of ``workspace.yaml``), then executed in this process, step by step, so the command can show
progress as it goes. The steps run with the job's executor: ``kpi-lake sync`` sets ``KPI_LAKE_EXECUTOR=in_process``
before it imports the code location, so its run needs no daemon, no code server and no second copy of the code
location in memory.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

#: The code location's name in ``workspace.yaml``: runs are listed under it in the UI.
LOCATION_NAME = "kpi_lake"
MODULE_NAME = "pipelines.definitions"
ATTRIBUTE = "defs"
REPOSITORY_NAME = "__repository__"  # the repository a ``Definitions`` object makes
JOB_NAME = "nightly_sync"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: ``key:"bronze/education/ees_data"``: one asset by its whole key, no wildcard.
_ONE_KEY = re.compile(r'key:"([^"*\\\r\n]+)"')


@dataclass
class RunOutcome:
    """What the command needs of a finished run (the events it produced, in order)."""

    run_id: str
    success: bool
    events: list[Any] = field(default_factory=list)

    @property
    def all_events(self) -> list[Any]:
        return self.events

    def get_asset_materialization_events(self) -> list[Any]:
        return [e for e in self.events if e.event_type_value == "ASSET_MATERIALIZATION"]

    def get_asset_check_evaluations(self) -> list[Any]:
        return [
            e.asset_check_evaluation_data
            for e in self.events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]


def _recon_job(select: str | None, asset_keys: Iterable[dg.AssetKey] | None = None):
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module(
        MODULE_NAME, ATTRIBUTE, working_directory=str(PROJECT_ROOT)
    )
    recon_job = repository.get_reconstructable_job(JOB_NAME)
    if asset_keys is not None:
        keys = frozenset(asset_keys)
    elif select:
        keys = selected_keys(select, recon_job.get_definition().asset_layer.asset_graph)
    else:
        return recon_job, None
    return recon_job.get_subset(asset_selection=keys), keys


def selected_keys(select: str, asset_graph: Any) -> frozenset[dg.AssetKey]:
    """The keys of the job's assets that the selection string picks. One whole key (``key:"a/b/c"``, what the
    docs and the landing sensor's hints give) is matched as Dagster's selection syntax matches it, without
    loading that syntax's parser (antlr, ~50 ms); anything else goes through ``AssetSelection.from_string``."""
    one = _ONE_KEY.fullmatch(select.strip())
    if one:
        return frozenset(key for key in asset_graph.get_all_asset_keys() if key.to_user_string() == one[1])
    return frozenset(dg.AssetSelection.from_string(select).resolve(asset_graph))


def _remote_origin():
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name=MODULE_NAME,
            attribute=ATTRIBUTE,
            working_directory=str(PROJECT_ROOT),
        ),
        location_name=LOCATION_NAME,
    )
    return RemoteRepositoryOrigin(location, REPOSITORY_NAME).get_job_origin(JOB_NAME)


def run_nightly_sync(
    instance: dg.DagsterInstance,
    *,
    run_id: str,
    select: str | None = None,
    asset_keys: Iterable[dg.AssetKey] | None = None,
    tags: Mapping[str, str] | None = None,
    run_config: Mapping[str, Any] | None = None,
    on_plan: Callable[[list[str]], None] = lambda _: None,
    on_event: Callable[[Any], None] = lambda _: None,
) -> RunOutcome:
    """Create a run of ``nightly_sync`` (or of an asset selection of it: a selection string, or the keys of a
    sync plan) with the code location's origin in ``instance`` and execute it here. ``on_plan`` gets the step keys before the first step, ``on_event`` every
    event as it happens."""
    from dagster._core.execution.api import create_execution_plan, execute_run_iterator

    recon_job, asset_selection = _recon_job(select, asset_keys)
    job_def = recon_job.get_definition()
    run_config = dict(run_config or {})
    plan = create_execution_plan(
        recon_job, run_config=run_config, instance_ref=instance.get_ref() if instance.is_persistent else None
    )
    run = instance.create_run_for_job(
        job_def=job_def,
        execution_plan=plan,
        run_id=run_id,
        run_config=run_config,
        tags={**job_def.run_tags, **(tags or {})},
        asset_selection=asset_selection,
        remote_job_origin=_remote_origin(),
        job_code_origin=recon_job.get_python_origin(),
    )
    on_plan(list(plan.step_keys_to_execute))
    events = []
    for event in _events(execute_run_iterator(recon_job, run, instance)):
        events.append(event)
        on_event(event)
    finished = instance.get_run_by_id(run.run_id)
    return RunOutcome(run.run_id, finished is not None and finished.is_success, events)


def _events(iterator: Iterator[Any]) -> Iterator[Any]:
    yield from iterator
