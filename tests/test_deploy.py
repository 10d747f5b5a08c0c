"""The production deployment files: the Dagster instance on a real PostgreSQL server, and the Azure files checked.

The production ``deploy/dagster/dagster.yaml`` is loaded as written, with its ``env:`` settings pointed at the
test's PostgreSQL server. Only its compute-log manager is swapped for a local one: ``AzureBlobComputeLogManager``
builds ``https://<account>.blob.<suffix>`` URLs, which the Azurite emulator (plain HTTP, path-style URLs) cannot
answer, so that block is checked by Dagster's own config schema and by constructing the class instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import PROJECT_ROOT
from tests.pipeline_helpers import local_resources

DEPLOY = PROJECT_ROOT / "deploy"
PRODUCTION_YAML = DEPLOY / "dagster" / "dagster.yaml"
ROOT_YAML = PROJECT_ROOT / "deploy" / "local" / "dagster.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- the production instance on PostgreSQL -------------------------------------------------------------------


@pytest.fixture
def dagster_database(postgres: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the test server, given to the production dagster.yaml through its variables."""
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = sa.engine.make_url(postgres).set(database=name)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username)
    # The test server trusts loopback connections; the password is still read from the environment, as in
    # production, where it comes from Key Vault.
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "not-used-by-a-trust-server")
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "kpilakelogs")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin.dispose()


def _production_home(home: Path, **run_monitoring: int) -> Path:
    """DAGSTER_HOME holding the production dagster.yaml, its compute logs kept locally (see module docstring)."""
    config = _read_yaml(PRODUCTION_YAML)
    config["compute_logs"] = {
        "module": "dagster._core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "compute_logs")},
    }
    config["run_monitoring"].update(run_monitoring)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home


def _subset(resources: dict, *, asset_selection: dg.AssetSelection) -> dg.JobDefinition:
    from pipelines import definitions

    defs = dg.Definitions(assets=definitions.defs.assets, jobs=definitions.defs.jobs, resources=resources)
    job = defs.resolve_job_def("nightly_sync")
    return job.get_subset(asset_selection=set(asset_selection.resolve(job.asset_layer.asset_graph)))


@pytest.mark.postgres
def test_production_instance_keeps_runs_events_and_pool_slots_in_postgres(
    dagster_database: str, landing_copy: Path, tmp_path: Path
):
    from dagster._core.events import DagsterEventType
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    home = _production_home(tmp_path / "dagster_home")
    lake = tmp_path / "lake"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled

        job = _subset(
            local_resources(lake, landing_copy), asset_selection=dg.AssetSelection.groups("bronze_spar_net")
        )
        result = job.execute_in_process(instance=instance)
        assert result.success
        materialised = {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}
        assert materialised == {"bronze/spar_net/kpi_definitions", "bronze/spar_net/kpi_values"}

    # What the webserver and daemon will read: straight from the PostgreSQL tables.
    engine = sa.create_engine(dagster_database)
    try:
        with engine.connect() as conn:
            status = conn.execute(
                sa.text("select status from runs where run_id = :run"), {"run": result.run_id}
            ).scalar_one()
            events = dict(
                conn.execute(
                    sa.text(
                        "select dagster_event_type, count(*) from event_logs where run_id = :run"
                        " group by dagster_event_type"
                    ),
                    {"run": result.run_id},
                ).all()
            )
            asset_keys = set(
                conn.execute(
                    sa.text(
                        "select asset_key from event_logs where run_id = :run"
                        " and dagster_event_type = 'ASSET_MATERIALIZATION'"
                    ),
                    {"run": result.run_id},
                ).scalars()
            )
            pools = dict(
                conn.execute(sa.text('select concurrency_key, "limit" from concurrency_limits')).all()
            )
            held = conn.execute(
                sa.text("select count(*) from concurrency_slots where run_id is not null and not deleted")
            ).scalar()
            tags = dict(
                conn.execute(
                    sa.text("select key, value from run_tags where run_id = :run"), {"run": result.run_id}
                ).all()
            )
    finally:
        engine.dispose()
    assert status == "SUCCESS"
    assert events[DagsterEventType.RUN_SUCCESS.value] == 1  # stored under its legacy name, PIPELINE_SUCCESS
    assert events[DagsterEventType.ASSET_MATERIALIZATION.value] == 2
    assert asset_keys == {'["bronze", "spar_net", "kpi_definitions"]', '["bronze", "spar_net", "kpi_values"]'}
    # Each table's pool was created in PostgreSQL with the default limit of 1, and released at the end.
    assert pools == {"bronze/spar_net/kpi_definitions": 1, "bronze/spar_net/kpi_values": 1}
    assert held == 0
    assert tags["kpi_lake/job"] == "nightly_sync"
    assert (lake / "bronze" / "spar_net" / "kpi_values" / "_delta_log").is_dir()


