"""The parsed-tree cache (SQL models, expectation suites): an unchanged tree loads from it, any change is seen, problems
are not kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kpi_lake.sql_models.loading import load_sql_models
from kpi_lake.sql_models.parsing import SqlModelError

MODELS = Path(__file__).resolve().parents[1] / "dbt_like_sql"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KPI_LAKE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "dbt_like_sql"
    shutil.copytree(MODELS, root)
    return root


def _entries(tree: Path) -> list[Path]:
    return sorted((tree.parent / "cache").glob("sql-models-*.pickle"))


def test_an_unchanged_tree_loads_from_the_cache_as_parsed(tree: Path):
    parsed = load_sql_models(tree)
    assert len(_entries(tree)) == 1
    cached = load_sql_models(tree)
    assert cached == parsed
    assert [m.query.sql() for m in cached] == [m.query.sql() for m in parsed]
    assert [m.inputs for m in cached] == [m.inputs for m in parsed]


def test_a_changed_model_is_parsed_again(tree: Path):
    before = {m.name: m for m in load_sql_models(tree)}
    model = tree / "gold/kpi_mart/dim_theme.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    after = {m.name: m for m in load_sql_models(tree)}
    assert after["dim_theme"].sql.endswith("-- edited\n")
    assert after["dim_theme"].code_version != before["dim_theme"].code_version
    assert len(_entries(tree)) == 2


def test_a_broken_tree_is_never_cached_and_fails_every_time(tree: Path):
    (tree / "gold/kpi_mart/broken.sql").write_text("select from where")
    for _ in range(2):
        with pytest.raises(SqlModelError, match=r"broken\.sql"):
            load_sql_models(tree)
    assert _entries(tree) == []


def test_an_unreadable_cache_entry_means_parsing_again(tree: Path):
    parsed = load_sql_models(tree)
    (entry,) = _entries(tree)
    entry.write_bytes(b"not a pickle")
    assert load_sql_models(tree) == parsed


def test_expectation_suites_come_from_the_cache_and_an_edit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from assets.quality import EXPECTATIONS_ROOT, _suites
    from kpi_lake.quality import load_suites

    monkeypatch.setenv("KPI_LAKE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "expectations"
    shutil.copytree(EXPECTATIONS_ROOT, root)
    parsed = tuple(load_suites(root))
    assert _suites(root) == parsed
    assert len(list((tmp_path / "cache").glob("expectation-suites-*.pickle"))) == 1
    _suites.cache_clear()  # as in a new process: the entry is read
    assert _suites(root) == parsed
    assert len(list((tmp_path / "cache").glob("expectation-suites-*.pickle"))) == 1

    suite_file = next(p for p in sorted(root.rglob("*.yml")) if "description:" in p.read_text())
    text = suite_file.read_text()
    suite_file.write_text(text.replace("description:", "description: Edited.", 1))
    _suites.cache_clear()
    edited = {s.file: s for s in _suites(root)}
    assert edited == {s.file: s for s in load_suites(root)}
    assert edited != {s.file: s for s in parsed}
    assert len(list((tmp_path / "cache").glob("expectation-suites-*.pickle"))) == 2
