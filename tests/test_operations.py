"""Operations with real parts: the landing sensor on a real landing folder, the failure alert posted to a real
HTTP server, the lake retrying a real storage outage (Azurite behind a flaky loopback proxy), the Data Docs
sensor and the instance's concurrency limits."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import polars as pl
import pytest

from assets.bronze import FILE_TABLES
from kpi_lake.tables import TableRef
from pipelines.sensors import (
    ALERTS,
    DOCS_JOB_NAME,
    AlertWebhook,
    alert_on_run_failure,
    data_docs_after_failure,
    landing_files_sensor,
    landing_signatures,
    table_pool,
)
from resources.azure import AzureStorage
from resources.lake import DeltaLake, LakeWriteError, is_transient_error, redact_error
from resources.landing import LandingZone
from tests.conftest import PROJECT_ROOT, stop_process_group, wait_for_port

SPAR_VALUES = ("bronze", "spar_net", "kpi_values")


# ---- the landing sensor ------------------------------------------------------------------------------------------
@pytest.fixture
def small_landing(sample_landing: Path, tmp_path: Path) -> Path:
    """A landing zone with the sample's SPAR.net and reference folders (enough for the sensor, quick to copy)."""
    landing = tmp_path / "landing"
    for source in ("spar_net", "reference"):
        shutil.copytree(sample_landing / source, landing / source)
    return landing


def _evaluate(landing: Path, cursor: str | None):
    from pipelines import definitions

    with dg.build_sensor_context(
        cursor=cursor,
        resources={"landing": LandingZone(root=str(landing), azure=AzureStorage())},
        definitions=definitions.defs,
    ) as context:
        return landing_files_sensor(context), context.cursor


def test_a_new_spar_net_export_requests_a_run_of_what_depends_on_it(small_landing: Path):
    first, cursor = _evaluate(small_landing, None)
    assert isinstance(first, dg.SkipReason) and "first look" in first.skip_message

    exports = sorted((small_landing / "spar_net").glob("spar_export_*.csv"))
    new_export = small_landing / "spar_net" / "spar_export_2026-27_Q3.csv"
    new_export.write_bytes(exports[-1].read_bytes().replace(b"2026/27 Q2", b"2026/27 Q3"))
    request, cursor = _evaluate(small_landing, cursor)

    assert isinstance(request, dg.RunRequest)
    selected = {tuple(key.path) for key in request.asset_selection}
    assert SPAR_VALUES in selected and ("silver", "spar_net", "kpi_values") in selected
    assert ("bronze", "spar_net", "kpi_definitions") not in selected  # not fed by value exports
    assert ("bronze", "emissions", "ghg_long") not in selected
    assert request.tags["kpi_lake/trigger"] == "landing" and request.tags["kpi_lake/sources"] == "spar_net"
    # The cursor is a digest per bronze file table, not the list of files (it shows on the sensor's page).
    state = json.loads(cursor)
    assert state["files"] == len(list(small_landing.rglob("*.*")))
    assert set(state["tables"]) == {spec.ref.path for spec in FILE_TABLES}
    assert "spar_export" not in cursor and len(cursor) < 60 * len(FILE_TABLES)

    again, cursor = _evaluate(small_landing, cursor)
    assert isinstance(again, dg.SkipReason) and "nothing new" in again.skip_message

    # A file replaced in place (a corrected export) is new content: it runs again.
    new_export.write_bytes(new_export.read_bytes() + b"\n")
    corrected, cursor = _evaluate(small_landing, cursor)
    assert isinstance(corrected, dg.RunRequest) and corrected.run_key != request.run_key

    # A cursor written before the digests (every file and its signature) carries over without a run.
    landing = LandingZone(root=str(small_landing), azure=AzureStorage())
    old_style = json.dumps(landing_signatures(landing, FILE_TABLES))
    upgraded, cursor = _evaluate(small_landing, old_style)
    assert isinstance(upgraded, dg.SkipReason) and "nothing new" in upgraded.skip_message
    assert "tables" in json.loads(cursor)


# ---- the failure alert --------------------------------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append({"path": self.path, "json": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def webhook_server() -> Iterator[str]:
    """A tiny HTTP server on loopback that records what is POSTed to it; yields its base URL."""
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dg.op
def load_council_tax() -> None:
    raise RuntimeError("council tax extract failed: connection to the revenues database was lost")


@dg.job(name="failing_sync")
def failing_sync() -> None:
    load_council_tax()


def _failure_context(instance, result, lake: DeltaLake, webhook: AlertWebhook) -> dg.RunFailureSensorContext:
    """The context the daemon gives the alert sensor for this failed run, with real resources."""
    return dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"lake": lake, "alert_webhook": webhook},
    ).for_run_failure()


