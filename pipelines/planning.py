"""The nightly sync runs what changed: each source is checked first, cheaply, and only the bronze tables whose
source changed are run, with everything downstream of them (and their quality checks). A night with nothing
new starts no run at all.

What a source's check looks at (its *probe*, a short digest):

- a file table: the name and fingerprint of every landing file it takes (size and modification time, or the
  blob's ETag on Azure: ``LandingZone.list_files``); a file still being written has none, so it is run;
- a database table: :func:`kpi_lake.bronze.source_fingerprint` (columns, row count, newest stamp, sum of
  keys, and the rows inside the look-back window), and the table is run anyway when its weekly full
  reconciliation is due.

The probes of the last successful sync are recorded in the lake (``_kpi_lake/sync_plan/current.json``), with
a fingerprint of the code and settings that build the tables. Everything runs when there is no record, when
that fingerprint changed (new code, SQL models, expectations, a package upgrade, a new pseudonym key), and
once a week (:data:`FULL_RUN_EVERY`) whatever happened: a table damaged or removed by hand is rebuilt.

A plan's probes are recorded only once its run has succeeded (``kpi-lake sync`` records them itself; a run the
schedule launched is recorded by the ``sync_plan_recorded`` sensor). A run that failed records nothing, so the
next night runs the same sources and their downstream again, and each step's own check (bronze's hashes and
keys, the ``built_from`` record of silver and gold) picks up where it stopped. Probes are taken before the run:
a source that changes while the run reads it is run again the next night.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from kpi_lake.storage import join_uri

if TYPE_CHECKING:
    from kpi_lake.bronze import DatabaseTable, FileTable
    from resources.business_db import BusinessDatabase
    from resources.lake import DeltaLake
    from resources.landing import LandingZone

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PLAN_PATH = "_kpi_lake/sync_plan"
#: Run tag naming the plan a run carries out (its probes are recorded when the run succeeds).
PLAN_TAG = "kpi_lake/plan"
#: Everything is run at least this often, whatever the probes say.
FULL_RUN_EVERY = dt.timedelta(days=7)
#: A plan launched but never recorded (its run failed) is forgotten after this long.
PENDING_KEPT = dt.timedelta(days=7)
#: What builds the tables: a change to any file here (Python, SQL models, expectations) runs everything.
CODE_FOLDERS = ("assets", "kpi_lake", "resources", "pipelines", "dbt_like_sql", "expectations")
PACKAGES = ("dagster", "deltalake", "polars", "pyarrow", "great-expectations", "sqlalchemy")
#: Settings that change what is built (their values are hashed, never stored or logged).
SETTINGS = (
    "KPI_LAKE_DB_LOOKBACK_HOURS",
    "KPI_LAKE_DB_FULL_RECONCILIATION_DAYS",
    "KPI_LAKE_PSEUDONYM_KEY",
    "KPI_LAKE_ALLOW_DEV_KEY",
)
_VERSION = 1


@dataclass
class SyncPlan:
    """What a sync will run, and why."""

    plan_id: str
    planned_at: dt.datetime
    code: str
    #: Bronze table path → probe (None: could not be checked, so it runs and is not recorded).
    probes: dict[str, str | None]
    #: Bronze table path → why it runs (changed files, changed rows, reconciliation due, …).
    changed: dict[str, str] = field(default_factory=dict)
    #: Why every asset runs, when it does.
    everything: str | None = None
    #: The assets to run (bronze that changed and everything downstream); empty: nothing to do.
    selection: list[dg.AssetKey] = field(default_factory=list)
    #: When the last recorded sync was planned (None: never).
    last_synced_at: dt.datetime | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.selection

    @property
    def asset_selection(self) -> list[dg.AssetKey] | None:
        """The run's asset selection: None (the whole job) when everything runs."""
        return None if self.everything else self.selection

    def summary(self) -> str:
        """One line for a log, a skip reason or the command's output."""
        if self.everything:
            return f"running every asset ({len(self.selection)}): {self.everything}"
        if self.nothing_to_do:
            since = f" (planned {self.last_synced_at:%Y-%m-%d %H:%M} UTC)" if self.last_synced_at else ""
            return f"nothing changed at any of {len(self.probes)} sources since the last sync{since}"
        reasons = "; ".join(f"{path}: {why}" for path, why in sorted(self.changed.items()))
        return f"{len(self.changed)} of {len(self.probes)} sources changed, {len(self.selection)} assets to run ({reasons})"

    def to_document(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "planned_at": self.planned_at.isoformat(),
            "code": self.code,
            "everything": self.everything is not None,
            "probes": {path: probe for path, probe in sorted(self.probes.items()) if probe is not None},
        }


