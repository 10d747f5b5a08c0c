"""Great Expectations Data Docs, rendered by GX's own site builder and published into the lake at
``<lake>/docs/data_quality/`` (a local folder, or the lake's Azure container).

Two steps, so that a run pays for rendering once rather than once per table:

* each check stores its GX results in ``_gx_store/<suite>.json`` beside the site (:func:`store_gx_results`,
  milliseconds; the last :data:`KEEP_RUNS` runs per suite are kept);
* after the run, :func:`render_data_docs` renders that run's pages and the index of every table in one GX
  build (GX renders into a local folder only, so it renders there and copies the result to the lake). Pages
  of runs no longer kept are removed with them.

The site works offline: the styles and scripts GX links from CDNs are shipped in ``docs_static/`` and copied
into the site's ``static/vendor/``, and every rendered page is pointed at those copies
(:func:`make_page_offline`).
"""

from __future__ import annotations

import json
import re
import shutil
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
#: The CDN files GX's pages link, shipped in ``docs_static/`` (its README gives versions and licences).
VENDORED = Path(__file__).with_name("docs_static")
_VENDOR_PATH = "static/vendor"
_BOOTSTRAP_TABLE = "https://unpkg.com/bootstrap-table@"
_CDN_FILES = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/dist/umd/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    f"{_BOOTSTRAP_TABLE}1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    f"{_BOOTSTRAP_TABLE}1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    f"{_BOOTSTRAP_TABLE}1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    f"{_BOOTSTRAP_TABLE}1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    f"{_BOOTSTRAP_TABLE}1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.min.css"
    ),
}
_CDN_URL = re.compile("|".join(re.escape(url) for url in sorted(_CDN_FILES, key=len, reverse=True)))
#: GX's logo (light and dark) from its web-assets bucket: the copy GX ships in its own static folder.
_REMOTE_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3[\w.-]*\.amazonaws\.com/[\w-]+\.png(?:\?[^\"')\s]*)?"
)
# Chrome refuses a crossorigin script or style from file:// (no CORS there): the local copies drop the
# attribute, and the integrity hash that goes with it.
_CROSS_ORIGIN = re.compile(r"""\s+(?:integrity|crossorigin)=(?:"[^"]*"|'[^']*'|[^\s>]+)""")
_SITE_STATIC = re.compile(r"""((?:src|href)=["'])(?:\./|(?:\.\./)+)?static/""")
# Charts only: GX links vega on every page, and a page without a chart does not need it.
_VEGA_TAG = re.compile(r"""\s*<script src="https://cdn\.jsdelivr\.net/npm/vega[\w-]*@\d+"></script>""")


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
        _make_site_offline(site)
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


def make_page_offline(html: str, depth: int) -> str:
    """A rendered page pointed at the site's own copies of its styles and scripts instead of CDNs. ``depth``
    is how many folders below the site's root the page is (0 for the index)."""
    up = "../" * depth

    def local(url: re.Match[str]) -> str:
        return f"{up}{_VENDOR_PATH}/{_CDN_FILES[url[0]]}"

    def local_tag(tag: re.Match[str]) -> str:
        text = _CDN_URL.sub(local, tag[0])
        return _CROSS_ORIGIN.sub("", text) if text != tag[0] else text

    if "vegaEmbed" not in html:
        html = _VEGA_TAG.sub("", html)
    html = re.sub(r"<(?:script|link)\b[^>]*>", local_tag, html)
    # GX points a validation page's own static files (favicon) one folder short: use the page's real depth.
    html = _SITE_STATIC.sub(lambda ref: f"{ref[1]}{up}static/", html)
    return _REMOTE_LOGO.sub(f"{up}static/images/logo-long.png", html)


def _make_site_offline(site: Path) -> None:
    """Point every page GX rendered at local copies, and put the copies in the site's static folder."""
    for page in site.rglob("*.html"):
        if page.stat().st_size:  # not a placeholder
            depth = len(page.relative_to(site).parts) - 1
            page.write_text(make_page_offline(page.read_text(encoding="utf-8"), depth), encoding="utf-8")
    shutil.copytree(VENDORED, site / _VENDOR_PATH, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))


def _upload_rendered(fs: Any, base: str, site: Path) -> int:
    """Copy what GX rendered (non-empty pages, the index; static files the lake lacks) from ``site`` to the
    lake."""
    written = 0
    prefix = base.strip("/") + "/"
    in_lake = fs.find(f"{base}/static") if fs.exists(f"{base}/static") else []
    static_present = {path.strip("/").split(prefix, 1)[-1] for path in in_lake}
    for path in sorted(site.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(site).as_posix()
        if relative in static_present:
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
