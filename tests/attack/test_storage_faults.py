"""Attack cases on the storage itself: the Azure blob endpoint going away while a sync writes.

The lake is on a real Azurite of this test's own (it is stopped and started again), the landing zone a local
folder of the generated sample. The sync runs as the real ``kpi-lake sync`` subprocess (its own process group,
killed by its id), bronze business systems and SPAR.net only, and the lake is compared with a clean build of
the same landing zone on a local folder: row count and a content hash per table (run lineage left out).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from kpi_lake.business_tables import BUSINESS_TABLES
from kpi_lake.raw_files import LOADED_AT, RUN_ID, SOURCE_FILE, SOURCE_ROW, SOURCE_SHEET
from kpi_lake.storage import EMULATOR_KEY
from resources.azure import AzureStorage
from tests.attack.cli_env import cli_env as _env
from tests.conftest import PROJECT_ROOT, free_port, wait_for_port

pytestmark = pytest.mark.azure

CLI = str(Path(sys.executable).parent / "kpi-lake")
SELECT = "group:bronze_business_systems or group:bronze_spar_net"
VOLATILE = {LOADED_AT, RUN_ID}
ROOT = "az://lake/kpi"
#: How long a sync may take to give up once storage is gone (with KPI_LAKE_STORAGE_RETRIES=0, each step
#: still tries through object_store's own 10 quick retries).
GIVE_UP_SECONDS = 240


class Azurite:
    """An Azurite blob service on a fixed port and folder, which this test stops (SIGKILL) and starts again."""

    def __init__(self, location: Path) -> None:
        self.location, self.port = location, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"
        assert binary.exists(), "Azurite is not installed: run `make setup-test`"
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.process = subprocess.Popen(
            [
                str(binary),
                *("--blobHost", "127.0.0.1", "--blobPort", str(self.port)),
                *("--location", str(self.location)),
                *("--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PATH": path},
        )
        wait_for_port(self.port, timeout=60, process=self.process)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def holds(self, text: str) -> bool:
        """Whether Azurite's stored metadata names ``text`` (a blob path), as persisted so far."""
        for path in self.location.glob("*.json"):
            with contextlib.suppress(OSError):
                if text in path.read_text(errors="ignore"):
                    return True
        return False


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [CLI, "sync", "--select", SELECT],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"kpi-lake sync did not end within {timeout}s (hung):\n{out[-2000:]}\n{err[-2000:]}")
    return process.returncode, out, err


def _frame(uri: str, options: dict[str, str] | None) -> pl.DataFrame:
    return pl.read_delta(uri, storage_options=options)


def _snapshot(root: str, tables: list[str], options: dict[str, str] | None) -> dict[str, tuple[int, str]]:
    """Per table: rows and a hash of its content, independent of row order and of run lineage."""
    snapshot = {}
    for name in tables:
        frame = _frame(f"{root.rstrip('/')}/{name}", options)
        frame = frame.select(sorted(c for c in frame.columns if c not in VOLATILE))
        frame = frame.sort(frame.columns, nulls_last=True)
        snapshot[name] = (frame.height, hashlib.sha256(frame.write_csv().encode()).hexdigest())
    return snapshot


def _duplicate_keys(root: str, tables: list[str], options: dict[str, str] | None) -> dict[str, int]:
    found = {}
    for name in tables:
        frame = _frame(f"{root.rstrip('/')}/{name}", options)
        _, source, table = name.split("/")
        table = table.removesuffix("_rejected")
        if source == "business_systems" and table in BUSINESS_TABLES:
            keys = [BUSINESS_TABLES[table]]
        else:
            keys = [k for k in (SOURCE_FILE, SOURCE_SHEET, SOURCE_ROW) if k in frame.columns]
        keyed = frame.drop_nulls(keys)
        if surplus := keyed.height - keyed.select(keys).n_unique():
            found[name] = surplus
    return found


def test_azurite_stopped_mid_sync_fails_cleanly_and_a_rerun_equals_a_clean_build(
    sample_landing: Path, tmp_path: Path
):
    """Azure storage (Azurite) stopped mid-sync: the sync ends in bounded time, exit 1 naming the endpoint and table; after restart a rerun equals a clean build."""
    # The reference: a clean build of the same landing zone on a local folder.
    local = tmp_path / "local"
    code, out, err = _finish(_start(_env(str(local), sample_landing, tmp_path / "home-local")), 600)
    assert code == 0, out + err
    tables = sorted(p.parent.relative_to(local).as_posix() for p in (local / "bronze").rglob("_delta_log"))
    assert "bronze/business_systems/council_tax_payments" in tables, tables
    clean = _snapshot(str(local), tables, None)

    azurite = Azurite(tmp_path / "azurite")
    azurite.location.mkdir()
    azurite.start()
    try:
        env = _env(
            ROOT,
            sample_landing,
            tmp_path / "home",
            AZURE_STORAGE_USE_EMULATOR="true",
            AZURITE_BLOB_STORAGE_URL=azurite.url,
            KPI_LAKE_LOCK_LEASE_SECONDS="15",
            KPI_LAKE_STORAGE_RETRIES="0",  # each step gives up after object_store's own quick retries
        )
        sync = _start(env)
        deadline = time.monotonic() + 300
        while not azurite.holds("bronze/business_systems/") and sync.poll() is None:
            assert time.monotonic() < deadline, "no bronze table reached Azurite within 300s"
            time.sleep(0.2)
        assert sync.poll() is None, "the sync ended before Azurite was stopped: " + sync.stderr.read()[-2000:]
        azurite.kill()
        stopped = time.monotonic()
        code, out, err = _finish(sync, GIVE_UP_SECONDS)
        gave_up = time.monotonic() - stopped
        assert code == 1, out + err
        assert "kpi-lake sync FAILED" in out
        # Which steps were writing when the storage went away depends on timing: any of them may fail.
        failed = [line for line in err.splitlines() if line.startswith("FAILED ")]
        assert failed, err[-3000:]
        # Each failure says where: the storage endpoint, and which table's path under the lake.
        assert f"127.0.0.1:{azurite.port}" in err and "Connection refused" in err, err[-3000:]
        assert "lake/kpi/" in err or "kpi%2F" in err or "az://lake/kpi/" in err, err[-3000:]
        assert EMULATOR_KEY not in out + err and "AccountKey=" not in out + err

        # Back up on the same folder and port: every table is readable (none half-written) and a rerun
        # completes and equals the clean build.
        azurite.start()
        options = AzureStorage(use_emulator=True, emulator_url=azurite.url).delta_storage_options(ROOT)
        from deltalake import DeltaTable

        written = [n for n in tables if DeltaTable.is_deltatable(f"{ROOT}/{n}", storage_options=options)]
        assert written, "no table survived in Azurite: the stop came before any write"
        for name in written:
            _frame(f"{ROOT}/{name}", options)  # reads the latest version's every file
        rerun_env = {**env, "KPI_LAKE_LOCK_TIMEOUT": "120"}  # the dead sync's lease expires within 15 s
        started = time.monotonic()
        code, out, err = _finish(_start(rerun_env), 600)
        rerun = time.monotonic() - started
        assert code == 0, out + err
        assert _duplicate_keys(ROOT, tables, options) == {}
        assert _snapshot(ROOT, tables, options) == clean
    finally:
        azurite.kill()
    print(
        f"[storage_faults] Azurite stopped mid-sync: gave up after {gave_up:.1f}s with {len(failed)} steps "
        f"failed, {len(written)} tables written before the stop all readable, rerun {rerun:.1f}s equal to a "
        f"clean build of {len(tables)} tables"
    )