# ---- the code and settings that build the tables -------------------------------------------------------------
def code_fingerprint(today: dt.date | None = None) -> str:
    """A digest of every file that builds the tables, the versions of the packages that matter, the settings
    that change what is built, and the latest period SPAR.net rows may report (it moves each April)."""
    from kpi_lake.conform.spar_net import latest_plausible_period_end

    digest = hashlib.sha256()
    for folder in CODE_FOLDERS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    for package in PACKAGES:
        try:
            digest.update(f"{package}={metadata.version(package)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package}=-\0".encode())
    for setting in SETTINGS:
        digest.update(f"{setting}={os.environ.get(setting, '')}\0".encode())
    digest.update(latest_plausible_period_end(today or dt.date.today()).isoformat().encode())
    return digest.hexdigest()[:32]


# ---- probes -----------------------------------------------------------------------------------------------------
def file_probes(landing: LandingZone, tables: Iterable[FileTable]) -> dict[str, str | None]:
    """Each file table's probe: a digest of the names and fingerprints of the files it takes (each folder listed
    once). None when a file has no fingerprint yet (still being written): such a table always runs."""
    by_source: dict[str, list[FileTable]] = {}
    for table in tables:
        by_source.setdefault(table.source, []).append(table)
    probes: dict[str, str | None] = {}
    for source, specs in sorted(by_source.items()):
        files = landing.list_files(source)
        for spec in specs:
            taken = [f for f in files if spec.takes_name(f.name)]
            if any(f.fingerprint is None for f in taken):
                probes[spec.ref.path] = None
                continue
            listing = "\n".join(f"{f.name}\t{f.fingerprint}" for f in taken)
            probes[spec.ref.path] = hashlib.sha256(listing.encode()).hexdigest()[:32]
    return probes


def database_probes(
    business_db: BusinessDatabase, tables: Iterable[DatabaseTable]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Each database table's probe, and why a table could not be checked (it then runs, and its bronze step
    fails with its own error if the database is really unreachable)."""
    from kpi_lake.bronze import source_fingerprint

    tables = list(tables)
    probes: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    try:
        with business_db.engine() as engine:
            for spec in tables:
                try:
                    probes[spec.ref.path] = source_fingerprint(spec, engine)
                except Exception as exc:  # a missing table, a renamed column: the bronze step says what
                    probes[spec.ref.path] = None
                    errors[spec.ref.path] = _not_checked(exc, business_db)
    except Exception as exc:  # no database at all
        for spec in tables:
            probes[spec.ref.path] = None
            errors[spec.ref.path] = _not_checked(exc, business_db)
    return probes, errors


def _not_checked(exc: Exception, business_db: BusinessDatabase) -> str:
    """Why a table could not be checked, on one line, without the database's password."""
    message = (str(exc).strip().splitlines() or [""])[0][:200]
    if business_db.url:
        import sqlalchemy as sa

        password = sa.engine.make_url(business_db.url).password
        if password:
            message = message.replace(str(password), "***")
    return f"could not be checked ({type(exc).__name__}: {message})"


def reconciliation_due(
    instance: dg.DagsterInstance,
    tables: Iterable[DatabaseTable],
    now: dt.datetime,
    last_full_run: dt.datetime | None = None,
) -> dict[str, str]:
    """The database tables whose periodic full reconciliation is due (from their last materialisation in
    ``instance``, as the bronze step decides it), with why. An instance that holds no materialisation of a
    table (an in-memory one: ``kpi-lake sync`` without ``DAGSTER_HOME``) reads it whole whenever it runs, so
    there the last full run of the lake (``last_full_run``) is when it was last reconciled."""
    from assets.bronze.factory import full_reconciliation_of

    due = {}
    for spec in tables:
        event = instance.get_latest_materialization_event(dg.AssetKey(spec.ref.key_path))
        last = full_reconciliation_of(event) if event is not None else last_full_run
        if last is None:
            due[spec.ref.path] = "no full reconciliation on record"
        elif now - last >= spec.full_reconciliation_every:
            due[spec.ref.path] = f"full reconciliation due (last {last:%Y-%m-%d %H:%M} UTC)"
    return due


