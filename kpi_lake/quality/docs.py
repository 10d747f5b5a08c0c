"""Great Expectations Data Docs, rendered by GX's own site builder and published into the lake at
``<lake>/docs/data_quality/`` (a local folder, or the lake's Azure container).

Two steps, so that a run pays for rendering once rather than once per table:

* each check stores its GX results in ``_gx_store/<suite>.json`` beside the site (:func:`store_gx_results`,
  milliseconds; the last :data:`KEEP_RUNS` runs per suite are kept);
* after the run, :func:`render_data_docs` renders that run's pages and the index of every table in one GX
  build (GX renders into a local folder only, so it renders there and copies the result to the lake). Pages
  of runs no longer kept are removed with them.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_lake.quality.results import ValidationReport
from kpi_lake.storage import is_remote, join_uri, local_path, parse_azure_uri, redact

if TYPE_CHECKING:
    from resources.lake import DeltaLake

#: Where the site lives below the lake root.
DOCS_PATH = "docs/data_quality"
#: Validation pages kept per suite (one per run that validated it): a week of nightly runs. The history
#: table keeps every result for trends; Data Docs are for reading what failed lately, and why.
KEEP_RUNS = 7
STORE = "_gx_store"
_SITE = "lake"


@dataclass(frozen=True)
class DocsPublished:
    """Where the Data Docs are and what one render wrote."""

    index_uri: str
    suites: int
    pages_written: int
    pages_removed: int
    seconds: float


def docs_uri(lake: DeltaLake) -> str:
    """The Data Docs index in the lake (safe to show: no credentials)."""
    return redact(join_uri(lake.root, DOCS_PATH, "index.html"))


def store_gx_results(lake: DeltaLake, report: ValidationReport) -> bool:
    """Keep this report's GX results for Data Docs (False when GX did not run: results were reused)."""
    if not report.gx_results:
        return False
    fs, base = _lake_filesystem(lake)
    fs.makedirs(f"{base}/{STORE}", exist_ok=True)
    path = f"{base}/{STORE}/{report.suite.name}.json"
    kept = _read_json(fs, path)
    runs = list(dict.fromkeys([report.run_id, *(item["run_id"] for item in kept)]))[:KEEP_RUNS]
    items = [{**item, "run_id": report.run_id} for item in report.gx_results]
    items += [item for item in kept if item["run_id"] in runs and item["run_id"] != report.run_id]
    with fs.open(path, "w") as handle:  # one writer per suite: only this table's check writes this file
        json.dump(items, handle)
    return True


def render_data_docs(lake: DeltaLake, run_id: str | None = None) -> DocsPublished | None:
    """Render the Data Docs pages of ``run_id`` (default: every suite's latest run) and the index into the
    lake. None when there is nothing to render (no stored results for that run: GX is not even imported)."""
    started = time.perf_counter()
    fs, base = _lake_filesystem(lake)
    stores = {path: _read_json(fs, path) for path in sorted(fs.glob(f"{base}/{STORE}/*.json"))}
    latest = {path: items[0]["run_id"] for path, items in stores.items() if items}
    wanted = [
        item
        for path, items in stores.items()
        for item in items
        if item["run_id"] == (run_id or latest.get(path))
    ]
    if not wanted:
        return None
    with tempfile.TemporaryDirectory(prefix="kpi-lake-docs-") as tmp:
        site = Path(tmp)
        existing = _placeholders(fs, base, site)
        context, keys, kept_pages = _context_with_results(site, stores, wanted)
        context.build_data_docs(site_names=[_SITE], resource_identifiers=keys)
        written = _upload_rendered(fs, base, site)
    stale = [page for page in existing if page.startswith("validations/") and page not in kept_pages]
    for page in stale:
        fs.rm(f"{base}/{page}")
    return DocsPublished(docs_uri(lake), len(stores), written, len(stale), time.perf_counter() - started)


def _lake_filesystem(lake: DeltaLake) -> tuple[Any, str]:
    """An fsspec filesystem and the site's base path on it (a local folder, or container/path on Azure)."""
    if is_remote(lake.root):
        location = parse_azure_uri(join_uri(lake.root, DOCS_PATH))
        return lake.azure.filesystem(lake.root), f"{location.container}/{location.path}".rstrip("/")
    import fsspec

    folder = local_path(join_uri(lake.root, DOCS_PATH)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return fsspec.filesystem("file"), folder.as_posix()


def _read_json(fs: Any, path: str) -> list[dict[str, Any]]:
    if not fs.exists(path):
        return []
    with fs.open(path, "r") as handle:
        return json.load(handle)


def _placeholders(fs: Any, base: str, site: Path) -> list[str]:
    """Empty local stand-ins for the pages already in the lake, so that GX's index lists them (it indexes the
    pages in its site folder that still have a stored result behind them)."""
    pages = []
    prefix = base.strip("/") + "/"
    for section in ("expectations", "validations"):
        if not fs.exists(f"{base}/{section}"):
            continue
        for path in fs.find(f"{base}/{section}"):
            relative = path.strip("/").split(prefix, 1)[-1]
            if relative.endswith(".html"):
                target = site / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
                pages.append(relative)
    return pages


def _context_with_results(
    site: Path, stores: dict[str, list[dict[str, Any]]], wanted: list[dict[str, Any]]
) -> tuple[Any, list[Any], set[str]]:
    """A GX context whose stores hold every kept suite and result; the keys to render (``wanted``'s); and the
    validation pages that should exist for what is kept."""
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from kpi_lake.quality.validate import gx_context

    context = gx_context()
    context.add_data_docs_site(
        _SITE,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    schema = ExpectationSuiteValidationResultSchema()
    wanted_ids = {id(item) for item in wanted}
    keys: list[Any] = []
    pages: set[str] = set()
    suites_added: set[str] = set()
    for items in stores.values():
        for item in items:  # newest first: the suite as it was last run is the one shown
            if item["suite"]["name"] not in suites_added:
                context.suites.add(ExpectationSuite(**{k: v for k, v in item["suite"].items() if k != "id"}))
                suites_added.add(item["suite"]["name"])
            result = schema.load(item["result"])
            run = result.meta["run_id"]
            run_identifier = RunIdentifier(run_name=run["run_name"], run_time=run["run_time"])
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
                run_id=run_identifier,
                batch_identifier=item["batch_id"],
            )
            context.validation_results_store.set(key, result)
            pages.add("validations/" + "/".join(_page_parts(key)) + ".html")
            if id(item) in wanted_ids:
                keys += [key, ExpectationSuiteIdentifier(name=result.suite_name)]
    return context, keys, pages


def _page_parts(key: Any) -> tuple[str, ...]:
    """The path GX gives a validation page: the suite name's parts, run name, run time, batch id."""
    return tuple(str(part) for part in key.to_tuple())


def _upload_rendered(fs: Any, base: str, site: Path) -> int:
    """Copy what GX rendered (non-empty pages, the index; the static files once) from ``site`` to the lake."""
    written = 0
    static_present = fs.exists(f"{base}/static")
    for path in sorted(site.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(site).as_posix()
        if relative.startswith("static/") and static_present:
            continue
        if relative.endswith(".html") and path.stat().st_size == 0:
            continue  # a placeholder for a page that is already there
        target = f"{base}/{relative}"
        try:
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), target)
        except OSError as exc:  # a full disk or a read-only lake: name the page, not just the errno
            raise OSError(exc.errno, exc.strerror or str(exc), target) from exc
        written += 1
    return written
