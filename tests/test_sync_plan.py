"""The nightly sync runs what changed (pipelines/planning.py): sources are checked before a run is made, a quiet
night starts no run, a change runs its bronze table and everything downstream, and a plan is recorded only
once its run has succeeded."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from kpi_lake.sample_data import BUSINESS_DATABASE
from kpi_lake.tables import TableRef
from pipelines import planning
from pipelines.planning import PLAN_TAG, plan_sync, record_plan
from resources.business_db import BusinessDatabase
from tests.pipeline_helpers import local_resources, run_cli

FOI = "bronze/business_systems/foi_requests"
BINS = "bronze/business_systems/missed_bin_reports"
KPI_DEFINITIONS = "bronze/spar_net/kpi_definitions"


def _defs():
    from pipelines.definitions import defs

    return defs


def _downstream(*paths: str) -> set[dg.AssetKey]:
    from assets.gold.reports import REPORT_KEY

    graph = _defs().resolve_asset_graph()
    keys = [dg.AssetKey(path.split("/")) for path in paths]
    return set(dg.AssetSelection.assets(*keys).downstream().resolve(graph)) - {REPORT_KEY}


def _plan(resources: dict, instance: dg.DagsterInstance, **kwargs) -> planning.SyncPlan:
    kwargs.setdefault("asset_graph", _defs().resolve_asset_graph())
    with dg.build_resources(resources, instance=instance) as built:
        return plan_sync(
            lake=built.lake, landing=built.landing, business_db=built.business_db, instance=instance, **kwargs
        )


def _settled(landing: Path) -> Path:
    """The landing zone with every file last modified a minute ago: files just copied count as still being
    written (they have no fingerprint for two seconds), which a real landing zone's files are not."""
    old = (dt.datetime.now() - dt.timedelta(minutes=1)).timestamp()
    for path in landing.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    return landing


def _database(landing: Path) -> sqlite3.Connection:
    return sqlite3.connect(landing / BUSINESS_DATABASE)


def _newest_stamp(connection: sqlite3.Connection, table: str) -> dt.datetime:
    return dt.datetime.fromisoformat(connection.execute(f"select max(updated_at) from {table}").fetchone()[0])


def _stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _withdraw_first_foi_request(landing: Path) -> int:
    """An update at source, as a business system makes it: the oldest FOI request withdrawn, stamped after the
    newest row. Its id."""
    with _database(landing) as db:
        newest = _newest_stamp(db, "foi_requests")
        request_id = db.execute("select min(request_id) from foi_requests").fetchone()[0]
        db.execute(
            "update foi_requests set outcome = 'Withdrawn', updated_at = ? where request_id = ?",
            (_stamp(newest + dt.timedelta(minutes=5)), request_id),
        )
    return request_id


