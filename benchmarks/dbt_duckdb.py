"""The SQL models (``dbt_like_sql/``) against dbt-duckdb running the same models over the same inputs.

    .venv/bin/python benchmarks/dbt_duckdb.py                 # scale 100 (~5M business-system rows)
    .venv/bin/python benchmarks/dbt_duckdb.py --scale 20      # a quicker run

In one run: generate a sample landing zone at ``--scale`` and sync what the models read into a temporary lake
(the real assets, in process); export each table the models read (``source(...)`` / ``layer.source.table``)
to Parquet; write a real dbt project (``dbt_project.yml``, ``profiles.yml`` for dbt-duckdb, one model per
``dbt_like_sql`` model with ``ref()`` kept and lake tables as ``{{ source() }}`` over the Parquet exports,
materialised as tables); then time, each in its own child process and interleaved, ``dbt run`` and kpi-lake
building the same models (``python benchmarks/dbt_duckdb.py --kpi-lake-run LAKE``: load the models, then
``build_model`` each in dependency order against the lake resource, as the assets do: read the Delta inputs,
compute, write the Delta result). The row count of every model must agree (exit 1 otherwise). Prints a table
of times, the ratio kpi-lake / dbt-duckdb, peak RSS and row-count agreement.

Needs the ``bench`` dependency group (``uv sync --group bench``; ``make bench`` does it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

MODELS_ROOT = PROJECT_ROOT / "dbt_like_sql"
DBT_PROJECT = "kpi_lake_bench"
#: dbt-duckdb's connection, as kpi-lake's DuckDB engine sets it: dates cast from UTC timestamps must not
#: depend on the host's time zone.
DUCKDB_SETTINGS = {"TimeZone": "UTC"}


# ---- translation: a dbt_like_sql model as a dbt model ---------------------------------------------------


def source_name(ref) -> str:
    """The dbt source a lake table belongs to: ``silver.spar_net.kpi_values`` → source ``silver__spar_net``,
    table ``kpi_values`` (dbt's ``source()`` takes two names; the layer and the lake source make the first)."""
    return f"{ref.layer}__{ref.source}"


def dbt_model_sql(model, model_names: dict) -> str:
    """The model's query for dbt-duckdb: each table it reads becomes ``{{ ref('name') }}`` (a table another
    model writes) or ``{{ source('layer__source', 'table') }}`` (a lake table a Python asset writes), aliased to
    its table name as kpi-lake registers it, so ``kpi_values.actual`` still resolves. The models are written in
    DuckDB's dialect (``kpi_lake.sql_models.parsing.DIALECT``); sqlglot writes the parsed query out in DuckDB's
    dialect (a translation when a model's dialect differs, a normalisation otherwise)."""
    from sqlglot import exp

    from kpi_lake.sql_models.parsing import DIALECT, table_uses

    if model.reads_this:
        raise ValueError(f"{model.display_path}: incremental models reading `this` are not translated")
    tree = model.query.copy()
    jinja: dict[str, str] = {}
    for index, use in enumerate(table_uses(tree)):
        if use.ref is None:
            raise ValueError(f"{model.display_path}: {use.problem or 'unexpected table'}")
        placeholder = f"dbt_placeholder_{index}"
        name = model_names.get(use.ref)
        jinja[placeholder] = (
            f"{{{{ ref('{name}') }}}}"
            if name is not None
            else f"{{{{ source('{source_name(use.ref)}', '{use.ref.table}') }}}}"
        )
        alias = use.node.args.get("alias")
        use.node.replace(
            exp.Table(
                this=exp.to_identifier(placeholder),
                alias=alias or exp.TableAlias(this=exp.to_identifier(use.node.name)),
            )
        )
    sql = tree.sql(dialect=DIALECT, pretty=True)
    # Longest first, so dbt_placeholder_1 does not match inside dbt_placeholder_10.
    for placeholder in sorted(jinja, key=len, reverse=True):
        sql = sql.replace(placeholder, jinja[placeholder])
    return sql + "\n"


def source_tables(models) -> list:
    """The lake tables the models read that no model writes (what dbt sees as sources)."""
    written = {model.ref for model in models}
    return sorted({ref for model in models for ref in model.inputs if ref not in written})


def write_dbt_project(directory: Path, models, parquet: dict, database: Path, threads: int) -> None:
    """A dbt project over the Parquet exports: one model per SQL model, all materialised as tables."""
    import yaml

    model_names = {model.ref: model.name for model in models}
    (directory / "models").mkdir(parents=True, exist_ok=True)
    project = {
        "name": DBT_PROJECT,
        "version": "1.0.0",
        "config-version": 2,
        "profile": DBT_PROJECT,
        "model-paths": ["models"],
        "target-path": "target",
        "flags": {"send_anonymous_usage_stats": False},
        "models": {DBT_PROJECT: {"+materialized": "table"}},
    }
    profiles = {
        DBT_PROJECT: {
            "target": "bench",
            "outputs": {
                "bench": {
                    "type": "duckdb",
                    "path": str(database),
                    "threads": threads,
                    "settings": DUCKDB_SETTINGS,
                }
            },
        }
    }
    by_source: dict[str, list] = {}
    for ref in parquet:
        by_source.setdefault(source_name(ref), []).append(ref)
    sources = {
        "version": 2,
        "sources": [
            {
                "name": name,
                "tables": [
                    {
                        "name": ref.table,
                        "meta": {"external_location": f"read_parquet('{parquet[ref].as_posix()}')"},
                    }
                    for ref in refs
                ],
            }
            for name, refs in sorted(by_source.items())
        ],
    }
    (directory / "dbt_project.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    (directory / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    (directory / "models" / "sources.yml").write_text(yaml.safe_dump(sources, sort_keys=False))
    for model in models:
        folder = directory / "models" / model.ref.layer / model.ref.source
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{model.name}.sql").write_text(dbt_model_sql(model, model_names))


# ---- the kpi-lake side (a child process) -------------------------------------------------------------------


def kpi_lake_run(lake_root: str) -> int:
    """Build every SQL model into ``lake_root`` as the assets do (``build_model`` with the lake resource), and
    print how long the imports, loading the models and building them took."""
    started = time.perf_counter()
    from kpi_lake.sql_models import build_model, load_sql_models
    from resources.azure import AzureStorage
    from resources.lake import DeltaLake

    imported = time.perf_counter()
    lake = DeltaLake(root=lake_root, azure=AzureStorage())
    models = load_sql_models(MODELS_ROOT)
    loaded = time.perf_counter()
    for model in models:
        build_model(model, lake)
    built = time.perf_counter()
    phases = {"imports": imported - started, "load models": loaded - imported, "build models": built - loaded}
    print(BREAKDOWN + json.dumps(phases))
    return 0


BREAKDOWN = "kpi-lake phases: "
#: dbt's own summary line: the time from its first model to its last, without start-up and parsing.
DBT_FINISHED = re.compile(r"Finished running \d+ .*\(([\d.]+)s\)")


def run_phases(side: str, log: Path) -> dict[str, float]:
    """The child's own account of where its time went (kpi-lake's phases, dbt's time running models)."""
    text = log.read_text(errors="replace")
    if side == "kpi-lake":
        line = next(line for line in text.splitlines() if line.startswith(BREAKDOWN))
        return json.loads(line.removeprefix(BREAKDOWN))
    match = DBT_FINISHED.search(text)
    return {"running models": float(match[1])} if match else {}


# ---- the harness -------------------------------------------------------------------------------------------


#: Runs a command and prints its peak RSS (KB). The harness is big by the time it measures (it synced the
#: inputs in process); a child forked from it would count the harness's pages in its own peak, so each
#: command is started from this small launcher instead.
LAUNCHER = """
import os, sys
log = open(sys.argv[1], "wb")
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ, file_actions=[
    (os.POSIX_SPAWN_DUP2, log.fileno(), 1), (os.POSIX_SPAWN_DUP2, log.fileno(), 2)])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def timed(command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command`` in a child process: wall seconds and its peak RSS in MB. Its output goes to ``log``."""
    started = time.perf_counter()
    launched = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(log), *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    max_rss_kb, code = (int(part) for part in launched.stdout.split())
    if code != 0:
        sys.stderr.write(log.read_text(errors="replace")[-6000:])
        raise SystemExit(f"{Path(command[0]).name} {command[1]} … failed with exit code {code}")
    return seconds, max_rss_kb / 1024


def sync_inputs(work: Path, scale: float, seed: int, needed: list) -> tuple[Path, float, int]:
    """Generate the landing zone and materialise what the models read (and what that needs), in process."""
    import dagster as dg

    from kpi_lake.sample_data import generate_landing
    from pipelines import definitions
    from tests.pipeline_helpers import local_resources

    story = generate_landing(work / "landing", scale=scale, seed=seed)
    lake_root = work / "lake"
    started = time.perf_counter()
    job = dg.define_asset_job(
        "bench_model_inputs",
        selection=dg.AssetSelection.assets(*[dg.AssetKey(ref.key_path) for ref in needed]).upstream(),
    )
    defs = dg.Definitions(
        assets=definitions.defs.assets, jobs=[job], resources=local_resources(lake_root, work / "landing")
    )
    result = defs.resolve_job_def("bench_model_inputs").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        raise SystemExit("syncing the models' inputs failed")
    return lake_root, time.perf_counter() - started, sum(story.business_rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=100, help="sample scale (default 100)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each; the best is shown")
    parser.add_argument("--threads", type=int, default=1, help="dbt threads (models built at once)")
    parser.add_argument("--work", type=Path, help="keep everything in this folder (reused if already synced)")
    parser.add_argument("--kpi-lake-run", metavar="LAKE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kpi_lake_run:
        return kpi_lake_run(args.kpi_lake_run)

    import polars as pl

    from kpi_lake.sql_models import load_sql_models

    models = load_sql_models(MODELS_ROOT)
    sources = source_tables(models)
    work = args.work or Path(tempfile.mkdtemp(prefix="kpi-lake-dbt-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # 1. the inputs, synced by the real assets
        marker = work / "synced.json"
        if marker.exists():
            synced = json.loads(marker.read_text())
        else:
            lake_root, seconds, business_rows = sync_inputs(work, args.scale, args.seed, sources)
            synced = {"scale": args.scale, "seconds": seconds, "business_rows": business_rows}
            marker.write_text(json.dumps(synced))
        lake_root = work / "lake"
        print(
            f"scale {synced['scale']:g}: {synced['business_rows']:,} business-system rows; "
            f"models' inputs synced in {synced['seconds']:.0f} s"
        )

        # 2. the inputs as Parquet (for dbt) and as a lake holding only them (for kpi-lake)
        parquet_dir, inputs_lake = work / "parquet", work / "inputs_lake"
        shutil.rmtree(parquet_dir, ignore_errors=True)
        shutil.rmtree(inputs_lake, ignore_errors=True)
        parquet_dir.mkdir()
        parquet, input_rows = {}, 0
        for ref in sources:
            path = parquet_dir / f"{source_name(ref)}__{ref.table}.parquet"
            scan = pl.scan_delta(str(lake_root / ref.path))
            scan.sink_parquet(path)
            input_rows += pl.scan_parquet(path).select(pl.len()).collect().item()
            parquet[ref] = path
            shutil.copytree(lake_root / ref.path, inputs_lake / ref.path)
        print(f"{len(models)} models over {len(sources)} input tables ({input_rows:,} rows)")

        # 3. the dbt project
        dbt_dir, database = work / "dbt", work / "dbt" / "bench.duckdb"
        shutil.rmtree(dbt_dir, ignore_errors=True)
        write_dbt_project(dbt_dir, models, parquet, database, args.threads)
        dbt = shutil.which("dbt", path=str(Path(sys.executable).parent)) or shutil.which("dbt")
        if dbt is None:
            raise SystemExit("dbt is not installed: uv sync --group bench (make bench does it)")
        dbt_env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DBT_PROFILES_DIR": str(dbt_dir)}
        dbt_command = [dbt, "run", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)]
        # A first, untimed run: dbt parses the project and caches it (partial parsing), as a user's
        # second and later runs find it; it also checks the generated project works before timing it.
        timed(dbt_command, dbt_dir, work / "dbt_first.log", dbt_env)

        # 4. interleaved timed runs, each side on fresh outputs
        run_lake = work / "run_lake"
        results: dict[str, list[tuple[float, float, dict[str, float]]]] = {"dbt-duckdb": [], "kpi-lake": []}
        kpi_command = [sys.executable, str(Path(__file__).resolve()), "--kpi-lake-run", str(run_lake)]
        for attempt in range(args.repeat):
            database.unlink(missing_ok=True)
            log = work / f"dbt_{attempt}.log"
            results["dbt-duckdb"].append((*timed(dbt_command, dbt_dir, log, dbt_env), run_phases("dbt", log)))
            shutil.rmtree(run_lake, ignore_errors=True)
            shutil.copytree(inputs_lake, run_lake)
            log = work / f"kpi_lake_{attempt}.log"
            results["kpi-lake"].append((*timed(kpi_command, PROJECT_ROOT, log), run_phases("kpi-lake", log)))

        # 5. row counts of every model, both sides
        import duckdb

        connection = duckdb.connect(str(database), read_only=True)
        mismatches = []
        rows_out = 0
        for model in models:
            ours = pl.scan_delta(str(run_lake / model.ref.path)).select(pl.len()).collect().item()
            theirs = connection.execute(f'select count(*) from "{model.name}"').fetchall()[0][0]
            rows_out += ours
            if ours != theirs:
                mismatches.append(f"{model.name}: kpi-lake {ours:,} rows, dbt-duckdb {theirs:,}")
        connection.close()

        # 6. the table
        load = os.getloadavg()
        best = {side: min(runs, key=lambda run: run[0]) for side, runs in results.items()}
        ratio = best["kpi-lake"][0] / best["dbt-duckdb"][0]
        agree = "all agree" if not mismatches else f"{len(mismatches)} differ"
        print(f"{len(models)} models, {rows_out:,} rows written; load average {load[0]:.1f} {load[1]:.1f}")
        print(
            f"{'':<12}{'best s':>8}{'all runs s':>16}{'peak RSS':>11}  {'row counts':<11} where the time went"
        )
        for side, (seconds, rss, phases) in best.items():
            runs = " ".join(f"{run[0]:.1f}" for run in results[side])
            where = ", ".join(f"{name} {value:.1f} s" for name, value in phases.items())
            print(f"{side:<12}{seconds:>8.1f}{runs:>16}{rss:>8.0f} MB  {agree:<11} {where}")
        print(
            f"ratio kpi-lake / dbt-duckdb (best whole commands): {ratio:.2f} "
            f"(floor 1.0x: {'PASS' if ratio <= 1.0 else 'FAIL'})"
        )
        for line in mismatches:
            print(f"ROW COUNTS DIFFER: {line}", file=sys.stderr)
        return 1 if mismatches else 0
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
