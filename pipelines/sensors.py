"""Operations: a sensor that syncs what lands in ``landing/`` (SPAR.net exports arrive at any hour), an alert on
every failed run (logged, written to ``gold/operations/alerts``, posted to a webhook when one is set), and the
Data Docs job that renders a run's data-quality results once it has finished.

Two runs never write one table at once: each asset that writes a table declares the Dagster concurrency pool
named after the table's lake path (:func:`table_pool`: ``silver/spar_net/kpi_values``), and ``dagster.yaml``
limits every pool to one op at a time. Transient storage errors are retried by the lake resource itself.
"""

import datetime as dt
import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

import dagster as dg
import polars as pl

from assets.bronze import FILE_TABLES
from kpi_lake.bronze import FileTable, UnmatchedFile, unmatched_files
from kpi_lake.storage import is_remote, join_uri, parse_azure_uri
from kpi_lake.tables import TableRef
from pipelines.jobs import nightly_sync
from resources.lake import DeltaLake, LakeWriteError, redact_error
from resources.landing import LandingZone

#: Failed runs, one row each: what failed, why, and whether the webhook took the alert.
ALERTS = TableRef("gold", "operations", "alerts")
DOCS_JOB_NAME = "publish_data_docs"
#: Pool of the Data Docs op: one render at a time writes the site.
DOCS_POOL = "docs/data_quality"


def table_pool(ref: TableRef) -> str:
    """The concurrency pool of the asset that writes ``ref``: its lake path. With ``pools: default_limit: 1``
    in dagster.yaml, two runs never write the same table at the same time."""
    return ref.path


# ---- the landing zone -----------------------------------------------------------------------------------------
def landing_signatures(landing: LandingZone, tables: Iterable[FileTable]) -> dict[str, str]:
    """Every file a bronze table takes, by its name below the landing root, with what identifies its content:
    size and modification time locally, size and ETag on Azure (listed once per folder)."""
    by_source: dict[str, list[FileTable]] = {}
    for table in tables:
        by_source.setdefault(table.source, []).append(table)
    signatures: dict[str, str] = {}
    for source, specs in by_source.items():
        patterns = tuple(p for spec in specs for p in spec.patterns)
        files = landing.list_files(source, patterns)
        etags = _remote_etags(landing, source) if is_remote(landing.root) else {}
        for file in files:
            if not any(_takes(spec, file.name) for spec in specs):
                continue
            if is_remote(landing.root):
                signatures[file.name] = f"{file.size}:{etags.get(file.name, '')}"
            else:
                signatures[file.name] = f"{file.size}:{os.stat(file.uri).st_mtime_ns}"
    return signatures


def _takes(spec: FileTable, name: str) -> bool:
    base = name.rsplit("/", 1)[-1].lower()
    return any(fnmatch.fnmatch(base, p.lower()) for p in spec.patterns) and not any(
        fnmatch.fnmatch(base, p.lower()) for p in spec.exclude
    )


def _remote_etags(landing: LandingZone, source: str) -> dict[str, str]:
    location = parse_azure_uri(join_uri(landing.root, source))
    fs = landing.azure.filesystem(landing.root)
    prefix = f"{location.container}/{location.path}".rstrip("/")
    if not fs.exists(prefix):
        return {}
    return {
        f"{source}/{entry['name'].rsplit('/', 1)[-1]}": str(
            entry.get("etag") or entry.get("last_modified") or ""
        )
        for entry in fs.ls(prefix, detail=True)
        if entry.get("type") == "file"
    }


def landing_unmatched(landing: LandingZone, tables: Iterable[FileTable]) -> list[UnmatchedFile]:
    """Files in a table's landing folder that no table's patterns take (a misnamed export), each with the
    table it is closest to: they would otherwise wait there unseen."""
    tables = list(tables)
    names = [f.name for source in sorted({t.source for t in tables}) for f in landing.list_files(source)]
    return unmatched_files(names, tables)


#: Cursor key listing the unmatched files already warned about (each is warned about once, not every minute).
_UNMATCHED_KEY = "?unmatched"