def _held_slots(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (run_id, key)
            for run_id, key in conn.execute(
                sa.text(
                    "select run_id, concurrency_key from concurrency_slots where run_id is not null and not deleted"
                )
            ).all()
        ]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_run_is_failed_by_run_monitoring_and_its_table_slot_freed(
    dagster_database: str, landing_copy: Path, tmp_path: Path
):
    """`kpi-lake sync` is killed (SIGKILL) while a step holds its table's pool slot; the daemon's own monitoring
    iterations, on the production instance, fail the run and free the slot, and the table can be written again.

    The default run launcher cannot see inside its worker, so a dead run is failed at the instance's runtime
    bound (3 hours in production); here that bound and the slot-freeing delay are shortened to 1 second.
    """
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    home = _production_home(
        tmp_path / "dagster_home", max_runtime_seconds=1, free_slots_after_run_end_seconds=1
    )
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KPI_LAKE_ROOT": str(lake),
        "KPI_LAKE_LANDING": str(landing_copy),
    }
    engine = sa.create_engine(dagster_database)
    with dg.DagsterInstance.from_config(str(home)):
        pass  # the schema exists before any run, as it does once the webserver and daemon have started
    # The business systems' database is locked (as a long write would): the first step to read it waits while
    # holding its table's slot, so the kill lands then however fast the steps are. The lock is let go after 4 s
    # whatever happens (SQLite readers wait 5 s before giving up).
    database = sqlite3.connect(
        landing_copy / "business_systems/council_systems.sqlite",
        isolation_level=None,
        check_same_thread=False,
    )
    database.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(4.0, database.rollback)
    release.start()
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "kpi-lake"), "sync", "--select", "group:bronze_business_systems"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        held: list[tuple[str, str]] = []
        while not held and worker.poll() is None and time.monotonic() < deadline:
            held = _held_slots(engine)
            time.sleep(0.05)
        assert held, "the sync never held a table's pool slot (it finished or failed first)"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        release.join()
        database.close()
        run_id, pool = held[0]

        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
            assert (run_id, pool) in _held_slots(engine)

            logger = logging.getLogger("run_monitoring_test")
            started = time.monotonic()
            with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as context:
                while time.monotonic() - started < 60:
                    list(execute_run_monitoring_iteration(context, logger))
                    list(execute_concurrency_slots_iteration(context, logger))
                    run = instance.get_run_by_id(run_id)
                    if run.status == dg.DagsterRunStatus.FAILURE and not [
                        slot for slot in _held_slots(engine) if slot[0] == run_id
                    ]:
                        break
                    time.sleep(0.5)
            recovered_in = time.monotonic() - started
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
            assert [slot for slot in _held_slots(engine) if slot[0] == run_id] == []
            assert recovered_in < 30

            # The table whose slot the dead run held can be written again (with the slot still held, this run
            # would wait for it until the test timed out).
            asset_key = dg.AssetKey(pool.split("/"))
            job = _subset(
                local_resources(lake, landing_copy), asset_selection=dg.AssetSelection.assets(asset_key)
            )
            assert job.execute_in_process(instance=instance).success
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        engine.dispose()


