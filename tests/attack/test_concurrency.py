"""Attack cases: runs that race, runs killed mid-flight, and storage that cannot be written.

Every case runs the real ``kpi-lake sync`` as a subprocess (its own process group, killed by its id) on the
small generated sample, bronze business systems and SPAR.net only (one Data Docs suite), and compares the lake
with a clean single build of the same selection: row count and a content hash per table (run-specific
lineage columns left out), and no key twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

from kpi_lake.business_tables import BUSINESS_TABLES
from kpi_lake.raw_files import LOADED_AT, RUN_ID, SOURCE_FILE, SOURCE_ROW, SOURCE_SHEET
from tests.attack.cli_env import cli_env as _env
from tests.conftest import PROJECT_ROOT

CLI = str(Path(sys.executable).parent / "kpi-lake")
SELECT = "group:bronze_business_systems or group:bronze_spar_net"
#: Columns that differ between two builds of the same data by design: when and by which run a row landed.
VOLATILE = {LOADED_AT, RUN_ID}
SYNC_TIMEOUT = 600


# ---- helpers ----------------------------------------------------------------------------------------------------
def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "sync", "--select", SELECT, *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float = SYNC_TIMEOUT) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        out, err = process.communicate()
        pytest.fail(f"kpi-lake sync did not end within {timeout}s (hung):\n{out[-2000:]}\n{err[-2000:]}")
    return process.returncode, out, err


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _sync(env: dict[str, str], *args: str, timeout: float = SYNC_TIMEOUT) -> tuple[int, str, str]:
    return _finish(_start(env, *args), timeout)


def _tables(lake: Path) -> list[Path]:
    return sorted(p.parent for p in (lake / "bronze").rglob("_delta_log"))


def _snapshot(lake: Path) -> dict[str, tuple[int, str]]:
    """Per bronze table: rows and a hash of its content, independent of row order and of run lineage."""
    snapshot = {}
    for table in _tables(lake):
        frame = pl.read_delta(str(table))
        frame = frame.select(sorted(c for c in frame.columns if c not in VOLATILE))
        frame = frame.sort(frame.columns, nulls_last=True)
        digest = hashlib.sha256(frame.write_csv().encode()).hexdigest()
        snapshot[table.relative_to(lake).as_posix()] = (frame.height, digest)
    return snapshot


def _duplicate_keys(lake: Path) -> dict[str, int]:
    """Tables holding a key more than once: the primary key of a database table, the file row of a file table."""
    found = {}
    for table in _tables(lake):
        frame = pl.read_delta(str(table))
        name = table.name.removesuffix("_rejected")
        if table.parent.name == "business_systems" and name in BUSINESS_TABLES:
            keys = [BUSINESS_TABLES[name]]
        else:
            keys = [k for k in (SOURCE_FILE, SOURCE_SHEET, SOURCE_ROW) if k in frame.columns]
        keyed = frame.drop_nulls(keys)
        surplus = keyed.height - keyed.select(keys).n_unique()
        if surplus:
            found[table.relative_to(lake).as_posix()] = surplus
    return found


def _summary(case: str, **facts) -> None:
    print(f"[concurrency] {case}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))


@pytest.fixture(scope="module")
def clean_build(sample_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One clean single build of the selection, the reference every case compares with."""
    base = tmp_path_factory.mktemp("clean")
    env = _env(str(base / "lake"), sample_landing, base / "home")
    code, out, err = _sync(env)
    assert code == 0, out + err
    snapshot = _snapshot(base / "lake")
    assert any("council_tax_payments" in name for name in snapshot), snapshot
    assert not _duplicate_keys(base / "lake")
    return {"lake": base / "lake", "snapshot": snapshot, "landing": sample_landing}


