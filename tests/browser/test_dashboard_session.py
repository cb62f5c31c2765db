"""The dashboard page's key and connection: the token, the key form, a stopped server, the event stream."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from ..integration.conftest import OPERATOR_KEY, VIEWER_KEY, Process, free_port
from .conftest import Dialogs, card, open_dashboard, start_server_on, state_of, stored_key


def test_token_moves_from_the_address_to_session_storage(page: Page, server: Process) -> None:
    """?token= opens the dashboard, leaves the address, and a reload still works from session storage."""
    open_dashboard(page, server)
    expect(state_of(page, "120b")).to_have_text("sleeping")
    expect(state_of(page, "20b")).to_have_text("sleeping")
    expect(page).to_have_url(f"{server.url}/")
    assert stored_key(page) == OPERATOR_KEY
    page.reload()
    expect(state_of(page, "20b")).to_have_text("sleeping")
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("live")


def test_without_a_token_the_page_asks_for_a_key(page: Page, server: Process) -> None:
    """No key: a form asks for one; a viewer key shows the cards, and a wake it may not do says why."""
    Dialogs(page)
    open_dashboard(page, server, key=None)
    key_input = page.get_by_label("API key")
    expect(key_input).to_be_visible()
    expect(page.locator("[data-endpoint]")).to_have_count(0)
    key_input.fill(VIEWER_KEY)
    page.get_by_role("button", name="Use key").click()
    expect(state_of(page, "120b")).to_have_text("sleeping")
    expect(page.locator("#key-form")).to_be_hidden()
    assert stored_key(page) == VIEWER_KEY

    card(page, "120b").get_by_role("button", name="Wake 120b").click()
    expect(card(page, "120b").locator(".card-message")).to_contain_text("Wake refused")
    expect(card(page, "120b").locator(".card-message")).to_contain_text("role")
    expect(state_of(page, "120b")).to_have_text("sleeping")


def test_a_wrong_key_is_asked_again(page: Page, server: Process) -> None:
    """A refused key brings the key form back, saying why; a good key then works."""
    open_dashboard(page, server, key="not-a-valid-key")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#key-reason")).to_contain_text("not valid")
    expect(page.locator("#dashboard")).to_be_hidden()
    assert stored_key(page) is None
    page.get_by_label("API key").fill(OPERATOR_KEY)
    page.get_by_label("API key").press("Enter")
    expect(state_of(page, "20b")).to_have_text("sleeping")


def test_a_stopped_server_shows_a_banner_until_it_is_back(page: Page, simulator: Process) -> None:
    """The server gone: an alert says so; started again on the same port, the page reconnects and clears it."""
    port = free_port()
    first = start_server_on(simulator, port)
    try:
        open_dashboard(page, first)
        expect(page.locator("#connection")).to_have_text("live")
        expect(page.get_by_role("alert")).to_be_hidden()
        first.stop()
        expect(page.get_by_role("alert")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("reconnecting")
    finally:
        first.stop()
    second = start_server_on(simulator, port)
    try:
        expect(page.get_by_role("alert")).to_be_hidden()
        expect(page.locator("#connection")).to_have_text("live")
        expect(state_of(page, "20b")).to_have_text("sleeping")
    finally:
        second.stop()


def _endpoint(status: str, auto_sleep_in: int | None = None) -> dict[str, object]:
    return {
        "status": status,
        "url": "demo/model",
        "auto_sleep_in": auto_sleep_in,
        "hf_state": "running" if status == "running" else "scaledToZero",
        "price_per_hour": 1.0,
        "in_flight": 0,
        "pending": 0,
        "circuit": "closed",
        "managed": True,
        "operation": None,
        "error": None,
    }


def test_the_event_stream_is_read_as_server_sent_events(page: Page, server: Process) -> None:
    """CRLF lines, comments, retry/id fields, data split over lines, unknown and broken events: all as SSE says."""
    request = {"served_by": "20b", "fallback_reason": None, "status": 200, "stream": False, "latency_ms": 8.0}
    snapshot = {
        "endpoints": {"120b": _endpoint("sleeping"), "20b": _endpoint("sleeping")},
        "requests": [{**request, "model": "20b", "timestamp": 1.0}],
        "timestamp": 1.0,
    }
    countdown = json.dumps({"model_type": "20b", "endpoint": _endpoint("running", 845), "timestamp": 2.0})
    half = countdown.index(' "endpoint"')  # a new data line between two JSON tokens joins as whitespace
    body = "".join(
        [
            f"retry: 2000\r\nevent: snapshot\r\ndata: {json.dumps(snapshot)}\r\n\r\n",
            ": heartbeat\n\n",
            f"id: 7\nevent: countdown\ndata: {countdown[:half]}\ndata: {countdown[half:]}\n\n",
            "event: mystery\ndata: {}\n\n",
            'event: state\ndata: {"model_type": "120b", "endpoint": \n\n',
            f"event: request\ndata: {json.dumps({**request, 'model': '120b', 'timestamp': 3.0})}\n\n",
        ]
    )
    page.route(
        "**/api/endpoints/events",
        lambda route: route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body),
    )
    open_dashboard(page, server)
    expect(state_of(page, "20b")).to_have_text("running")
    expect(card(page, "20b").locator(".countdown")).to_have_text(re.compile(r"^14:0[0-5]$"))
    expect(state_of(page, "120b")).to_have_text("sleeping")
    models = page.locator('#requests tbody td[data-label="Model"]')
    expect(models).to_have_text(["120b", "20b"])
