"""The Data Docs work with no network: a locked-down council network, or the lake opened from an archive years
later, sees every page styled, its tables filled, and no request leaving the lake's folder."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg
import pytest

from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.browser import artefacts_folder, chromium
from tests.pipeline_helpers import local_resources

# Everything that loads with the page: script and style sources, stylesheet links, images, CSS url()s.
_LOADED = re.compile(
    r"""<(?:script|img)\b[^>]*\bsrc=["']?([^"' >]+)|<link\b[^>]*\bhref=["']?([^"' >]+)|url\(["']?([^"')]+)"""
)


@pytest.fixture(scope="module")
def docs_site(sample_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Data Docs of a real run: the reference tables with their quality checks, then the docs job."""
    from pipelines import definitions
    from pipelines.sensors import publish_data_docs

    lake_root = tmp_path_factory.mktemp("docs") / "lake"
    defs = dg.Definitions(
        assets=definitions.defs.assets,
        asset_checks=definitions.defs.asset_checks,
        jobs=definitions.defs.jobs,
        resources=local_resources(lake_root, sample_landing),
    )
    selection = dg.AssetSelection.groups("bronze_reference", "silver_reference")
    keys = list(selection.resolve(defs.resolve_asset_graph()))
    result = defs.resolve_job_def("nightly_sync").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=keys
    )
    assert result.success
    lake = DeltaLake(root=str(lake_root), azure=AzureStorage())
    docs = publish_data_docs.execute_in_process(
        run_config={"ops": {"render_data_docs": {"config": {"run_id": result.run_id}}}},
        resources={"lake": lake},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert docs.success
    return lake_root / "docs" / "data_quality"


def test_every_page_loads_only_files_inside_the_site(docs_site: Path):
    pages = sorted(docs_site.rglob("*.html"))
    assert len(pages) >= 4  # the index, and a suite page and a validation page per table
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for match in _LOADED.finditer(html):
            reference = next(group for group in match.groups() if group)
            if reference.startswith(("data:", "#")):
                continue
            assert not urlsplit(reference).scheme, f"{page.relative_to(docs_site)} loads {reference}"
            target = (page.parent / unquote(reference.split("?")[0])).resolve()
            assert target.is_file(), f"{page.relative_to(docs_site)}: {reference} is not in the site"
            assert docs_site.resolve() in target.parents, f"{reference} is outside the site"


def test_index_and_pages_render_with_the_network_off(docs_site: Path, tmp_path: Path):
    pages = {
        "index": docs_site / "index.html",
        "suite": next(docs_site.glob("expectations/**/*.html")),
        "validation": next(docs_site.glob("validations/**/*.html")),
    }
    shots = artefacts_folder("data_docs_offline")
    # No name resolves: any request for a host fails, as on a network with no internet.
    with chromium(tmp_path / "profile", "--host-resolver-rules=MAP * ~NOTFOUND") as browser:
        for name, page_path in pages.items():
            with browser.page() as page:
                page.send(
                    "Network.emulateNetworkConditions",
                    {
                        "offline": True,
                        "latency": 0,
                        "downloadThroughput": -1,
                        "uploadThroughput": -1,
                    },
                )
                page.navigate(page_path.as_uri())
                # bootstrap-table has turned the page's tables into its own (jQuery and the plugin loaded).
                rows = page.wait_for(
                    "window.jQuery && jQuery.fn.bootstrapTable"
                    " && document.querySelectorAll('.bootstrap-table table tbody tr').length",
                    timeout=30,
                )
                page.pump(1)
                page.screenshot(shots / f"{name}.png")
                assert rows >= 1
                # Bootstrap's styles apply (the navbar is a flex box), and Font Awesome's font loaded.
                assert page.evaluate("getComputedStyle(document.querySelector('.navbar')).display") == "flex"
                fonts = "document.fonts.load('900 16px \"Font Awesome 6 Free\"').then(faces => faces.length)"
                assert page.evaluate(fonts) >= 1
                left = [url for url in page.requests if not url.startswith(("file://", "data:"))]
                assert not left, f"{name}: requests left the lake's folder: {left}"
                assert not page.failed_requests, f"{name}: {page.failed_requests}"
                assert not page.errors, f"{name}: {page.errors}"
                # Every image (GX's logo) came from the site's own static folder and decoded.
                assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    index_text = pages["index"].read_text(encoding="utf-8")
    assert "silver.reference.themes" in index_text