def table_digests(signatures: dict[str, str], tables: Iterable[FileTable]) -> dict[str, str]:
    """A short digest of each bronze file table's files (names and content signatures), by table path.

    The sensor's cursor holds these, not the list of every file (which filled the sensor's page in the UI): a
    table whose digest changed has a new, changed or removed file, which is all the sensor needs to run it.
    The files are listed afresh at each evaluation, and bronze knows by content hash which it already holds.
    """
    digests = {}
    for spec in tables:
        taken = sorted(
            f"{name}\t{signature}"
            for name, signature in signatures.items()
            if _source(name) == spec.source and _takes(spec, name)
        )
        digests[spec.ref.path] = hashlib.sha256("\n".join(taken).encode()).hexdigest()[:12]
    return digests


def landing_cursor(digests: dict[str, str], file_count: int, unmatched: list[str] | None = None) -> str:
    """The landing sensor's cursor: how many files it saw (for people), each table's digest, and the files
    matching no table that were already warned about."""
    state: dict = {"files": file_count, "tables": digests}
    if unmatched:
        state[_UNMATCHED_KEY] = sorted(unmatched)
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def changed_tables(cursor: str, digests: dict[str, str]) -> list[str]:
    """The tables whose files differ from what the cursor recorded. A cursor from before the digests (every
    file and its signature) is digested the same way, so an upgrade starts no run."""
    state = json.loads(cursor)
    files = {name: signature for name, signature in state.items() if not name.startswith("?")}
    previous = state["tables"] if "tables" in state else table_digests(files, FILE_TABLES)
    return sorted(path for path, digest in digests.items() if previous.get(path) != digest)


@dg.sensor(
    name="landing_files_sensor",
    job=nightly_sync,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Every minute, looks for new or changed files in landing/ (a SPAR.net export, a DfE file …) and runs "
        "the bronze tables that take them and everything downstream. The first evaluation records what is "
        "there without starting a run; the nightly sync covers anything that landed before."
    ),
)
def landing_files_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    current = landing_signatures(landing, FILE_TABLES)
    digests = table_digests(current, FILE_TABLES)
    previous = json.loads(context.cursor) if context.cursor else None
    warned = set((previous or {}).get(_UNMATCHED_KEY, []))
    unmatched = landing_unmatched(landing, FILE_TABLES)
    for file in unmatched:
        if file.name not in warned:
            context.log.warning(file.message)
    note = (
        f"; {len(unmatched)} files match no table: {', '.join(f.name for f in unmatched)}"
        if unmatched
        else ""
    )
    cursor = landing_cursor(digests, len(current), [f.name for f in unmatched])
    if previous is None:
        context.update_cursor(cursor)
        return dg.SkipReason(f"first look at the landing zone: {len(current)} files recorded{note}")
    changed = changed_tables(context.cursor, digests)
    if not changed:
        if context.cursor != cursor:
            context.update_cursor(cursor)
        return dg.SkipReason(f"nothing new in the landing zone{note}")
    tables = [spec for spec in FILE_TABLES if spec.ref.path in changed]
    bronze = [dg.AssetKey(spec.ref.key_path) for spec in tables]
    selection = _with_downstream(context, bronze)
    sources = sorted({spec.source for spec in tables})
    run_key = hashlib.sha256(
        json.dumps({path: digests[path] for path in changed}, sort_keys=True).encode()
    ).hexdigest()[:16]
    context.log.info(
        f"new or changed files for {', '.join(changed)}; running {len(selection)} assets for {', '.join(sources)}"
    )
    context.update_cursor(cursor)
    return dg.RunRequest(
        run_key=f"landing-{run_key}",
        asset_selection=selection,
        tags={"kpi_lake/trigger": "landing", "kpi_lake/sources": ",".join(sources)},
    )


def _source(name: str) -> str:
    return name.split("/", 1)[0]


def _with_downstream(context: dg.SensorEvaluationContext, keys: list[dg.AssetKey]) -> list[dg.AssetKey]:
    """The bronze assets and everything that depends on them, from the code location's asset graph."""
    repository = context.repository_def
    if repository is None:
        return keys
    selected = dg.AssetSelection.assets(*keys).downstream().resolve(repository.asset_graph)
    return sorted(selected, key=lambda key: key.to_user_string())


