"""Attack cases on secrets: planted credentials must never be printed, stored or sent.

The environment holds what a council's would: an Azure account key, SAS token and service-principal secret, a
pseudonym key, a business database on a real PostgreSQL server whose URL carries a password, and an alert
webhook whose URL carries a token. Each value is distinctive, so finding it anywhere is a leak. The real
``kpi-lake sync`` runs as a subprocess (its own process group, killed by its id if it hangs); then every byte
the run left is searched: its output, the Dagster instance's storage (SQLite databases, compute logs), every
file of the lake (Delta logs, parquet files raw and decoded, Data Docs, quality results) and the alert sent
for a failed run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
import sqlalchemy as sa

from kpi_lake.personal_data import key_fingerprint
from kpi_lake.sample_data import write_business_database
from tests.attack.cli_env import cli_env
from tests.conftest import PROJECT_ROOT, free_port

pytestmark = pytest.mark.postgres

CLI = str(Path(sys.executable).parent / "kpi-lake")
#: The business extracts (the database URL) and the survey's silver (the pseudonym key), with their bronze.
SELECT = "group:bronze_business_systems or group:bronze_qol_survey or key:silver/qol_survey/responses*"
TAG = uuid.uuid4().hex[:8]
SECRETS = {
    "AZURE_STORAGE_ACCOUNT_KEY": f"QUNDT1VOVEtFWS1wbGFudGVk{TAG}ZmFrZS1hY2NvdW50LWtleQ==",
    "AZURE_STORAGE_SAS_TOKEN": f"sv=2024-11-04&sig=PlantedSasSignature{TAG}%3D",
    "AZURE_CLIENT_SECRET": f"planted~client~secret~{TAG}~Q8x",
    "KPI_LAKE_PSEUDONYM_KEY": f"planted-pseudonym-key-{TAG}-do-not-store",
}
DB_PASSWORD = f"PlantedDbPassword{TAG}"
WRONG_DB_PASSWORD = f"WrongDbPassword{TAG}"
WEBHOOK_TOKEN = f"planted-webhook-token-{TAG}"


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.received.append((self.path, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    """A loopback HTTP server recording what is POSTed to it; yields the webhook URL, token included."""
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?token={WEBHOOK_TOKEN}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def council_db(postgres: str) -> str:
    """The sample business database on the real PostgreSQL server, owned by a role that logs in with a
    password; returns the URL with that password in it."""
    role, name = f"council_{TAG}", f"council_{TAG}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"create role {role} login password '{DB_PASSWORD}'"))
        connection.execute(sa.text(f"create database {name} owner {role}"))
    admin.dispose()
    host = postgres.split("@", 1)[1].rsplit("/", 1)[0]
    url = f"postgresql+psycopg://{role}:{DB_PASSWORD}@{host}/{name}"
    # The test server trusts every login; this role must give its password, as a council's would.
    with admin.connect() as connection:
        hba = Path(connection.execute(sa.text("show hba_file")).scalar())
        rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())
        connection.execute(sa.text("select pg_reload_conf()"))
    admin.dispose()
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        sa.create_engine(url.replace(DB_PASSWORD, "not-the-password")).connect().close()
    write_business_database(url, scale=0.2, seed=11)
    return url


def _env(lake: Path, landing: Path, home: Path, database: str, webhook: str) -> dict[str, str]:
    return cli_env(
        lake,
        landing,
        home,
        **SECRETS,
        AZURE_STORAGE_ACCOUNT_NAME="plantedcouncilacct",
        AZURE_CLIENT_ID="00000000-0000-0000-0000-0000000000aa",
        AZURE_TENANT_ID="00000000-0000-0000-0000-0000000000bb",
        KPI_LAKE_BUSINESS_DB=database,
        KPI_LAKE_ALERT_WEBHOOK=webhook,
    )


def _sync(env: dict[str, str], timeout: float = 600) -> tuple[int, str, str]:
    process = subprocess.Popen(
        [CLI, "sync", "--select", SELECT],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"kpi-lake sync did not end within {timeout}s:\n{out[-2000:]}\n{err[-2000:]}")
    return process.returncode, out, err


def _planted() -> list[str]:
    return [*SECRETS.values(), DB_PASSWORD, WRONG_DB_PASSWORD, WEBHOOK_TOKEN]


def _found(text: str | bytes, where: str) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [f"{where}: {secret[:24]}…" for secret in _planted() if secret in text]


def _scan_folder(folder: Path) -> tuple[list[str], int]:
    """Every file's bytes; parquet files also decoded (their pages are compressed)."""
    leaks, files = [], 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        files += 1
        where = path.relative_to(folder).as_posix()
        leaks += _found(path.read_bytes(), where)
        if path.suffix == ".parquet":
            leaks += _found(pl.read_parquet(path).write_ndjson(), f"{where} (decoded)")
    return leaks, files


