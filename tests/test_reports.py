"""The quarterly performance report, as its readers get it: built by a real materialisation of the partitioned
asset from a lake the real nightly job made; its numbers checked against the mart's own tables (the workbook
and the HTML tables, row by row); the HTML opened in headless Chromium (no console errors, no request leaving
the file); the PDF turned into page images and text with poppler; the CLI; a past quarter; Azure (Azurite)."""

from __future__ import annotations

import html
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import openpyxl
import polars as pl
import pytest

from assets.gold.reports import REPORT_KEY, quarterly_performance, reporting_quarters
from kpi_lake.reports import (
    ReportError,
    build_report,
    gather,
    latest_reported_quarter,
    publish_report,
    quarter_key_before,
)
from kpi_lake.reports.render import render_html
from kpi_lake.sample_data import generate_landing
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.conftest import free_port, stop_process_group, wait_for_port
from tests.pipeline_helpers import local_resources, run_nightly

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SINGLE_VIEW = TableRef("gold", "kpi_mart", "kpi_single_view")
SCORECARD = TableRef("gold", "kpi_mart", "theme_scorecard")
DIM_THEME = TableRef("gold", "kpi_mart", "dim_theme")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> DeltaLake:
    """A lake built by one real nightly run from the generated landing zone."""
    root = tmp_path_factory.mktemp("reports")
    generate_landing(root / "landing", scale=0.2)
    resources = local_resources(root / "lake", root / "landing")
    assert run_nightly(resources).success
    return resources["lake"]


@pytest.fixture(scope="module")
def quarter(lake: DeltaLake) -> str:
    return latest_reported_quarter(lake)


@pytest.fixture(scope="module")
def materialised(lake: DeltaLake, quarter: str) -> tuple[Path, dict]:
    """The report asset materialised for the latest quarter, as the sensor (or the UI) would run it."""
    result = dg.materialize([quarterly_performance], partition_key=quarter, resources={"lake": lake})
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.asset_key == REPORT_KEY
    assert event.materialization.partition == quarter
    metadata = {name: value.value for name, value in event.materialization.metadata.items()}
    return Path(lake.root) / "reports" / quarter, metadata


def _view(lake: DeltaLake) -> pl.DataFrame:
    return lake.scan(SINGLE_VIEW).collect()


def _sheet(path: Path, name: str) -> pl.DataFrame:
    """A worksheet as a frame (header row → column names), read with openpyxl, not with the writer's code."""
    rows = list(openpyxl.load_workbook(path, read_only=True)[name].iter_rows(values_only=True))
    return pl.DataFrame(
        [list(r) for r in rows[1:]], schema=[str(c) for c in rows[0]], orient="row", infer_schema_length=None
    )


def test_materialisation_writes_html_pdf_and_workbook_with_links_pages_and_counts(materialised, quarter):
    folder, metadata = materialised
    for audience in ("cabinet", "scrutiny"):
        for kind in ("html", "pdf", "xlsx"):
            path = folder / f"{audience}.{kind}"
            assert path.stat().st_size > 10_000, path
            assert metadata[f"{audience}_{kind}"] == str(path)
        assert metadata[f"{audience}_pdf_pages"] >= 5
    headline = sum(metadata[f"kpis_rag_{s}"] for s in ("green", "amber", "red", "no_target", "no_data"))
    assert headline == metadata["kpis_kpis"] > 20
    assert not list(folder.glob(".*")), "no half-written (temporary) file is left behind"