# ---- the planner on its own (no run) ----------------------------------------------------------------------------
def test_each_kind_of_change_is_found_and_runs_only_what_depends_on_it(
    landing_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    resources = local_resources(tmp_path / "lake", _settled(landing_copy))
    instance = dg.DagsterInstance.ephemeral()
    first = _plan(resources, instance)
    assert first.everything == "no sync recorded in this lake yet"
    assert set(first.selection) == _defs().resolve_job_def("nightly_sync").asset_layer.executable_asset_keys
    # Nothing is recorded until the plan's run has succeeded: the next plan still runs everything.
    assert _plan(resources, instance).everything == "no sync recorded in this lake yet"
    lake = resources["lake"]
    record_plan(lake, first.to_document())

    quiet = _plan(resources, instance)
    assert quiet.nothing_to_do and quiet.everything is None and quiet.changed == {}, quiet.changed
    assert "nothing changed at any of" in quiet.summary()

    # An update (a new stamp) and a hard delete, in two tables.
    _withdraw_first_foi_request(landing_copy)
    with _database(landing_copy) as db:
        db.execute("delete from missed_bin_reports where rowid = (select max(rowid) from missed_bin_reports)")
    changed = _plan(resources, instance)
    assert set(changed.changed) == {FOI, BINS}
    assert set(changed.selection) == _downstream(FOI, BINS)
    assert dg.AssetKey(KPI_DEFINITIONS.split("/")) not in changed.selection
    # Not recorded (the run failed, say): the same tables run again the next night.
    assert set(_plan(resources, instance).changed) == {FOI, BINS}
    record_plan(lake, changed.to_document())
    assert _plan(resources, instance).nothing_to_do

    # A change committed late, stamped earlier than the newest row but inside the look-back window: the bronze
    # step's look-back reads it, so the plan must run it.
    with _database(landing_copy) as db:
        newest = _newest_stamp(db, "foi_requests")
        db.execute(
            "update foi_requests set outcome = 'Refused', updated_at = ? where request_id = "
            "(select max(request_id) from foi_requests where updated_at < ?)",
            (_stamp(newest - dt.timedelta(hours=1)), _stamp(newest - dt.timedelta(hours=1))),
        )
    late = _plan(resources, instance)
    assert set(late.changed) == {FOI}
    record_plan(lake, late.to_document())

    # A landing file rewritten runs the tables that take it; one still being written runs too (no fingerprint).
    definitions = landing_copy / "spar_net" / "kpi_definitions.csv"
    definitions.write_bytes(definitions.read_bytes() + b"\n")
    old = (dt.datetime.now() - dt.timedelta(minutes=1)).timestamp()
    os.utime(definitions, (old, old))
    rewritten = _plan(resources, instance)
    assert set(rewritten.changed) == {KPI_DEFINITIONS}
    assert set(rewritten.selection) == _downstream(KPI_DEFINITIONS)
    record_plan(lake, rewritten.to_document())
    definitions.touch()
    writing = _plan(resources, instance)
    assert writing.changed == {KPI_DEFINITIONS: "a file is still being written"}
    record_plan(lake, writing.to_document())
    assert _plan(resources, instance).changed == {KPI_DEFINITIONS: "a file is still being written"}
    os.utime(definitions, (old, old))

    # A setting that changes what is built runs everything; so does a week without a full run.
    monkeypatch.setenv("KPI_LAKE_DB_LOOKBACK_HOURS", "48")
    assert "settings" in (_plan(resources, instance).everything or "")
    monkeypatch.delenv("KPI_LAKE_DB_LOOKBACK_HOURS")
    settled = _plan(resources, instance)
    record_plan(lake, settled.to_document())
    assert _plan(resources, instance).nothing_to_do
    week_later = _plan(resources, instance, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=8))
    assert week_later.everything and week_later.everything.startswith("weekly full run")
    # An older plan recorded late (its run finished after a newer one) does not undo the newer record.
    record_plan(lake, first.to_document())
    assert planning.read_record(lake)["plan_id"] == settled.plan_id


def test_a_bronze_source_the_planner_cannot_check_runs_every_night(landing_copy: Path, tmp_path: Path):
    @dg.asset(key=["bronze", "api", "requests"])
    def from_an_api() -> None: ...

    resources = local_resources(tmp_path / "lake", _settled(landing_copy))
    graph = dg.Definitions(assets=[*_defs().assets, from_an_api], resources=resources).resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()
    record_plan(resources["lake"], _plan(resources, instance, asset_graph=graph).to_document())
    plan = _plan(resources, instance, asset_graph=graph)
    assert plan.changed == {
        "bronze/api/requests": "no change check for this kind of source: runs every night"
    }
    assert plan.selection == [dg.AssetKey(["bronze", "api", "requests"])]


def test_an_unreachable_database_runs_its_tables_and_names_no_password(landing_copy: Path, tmp_path: Path):
    resources = local_resources(tmp_path / "lake", landing_copy)
    resources["business_db"] = BusinessDatabase(
        url="postgresql+psycopg://kpi:s3cret-pass@127.0.0.1:9/council", landing=resources["landing"]
    )
    plan = _plan(resources, dg.DagsterInstance.ephemeral())
    from assets.bronze import DATABASE_TABLES

    for spec in DATABASE_TABLES:
        assert plan.changed[spec.ref.path].startswith("could not be checked"), spec.ref
        assert plan.probes[spec.ref.path] is None
    assert "s3cret-pass" not in json.dumps(plan.changed)
    # Never recorded: unchecked tables run again next time.
    assert not plan.to_document()["probes"].keys() & {spec.ref.path for spec in DATABASE_TABLES}