def _wait_for(condition, timeout: float, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _instance(home: Path):
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    try:
        return dg.DagsterInstance.get()
    finally:
        del os.environ["DAGSTER_HOME"]


# ---- cases ------------------------------------------------------------------------------------------------------
def test_two_syncs_at_once_on_one_lake_serialise_and_never_duplicate(clean_build: dict, tmp_path: Path):
    """Two `kpi-lake sync` started at once on one lake and one DAGSTER_HOME: both end, one waits, tables equal a clean build."""
    env = _env(str(tmp_path / "lake"), clean_build["landing"], tmp_path / "home")
    first, second = _start(env), _start(env)
    (code1, out1, err1), (code2, out2, err2) = _finish(first), _finish(second)
    assert (code1, code2) == (0, 0), out1 + err1 + out2 + err2
    waited = [err for err in (err1, err2) if "waiting for the lake, held by kpi-lake sync (run " in err]
    assert len(waited) == 1, err1 + err2  # exactly one waited, and said for whom
    assert _duplicate_keys(tmp_path / "lake") == {}
    assert _snapshot(tmp_path / "lake") == clean_build["snapshot"]
    _summary(
        "two syncs at once",
        exit_codes=(code1, code2),
        waited=len(waited),
        tables=len(clean_build["snapshot"]),
    )


def test_second_sync_with_no_wait_fails_cleanly_naming_the_holder(clean_build: dict, tmp_path: Path):
    """A second sync with --lock-timeout 0 while one runs exits 1 at once, naming the run that holds the lake."""
    env = _env(str(tmp_path / "lake"), clean_build["landing"], tmp_path / "home")
    first = _start(env)
    lock = tmp_path / "lake" / "_kpi_lake" / "lake.lock"
    assert _wait_for(lambda: lock.exists() and lock.stat().st_size > 0, 120, first)
    started = time.monotonic()
    code, _out, err = _sync(env, "--lock-timeout", "0", timeout=120)
    elapsed = time.monotonic() - started
    assert code == 1
    assert "not started: the lake" in err and "is locked by kpi-lake sync (run " in err, err
    assert "Traceback" not in err
    code1, out1, err1 = _finish(first)
    assert code1 == 0, out1 + err1
    assert _snapshot(tmp_path / "lake") == clean_build["snapshot"]
    _summary("second sync, no wait", exit_code=code, seconds=round(elapsed, 1))


@pytest.mark.parametrize(
    "moment",
    [
        "bronze/business_systems/council_tax_payments",  # when this table's _delta_log gains a version
        "bronze/spar_net/kpi_values",
    ],
)
def test_kill_9_mid_sync_then_a_rerun_completes_and_equals_a_clean_build(
    clean_build: dict, tmp_path: Path, moment: str
):
    """kill -9 of a sync when a table's _delta_log gains a version; the rerun with the same DAGSTER_HOME completes and equals a clean build."""
    lake, home = tmp_path / "lake", tmp_path / "home"
    env = _env(str(lake), clean_build["landing"], home)
    victim = _start(env)
    log = lake / moment / "_delta_log"
    landed = _wait_for(lambda: log.is_dir() and any(log.glob("*.json")), SYNC_TIMEOUT, victim)
    _kill(victim)
    assert landed, f"{moment} was never written before the sync ended"
    dead_run = victim_run_id(lake)

    started = time.monotonic()
    code, out, err = _sync(env, timeout=300)
    elapsed = time.monotonic() - started
    assert code == 0, out + err
    assert _duplicate_keys(lake) == {}
    assert _snapshot(lake) == clean_build["snapshot"]

    instance = _instance(home)
    import dagster as dg

    record = instance.get_run_record_by_id(dead_run)
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert dead_run not in instance.event_log_storage.get_concurrency_run_ids()
    _summary("kill -9 then rerun", moment=moment, rerun_seconds=round(elapsed, 1))


def victim_run_id(lake: Path) -> str:
    """The run id the killed sync wrote into the lake lock (its holder record)."""
    import json

    return json.loads((lake / "_kpi_lake" / "lake.lock").read_text())["run_id"]


def test_the_reported_stuck_state_recovers(clean_build: dict, tmp_path: Path):
    """A dead run from before the lock holds a pool slot and council_tax_payments is doubled: one rerun frees, heals and equals a clean build."""
    import dagster as dg

    lake, home = tmp_path / "lake", tmp_path / "home"
    shutil.copytree(clean_build["lake"], lake)
    env = _env(str(lake), clean_build["landing"], home)
    doubled = lake / "bronze" / "business_systems" / "council_tax_payments"
    rows = pl.read_delta(str(doubled))
    rows.write_delta(str(doubled), mode="append")  # what two racing first loads left: every row twice
    files = lake / "bronze" / "spar_net" / "kpi_values"
    pl.read_delta(str(files)).write_delta(str(files), mode="append")

    instance = _instance(home)
    pool = "bronze/business_systems/missed_bin_reports"
    from dagster._core.storage.dagster_run import DagsterRun

    # A run of the code before the lock: no lake or process tags, "started", its process long gone.
    dead = instance.add_run(
        DagsterRun(job_name="nightly_sync", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    )
    instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
    claim = instance.event_log_storage.claim_concurrency_slot(pool, dead.run_id, "a_step")
    assert claim.is_claimed
    instance.dispose()

    started = time.monotonic()
    code, out, err = _sync(env, timeout=300)
    elapsed = time.monotonic() - started
    assert code == 0, out + err
    assert f"run {dead.run_id} (nightly_sync) marked failed" in err, err
    assert _duplicate_keys(lake) == {}
    assert _snapshot(lake) == clean_build["snapshot"]
    instance = _instance(home)
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_run_ids() == set()
    _summary(
        "stuck state recovers", rows_before=rows.height * 2, rows_after=rows.height, seconds=round(elapsed, 1)
    )


@pytest.mark.azure
def test_the_lake_lease_on_azurite_serialises_and_expires_after_kill_9(
    clean_build: dict, azure_env: str, tmp_path: Path
):
    """On Azure (Azurite) a sync waits on the lake's blob lease; a killed holder's lease expires and the next sync completes."""
    suffix = uuid.uuid4().hex[:8]
    root = f"az://lake-{suffix}/kpi"
    env = _env(
        root,
        clean_build["landing"],
        tmp_path / "home",
        AZURE_STORAGE_USE_EMULATOR="true",
        AZURITE_BLOB_STORAGE_URL=azure_env,
        KPI_LAKE_LOCK_LEASE_SECONDS="15",
    )
    holder_code = (
        "import os, time\n"
        "from kpi_lake.locking import lake_lock\n"
        f"lock = lake_lock({root!r}, None, 'holder-run', 'a test holder')\n"
        "lock.acquire(30)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = holder.stdout.readline().strip()
        if line != "held":
            _kill(holder)
            pytest.fail(f"the holder did not take the lease: {holder.stderr.read()[-3000:]}")
        code, out, err = _sync(env, "--lock-timeout", "2", timeout=120)
        assert code == 1
        assert "is locked by a test holder (run holder-run" in err, err
        time.sleep(20)  # past the lease: the holder renews it, so it is still held
        code, out, err = _sync(env, "--lock-timeout", "0", timeout=120)
        assert code == 1, out + err
    finally:
        _kill(holder)
    killed_at = time.monotonic()
    code, out, err = _sync(env, "--lock-timeout", "120")
    assert code == 0, out + err
    waited = "waiting for the lake, held by a test holder" in err  # unless startup outlasted the lease
    from resources.azure import AzureStorage
    from resources.lake import DeltaLake

    lake = DeltaLake(root=root, azure=AzureStorage(use_emulator=True, emulator_url=azure_env))
    from kpi_lake.tables import TableRef

    ref = TableRef("bronze", "business_systems", "council_tax_payments")
    expected = clean_build["snapshot"]["bronze/business_systems/council_tax_payments"][0]
    assert lake.state(ref).row_count == expected
    _summary(
        "azure lease", waited=waited, seconds_after_kill=round(time.monotonic() - killed_at, 1), rows=expected
    )


def _mount_tmpfs(target: Path, size: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True
    )
    return result.returncode == 0


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()


def test_a_full_disk_during_data_docs_gives_a_clear_error_and_leaves_tables_alone(
    clean_build: dict, tmp_path: Path
):
    """A full disk while Data Docs are written: exit 1 naming what could not be written and where, no traceback, tables as a clean build."""
    lake = tmp_path / "lake"
    env = _env(str(lake), clean_build["landing"], tmp_path / "home")
    pages = lake / "docs" / "data_quality" / "validations"
    mounted = _mount_tmpfs(pages, "64k")
    try:
        if mounted:
            _fill(pages)
        else:  # no mount here (not root): a page that lands on /dev/full fails with the same "no space"
            (lake / "docs" / "data_quality").mkdir(parents=True, exist_ok=True)
            (lake / "docs" / "data_quality" / "index.html").symlink_to("/dev/full")
        code, out, err = _sync(env)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(pages)], check=False)
    assert code == 1, out + err
    assert "kpi-lake sync succeeded" in out
    assert "the Data Docs could not be: No space left on device (errno 28) writing " in err, err
    assert str(lake / "docs" / "data_quality") in err
    assert "Traceback" not in err and "OSError" not in err
    assert _snapshot(lake) == clean_build["snapshot"]
    _summary("full disk during Data Docs", exit_code=code, tmpfs=mounted)


def test_a_read_only_lake_gives_a_clear_error_and_leaves_tables_alone(clean_build: dict, tmp_path: Path):
    """A read-only lake: the sync exits 1 saying what it could not write and where, no traceback, tables unchanged."""
    lake = tmp_path / "lake"
    mounted = _mount_tmpfs(lake, "64m")
    try:
        shutil.copytree(clean_build["lake"], lake, dirs_exist_ok=True)
        before = _snapshot(lake)
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(lake)], check=True)
        else:
            for path in [lake, *lake.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
        env = _env(str(lake), clean_build["landing"], tmp_path / "home")
        code, out, err = _sync(env, timeout=300)
        assert code == 1, out + err
        assert f"cannot create the lake lock {lake / '_kpi_lake' / 'lake.lock'}" in err, err
        assert "Read-only file system" in err or "Permission denied" in err, err
        assert "Traceback" not in err
        assert _snapshot(lake) == before == clean_build["snapshot"]
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(lake)], check=False)
    _summary("read-only lake", exit_code=code, tmpfs=mounted)