@pytest.mark.postgres
def test_production_dagster_yaml_loads_unchanged_with_blob_compute_logs(
    dagster_database: str, tmp_path: Path
):
    """The file exactly as shipped: Dagster's own config schema accepts it and builds every part, including the
    Azure Blob compute-log manager signed in by DefaultAzureCredential (built, not called: no Azure here)."""
    from dagster._core.instance.config import dagster_instance_config
    from dagster_azure.blob.compute_log_manager import AzureBlobComputeLogManager

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(PRODUCTION_YAML.read_text(encoding="utf-8"), encoding="utf-8")
    config, _ = dagster_instance_config(str(home))
    assert config["run_monitoring"]["enabled"] is True
    with dg.DagsterInstance.from_config(str(home)) as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, AzureBlobComputeLogManager)
        assert (
            manager._container_client.url == "https://kpilakelogs.blob.core.windows.net/dagster-compute-logs"
        )
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


def test_production_instance_keeps_the_development_pools_and_run_limits():
    production = _read_yaml(PRODUCTION_YAML)["concurrency"]
    development = _read_yaml(ROOT_YAML)["concurrency"]
    assert production["pools"] == development["pools"] == {"default_limit": 1, "granularity": "op"}
    for limit in development["runs"]["tag_concurrency_limits"]:
        assert limit in production["runs"]["tag_concurrency_limits"]


def test_production_dagster_yaml_names_no_secret_value():
    """Every credential-like setting is an `env:` reference, never a literal."""
    config = _read_yaml(PRODUCTION_YAML)
    postgres = config["storage"]["postgres"]["postgres_db"]
    for field in ("hostname", "username", "password", "db_name", "port"):
        assert set(postgres[field]) == {"env"}, field
    blob = config["compute_logs"]["config"]
    assert "access_key_or_sas_token" not in blob and "secret_credential" not in blob
    assert blob["default_azure_credential"] == {}


# --- the Helm values, checked against the official chart's structure --------------------------------------------

HELM_VALUES = DEPLOY / "helm" / "values.yaml"
SECRET_PROVIDER_CLASS = DEPLOY / "k8s" / "secret-provider-class.yaml"
SETTINGS = DEPLOY / "k8s" / "settings.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DEPLOYMENT_DOC = PROJECT_ROOT / "docs" / "DEPLOYMENT.md"

