"""``make dev``: the Dagster UI and daemon on this machine (``dagster dev``), stopped cleanly by Ctrl-C or SIGTERM.

``dagster dev`` starts the webserver, the daemon and code servers. Stopped through its process group it takes
15 s or more (the code servers wait for a heartbeat to time out; the webserver waits for open browser tabs),
and a SIGTERM to ``make`` alone reached none of them. This launcher runs ``dagster dev`` in a process group of
its own, passes Ctrl-C (SIGINT), SIGTERM and SIGHUP on to that whole group, and kills whatever is left after
a short grace period, so every child is gone within a few seconds.

It also keeps the start-up free of a warning that does not apply here: ``dagster dev`` says it is superseded
by ``dg dev``, but ``dg dev`` is a wrapper that runs ``dagster dev`` for projects laid out for the ``dg`` CLI
(``[tool.dg]``, the dagster-dg-cli package), which this project is not; the webserver, daemon and code servers
are the same either way.

Usage: ``python deploy/local/dev.py [dagster dev options]`` (the Makefile passes the workspace, host and port).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_SECONDS = 3.0  # after the first signal, how long the services get to stop before they are killed
SUPERSEDED = "ignore:Function `dev_command` is superseded:FutureWarning"


def main(argv: list[str]) -> int:
    # Only the `dagster dev` process is told to ignore that one warning: the webserver, daemon and code
    # servers it starts do not inherit `-W`, so no warning from the project's own code is hidden.
    command = [sys.executable, "-W", SUPERSEDED, "-m", "dagster", "dev", *argv]
    services = subprocess.Popen(command, start_new_session=True)
    group = services.pid
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        if stopping:  # a second Ctrl-C: no more waiting
            _signal_group(group, signal.SIGKILL)
            return
        stopping.append(signum)
        print(f"\nstopping the Dagster UI ({signal.Signals(signum).name})…", file=sys.stderr, flush=True)
        _signal_group(group, signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)

    while services.poll() is None and not stopping:
        with contextlib.suppress(subprocess.TimeoutExpired):
            services.wait(timeout=0.5)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and _group_alive(group, services):
        time.sleep(0.1)
    if _group_alive(group, services):
        _signal_group(group, signal.SIGKILL)
    services.wait()
    # The group's other members are reaped by init once killed; wait (briefly) until none is left.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _group_alive(group, services):
        time.sleep(0.05)
    if stopping:
        return 128 + stopping[0]
    return services.returncode


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_alive(group: int, leader: subprocess.Popen) -> bool:
    """Whether any process of the group is still running (zombies waiting to be reaped count as gone)."""
    leader.poll()  # reap our own child if it has exited
    if not Path("/proc").is_dir():  # not Linux: the group exists while any member (even a zombie) does
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgid = fields[0], int(fields[2])
        if pgid == group and state not in ("Z", "X"):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