def _lake_holder_probe():
    import json

    import dagster as dg

    from pipelines.locked_executor import lake_locked_executor

    @dg.op
    def who_holds_the_lake(context) -> None:
        lock = Path(os.environ["KPI_LAKE_ROOT"]) / "_kpi_lake" / "lake.lock"
        assert json.loads(lock.read_text())["run_id"] == context.run_id

    @dg.job(executor_def=lake_locked_executor)
    def lake_holder_probe():
        who_holds_the_lake()

    return lake_holder_probe


def test_a_run_launched_by_the_daemon_or_ui_waits_for_the_lake_lock(tmp_path: Path, monkeypatch):
    """A run launched outside the CLI (the code location's executor) waits for the lake lock, logging who holds it, then runs holding it."""
    import threading

    import dagster as dg

    from kpi_lake.locking import lake_lock

    lake, home = tmp_path / "lake", tmp_path / "home"
    monkeypatch.setenv("KPI_LAKE_ROOT", str(lake))
    _env(str(lake), tmp_path, home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    holder = lake_lock(str(lake), None, "holder-run", "a test holder")
    holder.acquire(10)
    with dg.DagsterInstance.get() as instance:

        def release_once_the_run_waits() -> None:
            def waiting() -> bool:
                runs = instance.get_runs(limit=1)
                return bool(runs) and any(
                    "Waiting for the lake lock" in entry.user_message
                    for entry in instance.all_logs(runs[0].run_id)
                )

            _wait_for(waiting, 120)
            time.sleep(1)
            holder.release()

        releaser = threading.Thread(target=release_once_the_run_waits)
        releaser.start()
        started = time.monotonic()
        result = dg.execute_job(
            dg.reconstructable(_lake_holder_probe),
            instance=instance,
            run_config={"execution": {"config": {"in_process": {}}}},
        )
        releaser.join()
        assert result.success
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    waited = time.monotonic() - started
    assert any("Waiting for the lake lock" in m and "a test holder (run holder-run" in m for m in messages)
    assert waited >= 1
    assert lake_lock(str(lake), None, "after", "a check").try_acquire()  # released at the end of the run
    _summary("launched run waits for the lock", waited_seconds=round(waited, 1))