def test_every_kpi_row_in_the_workbook_and_the_html_equals_the_mart(lake, quarter, materialised):
    folder, metadata = materialised
    view = _view(lake)
    label = view.filter(pl.col("Period_Key") == quarter)["Period"][0]
    themes = lake.scan(DIM_THEME).collect()
    book = openpyxl.load_workbook(folder / "cabinet.xlsx")
    rows = []
    for code in themes["theme_code"]:
        sheet = _sheet(folder / "cabinet.xlsx", code).with_columns(pl.lit(code).alias("theme_code"))
        # polars writes each frame as an Excel table: its header row has the filter buttons.
        tables = list(book[code].tables.values())
        assert tables and tables[0].autoFilter is not None, f"sheet {code} has no filter"
        rows.append(sheet)
    report = pl.concat(rows, how="vertical_relaxed")
    joined = report.join(
        view.select(
            "KPI_Code",
            "Period",
            "Actual",
            "Target",
            "RAG_Status",
            "Direction_Of_Travel",
            "Comparator_Position",
            "Period_Type",
        ),
        left_on=["Code", "Period"],
        right_on=["KPI_Code", "Period"],
        how="left",
        suffix="_mart",
    )
    assert joined["Period_Type"].null_count() == 0, "every row is a row of the mart (KPI and period)"
    for ours, mart in (
        ("Actual", "Actual_mart"),
        ("Target", "Target_mart"),
        ("RAG", "RAG_Status"),
        ("Direction of travel", "Direction_Of_Travel"),
        ("Comparator position", "Comparator_Position"),
    ):
        different = joined.filter(pl.col(ours).cast(pl.String).ne_missing(pl.col(mart).cast(pl.String)))
        assert different.height == 0, f"{ours} differs from the mart:\n{different}"
    # Each quarterly KPI's row is this quarter's, wherever the mart has a value for it.
    has_value_now = view.filter(pl.col("Period_Key") == quarter, pl.col("Actual").is_not_null())["KPI_Code"]
    quarterly = joined.filter(pl.col("Code").is_in(has_value_now.implode()))
    assert quarterly.height and (quarterly["Period"] == label).all()
    # Per theme, the quarter's RAG counts are the mart's scorecard (cross-cutting KPIs count in each theme).
    scorecard = lake.scan(SCORECARD).filter(pl.col("period_key") == quarter).collect()
    for theme in scorecard.iter_rows(named=True):
        mine = quarterly.filter(pl.col("theme_code") == theme["theme_code"])
        for status, column in (("Green", "green_count"), ("Amber", "amber_count"), ("Red", "red_count")):
            assert mine.filter(pl.col("RAG") == status).height == theme[column], (theme["theme_code"], status)
    # The summary counts each KPI once, over the theme tables.
    summary = _sheet(folder / "cabinet.xlsx", "Summary")
    per_kpi = report.unique("Code").group_by("RAG").len()
    for status, count in zip(summary["RAG Status"], summary["This Quarter"], strict=True):
        assert count == per_kpi.filter(pl.col("RAG") == status)["len"].sum(), status
        assert metadata[f"kpis_rag_{status.lower().replace(' ', '_')}"] == count

    # The HTML's theme tables say the same as the workbook.
    tables = _tables((folder / "cabinet.html").read_text(encoding="utf-8"))
    kpi_tables = [t for t in tables if t["caption"].split(" (")[0].endswith(f"KPIs at {label}")]
    assert len(kpi_tables) == themes.height
    shown = {
        (row[0].split(" ✱")[0].split("\n")[0].strip(), row[1], row[2], row[3], row[4])
        for t in kpi_tables
        for row in t["rows"]
    }
    expected = {
        (r["KPI"], r["Period"], _fmt(r["Actual"]), _fmt(r["Target"]), r["RAG"])
        for r in report.iter_rows(named=True)
    }
    assert shown == expected


def _fmt(value) -> str:
    return "–" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")


