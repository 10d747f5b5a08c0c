"""``make dev``: starts the UI without misleading warnings, and Ctrl-C or SIGTERM stops every process it started
(webserver, daemon, code servers) within a few seconds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT, free_port, stop_process_group, wait_for_port

LOCATION_QUERY = """
{
  shouldShowNux
  workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } }
}
"""


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every process: pid -> (parent pid, state, start time). The start time tells a reused pid apart."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0], fields[19])
    return table


def _descendants(root: int) -> dict[int, str]:
    """The processes below ``root`` (and itself): pid -> start time."""
    table = _processes()
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, (parent, _, _) in table.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return {pid: table[pid][2] for pid in found if pid in table}


def _running(snapshot: dict[int, str]) -> list[int]:
    table = _processes()
    return [
        pid
        for pid, started in snapshot.items()
        if pid in table and table[pid][2] == started and table[pid][1] not in ("Z", "X")
    ]


def _still_running(snapshot: dict[int, str]) -> list[str]:
    commands = []
    for pid in _running(snapshot):
        with contextlib.suppress(OSError):
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
    return commands


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_make_dev_starts_quietly_and_stops_with_every_child(tmp_path: Path, signum: int):
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "KPI_LAKE_ROOT": str(tmp_path / "lake"),
        "KPI_LAKE_LANDING": str(tmp_path / "landing"),
    }
    for variable in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # a make of its own, not a sub-make of `make test`
        env.pop(variable, None)
    log_path = tmp_path / "make-dev.log"
    log = open(log_path, "wb")  # noqa: SIM115
    make = subprocess.Popen(
        ["make", "--no-print-directory", "dev", f"DEV_PORT={port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # like a terminal: make and what it runs in one foreground process group
    )
    snapshot: dict[int, str] = {}
    try:
        wait_for_port(port, timeout=180, process=make)
        deadline = time.monotonic() + 180
        while True:  # the code location loads after the webserver listens: wait for its code server
            data = requests.post(
                f"http://127.0.0.1:{port}/graphql", json={"query": LOCATION_QUERY}, timeout=30
            )
            body = data.json()["data"]
            entries = body["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["loadStatus"] == "LOADED":
                break
            assert time.monotonic() < deadline, "the code location did not load within 180 s"
            time.sleep(1)
        # The instance settings were read from DAGSTER_HOME: no newsletter dialog in the UI.
        assert body["shouldShowNux"] is False
        assert (tmp_path / "dagster_home" / "dagster.yaml").read_bytes() == (
            PROJECT_ROOT / "deploy" / "local" / "dagster.yaml"
        ).read_bytes()

        snapshot = _descendants(make.pid)
        commands = " ".join(
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            for pid in snapshot
            if Path(f"/proc/{pid}/cmdline").exists()
        )
        for part in ("dagster_webserver", "dagster._daemon", "code-server", "api grpc"):
            assert part in commands, f"{part} is not running under make dev: {commands}"

        # What a terminal does on Ctrl-C, and what a service manager does on stop: signal the foreground group.
        sent = time.monotonic()
        os.killpg(make.pid, signum)
        while _still_running(snapshot) and time.monotonic() - sent < 10:
            time.sleep(0.2)
        assert not _still_running(snapshot), (
            f"still running 10 s after {signum.name}: {_still_running(snapshot)}"
        )
        make.wait(timeout=5)
        print(f"make dev stopped in {time.monotonic() - sent:.1f} s after {signum.name}")
    finally:
        stop_process_group(make)
        for pid in _running(snapshot):  # a failed stop: clean up what we started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
    output = log_path.read_text(errors="replace")
    assert "Launching Dagster services" in output, output
    # No misleading start-up warnings: the instance config lives in DAGSTER_HOME, not the project root, and
    # `dagster dev` is not superseded for a project that does not use the dg layout.
    assert "in the current folder" not in output, output
    assert "superseded" not in output, output
    assert "Traceback" not in output, output