# The keys the official chart accepts in the parts these values set, as its values models declare them
# (dagster-io/dagster, helm/dagster/schema/schema/charts/: dagster/values.py, subschema/{postgresql,
# compute_log_manager,daemon,run_launcher,service_account,global_,webserver,concurrency,retention}.py and
# dagster_user_deployments/subschema/user_deployments.py), written out here rather than vendored. A dict maps
# each accepted key to the structure below it; OPAQUE marks Kubernetes objects passed through as they are.
OPAQUE = object()
_POD = {
    key: OPAQUE
    for key in [
        "env",
        "envConfigMaps",
        "envSecrets",
        "annotations",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "labels",
        "deploymentLabels",
        "volumeMounts",
        "volumes",
        "schedulerName",
    ]
}
_RUN_K8S_CONFIG = {
    k: OPAQUE
    for k in ["containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"]
}
_IMAGE = {"repository": str, "tag": str, "pullPolicy": str}
_TAG_LIMIT = {"key": str, "value": OPAQUE, "limit": int}
CHART_STRUCTURE: dict[str, Any] = {
    "global": {
        "postgresqlSecretName": str,
        "dagsterHome": str,
        "serviceAccountName": str,
        "celeryConfigSecretName": str,
    },
    "serviceAccount": {"create": bool, "name": str, "annotations": OPAQUE},
    "postgresql": {
        "image": OPAQUE,
        "enabled": bool,
        "postgresqlHost": str,
        "postgresqlUsername": str,
        "postgresqlPassword": str,
        "postgresqlDatabase": str,
        "postgresqlParams": OPAQUE,
        "postgresqlScheme": str,
        "service": {"port": int},
    },
    "generatePostgresqlPasswordSecret": bool,
    "generateCeleryConfigSecret": bool,
    "rabbitmq": {"enabled": bool},
    "redis": {"enabled": bool},
    "dagsterWebserver": {
        **_POD,
        **{
            k: OPAQUE
            for k in [
                "replicaCount",
                "image",
                "nameOverride",
                "pathPrefix",
                "service",
                "workspace",
                "enableReadOnly",
            ]
        },
    },
    "dagster-user-deployments": {
        "enabled": bool,
        "enableSubchart": bool,
        "imagePullSecrets": OPAQUE,
        "deployments": [
            {
                **_POD,
                "name": str,
                "image": _IMAGE,
                "dagsterApiGrpcArgs": [str],
                "codeServerArgs": [str],
                "includeConfigInLaunchedRuns": {"enabled": bool},
                "port": int,
            }
        ],
    },
    "runLauncher": {
        "type": str,
        "config": {
            "k8sRunLauncher": {
                **{
                    k: OPAQUE
                    for k in [
                        "image",
                        "imagePullPolicy",
                        "jobNamespace",
                        "kubeconfigFile",
                        "resources",
                        "securityContext",
                    ]
                },
                "loadInclusterConfig": bool,
                "envConfigMaps": OPAQUE,
                "envSecrets": OPAQUE,
                "envVars": [str],
                "volumeMounts": OPAQUE,
                "volumes": OPAQUE,
                "labels": OPAQUE,
                "failPodOnRunFailure": bool,
                "schedulerName": str,
                "runK8sConfig": _RUN_K8S_CONFIG,
            }
        },
    },
    "dagsterDaemon": {
        **_POD,
        "enabled": bool,
        "image": OPAQUE,
        "heartbeatTolerance": int,
        "runCoordinator": {
            "enabled": bool,
            "type": str,
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": OPAQUE,
                    "tagConcurrencyLimits": OPAQUE,
                    "dequeueIntervalSeconds": OPAQUE,
                    "dequeueNumWorkers": OPAQUE,
                    "dequeueUseThreads": OPAQUE,
                    "blockOpConcurrencyLimitedRuns": OPAQUE,
                }
            },
        },
        "runMonitoring": {
            "enabled": bool,
            "startTimeoutSeconds": int,
            "cancelTimeoutSeconds": int,
            "maxResumeRunAttempts": int,
            "pollIntervalSeconds": int,
            "freeSlotsAfterRunEndSeconds": int,
        },
        "runRetries": OPAQUE,
        "sensors": OPAQUE,
        "schedules": OPAQUE,
    },
    "computeLogManager": {
        "type": str,
        "config": {
            "azureBlobComputeLogManager": {
                "storageAccount": str,
                "container": str,
                "secretKey": str,
                "defaultAzureCredential": dict,
                "localDir": str,
                "prefix": str,
                "uploadInterval": int,
            }
        },
    },
    "retention": {
        "enabled": bool,
        "schedule": {"purgeAfterDays": OPAQUE},
        "sensor": {"purgeAfterDays": OPAQUE},
    },
    "telemetry": {"enabled": bool},
    "concurrency": {
        "enabled": bool,
        "pools": {"defaultLimit": int, "granularity": str, "opGranularityRunBuffer": int},
        "runs": {"maxConcurrentRuns": int, "tagConcurrencyLimits": [_TAG_LIMIT]},
    },
    "additionalInstanceConfig": dict,
}