class _TableParser(HTMLParser):
    """Tables of an HTML page as caption + rows of cell texts (stdlib only: the test does not trust the
    template's own structure beyond what any reader would see)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_caption = False
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "rows": [], "headers": []})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
            if self._in_head:
                self.tables[-1]["headers"].append(dict(attrs).get("scope"))
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if not self._in_head:
                self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in_caption:
            self.tables[-1]["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)


def _tables(html: str) -> list[dict]:
    parser = _TableParser()
    parser.feed(html)
    for table in parser.tables:
        table["caption"] = " ".join(table["caption"].split())
        # The RAG cell's shape is drawn, not written: the cell's text is the status word.
        table["rows"] = [[cell.replace("\xa0", " ") for cell in row] for row in table["rows"]]
    return parser.tables


def test_tables_have_header_scopes_and_captions(materialised):
    folder, _ = materialised
    for name in ("cabinet.html", "scrutiny.html"):
        tables = _tables((folder / name).read_text(encoding="utf-8"))
        assert tables
        for table in tables:
            assert table["caption"], name
            assert table["headers"] and all(scope == "col" for scope in table["headers"]), table["caption"]


def test_red_kpis_unreconciled_figures_and_survey_intervals_are_in_the_exceptions(
    lake, quarter, materialised
):
    folder, _ = materialised
    text = html.unescape((folder / "cabinet.html").read_text(encoding="utf-8"))
    reds = _sheet(folder / "cabinet.xlsx", "Red KPIs")
    assert reds.height > 0
    for row in reds.iter_rows(named=True):
        assert row["KPI Name"] in text
        if row["Action To Improve"]:
            assert row["Action To Improve"] in text
    # Every figure the mart could not reconcile with SPAR.net, up to this quarter, with both figures.
    view = _view(lake)
    mismatched = view.filter(pl.col("Reconciled_With_SPAR_Net") == False)  # noqa: E712
    sheet = _sheet(folder / "cabinet.xlsx", "Not reconciled")
    assert sorted(sheet["KPI Code"]) == sorted(mismatched["KPI_Code"])
    spar = lake.scan(TableRef("silver", "spar_net", "kpi_values")).collect()
    for row in sheet.iter_rows(named=True):
        reported = spar.filter(pl.col("kpi_code") == row["KPI Code"], pl.col("period_label") == row["Period"])
        assert f"SPAR.net reports {_fmt(row['SPAR.net figure'])}" in row["Reconciliation Note"]
        assert row["Lake figure"] != row["SPAR.net figure"]
        assert reported.height == 0 or reported["actual"][0] == row["SPAR.net figure"]
    survey = _sheet(folder / "cabinet.xlsx", "Survey")
    assert survey.height > 0 and survey["Lower CI"].null_count() == 0
    assert "overlapping (or touching) intervals are <em>stable</em>" in text


def test_html_renders_in_headless_chromium_without_errors_or_network(materialised, tmp_path: Path):
    folder, _ = materialised
    port = free_port()
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60, process=browser)
        page = _page_target(port)
        seen = _open_in_devtools(page["webSocketDebuggerUrl"], (folder / "cabinet.html").as_uri())
    finally:
        stop_process_group(browser)
    assert seen["errors"] == [], seen["errors"]
    outside = [url for url in seen["requests"] if not url.startswith(("file://", "data:"))]
    assert outside == [], f"the report fetched {outside}"
    page = seen["page"]
    assert page["lang"] == "en-GB"
    assert page["sections"][:2] == ["summary", "themes"] and "exceptions" in page["sections"]
    levels = [int(h[1]) for h in page["headings"]]
    assert levels[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
    assert page["images"] > 20 and page["broken_images"] == [] and page["images_without_alt"] == 0


def _page_target(port: int) -> dict:
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            pages = [t for t in json.load(reply) if t["type"] == "page"]
        if pages or time.monotonic() > deadline:
            return pages[0]
        time.sleep(0.2)


_PAGE_FACTS = """JSON.stringify({
  lang: document.documentElement.lang,
  sections: [...document.querySelectorAll('main > section')].map(s => s.id),
  headings: [...document.querySelectorAll('h1,h2,h3,h4')].map(h => h.tagName),
  images: document.images.length,
  broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
  images_without_alt: [...document.images].filter(i => !i.alt).length,
})"""


def _open_in_devtools(ws_url: str, url: str) -> dict:
    """Navigate to ``url`` over the DevTools protocol; collect every request, console error and exception."""
    from websockets.sync.client import connect

    requests: list[str] = []
    errors: list[str] = []
    with connect(ws_url, max_size=None, open_timeout=30) as ws:
        ids = iter(range(1, 10_000))

        def call(method: str, **params) -> dict:
            message_id = next(ids)
            ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv(timeout=120))
                if message.get("id") == message_id:
                    assert "error" not in message, message
                    return message.get("result", {})
                events.append(message)

        events: list[dict] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            call(f"{domain}.enable")
        call("Page.navigate", url=url)
        deadline = time.monotonic() + 120
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            assert time.monotonic() < deadline, "the page did not finish loading"
            events.append(json.loads(ws.recv(timeout=120)))
        facts = json.loads(
            call("Runtime.evaluate", expression=_PAGE_FACTS, returnByValue=True)["result"]["value"]
        )
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
    return {"requests": requests, "errors": errors, "page": facts}


def test_pdf_pages_and_text(materialised, lake, tmp_path: Path):
    folder, metadata = materialised
    pdf = folder / "cabinet.pdf"
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == metadata["cabinet_pdf_pages"]
    first = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "2", "-layout", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Quarterly performance report" in first and "Summary" in first
    assert f"Page 1 of {len(pages)}" in first
    whole = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for theme in lake.scan(DIM_THEME).collect().iter_rows(named=True):
        assert theme["theme_name"] in whole and theme["owning_director"] in whole
    for heading in ("Performance by theme", "Exceptions", "Survey measures", "Notes on sources"):
        assert heading in whole
    reds = _sheet(folder / "cabinet.xlsx", "Red KPIs")
    assert all(code in whole for code in reds["KPI Code"])


def test_past_quarter_builds_and_matches_last_quarter_column(lake, quarter):
    previous = quarter_key_before(quarter)
    assert previous in reporting_quarters()
    now, before = gather(lake, quarter), gather(lake, previous)
    assert before.period_key == previous
    assert before.summary["This_Quarter"].to_list() == now.summary["Last_Quarter"].to_list()
    assert before.kpis().filter(pl.col("Period_Type") == "quarter")["Period_Key"].is_in([previous]).any()


def test_unknown_quarter_or_theme_is_a_clear_error(lake):
    with pytest.raises(ReportError, match=r"'FY1990-91-Q1' is not a quarter in gold/kpi_mart/dim_period"):
        gather(lake, "FY1990-91-Q1")
    with pytest.raises(ReportError, match=r"no theme 'XYZ'.*themes are CYP"):
        gather(lake, latest_reported_quarter(lake), theme="XYZ")
    with pytest.raises(ReportError, match="not a quarter key"):
        quarter_key_before("2024/25 Q2")


def test_cli_writes_one_commissions_scrutiny_report_with_full_history(lake, quarter, tmp_path, monkeypatch):
    from kpi_lake.cli import main

    monkeypatch.setenv("KPI_LAKE_ROOT", lake.root)
    out = tmp_path / "out"
    assert (
        main(["report", "--period", quarter, "--theme", "ENV", "--audience", "scrutiny", "--out", str(out)])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "scrutiny-ENV.html",
        "scrutiny-ENV.pdf",
        "scrutiny-ENV.xlsx",
    ]
    book = openpyxl.load_workbook(out / "scrutiny-ENV.xlsx", read_only=True)
    assert "ENV" in book.sheetnames and "CYP" not in book.sheetnames
    history = _sheet(out / "scrutiny-ENV.xlsx", "History")
    view = _view(lake)
    period_end = view.filter(pl.col("Period_Key") == quarter)["Period_End"][0]
    env_kpis = set(_sheet(out / "scrutiny-ENV.xlsx", "ENV")["Code"])
    expected = view.filter(pl.col("KPI_Code").is_in(list(env_kpis)), pl.col("Period_End") <= period_end)
    assert history.height == expected.height
    page = (out / "scrutiny-ENV.html").read_text(encoding="utf-8")
    assert page.count("full history</h4>") == len(env_kpis)
    assert 'id="summary"' not in page


def test_spc_signals_are_shown_when_the_mart_has_them(lake, quarter, tmp_path):
    """Without ``kpi_spc`` the slot is left out; with it, this quarter's special-cause points are listed."""
    copy = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    shutil.copytree(Path(lake.root) / "gold", tmp_path / "lake" / "gold")
    shutil.rmtree(tmp_path / "lake" / "gold" / "kpi_mart" / "kpi_spc", ignore_errors=True)
    assert "Statistical process control" not in render_html(gather(copy, quarter, theme="TRC"))
    data = gather(copy, quarter, theme="TRC")
    flagged = data.kpis()["KPI_Code"][0]
    spc = data.kpis().select(
        pl.col("KPI_Code").alias("kpi_code"),
        pl.col("Period_Key").alias("period_key"),
        pl.when(pl.col("KPI_Code") == flagged)
        .then(pl.lit("special_cause_concern"))
        .otherwise(pl.lit("common_cause"))
        .alias("point_type"),
        pl.lit("shift_below").alias("special_cause_type"),
        pl.lit("inconsistent").alias("assurance_type"),
    )
    copy.overwrite(TableRef("gold", "kpi_mart", "kpi_spc"), spc)
    rendered = render_html(gather(copy, quarter, theme="TRC"))
    assert "Statistical process control" in rendered
    name = data.kpis().filter(pl.col("KPI_Code") == flagged)["KPI_Name"][0]
    assert (
        "<strong>0</strong> show special-cause improvement and <strong>1</strong> special-cause concern"
        in rendered
    )
    assert name in rendered.split("Statistical process control", 1)[1].split("</table>", 1)[0]