def test_a_failed_run_alerts_the_webhook_and_is_recorded(
    webhook_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    instance = dg.DagsterInstance.ephemeral()
    result = failing_sync.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    secret = "T0KEN-" + uuid.uuid4().hex
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    webhook = AlertWebhook(url=f"{webhook_server}/hooks/{secret}")
    with caplog.at_level(logging.INFO), _failure_context(instance, result, lake, webhook) as context:
        alert_on_run_failure(context)

    assert len(_Receiver.received) == 1
    posted = _Receiver.received[0]
    assert posted["path"] == f"/hooks/{secret}"
    payload = posted["json"]
    assert payload["event"] == "kpi_lake.run_failed" and payload["run_id"] == result.run_id
    assert payload["job_name"] == "failing_sync"
    assert payload["failed_steps"][0]["step"] == "load_council_tax"
    assert "revenues database" in payload["failed_steps"][0]["error"]

    alerts = lake.scan(ALERTS).collect()
    assert alerts.height == 1 and alerts["run_id"][0] == result.run_id and alerts["webhook_delivered"][0]
    # The URL's token is a secret: neither the log nor the alerts table shows it.
    assert secret not in caplog.text and secret not in alerts["webhook_outcome"][0]


def test_without_a_webhook_the_alert_is_still_logged_and_recorded(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("KPI_LAKE_ALERT_WEBHOOK", raising=False)
    assert AlertWebhook.from_env().url is None
    monkeypatch.setenv("KPI_LAKE_ALERT_WEBHOOK", "https://hooks.example.invalid/services/secret")
    bound = AlertWebhook.from_env()
    assert isinstance(bound.url, dg.EnvVar) and bound.url.env_var_name == "KPI_LAKE_ALERT_WEBHOOK"

    instance = dg.DagsterInstance.ephemeral()
    result = failing_sync.execute_in_process(instance=instance, raise_on_error=False)
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    with _failure_context(instance, result, lake, AlertWebhook()) as context:
        alert_on_run_failure(context)
    row = lake.scan(ALERTS).collect().row(0, named=True)
    assert row["webhook_delivered"] is False and row["webhook_outcome"] == "no webhook configured"


@dg.asset(key=["gold", "kpi_mart", "dim_theme"])
def dim_theme() -> None:
    pass


@dg.asset_check(asset=dim_theme, blocking=True)
def gx_owning_director_not_null() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


@dg.asset(key=["gold", "kpi_mart", "theme_scorecard"], deps=[dim_theme])
def theme_scorecard() -> None:
    pass


def _docs_request(instance: dg.DagsterInstance, run: dg.DagsterRun, event: dg.DagsterEvent):
    context = dg.build_run_status_sensor_context(
        sensor_name="data_docs_after_failure", dagster_instance=instance, dagster_run=run, dagster_event=event
    )
    return data_docs_after_failure(context)


def test_a_run_with_checks_requests_its_data_docs_other_runs_do_not():
    instance = dg.DagsterInstance.ephemeral()
    blocked = dg.materialize(
        [dim_theme, gx_owning_director_not_null, theme_scorecard], instance=instance, raise_on_error=False
    )
    assert not blocked.success  # the blocking check failed: theme_scorecard was not built
    request = _docs_request(instance, blocked.dagster_run, blocked.get_run_failure_event())
    assert isinstance(request, dg.RunRequest) and request.run_key == f"docs-{blocked.run_id}"
    assert request.run_config["ops"]["render_data_docs"]["config"]["run_id"] == blocked.run_id

    no_checks = failing_sync.execute_in_process(instance=instance, raise_on_error=False)
    skip = _docs_request(instance, no_checks.dagster_run, no_checks.get_run_failure_event())
    assert isinstance(skip, dg.SkipReason) and "no data-quality check" in skip.skip_message
    docs_run = blocked.dagster_run._replace(job_name=DOCS_JOB_NAME)
    assert isinstance(_docs_request(instance, docs_run, blocked.get_run_failure_event()), dg.SkipReason)


# ---- transient storage errors ------------------------------------------------------------------------------------
FLAKY_PROXY = r"""
import socket, struct, sys, threading
target, failures = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)

def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

seen = 0
while True:
    client, _ = server.accept()
    seen += 1
    if seen <= failures:  # reset: the storage account "drops" the connection
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        print("reset", seen, flush=True)
        continue
    upstream = socket.create_connection(("127.0.0.1", target))
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


@pytest.fixture
def flaky_storage(azurite: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A loopback proxy in front of Azurite that resets its first 4 connections, then passes through.

    Its own process (delta-rs holds the GIL while it waits on storage, so an in-process proxy would stall),
    stopped by its process id.
    """
    port = int(azurite.rsplit(":", 1)[1])
    process = subprocess.Popen(
        [sys.executable, "-c", FLAKY_PROXY, str(port), "4"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        proxy_port = int(process.stdout.readline())
        wait_for_port(proxy_port, timeout=10, process=process)
        yield f"http://127.0.0.1:{proxy_port}", process
    finally:
        stop_process_group(process)


@pytest.mark.azure
def test_a_transient_storage_outage_is_retried_and_counted(
    azurite: str, flaky_storage: tuple[str, subprocess.Popen], caplog: pytest.LogCaptureFixture
):
    proxy, process = flaky_storage
    root = f"az://lake-{uuid.uuid4().hex[:8]}/kpi"
    direct = DeltaLake(root=root, azure=AzureStorage(use_emulator=True, emulator_url=azurite))
    direct.ensure_root()
    # object_store's own retries cut to one so that the outage reaches the lake's retries quickly.
    lake = DeltaLake(
        root=root,
        azure=AzureStorage(use_emulator=True, emulator_url=proxy),
        retry_attempts=5,
        retry_backoff_seconds=0.2,
        object_store_retries=1,
    )
    ref = TableRef(*SPAR_VALUES)
    with caplog.at_level(logging.WARNING):
        state = lake.append(
            ref, pl.DataFrame({"indicator_id": ["BPC210", "NH617"], "actual": ["97.1", "12"]})
        )

    assert state.row_count == 2  # written once, not once per attempt
    assert state.metrics["retries"] >= 1 and state.to_metadata()["delta_retries"] == state.metrics["retries"]
    assert "transient storage error, retry 1 of 5" in caplog.text
    assert direct.scan(ref).collect().height == 2
    assert process.poll() is None  # the proxy is still ours to stop (the fixture stops it by its id)


@pytest.mark.azure
def test_a_permanent_storage_error_is_not_retried(azurite: str, caplog: pytest.LogCaptureFixture):
    class WrongKey(AzureStorage):
        def delta_storage_options(self, uri: str) -> dict[str, str]:
            return {**super().delta_storage_options(uri), "account_key": "d3Jvbmc="}  # "wrong"

    lake = DeltaLake(
        root=f"az://lake-{uuid.uuid4().hex[:8]}/kpi", azure=WrongKey(use_emulator=True, emulator_url=azurite)
    )
    with caplog.at_level(logging.WARNING), pytest.raises(LakeWriteError) as error:
        lake.overwrite(TableRef(*SPAR_VALUES), pl.DataFrame({"indicator_id": ["BPC210"]}))
    assert "retry" not in caplog.text and "after" not in str(error.value).split(":")[0]


def test_which_storage_errors_are_transient():
    transient = [
        "Generic MicrosoftAzure error: Error performing GET http://127.0.0.1:1/x in 270ms, after 2 retries, "
        "max_retries 2, retry_timeout 10s - HTTP error - error sending request - client error (Connect) - "
        "tcp connect error - Connection reset by peer (os error 104)",
        "Connection refused (os error 111)",
        "Server returned non-2xx status code: 503 Service Unavailable: ServerBusy",
        "HTTP status server error (500 Internal Server Error) for url (https://acct.blob.core.windows.net/x)",
        "request timed out",
        "Server returned non-2xx status code: 429 Too Many Requests",
    ]
    permanent = [
        "Generic MicrosoftAzure error: ... retry_timeout 180s - Server returned non-2xx status code: 403 Forbidden",
        "Generic delta kernel error: No files in log segment",
        "Schema error: Invalid data type for Delta Lake: Null",
        "Transaction failed: version already exists",
    ]
    assert all(is_transient_error(OSError(text)) for text in transient)
    assert not any(is_transient_error(OSError(text)) for text in permanent)
    assert is_transient_error(RuntimeError("wrapped")) is False
    wrapped = LakeWriteError("writing failed")
    wrapped.__cause__ = ConnectionResetError(104, "reset")
    assert is_transient_error(wrapped)
    sas = "Error performing PUT https://acct.blob.core.windows.net/lake/x?sv=2024&sig=SECRET: 503"
    assert "SECRET" not in redact_error(sas)


# ---- two runs never write one table at once ----------------------------------------------------------------------
def test_the_instance_limits_every_table_pool_to_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ref = TableRef("silver", "spar_net", "kpi_values")

    @dg.asset(key=ref.key_path, pool=table_pool(ref))
    def writes_a_table() -> None:
        pass

    with dg.DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        limits = {
            (limit["key"], limit.get("value")) for limit in config.run_queue_config.tag_concurrency_limits
        }
        assert ("kpi_lake/trigger", "landing") in limits
        assert dg.materialize([writes_a_table], instance=instance).success
        assert instance.event_log_storage.get_concurrency_info(table_pool(ref)).slot_count == 1