def _send_alert(home: Path, lake: Path, run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the daemon's alert sensor does for the failed run, with the webhook from the environment."""
    import dagster as dg

    from pipelines.sensors import AlertWebhook, alert_on_run_failure
    from resources.azure import AzureStorage
    from resources.lake import DeltaLake

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        (failure,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        with dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure.dagster_event,
            resources={
                "lake": DeltaLake(root=str(lake), azure=AzureStorage()),
                "alert_webhook": AlertWebhook.from_env(),
            },
        ).for_run_failure() as context:
            alert_on_run_failure(context)


def test_planted_secrets_are_never_printed_stored_or_sent(
    sample_landing: Path,
    council_db: str,
    webhook: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """Planted secrets (Azure key, SAS, client secret, pseudonym key, DB password, webhook token): none printed, stored in Dagster or the lake, or sent in an alert."""
    lake, home = tmp_path / "lake", tmp_path / "home"
    env = _env(lake, sample_landing, home, council_db, webhook)

    code, out, err = _sync(env)
    assert code == 0, out + err
    assert "bronze/business_systems/council_tax_payments" in out and "silver/qol_survey/responses" in out, out
    # A run that fails on the database: the URL with a wrong password in it.
    wrong = {**env, "KPI_LAKE_BUSINESS_DB": council_db.replace(DB_PASSWORD, WRONG_DB_PASSWORD)}
    failed_code, failed_out, failed_err = _sync(wrong)
    assert failed_code == 1, failed_out + failed_err
    assert "password authentication failed" in failed_err, failed_err[-3000:]
    failed_run = failed_out.split("(run ", 1)[1].split(")", 1)[0]

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KPI_LAKE_ALERT_WEBHOOK", webhook)
    _send_alert(home, lake, failed_run, monkeypatch)
    assert len(_Receiver.received) == 1, "the alert was not delivered"
    path, payload = _Receiver.received[0]
    assert WEBHOOK_TOKEN in path  # sent to the configured URL, token and all
    assert json.loads(payload)["run_id"] == failed_run
    # And once more to a webhook that does not answer: its outcome is logged and recorded, its token not.
    monkeypatch.setenv("KPI_LAKE_ALERT_WEBHOOK", f"http://127.0.0.1:{free_port()}/hook?token={WEBHOOK_TOKEN}")
    _send_alert(home, lake, failed_run, monkeypatch)
    alerts = pl.read_delta(str(lake / "gold" / "operations" / "alerts"))
    assert sorted(alerts["webhook_delivered"].to_list()) == [False, True], alerts
    assert "unreachable" in alerts.filter(~pl.col("webhook_delivered"))["webhook_outcome"].item()

    leaks = _found(out + err, "first sync's output") + _found(failed_out + failed_err, "failed sync's output")
    leaks += _found(payload, "alert payload")
    home_leaks, home_files = _scan_folder(home)
    lake_leaks, lake_files = _scan_folder(lake)
    leaks += [f"DAGSTER_HOME/{leak}" for leak in home_leaks] + [f"lake/{leak}" for leak in lake_leaks]
    assert any(p.suffix == ".db" for p in home.rglob("*")), "no Dagster storage was written"
    assert (lake / "gold" / "operations" / "alerts" / "_delta_log").is_dir()  # the alert was recorded
    assert (lake / "docs" / "data_quality" / "index.html").is_file()
    assert leaks == []
    # The scan reads what the failure stored: the database's user (not a secret) is in Dagster's storage.
    assert any(f"council_{TAG}".encode() in p.read_bytes() for p in home.rglob("*") if p.is_file())

    # The pseudonym key is told apart by its fingerprint, stored with silver's commit; the key is not.
    fingerprint = key_fingerprint(SECRETS["KPI_LAKE_PSEUDONYM_KEY"].encode())
    log = "".join(
        p.read_text() for p in (lake / "silver" / "qol_survey" / "responses" / "_delta_log").glob("*.json")
    )
    assert fingerprint in log
    print(
        f"[secrets] planted secrets: {len(_planted())} values, 0 found in 2 syncs' output, {home_files} "
        f"Dagster files, {lake_files} lake files and the alert; key fingerprint {fingerprint} stored"
    )
