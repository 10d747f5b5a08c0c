"""Headless Chromium for the tests, driven over the DevTools protocol (a websocket; no browser driver).

Debian's ``chromium`` (``make test`` installs it as root: SYSTEM_TEST_PACKAGES). The browser runs in its own
process group and is stopped by its id. A :class:`Page` records every request the page makes and every
console error or uncaught exception, so a test can assert what a person would see and what left the machine.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.conftest import free_port, stop_process_group, wait_for_port

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Flags for a quiet, reproducible browser: nothing it does on its own reaches the network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def chromium_binary() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is not installed: run `make setup-test` as root (apt-get install chromium)")


@contextlib.contextmanager
def chromium(profile: Path, *extra_flags: str) -> Iterator[Browser]:
    """A headless Chromium with a throw-away profile; yields a :class:`Browser`, stops it by process group."""
    port = free_port()
    profile.mkdir(parents=True, exist_ok=True)
    log = open(profile.parent / f"{profile.name}-chromium.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            chromium_binary(),
            *CHROMIUM_FLAGS,
            *extra_flags,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=60, process=process)
        yield Browser(f"http://127.0.0.1:{port}")
    finally:
        stop_process_group(process, timeout=10)
        log.close()


class Browser:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    @contextlib.contextmanager
    def page(self) -> Iterator[Page]:
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = requests.get(f"{self.endpoint}/json/list", timeout=5).json()
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(target["webSocketDebuggerUrl"])
        try:
            yield page
        finally:
            page.close()


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, take screenshots."""

    def __init__(self, websocket_url: str):
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self._socket = self._stack.enter_context(connect(websocket_url, max_size=None, open_timeout=30))
        self._ids = itertools.count(1)
        self.requests: list[str] = []  # every URL the page asked for, in order
        self.failed_requests: list[tuple[str, str]] = []  # (url, error)
        self.errors: list[str] = []  # console errors and uncaught exceptions
        self._request_urls: dict[str, str] = {}
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")

    def close(self) -> None:
        self._stack.close()

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message is None:
                raise TimeoutError(f"{method}: no answer within {timeout}s")
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            message = json.loads(self._socket.recv(timeout=remaining))
        except TimeoutError:
            return None
        self._record(message)
        return message

    def _record(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            self._request_urls[params["requestId"]] = url
            self.requests.append(url)
        elif method == "Network.loadingFailed":
            url = self._request_urls.get(params["requestId"], "?")
            self.failed_requests.append((url, params.get("errorText", "")))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text', '')} {entry.get('url', '')}".strip())

    def pump(self, seconds: float) -> None:
        """Read the page's events for ``seconds`` (requests, errors)."""
        deadline = time.monotonic() + seconds
        while self._receive(deadline) is not None:
            pass

    def navigate(self, url: str, timeout: float = 60) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        """Wait until the JavaScript ``expression`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout}s: {expression}")
            self.pump(0.25)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        checks = " && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in needles)
        self.wait_for(f"document.body && {checks}", timeout=timeout)
        return self.text()

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def artefacts_folder(name: str) -> Path:
    """Where a test keeps its screenshots: ``$KPI_LAKE_TEST_ARTEFACTS/<name>`` (CI uploads that folder), else
    ``test-artifacts/<name>`` in the project (ignored by git)."""
    root = Path(
        os.environ.get("KPI_LAKE_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
    )
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
