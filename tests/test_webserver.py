"""The real Dagster webserver loads the code location from workspace.yaml and serves the asset graph."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT, free_port, stop_process_group, wait_for_port

ASSETS_QUERY = """
{
  assetNodes { assetKey { path } groupName kinds }
  workspaceOrError {
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename
      ... on PythonError { message } } } }
  }
}
"""


@pytest.fixture
def webserver(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "KPI_LAKE_ROOT": str(tmp_path / "lake"),
        "KPI_LAKE_LANDING": str(tmp_path / "landing"),
    }
    Path(env["DAGSTER_HOME"]).mkdir()
    binary = Path(sys.executable).parent / "dagster-webserver"
    log = open(tmp_path / "webserver.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(binary), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped by id below
    )
    try:
        wait_for_port(port, timeout=120, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)
        log.close()
    assert process.poll() is not None


def _graphql(url: str, query: str) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body.get("errors")
    return body["data"]


def test_webserver_lists_every_asset_grouped_by_layer_and_source(webserver: str):
    from pipelines.definitions import defs

    expected = {tuple(key.path) for key in defs.resolve_asset_graph().get_all_asset_keys()}
    deadline = time.monotonic() + 60
    while True:  # the code location loads in the background after the server starts listening
        data = _graphql(webserver, ASSETS_QUERY)
        entries = data["workspaceOrError"]["locationEntries"]
        if (entries and entries[0]["loadStatus"] == "LOADED") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert entries[0]["name"] == "kpi_lake"
    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries[0]
    served = {tuple(node["assetKey"]["path"]): node for node in data["assetNodes"]}
    assert set(served) == expected
    assert ("bronze", "spar_net", "kpi_values") in served
    for path, node in served.items():
        layer, source, _ = path
        assert node["groupName"] == f"{layer}_{source}"
        # Every table is Delta; the quarterly report (gold/reports/…) writes documents: HTML, PDF, Excel.
        assert "delta" in node["kinds"] or path == ("gold", "reports", "quarterly_performance"), path
    # The page itself is served too (the UI a data engineer opens).
    assert requests.get(webserver, timeout=30).status_code == 200


JOB_RUNS_QUERY = """
query JobRuns($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId jobName status } } }
}
"""


def test_a_cli_sync_is_a_run_of_the_nightly_job_the_ui_lists(webserver: str, tmp_path: Path):
    """The job page filters runs by job name and code location (the `.dagster/repository` tag): a run made by
    `kpi-lake sync` must be found by that very filter, as the UI's job page and timeline query it."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "KPI_LAKE_ROOT": str(tmp_path / "lake"),
        "KPI_LAKE_LANDING": str(tmp_path / "landing"),
    }
    cli = str(Path(sys.executable).parent / "kpi-lake")
    subprocess.run(
        [cli, "generate", "--scale", "0.1"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True
    )
    synced = subprocess.run(
        [cli, "sync", "--select", "group:bronze_reference"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert synced.returncode == 0, synced.stdout + synced.stderr
    run_id = synced.stdout.split("(run ", 1)[1].split(")", 1)[0]
    ui_filter = {
        "pipelineName": "nightly_sync",
        "tags": [{"key": ".dagster/repository", "value": "__repository__@kpi_lake"}],
    }
    response = requests.post(
        f"{webserver}/graphql", json={"query": JOB_RUNS_QUERY, "variables": {"filter": ui_filter}}, timeout=60
    )
    runs = response.json()["data"]["runsOrError"]["results"]
    assert {"runId": run_id, "jobName": "nightly_sync", "status": "SUCCESS"} in runs