# ---- alerts on failure ----------------------------------------------------------------------------------------
class AlertWebhook(dg.ConfigurableResource):
    """Where failure alerts are POSTed as JSON (Teams/Slack workflow, an incident tool); nothing when unset.

    The URL is a secret (it carries its own token): it is bound from ``KPI_LAKE_ALERT_WEBHOOK`` through
    ``EnvVar`` and only its scheme and host are ever logged.
    """

    url: str | None = None
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> "AlertWebhook":
        if os.environ.get("KPI_LAKE_ALERT_WEBHOOK"):
            return cls(url=dg.EnvVar("KPI_LAKE_ALERT_WEBHOOK"))
        return cls()

    def describe(self) -> str:
        """The webhook as it may be logged: scheme and host only."""
        if not self.url:
            return "no webhook"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def post(self, payload: dict) -> tuple[bool, str]:
        """POST ``payload``; (delivered, what happened) without raising: an alert must not fail the sensor."""
        if not self.url:
            return False, "no webhook configured"
        if urlsplit(self.url).scheme not in ("http", "https"):
            return False, "the webhook URL is not http(s): not called"
        import urllib.error
        import urllib.request  # ~7 ms: when an alert is posted, not when the code location loads

        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload, default=str).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "kpi-lake-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return 200 <= response.status < 300, f"{self.describe()} answered {response.status}"
        except urllib.error.HTTPError as error:
            return False, f"{self.describe()} answered {error.code}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return False, f"{self.describe()} unreachable: {type(reason).__name__}"


ALERT_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "job_name": pl.String(),
    "failed_at": pl.Datetime("us", "UTC"),
    "trigger": pl.String(),
    "failed_steps": pl.String(),
    "message": pl.String(),
    "webhook_delivered": pl.Boolean(),
    "webhook_outcome": pl.String(),
}


def alert_payload(context: dg.RunFailureSensorContext) -> dict:
    """What is known about a failed run, without secrets: job, run id, failed steps and their errors."""
    run = context.dagster_run
    steps = [
        {"step": event.step_key, "error": _root_error(event), **_withheld(event)}
        for event in context.get_step_failure_events()
    ]
    withheld = sorted({kpi for step in steps for kpi in step.get("kpis_withheld", [])})
    trigger = run.tags.get("kpi_lake/trigger") or (
        "schedule" if run.tags.get("dagster/schedule_name") else "manual"
    )
    return {
        "event": "kpi_lake.run_failed",
        "run_id": run.run_id,
        "job_name": run.job_name,
        "failed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "trigger": trigger,
        "message": redact_error(context.failure_event.message or "run failed")[:2000],
        "failed_steps": steps,
        # A gold gate that withheld rows: the rest was published, these KPIs were not (the table says why).
        **({"kpis_withheld": withheld} if withheld else {}),
    }


def _withheld(event: dg.DagsterEvent) -> dict:
    """For the failure of a gate's ``no_rows_withheld`` check: the rows and KPIs withheld, and where to look
    (from the failure's metadata, so the alert needs no read of the lake)."""
    failure = getattr(event.event_specific_data, "user_failure_data", None)
    metadata = getattr(failure, "metadata", None) or {}
    if "rows_withheld" not in metadata:
        return {}
    return {
        key: getattr(metadata[key], "value", metadata[key])
        for key in ("rows_withheld", "kpis_withheld", "withheld_table")
        if key in metadata
    }


