"""Unchanged means unchanged in the UI: materialising a table whose inputs did not change turns nothing
downstream "Unsynced", and one silver table can be materialised without its quarantine twin."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from tests.pipeline_helpers import local_resources

SILVER_KPI_VALUES = dg.AssetKey(["silver", "spar_net", "kpi_values"])


def _stale(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[dg.AssetKey, StaleStatus]:
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return {key: resolver.get_status(key) for key in graph.materializable_asset_keys}


def test_rematerialising_an_unchanged_table_leaves_nothing_unsynced(landing_copy: Path, tmp_path: Path):
    from pipelines import definitions

    defs = dg.Definitions(
        assets=definitions.defs.assets,
        jobs=definitions.defs.jobs,
        resources=local_resources(tmp_path / "lake", landing_copy),
    )
    instance = dg.DagsterInstance.ephemeral()
    assert defs.resolve_job_def("nightly_sync").execute_in_process(instance=instance).success
    before = _stale(instance, defs)
    assert StaleStatus.STALE not in before.values(), [k for k, s in before.items() if s == StaleStatus.STALE]

    # What the UI does when one table is selected and materialised: a run of that table alone.
    one_table = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={SILVER_KPI_VALUES})
    result = one_table.execute_in_process(instance=instance)
    assert result.success
    materialised = [e.asset_key for e in result.get_asset_materialization_events()]
    assert materialised == [SILVER_KPI_VALUES], "only the selected table is recorded"

    after = _stale(instance, defs)
    unsynced = sorted(k.to_user_string() for k, status in after.items() if status == StaleStatus.STALE)
    assert unsynced == [], f"turned Unsynced although nothing changed: {unsynced}"
    assert after[dg.AssetKey(["gold", "kpi_mart", "kpi_single_view"])] == StaleStatus.FRESH

    # A real change does show: a new SPAR.net export makes what is downstream of it stale.
    export = next((landing_copy / "spar_net").glob("spar_export_*.csv"))
    content = export.read_bytes()  # the same rows with other line endings: a new file to bronze (new hash)
    export.write_bytes(
        content.replace(b"\r\n", b"\n") if b"\r\n" in content else content.replace(b"\n", b"\r\n")
    )
    bronze = dg.AssetKey(["bronze", "spar_net", "kpi_values"])
    changed = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={bronze})
    assert changed.execute_in_process(instance=instance).success
    assert _stale(instance, defs)[SILVER_KPI_VALUES] == StaleStatus.STALE
