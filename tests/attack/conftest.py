"""The standing attack suite: faults, races and hostile input, one test per case.

Each test here is one attack case; its docstring's first line says the case. At the end of the run the suite
prints one line per case ("held" or "FAILED") and a total, so a reviewer reads the result without pytest's
own output. Cases live in one module per area (``test_files.py``, ``test_concurrency.py``, ...).
"""

from __future__ import annotations

import pytest

_ATTACK_RESULTS: list[tuple[str, str, str]] = []


def _case_title(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else item.name
    return first


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/attack/" in str(item.fspath).replace("\\", "/"):
            item.user_properties.append(("attack_case", _case_title(item)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    case = dict(item.user_properties).get("attack_case")
    if case is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        area = item.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        _ATTACK_RESULTS.append((area, case, "held" if report.outcome == "passed" else "FAILED"))


def pytest_terminal_summary(terminalreporter) -> None:
    if not _ATTACK_RESULTS:
        return
    terminalreporter.section("attack suite")
    for area, case, result in _ATTACK_RESULTS:
        terminalreporter.write_line(f"{result:6}  [{area}] {case}")
    held = sum(1 for *_, result in _ATTACK_RESULTS if result == "held")
    terminalreporter.write_line(f"attack suite: {held} of {len(_ATTACK_RESULTS)} cases held")
