"""What a data engineer sees in the Dagster UI after a CLI sync: the real webserver on the lake `kpi-lake sync`
built, in the same DAGSTER_HOME, opened in headless Chromium. Screenshots go to ``test-artifacts/ui/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests

from tests.browser import Page, artefacts_folder, chromium
from tests.conftest import PROJECT_ROOT, free_port, stop_process_group, wait_for_port

SINGLE_VIEW = ("gold", "kpi_mart", "kpi_single_view")
COMMUNITY_DIALOG = "Join the Dagster community"


@dataclass(frozen=True)
class SyncedUI:
    url: str
    lake: Path
    home: Path
    cli_run_id: str


@pytest.fixture(scope="module")
def synced_ui(sample_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncedUI]:
    """`kpi-lake sync` of the sample into a fresh lake, then the webserver on the same DAGSTER_HOME."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")  # as `make` does
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KPI_LAKE_ROOT": str(root / "lake"),
        "KPI_LAKE_LANDING": str(sample_landing),
    }
    for variable in ("KPI_LAKE_BUSINESS_DB", "AZURE_STORAGE_USE_EMULATOR"):
        env.pop(variable, None)
    bin_dir = Path(sys.executable).parent
    sync = subprocess.run(
        [str(bin_dir / "kpi-lake"), "sync"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert sync.returncode == 0, sync.stdout[-3000:] + sync.stderr[-3000:]
    with pytest.MonkeyPatch.context() as patched:  # opened as Dagster's tools open it: DAGSTER_HOME set
        patched.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(limit=1)
    assert runs, "the CLI sync recorded no run in DAGSTER_HOME"

    port = free_port()
    log = open(root / "webserver.log", "wb")  # noqa: SIM115
    webserver = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped by id below
    )
    try:
        wait_for_port(port, timeout=180, process=webserver)
        url = f"http://127.0.0.1:{port}"
        _wait_for_code_location(url)
        yield SyncedUI(url, root / "lake", home, runs[0].run_id)
    finally:
        stop_process_group(webserver)
        log.close()


def _wait_for_code_location(url: str) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body = requests.post(f"{url}/graphql", json={"query": query}, timeout=30).json()
        entries = body["data"]["workspaceOrError"]["locationEntries"]
        if entries and entries[0]["loadStatus"] == "LOADED":
            return
        time.sleep(1)
    raise TimeoutError("the code location did not load within 180 s")


@pytest.fixture(scope="module")
def page(synced_ui: SyncedUI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    with chromium(tmp_path_factory.mktemp("chromium") / "profile") as browser, browser.page() as tab:
        yield tab


def _open(page: Page, url: str, *expected: str, shot: str) -> str:
    page.navigate(url)
    text = page.wait_for_text(*expected, timeout=90)
    page.pump(2)  # the newsletter dialog would open after 1 s
    page.screenshot(artefacts_folder("ui") / f"{shot}.png")
    return page.text() or text


def test_asset_graph_shows_every_group_and_no_newsletter_dialog(synced_ui: SyncedUI, page: Page):
    from pipelines.definitions import defs

    groups = {node.group_name for node in defs.resolve_asset_graph().asset_nodes}
    text = _open(page, f"{synced_ui.url}/asset-groups", "gold_kpi_mart", shot="asset_graph")
    missing = sorted(group for group in groups if group not in text)
    assert not missing, f"groups not in the asset graph: {missing}"
    assert COMMUNITY_DIALOG not in page.text()  # nux: enabled: false in the instance settings


def test_single_view_page_shows_real_column_names_row_count_and_checks(synced_ui: SyncedUI, page: Page):
    table = pl.scan_delta(str(synced_ui.lake.joinpath(*SINGLE_VIEW)))
    names = table.collect_schema().names()
    rows = table.select(pl.len()).collect().item()
    assert "KPI_Code" in names and rows > 0

    asset_url = f"{synced_ui.url}/assets/{'/'.join(SINGLE_VIEW)}"
    _open(page, asset_url, "Column name", "Row count", "Actual minus target", shot="kpi_single_view")
    shown = page.evaluate(
        """(() => {
          const table = [...document.querySelectorAll('table')].find(t => t.innerText.includes('Column name'));
          return [...table.querySelectorAll('tbody tr td:first-child')].map(td => td.innerText.split('\\n')[0].trim());
        })()"""
    )
    # What an analyst copies from the UI is the table's own name, in the table's order.
    assert shown == names
    overview = page.text()
    assert f"Row count\n{rows:,}" in overview

    from pipelines.definitions import defs

    checks = sorted(
        key.name
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key.path == list(SINGLE_VIEW)
    )
    text = _open(page, f"{asset_url}?view=checks", f"Checks ({len(checks)})", shot="kpi_single_view_checks")
    listing = text.split(f"Checks ({len(checks)})", 1)[1]
    for name in checks:
        assert name in listing, f"check {name} is not listed"
    # Each check shows its latest result: on the sample every one of them passed in the CLI's run.
    assert listing.count("Succeeded") >= len(checks)
    assert "Failed" not in listing


def test_job_page_and_the_cli_run(synced_ui: SyncedUI, page: Page):
    text = _open(
        page,
        f"{synced_ui.url}/locations/kpi_lake/jobs/nightly_sync",
        "nightly_sync",
        "Sync every source into bronze",
        shot="nightly_sync_job",
    )
    assert "kpi_lake" in text
    # The CLI's run is in the instance the UI reads, with its outcome.
    runs_text = _open(page, f"{synced_ui.url}/runs", synced_ui.cli_run_id[:8], shot="runs")
    row = runs_text.split(synced_ui.cli_run_id[:8], 1)[1][:300]
    assert "Success" in row, row
    # A `kpi-lake sync` is a run of the nightly_sync job itself: listed on the job's own Runs tab.
    job_runs = _open(
        page,
        f"{synced_ui.url}/locations/kpi_lake/jobs/nightly_sync/runs",
        synced_ui.cli_run_id[:8],
        shot="nightly_sync_job_runs",
    )
    assert "No runs found" not in job_runs
    print(json.dumps({"cli_run": synced_ui.cli_run_id}))