# ---- the command ------------------------------------------------------------------------------------------------
def test_kpi_lake_sync_runs_nothing_on_a_quiet_night_and_only_the_changed_downstream_after(
    landing_copy: Path, tmp_path: Path
):
    home = tmp_path / "home"
    env = {
        "KPI_LAKE_ROOT": str(tmp_path / "lake"),
        "KPI_LAKE_LANDING": str(_settled(landing_copy)),
        "DAGSTER_HOME": str(home),
    }
    home.mkdir()
    first = run_cli(["sync"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "running every asset" in first.stdout and "no sync recorded" in first.stdout
    lake = local_resources(tmp_path / "lake", landing_copy)["lake"]
    versions = {
        path.relative_to(tmp_path / "lake").as_posix(): lake.version(
            TableRef.from_key_path(path.relative_to(tmp_path / "lake").parts)
        )
        for path in (tmp_path / "lake").glob("*/*/*")
        if (path / "_delta_log").is_dir()
    }
    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs_count()

    quiet = run_cli(["sync"], env)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "nothing to run" in quiet.stdout
    assert instance.get_runs_count() == runs, "a quiet night makes no run"
    for path, version in versions.items():
        assert lake.version(TableRef.from_key_path(path.split("/"))) == version, path

    request_id = _withdraw_first_foi_request(landing_copy)
    changed = run_cli(["sync"], env)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert f"{FOI}: new or changed since the last sync" in changed.stdout
    run = instance.get_runs(limit=1)[0]
    assert run.asset_selection == frozenset(_downstream(FOI))
    assert run.tags[PLAN_TAG]
    bronze = lake.scan(TableRef("bronze", "business_systems", "foi_requests"))
    assert bronze.filter(pl.col("request_id") == request_id).select("outcome").collect().item() == "Withdrawn"
    untouched = "bronze/spar_net/kpi_values"
    assert lake.version(TableRef.from_key_path(untouched.split("/"))) == versions[untouched]

    assert "nothing to run" in run_cli(["sync"], env).stdout
    everything = run_cli(["sync", "--all"], env)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert "running every asset" in everything.stdout and "asked for (--all)" in everything.stdout
    assert "no new files" in everything.stdout and "unchanged" in everything.stdout
    assert instance.get_runs(limit=1)[0].asset_selection is None  # the whole job


# ---- the schedule and the sensor that records its plans ---------------------------------------------------------
def test_the_schedule_launches_the_plan_and_the_sensor_records_it_once_the_run_succeeded(
    landing_copy: Path, tmp_path: Path
):
    code_location = _defs()  # the schedule, sensor and job as the code location holds them
    nightly_schedule = next(s for s in code_location.schedules if s.name == "nightly_sync_schedule")
    sync_plan_recorded = next(s for s in code_location.sensors if s.name == "sync_plan_recorded")
    resources = local_resources(tmp_path / "lake", _settled(landing_copy))
    lake = resources["lake"]
    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    defs = dg.Definitions(
        assets=code_location.assets,
        asset_checks=code_location.asset_checks,
        jobs=code_location.jobs,
        schedules=[nightly_schedule],
        sensors=[sync_plan_recorded],
        resources=resources,
    )
    repository = defs.get_repository_def()
    job = defs.resolve_job_def("nightly_sync")

    def tick():
        with dg.build_schedule_context(
            instance=instance, resources=resources, repository_def=repository
        ) as context:
            return nightly_schedule.evaluate_tick(context)

    def run_and_record(request: dg.RunRequest) -> None:
        result = job.execute_in_process(
            instance=instance, asset_selection=request.asset_selection, tags=request.tags
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        success = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS
        ).records[0]
        with dg.build_run_status_sensor_context(
            sensor_name="sync_plan_recorded",
            dagster_event=success.event_log_entry.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"lake": lake},
        ) as context:
            outcome = sync_plan_recorded(context)
        assert "recorded" in outcome.skip_message

    first = tick()
    [request] = first.run_requests
    assert request.asset_selection is None and request.tags[PLAN_TAG]
    run_and_record(request)
    quiet = tick()
    assert not quiet.run_requests and "nothing changed" in quiet.skip_message

    with _database(landing_copy) as db:
        newest = _newest_stamp(db, "foi_requests")
        db.execute(
            "insert into foi_requests (request_id, directorate, received_on, outcome, updated_at) "
            "select max(request_id) + 1, directorate, received_on, null, ? from foi_requests",
            (_stamp(newest + dt.timedelta(minutes=1)),),
        )
    [request] = tick().run_requests
    assert set(request.asset_selection) == _downstream(FOI)
    # Launched but not yet succeeded: a second evaluation (tomorrow's, after a failure) plans it again.
    [again] = tick().run_requests
    assert set(again.asset_selection) == _downstream(FOI)
    run_and_record(request)
    after = tick()
    assert not after.run_requests, after.skip_message
    rows = lake.scan(TableRef("bronze", "business_systems", "foi_requests")).select(pl.len()).collect().item()
    with _database(landing_copy) as db:
        assert rows == db.execute("select count(*) from foi_requests").fetchone()[0]
