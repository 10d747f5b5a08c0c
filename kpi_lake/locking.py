"""One run at a time per lake, and recovery from runs that died.

**The lake lock.** Every run that writes the lake holds its lock for the whole run: ``kpi-lake sync`` takes it
before the job starts and keeps it until the Data Docs are written; runs launched by the schedule, a sensor
or the UI take it in the run worker, before the first step (the code location's executor,
:func:`pipelines.locked_executor.lake_locked_executor`). A second run waits for it, saying who holds it, up to a
timeout (``KPI_LAKE_LOCK_TIMEOUT`` seconds, default :data:`DEFAULT_TIMEOUT_SECONDS`; ``kpi-lake sync
--lock-timeout``), then fails with a message naming the holder. A lock outlives no process:

* on a local folder it is an OS file lock (``fcntl.flock``) on ``<lake>/_kpi_lake/lake.lock``: the kernel
  releases it when the holding process ends, ``kill -9`` included;
* on Azure it is a blob lease on the blob ``<lake>/_kpi_lake/lake.lock``, taken for
  ``KPI_LAKE_LOCK_LEASE_SECONDS`` (15-60, default 60) and renewed by a background thread while the run lives:
  a killed run's lease expires within that time.

The holder (run id, host, process id, since when, which command) is written beside the lock (into the file,
or the blob's metadata) so that a waiting run can say what it waits for.

**Dead runs.** A run killed mid-flight leaves its Dagster concurrency-pool slots claimed and its status
"started" for ever, and every later run waits on those slots. :func:`recover_dead_runs` runs once the lock is
held, before any step: every run still holding slots, or still "started" for this lake, whose process is gone
(or that holds slots while this run holds the lake lock, which no live run of this lake can) is marked failed
and its slots freed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kpi_lake.storage import is_remote, join_uri, local_path, parse_azure_uri, redact

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from resources.azure import AzureStorage

#: Where the lock lives below the lake root.
LOCK_PATH = "_kpi_lake/lake.lock"
#: How long a run waits for the lake lock before failing (seconds): a nightly run outlasting an hour-long
#: manual sync still runs; one stuck behind a hung run fails in the morning's alerts rather than never.
DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_LEASE_SECONDS = 60
#: Run tags that tell which lake a run writes and which process runs it (to tell dead runs from live ones).
TAG_LAKE = "kpi_lake/lake"
TAG_HOST = "kpi_lake/host"
TAG_PID = "kpi_lake/pid"
TAG_PID_STARTED = "kpi_lake/pid_started"


class LakeLockError(RuntimeError):
    """The lake lock could not be taken: held by another run past the timeout, or not writable at all."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) the lake lock."""

    run_id: str
    command: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        return f"{self.command} (run {self.run_id}, process {self.pid} on {self.host}, since {self.since})"

    @classmethod
    def current(cls, run_id: str, command: str) -> Holder:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return cls(run_id=run_id, command=command, host=socket.gethostname(), pid=os.getpid(), since=now)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Holder | None:
        try:
            return cls(
                run_id=str(data["run_id"]),
                command=str(data["command"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                since=str(data["since"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def lock_timeout_from_env() -> float:
    value = os.environ.get("KPI_LAKE_LOCK_TIMEOUT", "").strip()
    return float(value) if value else DEFAULT_TIMEOUT_SECONDS


def lake_id(root: str) -> str:
    """The lake as a run tag: its root, without credentials."""
    return redact(root).rstrip("/")


def run_tags(root: str) -> dict[str, str]:
    """Tags for a run this process executes: which lake, which host and process (see :func:`process_alive`)."""
    return {
        TAG_LAKE: lake_id(root),
        TAG_HOST: socket.gethostname(),
        TAG_PID: str(os.getpid()),
        TAG_PID_STARTED: _process_start(os.getpid()) or "",
    }


# ---- the lock ---------------------------------------------------------------------------------------------------
#: Lakes whose lock this process holds (by :func:`lake_id`), with the run it holds it for: that run, executed
#: here while the lock is held (``kpi-lake sync``), must not wait for itself. Any other run still waits.
_HELD_HERE: dict[str, str] = {}


def held_by_this_process(root: str, run_id: str) -> bool:
    return _HELD_HERE.get(lake_id(root)) == run_id


class LakeLock:
    """The lake's lock. ``acquire`` waits (sleeping, never spinning) up to ``timeout`` seconds, calling
    ``on_wait(holder, waited_seconds)`` when it starts waiting and then every ``report_every`` seconds."""

    where: str
    root: str

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def holder(self) -> Holder | None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def acquire(
        self,
        timeout: float,
        on_wait: Callable[[Holder | None, float], None] = lambda *_: None,
        report_every: float = 60.0,
    ) -> None:
        for holder, waited in self.waiting(timeout, report_every):
            on_wait(holder, waited)

    def waiting(self, timeout: float, report_every: float = 60.0) -> Iterator[tuple[Holder | None, float]]:
        """Take the lock, yielding ``(holder, seconds waited)`` when the wait starts and every ``report_every``
        seconds after; raises :class:`LakeLockError` after ``timeout`` seconds."""
        started = time.monotonic()
        next_report = 0.0
        pause = 0.2
        while not self.try_acquire():
            waited = time.monotonic() - started
            holder = self.holder()
            if waited >= timeout:
                who = holder.describe() if holder else "another run"
                raise LakeLockError(
                    f"the lake {self.where} is locked by {who}; gave up after {waited:.0f}s "
                    f"(timeout {timeout:.0f}s: KPI_LAKE_LOCK_TIMEOUT or --lock-timeout). "
                    "Wait for that run to finish, or stop it, and run again."
                )
            if waited >= next_report:
                yield holder, waited
                next_report = waited + report_every
            time.sleep(min(pause, max(0.05, timeout - waited)))
            pause = min(pause * 1.5, 2.0)
        _HELD_HERE[lake_id(self.root)] = self.me.run_id

    def forget(self) -> None:
        _HELD_HERE.pop(lake_id(self.root), None)

    @contextlib.contextmanager
    def held(self, timeout: float, on_wait: Callable[[Holder | None, float], None] = lambda *_: None):
        self.acquire(timeout, on_wait)
        try:
            yield self
        finally:
            self.release()


class LocalLakeLock(LakeLock):
    """``fcntl.flock`` on ``<lake>/_kpi_lake/lake.lock``; the kernel releases it when the process ends."""

    def __init__(self, root: str, me: Holder):
        self.root = root
        self.path = local_path(join_uri(root, LOCK_PATH))
        self.where = str(local_path(root))
        self.me = me
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LakeLockError(
                f"cannot create the lake lock {self.path}: {exc.strerror or exc} "
                "(is the lake folder read-only, or the disk full?)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        try:  # who holds it, for whoever waits; best effort (a full disk must not stop the run here)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(self.me)).encode(), 0)
        except OSError:
            pass
        return True

    def holder(self) -> Holder | None:
        try:
            return Holder.parse(json.loads(self.path.read_text() or "{}"))
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        self.forget()
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class AzureLakeLease(LakeLock):
    """A lease on the blob ``<lake>/_kpi_lake/lake.lock``, for a bounded time, renewed while the run lives."""

    def __init__(self, root: str, azure: AzureStorage, me: Holder, lease_seconds: int | None = None):
        self.root = root
        location = parse_azure_uri(join_uri(root, LOCK_PATH))
        self.where = redact(root)
        self.me = me
        seconds = lease_seconds or int(os.environ.get("KPI_LAKE_LOCK_LEASE_SECONDS") or DEFAULT_LEASE_SECONDS)
        self.lease_seconds = max(15, min(60, seconds))  # what Azure allows for a finite lease
        service = _blob_service(azure, root)
        self._container = service.get_container_client(location.container)
        self._client = service.get_blob_client(location.container, location.path)
        self._lease: Any = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None

    def try_acquire(self) -> bool:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

        try:
            self._client.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass
        except ResourceNotFoundError:  # the container is missing: create it, then the blob
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            with contextlib.suppress(ResourceExistsError):
                self._client.upload_blob(b"", overwrite=False)
        except HttpResponseError as exc:
            if exc.status_code != 412:  # 412: leased by someone else, so it exists
                raise LakeLockError(
                    f"cannot create the lake lock blob at {self.where}: {exc.message}"
                ) from exc
        try:
            self._lease = self._client.acquire_lease(lease_duration=self.lease_seconds)
        except HttpResponseError as exc:
            if exc.status_code == 409:  # LeaseAlreadyPresent
                return False
            raise LakeLockError(
                f"cannot take the lease on the lake lock at {self.where}: {exc.message}"
            ) from exc
        metadata = {k: str(v) for k, v in asdict(self.me).items()}
        self._client.set_blob_metadata(metadata, lease=self._lease)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="kpi-lake-lease", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self._lease.renew()
            except Exception as exc:  # keep trying: a renewal may fail on a passing network error
                self.lost = str(exc).splitlines()[0][:200]

    def holder(self) -> Holder | None:
        try:
            properties = self._client.get_blob_properties()
        except Exception:
            return None
        if properties.lease.state != "leased":
            return None
        return Holder.parse(dict(properties.metadata or {}))

    def release(self) -> None:
        self.forget()
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
            self._renewer = None
        if self._lease is not None:
            # An expired lease is released already; one that cannot be released now (storage unreachable)
            # expires within lease_seconds: no retries, so that a run failing on an outage ends at once.
            with contextlib.suppress(Exception):
                self._lease.release(retry_total=0)
            self._lease = None


def lake_lock(
    root: str, azure: AzureStorage | None, run_id: str, command: str, lease_seconds: int | None = None
) -> LakeLock:
    """The lock of the lake at ``root`` (a folder, or an ``az://`` / ``abfss://`` URI)."""
    me = Holder.current(run_id, command)
    if is_remote(root):
        if azure is None:
            from resources.azure import AzureStorage

            azure = AzureStorage.from_env()
        return AzureLakeLease(root, azure, me, lease_seconds)
    return LocalLakeLock(root, me)


def _blob_service(azure: AzureStorage, root: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    from kpi_lake.storage import EMULATOR_ACCOUNT, EMULATOR_KEY, EMULATOR_URL

    # A resource built by AzureStorage.from_env() and not initialised by Dagster holds EnvVars: read them.
    azure = azure.process_config_and_initialize()
    if azure.use_emulator:
        endpoint = (azure.emulator_url or EMULATOR_URL).rstrip("/")
        return BlobServiceClient(
            f"{endpoint}/{EMULATOR_ACCOUNT}",
            credential={"account_name": EMULATOR_ACCOUNT, "account_key": EMULATOR_KEY},
        )
    account = azure.account_name or parse_azure_uri(root).account
    url = f"https://{account}.blob.core.windows.net"
    if azure.account_key:
        credential: Any = {"account_name": account, "account_key": azure.account_key}
    elif azure.sas_token:
        credential = azure.sas_token.lstrip("?")
    elif azure.client_id and azure.client_secret and azure.tenant_id:
        from azure.identity import ClientSecretCredential

        credential = ClientSecretCredential(azure.tenant_id, azure.client_id, azure.client_secret)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return BlobServiceClient(url, credential=credential)


# ---- dead runs --------------------------------------------------------------------------------------------------
def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused process id apart."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process that ran a run is alive: None when unknown (no tags, or another host)."""
    if tags.get(TAG_HOST) != socket.gethostname() or not tags.get(TAG_PID, "").isdigit():
        return None
    pid = int(tags[TAG_PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie: dead, not yet reaped
                return False
    except (OSError, IndexError):
        pass
    started = _process_start(pid)
    return not (tags.get(TAG_PID_STARTED) and started and started != tags[TAG_PID_STARTED])


def recover_dead_runs(instance: DagsterInstance, root: str, own_run_id: str | None) -> list[str]:
    """Mark runs of this lake whose process is gone as failed and free the concurrency slots they hold.

    Call only while holding the lake lock: then a run that holds pool slots and is of this lake (or from before
    runs were tagged with their lake) cannot be alive, since a live run of this lake would hold the lock.
    Returns one line per run recovered, for the log.
    """
    from dagster import DagsterRunStatus
    from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunsFilter

    storage = instance.event_log_storage
    holders = storage.get_concurrency_run_ids() if storage.supports_global_concurrency_limits else set()
    this_lake = lake_id(root)
    records = list(instance.get_run_records(RunsFilter(run_ids=list(holders)))) if holders else []
    records += instance.get_run_records(
        RunsFilter(
            tags={TAG_LAKE: this_lake},
            statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING],
        )
    )
    recovered: list[str] = []
    seen: set[str] = set()
    for record in records:
        run = record.dagster_run
        if run.run_id in seen or run.run_id == own_run_id:
            continue
        seen.add(run.run_id)
        holds_slots = run.run_id in holders
        if run.status in FINISHED_STATUSES:
            if holds_slots:
                storage.free_concurrency_slots_for_run(run.run_id)
                recovered.append(f"freed the pool slots still held by run {run.run_id} ({run.status.value})")
            continue
        alive = process_alive(dict(run.tags))
        ours = run.tags.get(TAG_LAKE) in (None, this_lake)
        if alive is False or (alive is None and holds_slots and ours):
            why = (
                f"its process {run.tags.get(TAG_PID)} is gone"
                if alive is False
                else "it holds pool slots while another run holds the lake lock"
            )
            instance.report_run_failed(
                run,
                f"Marked failed by run {own_run_id or '(kpi-lake sync)'}: {why} (killed, or its machine "
                "stopped). Its pool slots were freed; rerun to bring its tables up to date.",
            )
            if holds_slots:
                storage.free_concurrency_slots_for_run(run.run_id)
            recovered.append(f"run {run.run_id} ({run.job_name}) marked failed: {why}; its pool slots freed")
    return recovered


def busy_pools(instance: DagsterInstance, own_run_id: str | None = None) -> dict[str, set[str]]:
    """Pools whose slots are all claimed by other runs: pool → the runs holding it."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    busy: dict[str, set[str]] = {}
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        runs = {slot.run_id for slot in info.claimed_slots if slot.run_id != own_run_id}
        if runs and info.limit is not None and len(info.claimed_slots) >= info.limit:
            busy[key] = runs
    return busy


def wait_for_pools(
    instance: DagsterInstance,
    timeout: float,
    say: Callable[[str], None],
    own_run_id: str | None = None,
    poll: float = 5.0,
) -> None:
    """Wait, sleeping, until no pool is held by another (live) run, saying which pool and run it waits for.

    Dagster's in-process executor waits on a busy pool by polling without pause (a core at 100 %), so a run
    started from the command line waits here instead, before its first step."""
    started = time.monotonic()
    reported: dict[str, set[str]] = {}
    while busy := busy_pools(instance, own_run_id):
        waited = time.monotonic() - started
        if busy != reported:
            for pool, runs in busy.items():
                say(f"waiting for pool {pool}, held by run {', '.join(sorted(runs))}")
            reported = busy
        if waited >= timeout:
            pools = "; ".join(f"{pool} (run {', '.join(sorted(runs))})" for pool, runs in busy.items())
            raise LakeLockError(
                f"concurrency pools still held after {waited:.0f}s: {pools}. If that run is dead, mark it "
                "failed in the Dagster UI (or `dagster run delete`) and run again."
            )
        time.sleep(poll)