def _root_error(event: dg.DagsterEvent) -> str:
    """The error that caused a step failure (not Dagster's wrapper), on one line: for a blocked gold check,
    the table and the names of the failed expectations."""
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return redact_error(event.message or "")[:500]
    while error.cause is not None:
        error = error.cause
    text = " | ".join(line.strip() for line in error.message.strip().splitlines() if line.strip())
    return redact_error(text)[:500]


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Raises an alert for every failed run: logs it, appends it to gold/operations/alerts and POSTs it as "
        "JSON to KPI_LAKE_ALERT_WEBHOOK when that is set (a blocked gold check fails the run, so it alerts too)."
    ),
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, lake: DeltaLake, alert_webhook: AlertWebhook):
    payload = alert_payload(context)
    steps = "; ".join(f"{s['step']}: {s['error']}" for s in payload["failed_steps"]) or "no step failed"
    context.log.error(
        f"run {payload['run_id']} of {payload['job_name']} failed: {payload['message']} ({steps})"
    )
    delivered, outcome = alert_webhook.post(payload)
    context.log.info(f"alert webhook: {outcome}")
    row = pl.DataFrame(
        [
            {
                "run_id": payload["run_id"],
                "job_name": payload["job_name"],
                "failed_at": dt.datetime.fromisoformat(payload["failed_at"]),
                "trigger": payload["trigger"],
                "failed_steps": json.dumps(payload["failed_steps"]),
                "message": payload["message"],
                "webhook_delivered": delivered,
                "webhook_outcome": outcome,
            }
        ],
        schema=ALERT_SCHEMA,
    )
    try:
        lake.append(ALERTS, row)
    except (
        LakeWriteError
    ) as error:  # the alert went out and is in the log; a retried tick would send it twice
        context.log.error(f"alert for run {payload['run_id']} not recorded in {ALERTS}: {error}")


# ---- Data Docs after each run ---------------------------------------------------------------------------------
class DataDocsConfig(dg.Config):
    run_id: str = ""
    """The run whose data-quality results to render (empty: every table's latest)."""


@dg.op(
    name="render_data_docs",
    pool=DOCS_POOL,
    retry_policy=dg.RetryPolicy(
        max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
)
def render_data_docs_op(context: dg.OpExecutionContext, config: DataDocsConfig, lake: DeltaLake) -> None:
    """Render the run's Great Expectations results into the lake's Data Docs site (docs/data_quality/)."""
    from kpi_lake.quality import render_data_docs

    published = render_data_docs(lake, config.run_id or None)
    if published is None:
        context.log.info(f"no Great Expectations results to render for run {config.run_id or '(latest)'}")
        return
    context.log.info(
        f"Data Docs: {published.pages_written} files written, {published.pages_removed} old pages removed, "
        f"{published.suites} suites indexed in {published.seconds:.1f}s: {published.index_uri}"
    )


@dg.job(
    name=DOCS_JOB_NAME,
    description="Renders the Great Expectations Data Docs of a run into <lake>/docs/data_quality/.",
    tags={"kpi_lake/job": DOCS_JOB_NAME},
)
def publish_data_docs():
    render_data_docs_op()


def _docs_request(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    if run.job_name == DOCS_JOB_NAME:
        return dg.SkipReason("a Data Docs run renders no Data Docs of its own")
    checked = context.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=1
    ).records
    if not checked:
        return dg.SkipReason(f"no data-quality check ran in run {run.run_id}")
    return dg.RunRequest(
        run_key=f"docs-{run.run_id}",
        run_config={"ops": {"render_data_docs": {"config": {"run_id": run.run_id}}}},
        tags={"kpi_lake/trigger": "data_docs", "kpi_lake/for_run": run.run_id},
    )


@dg.run_status_sensor(
    name="data_docs_after_success",
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=publish_data_docs,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Renders the data-quality Data Docs of every successful run.",
)
def data_docs_after_success(context: dg.RunStatusSensorContext):
    return _docs_request(context)


@dg.run_status_sensor(
    name="data_docs_after_failure",
    run_status=dg.DagsterRunStatus.FAILURE,
    request_job=publish_data_docs,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Renders the data-quality Data Docs of every failed run (a blocked check is best read there).",
)
def data_docs_after_failure(context: dg.RunStatusSensorContext):
    return _docs_request(context)


#: What pipelines/definitions.py adds: sensors, the Data Docs job, and the alert webhook resource.
sensors = [landing_files_sensor, alert_on_run_failure, data_docs_after_success, data_docs_after_failure]
jobs = [publish_data_docs]


def operations_resources() -> dict[str, dg.ConfigurableResource]:
    return {"alert_webhook": AlertWebhook.from_env()}
