"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against `crazy-gary serve`.

The servers are real processes against a separate `crazy-gary simulate`, started with the helpers of
the integration tests. Playwright never downloads a browser of its own: the tests fail (they do not
skip) when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect, sync_playwright

from ..integration.conftest import (
    OPERATOR_KEY,
    Process,
    base_env,
    free_port,
    server_env,
    start,
    start_server,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every run saves the page with one endpoint running and one asleep; `make screenshot` points this at
# docs/dashboard.png (the README's picture), so a plain test run leaves the work tree as it was.
SCREENSHOT = Path(
    os.environ.get("DASHBOARD_SCREENSHOT") or Path(__file__).resolve().parents[2] / "build" / "dashboard.png"
)
AUTO_SLEEP = 600  # seconds: the countdown starts at 10:00
COLD_START = "1.5"  # seconds the simulator takes to start an endpoint: long enough to see `starting`
CHAT = {"messages": [{"role": "user", "content": "Why do large models sleep?"}], "max_tokens": 16}

# Every wait is a condition; this is the longest any of them may take (a wake, a reconnect).
expect.set_options(timeout=15_000)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium"
            " (apt-get install -y chromium; .ci/run installs it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watched_page(browser: Browser, width: int, height: int) -> Iterator[Page]:
    """A page in a fresh context (its own session storage) that fails the test on a script error
    or anything the Content-Security-Policy blocked."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield page
    context.close()
    assert not problems, problems


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from watched_page(browser, 1280, 900)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    yield from watched_page(browser, 390, 844)


@pytest.fixture(scope="package")
def shared_simulator() -> Iterator[Process]:
    port = free_port()
    env = base_env(CRAZY_GARY_SIM_COLD_START=COLD_START, CRAZY_GARY_SIM_TOKENS_PER_SECOND="1000")
    process = start(["simulate", "--port", str(port)], env, f"http://127.0.0.1:{port}", "/_sim/calls")
    yield process
    process.stop()


@pytest.fixture
def simulator(shared_simulator: Process) -> Process:
    """The package's simulator, every endpoint asleep and every fault cleared, as at its start."""
    httpx2.post(f"{shared_simulator.url}/_sim/reset").raise_for_status()
    return shared_simulator


@pytest.fixture
def server(simulator: Process) -> Iterator[Process]:
    process = start_server(simulator, ENDPOINT_AUTO_SLEEP=str(AUTO_SLEEP))
    yield process
    process.stop()


def start_server_on(simulator: Process, port: int) -> Process:
    """`crazy-gary serve` on a given port (to stop it and start it again where the page expects it)."""
    args = ["serve", "--no-simulate", "--port", str(port)]
    env = server_env(simulator, ENDPOINT_AUTO_SLEEP=str(AUTO_SLEEP))
    return start(args, env, f"http://127.0.0.1:{port}", "/readyz")


class Dialogs:
    """Answers the page's confirmations, in order (`True` accepts; past the list, accept), and keeps
    what they asked."""

    def __init__(self, page: Page, *answers: bool) -> None:
        self.asked: list[str] = []
        self._answers = list(answers)
        page.on("dialog", self._answer)

    def _answer(self, dialog: Dialog) -> None:
        self.asked.append(dialog.message)
        if self._answers.pop(0) if self._answers else True:
            dialog.accept()
        else:
            dialog.dismiss()


def open_dashboard(page: Page, server: Process, key: str | None = OPERATOR_KEY) -> None:
    page.goto(f"{server.url}/?token={key}" if key else f"{server.url}/")


def card(page: Page, key: str) -> Locator:
    return page.locator(f'[data-endpoint="{key}"]')


def state_of(page: Page, key: str) -> Locator:
    return card(page, key).locator(".state")


def stored_key(page: Page) -> str | None:
    key: str | None = page.evaluate("window.sessionStorage.getItem('crazy-gary-key')")
    return key


def seconds(countdown: str) -> int:
    """`14:05` → 845."""
    match = re.fullmatch(r"(\d+):(\d\d)", countdown.strip())
    assert match, f"not a countdown: {countdown!r}"
    return int(match[1]) * 60 + int(match[2])