# ---- the plan ---------------------------------------------------------------------------------------------------
def plan_sync(
    *,
    lake: DeltaLake,
    landing: LandingZone,
    business_db: BusinessDatabase,
    instance: dg.DagsterInstance,
    asset_graph: Any,
    everything: str | None = None,
    now: dt.datetime | None = None,
) -> SyncPlan:
    """Check every source and decide what tonight's sync runs. ``everything`` forces a full run (and says why)."""
    from assets.bronze import DATABASE_TABLES, FILE_TABLES
    from assets.gold.reports import REPORT_KEY

    now = now or dt.datetime.now(dt.UTC)
    code = code_fingerprint(now.date())
    probes = file_probes(landing, FILE_TABLES)
    db_probes, errors = database_probes(business_db, DATABASE_TABLES)
    probes.update(db_probes)
    record = read_record(lake)
    plan = SyncPlan(uuid.uuid4().hex[:16], now, code, probes)
    recorded = record.get("probes", {}) if record else {}
    if record:
        plan.last_synced_at = _parse_time(record.get("planned_at"))
    full_at = _parse_time(record.get("full_at")) if record else None
    if everything is None:
        if not record:
            everything = "no sync recorded in this lake yet"
        elif record.get("code") != code:
            everything = "the code or settings that build the tables changed since the last sync"
        elif full_at is None or now - full_at >= FULL_RUN_EVERY:
            everything = f"weekly full run (last {full_at:%Y-%m-%d})" if full_at else "weekly full run"
    for path, probe in probes.items():
        if probe is None:
            plan.changed[path] = errors.get(path, "a file is still being written")
        elif recorded.get(path) != probe:
            plan.changed[path] = (
                "new or changed since the last sync" if path in recorded else "not synced yet"
            )
    for path, why in reconciliation_due(instance, DATABASE_TABLES, now, full_at).items():
        plan.changed.setdefault(path, why)
    job_keys = set(asset_graph.get_all_asset_keys()) - {REPORT_KEY}
    for key in job_keys:
        # A bronze asset of a kind with no check here (a new kind of source) runs every night, never silently
        # skipped. Other roots (the KPI catalogue's SQL seeds) are code alone: the code fingerprint covers them.
        path = key.to_user_string()
        if key.path[0] == "bronze" and path not in probes and not asset_graph.get(key).parent_keys:
            plan.changed[path] = "no change check for this kind of source: runs every night"
    if everything:
        plan.everything = everything
        selected = job_keys
    else:
        by_path = {key.to_user_string(): key for key in job_keys}
        changed = [by_path[path] for path in plan.changed if path in by_path]
        selected = (
            set(dg.AssetSelection.assets(*changed).downstream().resolve(asset_graph)) & job_keys
            if changed
            else set()
        )
    plan.selection = sorted(selected, key=lambda key: key.to_user_string())
    return plan


# ---- the record -------------------------------------------------------------------------------------------------
def _uri(lake: DeltaLake, name: str) -> str:
    return join_uri(lake.root, PLAN_PATH, name)


def _read(lake: DeltaLake, name: str) -> dict[str, Any] | None:
    try:
        document = json.loads(lake.read_document(_uri(lake, name)).decode())
    except (OSError, ValueError, UnicodeDecodeError):  # none yet, or unreadable: as if never synced
        return None
    return document if isinstance(document, dict) and document.get("version") == _VERSION else None


def _write(lake: DeltaLake, name: str, document: Mapping[str, Any]) -> None:
    data = json.dumps({"version": _VERSION, **document}, indent=1, sort_keys=True).encode()
    lake.write_document(_uri(lake, name), data)


def read_record(lake: DeltaLake) -> dict[str, Any] | None:
    """The probes of the last successful sync, with when it was planned and the code it ran."""
    return _read(lake, "current.json")


def record_plan(lake: DeltaLake, plan: Mapping[str, Any]) -> None:
    """Record a plan whose run succeeded: its probes replace those recorded (sources it could not check keep
    nothing, so they run next time). A plan older than the one recorded changes nothing that is newer."""
    record = read_record(lake) or {"probes": {}}
    planned_at = _parse_time(plan["planned_at"])
    recorded_at = _parse_time(record.get("planned_at"))
    if recorded_at is not None and planned_at is not None and planned_at < recorded_at:
        return  # a late-recorded older run: the newer record already covers it
    full_at = plan["planned_at"] if plan.get("everything") else record.get("full_at")
    _write(
        lake,
        "current.json",
        {
            "plan_id": plan["plan_id"],
            "planned_at": plan["planned_at"],
            "full_at": full_at,
            "code": plan["code"],
            "probes": {**record.get("probes", {}), **plan["probes"]},
        },
    )


def save_pending(lake: DeltaLake, plan: SyncPlan) -> None:
    """Keep a launched plan until its run succeeds (``pending.json``, by plan id); plans older than
    :data:`PENDING_KEPT` (their runs failed) are dropped."""
    pending = (_read(lake, "pending.json") or {}).get("plans", {})
    cutoff = plan.planned_at - PENDING_KEPT
    kept = {
        plan_id: entry
        for plan_id, entry in pending.items()
        if (_parse_time(entry.get("planned_at")) or cutoff) > cutoff
    }
    kept[plan.plan_id] = plan.to_document()
    _write(lake, "pending.json", {"plans": kept})


def record_pending(lake: DeltaLake, plan_id: str) -> bool:
    """Record the pending plan ``plan_id`` (its run succeeded) and forget it; False when it is not pending."""
    pending = (_read(lake, "pending.json") or {}).get("plans", {})
    entry = pending.pop(plan_id, None)
    if entry is None:
        return False
    record_plan(lake, entry)
    _write(lake, "pending.json", {"plans": pending})
    return True


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


__all__ = [
    "PLAN_TAG",
    "SyncPlan",
    "code_fingerprint",
    "database_probes",
    "file_probes",
    "plan_sync",
    "read_record",
    "record_pending",
    "record_plan",
    "save_pending",
]