def _structure_errors(value: Any, structure: Any, path: str = "") -> list[str]:
    if structure is OPAQUE:
        return []
    if value is None:  # Helm's way to drop a chart default
        return []
    if isinstance(structure, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        errors = []
        for key, item in value.items():
            if key not in structure:
                errors.append(f"{path}.{key}: not a value of the chart")
            else:
                errors.extend(_structure_errors(item, structure[key], f"{path}.{key}"))
        return errors
    if isinstance(structure, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [
            e for i, item in enumerate(value) for e in _structure_errors(item, structure[0], f"{path}[{i}]")
        ]
    if structure is int and isinstance(value, bool):
        return [f"{path}: expected int, got bool"]
    return [] if isinstance(value, structure) else [f"{path}: expected {structure.__name__}, got {value!r}"]


def test_structure_check_catches_a_misspelt_or_mistyped_value():
    assert _structure_errors({"postgresql": {"postgresqlHostname": "x"}}, CHART_STRUCTURE) == [
        ".postgresql.postgresqlHostname: not a value of the chart"
    ]
    assert _structure_errors(
        {"dagsterDaemon": {"runMonitoring": {"pollIntervalSeconds": "60"}}}, CHART_STRUCTURE
    )


def test_helm_values_fit_the_official_chart():
    assert _structure_errors(_read_yaml(HELM_VALUES), CHART_STRUCTURE) == []


def _instance_from_helm_values(values: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml settings the chart renders from these values (templates/configmap-instance.yaml and
    helpers/_instance.tpl), for the parts the production dagster.yaml also sets."""
    pg = values["postgresql"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    blob = values["computeLogManager"]["config"]["azureBlobComputeLogManager"]
    concurrency = values["concurrency"]
    snake = {
        "startTimeoutSeconds": "start_timeout_seconds",
        "cancelTimeoutSeconds": "cancel_timeout_seconds",
        "maxResumeRunAttempts": "max_resume_run_attempts",
        "pollIntervalSeconds": "poll_interval_seconds",
        "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
        "enabled": "enabled",
    }
    return {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": pg["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": pg["postgresqlHost"],
                    "db_name": pg["postgresqlDatabase"],
                    "port": pg["service"]["port"],
                    "params": pg["postgresqlParams"],
                    "scheme": pg["postgresqlScheme"],
                }
            }
        },
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_monitoring": {snake[k]: v for k, v in monitoring.items()},
        "compute_logs": {
            "module": "dagster_azure.blob.compute_log_manager",
            "class": "AzureBlobComputeLogManager",
            "config": {
                "storage_account": blob["storageAccount"],
                "container": blob["container"],
                "default_azure_credential": blob["defaultAzureCredential"],
                "prefix": blob["prefix"],
                "upload_interval": blob["uploadInterval"],
            },
        },
        "concurrency": {
            "pools": {
                "default_limit": concurrency["pools"]["defaultLimit"],
                "granularity": concurrency["pools"]["granularity"],
            },
            "runs": {
                "max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"],
            },
        },
        "retention": {
            "schedule": {"purge_after_days": values["retention"]["schedule"]["purgeAfterDays"]},
            "sensor": {"purge_after_days": values["retention"]["sensor"]["purgeAfterDays"]},
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def test_helm_values_render_the_production_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What the chart renders is valid Dagster instance config and matches deploy/dagster/dagster.yaml."""
    from dagster._core.instance.config import dagster_instance_config

    values = _read_yaml(HELM_VALUES)
    rendered = _instance_from_helm_values(values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-key-vault")
    dagster_instance_config(str(tmp_path))  # raises on anything Dagster would refuse

    production = _read_yaml(PRODUCTION_YAML)
    assert values["concurrency"]["enabled"] is True
    assert rendered["concurrency"] == production["concurrency"]
    assert rendered["retention"] == production["retention"]
    assert rendered["telemetry"] == production["telemetry"]
    assert (
        rendered["storage"]["postgres"]["postgres_db"]["scheme"]
        == production["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    for key, value in rendered["run_monitoring"].items():
        assert production["run_monitoring"][key] == value, key
    production_blob = production["compute_logs"]["config"]
    for key in ("container", "default_azure_credential", "prefix", "upload_interval"):
        assert rendered["compute_logs"]["config"][key] == production_blob[key], key
    assert not values["postgresql"]["enabled"] and not values["generatePostgresqlPasswordSecret"]


def _pod_specs(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "webserver": values["dagsterWebserver"],
        "daemon": values["dagsterDaemon"],
        **{f"code location {d['name']}": d for d in values["dagster-user-deployments"]["deployments"]},
    }


def test_every_pod_signs_in_by_workload_identity_and_no_key_is_written_anywhere():
    values = _read_yaml(HELM_VALUES)
    assert values["serviceAccount"]["create"] is True
    assert values["serviceAccount"]["name"] == values["global"]["serviceAccountName"]
    assert "azure.workload.identity/client-id" in values["serviceAccount"]["annotations"]
    for name, pod in _pod_specs(values).items():
        assert pod["labels"]["azure.workload.identity/use"] == "true", name
        assert any(v.get("csi", {}).get("driver") == "secrets-store.csi.k8s.io" for v in pod["volumes"]), name
    run = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert run["podTemplateSpecMetadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert values["postgresql"]["postgresqlPassword"] == ""

    secret_markers = (
        "AccountKey=",
        "SharedAccessSignature",
        "sig=",
        "BEGIN PRIVATE KEY",
        "client_secret",
        "password=",
    )
    for path in (HELM_VALUES, PRODUCTION_YAML, SECRET_PROVIDER_CLASS, SETTINGS, DOCKERFILE):
        text = path.read_text(encoding="utf-8")
        for marker in secret_markers:
            assert marker not in text, f"{path.name} holds {marker!r}"


def test_key_vault_secrets_reach_the_secrets_the_chart_reads():
    values = _read_yaml(HELM_VALUES)
    provider = _read_yaml(SECRET_PROVIDER_CLASS)
    assert provider["kind"] == "SecretProviderClass"
    assert provider["spec"]["parameters"]["usePodIdentity"] == "false"
    assert provider["spec"]["parameters"]["clientID"]  # workload identity: the identity's client id
    synced = {s["secretName"]: {d["key"] for d in s["data"]} for s in provider["spec"]["secretObjects"]}
    vault_objects = {
        yaml.safe_load(o)["objectName"]
        for o in yaml.safe_load(provider["spec"]["parameters"]["objects"])["array"]
    }
    for secret in provider["spec"]["secretObjects"]:
        assert {d["objectName"] for d in secret["data"]} <= vault_objects
    assert "postgresql-password" in synced[values["global"]["postgresqlSecretName"]]
    for name, pod in _pod_specs(values).items():
        for volume in pod["volumes"]:
            assert volume["csi"]["volumeAttributes"]["secretProviderClass"] == provider["metadata"]["name"], (
                name
            )
        for ref in pod.get("envSecrets", []):
            assert ref["name"] in synced, name
    code = values["dagster-user-deployments"]["deployments"][0]
    assert {"KPI_LAKE_PSEUDONYM_KEY", "KPI_LAKE_ALERT_WEBHOOK"} <= synced[code["envSecrets"][0]["name"]]


def test_settings_put_the_lake_on_adls_gen2():
    settings = _read_yaml(SETTINGS)["data"]
    assert settings["KPI_LAKE_ROOT"].startswith("abfss://")
    assert ".dfs.core.windows.net/" in settings["KPI_LAKE_ROOT"]
    for key in settings:
        assert not any(word in key for word in ("KEY", "SECRET", "PASSWORD", "TOKEN")), key


# --- the Dockerfile (no Docker engine here: parsed, and its command run as the image would) ----------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments and the parser directive skipped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_dockerfile_installs_from_the_lock_and_runs_as_a_non_root_grpc_server():
    import json
    import tomllib

    instructions = _dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    assert "ADD" not in keywords  # COPY only: nothing fetched or unpacked implicitly
    for keyword, arguments in instructions:
        if keyword == "COPY" and not arguments.startswith("--from="):
            sources = [a for a in arguments.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file in the project"
                assert not any(
                    word in source.lower() for word in (".env", "secret", ".pem", ".key", "id_rsa")
                )
        if keyword in ("ENV", "ARG"):
            assert not any(
                word in arguments.upper() for word in ("PASSWORD", "SECRET", "ACCOUNT_KEY", "SAS_TOKEN")
            )

    syncs = [arguments for keyword, arguments in instructions if keyword == "RUN" and "uv sync" in arguments]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs)
    lock_copied = next(i for i, (k, a) in enumerate(instructions) if k == "COPY" and "uv.lock" in a)
    first_sync = next(i for i, (k, a) in enumerate(instructions) if k == "RUN" and "uv sync" in a)
    assert lock_copied < first_sync

    final = _final_stage(instructions)
    user = [arguments for keyword, arguments in final if keyword == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert [k for k, _ in final].index("USER") < [k for k, _ in final].index("ENTRYPOINT")

    entrypoint = json.loads(next(a for k, a in final if k == "ENTRYPOINT"))
    command = json.loads(next(a for k, a in final if k == "CMD"))
    assert entrypoint == ["dagster", "api", "grpc"]
    exposed = {int(a) for k, a in final if k == "EXPOSE"}
    assert int(command[command.index("--port") + 1]) in exposed
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert command[command.index("--module-name") + 1] == pyproject["tool"]["dagster"]["module_name"]

    values = _read_yaml(HELM_VALUES)
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["port"] in exposed
    grpc_args = deployment["dagsterApiGrpcArgs"]
    assert grpc_args[grpc_args.index("--module-name") + 1] == pyproject["tool"]["dagster"]["module_name"]

    python_image = next(a for k, a in instructions if k == "ARG" and a.startswith("PYTHON_IMAGE="))
    version = python_image.split(":")[1].split("-")[0]
    assert version not in ("latest", "")
    minor = int(version.split(".")[1])
    assert 11 <= minor < 14, "the image's Python must satisfy requires-python (>=3.11,<3.14)"


@pytest.mark.slow
def test_the_image_command_serves_the_code_location(tmp_path: Path):
    """The image's ENTRYPOINT + CMD, run from the project folder (what the image holds at /opt/kpi-lake), serve
    the Definitions over gRPC; Dagster's own health check answers."""
    import json

    from tests.conftest import free_port, stop_process_group, wait_for_port

    final = _final_stage(_dockerfile_instructions())
    command = json.loads(next(a for k, a in final if k == "ENTRYPOINT")) + json.loads(
        next(a for k, a in final if k == "CMD")
    )
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    bin_dir = Path(sys.executable).parent
    command[0] = str(bin_dir / command[0])
    home = tmp_path / "dagster_home"
    home.mkdir()
    server = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=120, process=server)
        check = subprocess.run(
            [
                str(bin_dir / "dagster"),
                "api",
                "grpc-health-check",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        stop_process_group(server)


def test_the_guide_sets_every_name_the_deployment_files_leave_to_the_site():
    """Each ${NAME} in the Helm values and manifests is exported in docs/DEPLOYMENT.md and passed to the envsubst
    that fills that file; the guide names the pricing region and the measured 10M-row numbers."""
    import re

    guide = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    exported = set(re.findall(r"^export (\w+)=", guide, flags=re.MULTILINE))
    for path in (HELM_VALUES, SETTINGS, SECRET_PROVIDER_CLASS):
        text = "\n".join(
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.lstrip().startswith("#")
        )
        names = set(re.findall(r"\$\{(\w+)\}", text))
        assert names, path.name
        assert names <= exported, f"{path.name}: {names - exported} never exported in the guide"
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        substitutions = re.findall(rf"envsubst '([^']+)' < {re.escape(relative)}", guide)
        assert substitutions, f"the guide never fills {relative}"
        assert names == {name.lstrip("$") for name in substitutions[0].split()}, relative
    assert "UK South" in guide and "2 GB" in guide and "126 s" in guide
    for role in ("Storage Blob Data Contributor", "Key Vault Secrets User"):
        assert role in guide


# --- executors by configuration ---------------------------------------------------------------------------------


def test_the_executor_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    from pipelines import executors

    monkeypatch.delenv("KPI_LAKE_EXECUTOR", raising=False)
    monkeypatch.delenv("KPI_LAKE_MAX_CONCURRENT", raising=False)
    assert executors.executor_from_env().name == "multiprocess"
    assert 1 <= executors.max_concurrent() <= 4
    monkeypatch.setenv("KPI_LAKE_MAX_CONCURRENT", "2")
    assert executors.max_concurrent() == 2
    monkeypatch.setenv("KPI_LAKE_MAX_CONCURRENT", "two")
    with pytest.raises(ValueError, match="KPI_LAKE_MAX_CONCURRENT='two'"):
        executors.executor_from_env()

    monkeypatch.setenv("KPI_LAKE_EXECUTOR", "in_process")
    assert executors.executor_from_env() is dg.in_process_executor
    monkeypatch.setenv("KPI_LAKE_EXECUTOR", "threads")
    with pytest.raises(
        ValueError, match="KPI_LAKE_EXECUTOR='threads': expected one of multiprocess, in_process"
    ):
        executors.executor_from_env()

    monkeypatch.setenv("KPI_LAKE_EXECUTOR", "celery")
    monkeypatch.delenv("KPI_LAKE_CELERY_BROKER", raising=False)
    expected = (
        "dagster-celery" if importlib.util.find_spec("dagster_celery") is None else "KPI_LAKE_CELERY_BROKER"
    )
    with pytest.raises(RuntimeError, match=expected):
        executors.executor_from_env()


def nightly_sync_job() -> dg.JobDefinition:
    """The nightly job as the code location defines it (module level, so child processes can rebuild it)."""
    from pipelines.definitions import defs

    return defs.resolve_job_def("nightly_sync")


@pytest.mark.postgres
@pytest.mark.slow
def test_multiprocess_steps_share_only_the_lake_and_the_instance(
    dagster_database: str, landing_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The nightly job's own executor (multiprocess) on the production instance: steps run in separate
    processes, each table's pool is claimed in PostgreSQL, and no step hands a file or value to another
    (nothing is written to the instance's local storage folder, where an IO manager would put outputs)."""
    home = _production_home(tmp_path / "dagster_home")
    lake = tmp_path / "lake"
    monkeypatch.setenv("KPI_LAKE_ROOT", str(lake))
    monkeypatch.setenv("KPI_LAKE_LANDING", str(landing_copy))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("KPI_LAKE_MAX_CONCURRENT", "2")
    monkeypatch.delenv("KPI_LAKE_EXECUTOR", raising=False)
    selection = dg.AssetSelection.groups("bronze_spar_net")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        job = nightly_sync_job()
        assert job.executor_def.name == "multiprocess"
        keys = selection.resolve(job.asset_layer.asset_graph)
        with dg.execute_job(
            dg.reconstructable(nightly_sync_job), instance=instance, asset_selection=list(keys)
        ) as result:
            assert result.success
            step_pids = {e.pid for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
            materialised = {e.asset_key for e in result.get_asset_materialization_events()}
        assert materialised == keys
        assert len(step_pids) > 1
        pools = {limit.name for limit in instance.event_log_storage.get_pool_limits()}
    assert {"/".join(key.path) for key in keys} <= pools
    storage = home / "storage"
    assert not storage.exists() or not [p for p in storage.rglob("*") if p.is_file()]
    for key in keys:
        assert (lake.joinpath(*key.path) / "_delta_log").is_dir()