@pytest.mark.azure
def test_report_is_published_to_an_azure_lake(lake, quarter, azure_env):
    azure_lake = DeltaLake(root="az://reports/kpi", azure=AzureStorage.from_env())
    with dg.build_resources({"lake": azure_lake}) as built:
        built.lake.ensure_root()
        report = build_report(lake, quarter, "scrutiny", "TRC")
        files = publish_report(built.lake, report)
        assert files["pdf"] == f"az://reports/kpi/reports/{quarter}/scrutiny-TRC.pdf"
        fs = built.lake.azure.filesystem(built.lake.root)
        assert fs.cat_file(f"reports/kpi/reports/{quarter}/scrutiny-TRC.pdf") == report.pdf
        assert fs.cat_file(f"reports/kpi/reports/{quarter}/scrutiny-TRC.html").decode() == report.html


def test_sensor_after_the_nightly_sync_asks_for_the_latest_quarter_once_per_mart_change(
    lake, quarter, tmp_path
):
    """The run key names the mart's versions: Dagster runs one request per key, so an unchanged mart is not
    reported twice, and any change to a table the report reads asks for a new report."""
    from pipelines.jobs import quarterly_report, quarterly_report_after_sync

    copy = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    shutil.copytree(Path(lake.root) / "gold", tmp_path / "lake" / "gold")

    @dg.op
    def finished() -> None:
        pass

    @dg.job
    def stand_in_for_the_nightly_sync() -> None:
        finished()

    instance = dg.DagsterInstance.ephemeral()

    def evaluate() -> dg.RunRequest:
        run = stand_in_for_the_nightly_sync.execute_in_process(instance=instance)
        [success] = [e for e in run.all_events if e.event_type_value == "PIPELINE_SUCCESS"]
        with dg.build_run_status_sensor_context(
            sensor_name=quarterly_report_after_sync.name,
            dagster_event=success,
            dagster_instance=instance,
            dagster_run=run.dagster_run,
            resources={"lake": copy},
        ) as context:
            return quarterly_report_after_sync(context)

    first, again = evaluate(), evaluate()
    assert first.partition_key == quarter and first.run_key == again.run_key
    theme = TableRef("gold", "kpi_mart", "dim_theme")
    copy.overwrite(theme, copy.scan(theme).collect())
    changed = evaluate()
    assert changed.partition_key == quarter and changed.run_key != first.run_key
    assert quarterly_report_after_sync.job_name == quarterly_report.name
