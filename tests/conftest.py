"""Fixtures that build real resources: a temporary lake, the generated landing zone, Azurite, the real samples."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("KPI_LAKE_REAL_SAMPLES", PROJECT_ROOT.parent / "shared" / "real-samples"))


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """The real published files (``../shared/real-samples``). Missing samples fail the tests, never skip them."""
    assert REAL_SAMPLES.is_dir(), f"real samples not found at {REAL_SAMPLES}; set KPI_LAKE_REAL_SAMPLES"
    return REAL_SAMPLES


@pytest.fixture(autouse=True)
def _no_ambient_lake_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their own lake, landing and database; a developer's shell settings must not leak in."""
    for variable in (
        "KPI_LAKE_ROOT",
        "KPI_LAKE_LANDING",
        "KPI_LAKE_BUSINESS_DB",
        "AZURE_STORAGE_USE_EMULATOR",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def sample_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated landing zone (small scale), written once per test session. Tests copy it to change it."""
    from kpi_lake.sample_data import generate_landing

    landing = tmp_path_factory.mktemp("landing")
    generate_landing(landing, scale=0.2)
    return landing


@pytest.fixture
def landing_copy(sample_landing: Path, tmp_path: Path) -> Path:
    """A private copy of the generated landing zone that a test may change."""
    target = tmp_path / "landing"
    shutil.copytree(sample_landing, target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a process we started (its own process group) by its id: TERM, then KILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Azurite blob emulator on a free loopback port; yields its URL. Installed by ``npm ci``."""
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"
    assert binary.exists(), "Azurite is not installed: run `npm ci` (make test does)"
    port = free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workspace),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


@pytest.fixture
def azure_env(azurite: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the Azure settings at the test's Azurite, as a user would with environment variables."""
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", azurite)
    return azurite


def _postgres_binaries() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    assert candidates, "PostgreSQL is not installed: .ci/run installs it (apt-get install postgresql)"
    return candidates[0].parent


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port, in a throwaway data directory; yields its URL.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
    """
    binaries = _postgres_binaries()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="kpi-lake-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if as_postgres:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(
        [
            *as_postgres,
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *as_postgres,
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60, process=process)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        stop_process_group(process)
        shutil.rmtree(base, ignore_errors=True)
