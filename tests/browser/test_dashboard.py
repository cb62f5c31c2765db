"""The dashboard page as a person uses it: key, cards, wake and sleep, live updates, usage, errors, phone,
keyboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from ..integration.conftest import (
    OPERATOR_KEY,
    USER_KEY,
    VIEWER_KEY,
    Process,
    api,
    free_port,
    sim_set,
    start_server,
    status_of,
    wait_until,
)
from .conftest import (
    AUTO_SLEEP,
    SCREENSHOT,
    Dialogs,
    card,
    open_dashboard,
    seconds,
    start_server_on,
    state_of,
    stored_key,
)

CHAT = {"messages": [{"role": "user", "content": "Why do large models sleep?"}], "max_tokens": 16}


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


def test_wake_and_sleep_from_a_card(page: Page, server: Process, simulator: Process) -> None:
    """Wake asks first, shows starting then running and a ticking countdown; Sleep brings it back to sleeping."""
    dialogs = Dialogs(page, False)  # the first confirmation is declined
    open_dashboard(page, server)
    twenty = card(page, "20b")
    wake = twenty.get_by_role("button", name="Wake 20b")
    sleep = twenty.get_by_role("button", name="Sleep 20b")
    expect(state_of(page, "20b")).to_have_text("sleeping")
    expect(wake).to_have_text("Wake")
    expect(sleep).to_have_text("Sleep")

    wake.click()  # declined: nothing is asked of the server (one wake in the audit log at the end)
    assert dialogs.asked == ["Wake 20b?"]
    expect(twenty.locator(".card-message")).to_have_text("")

    wake.click()
    expect(state_of(page, "20b")).to_have_text("starting")
    expect(wake).to_be_disabled()
    expect(sleep).to_be_disabled()
    expect(state_of(page, "20b")).to_have_text("running")
    assert dialogs.asked == ["Wake 20b?", "Wake 20b?"]
    expect(sleep).to_be_enabled()

    countdown = twenty.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^\d+:\d\d$"))
    before = countdown.inner_text()
    assert AUTO_SLEEP - 10 <= seconds(before) <= AUTO_SLEEP
    expect(countdown).not_to_have_text(before)
    assert seconds(countdown.inner_text()) < seconds(before)

    # a chat request shows up live, and the finished wake reaches the audit log and the costs
    assert api(server, "POST", "/v1/chat/completions", key=USER_KEY, json={**CHAT, "model": "20b"}).is_success
    latest = page.locator("#requests tbody tr").first
    expect(latest.locator('[data-label="Served by"]')).to_have_text("20b")
    expect(latest.locator('[data-label="Status"]')).to_have_text("200")
    wake_entry = page.locator("#audit tbody tr").filter(has_text="ops").first
    expect(wake_entry).to_contain_text("wake")
    expect(wake_entry.locator('[data-label="Endpoint"]')).to_have_text("20b")
    expect(page.locator("#costs-chart svg title")).to_contain_text("20b: cost $")
    expect(state_of(page, "120b")).to_have_text("sleeping")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")

    sleep.click()
    assert dialogs.asked[-1] == "Put 20b to sleep?"
    expect(state_of(page, "20b")).to_have_text("sleeping")
    expect(countdown).to_have_text("—")
    expect(wake).to_be_enabled()
    assert status_of(server, "20b")["status"] == "sleeping"
    audit = api(server, "GET", "/api/endpoints/audit?operation=wake", key=VIEWER_KEY).json()["entries"]
    assert [(entry["actor"], entry["model_type"]) for entry in audit] == [("ops", "20b")]


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


def test_a_fallback_and_an_endpoint_in_error_are_shown(
    page: Page, server: Process, simulator: Process
) -> None:
    """A failed 120b shows `error` with its reason; a request for it shows who served it and why."""
    open_dashboard(page, server)
    sim_set(simulator, "endpoints/gpt-oss-120b", state="failed")
    expect(state_of(page, "120b")).to_have_text("error")
    expect(card(page, "120b").locator(".card-error")).to_contain_text("failed")
    answer = api(server, "POST", "/v1/chat/completions", key=USER_KEY, json={**CHAT, "model": "120b"})
    assert answer.headers["x-crazy-gary-fallback-reason"] == "primary_error"
    latest = page.locator("#requests tbody tr").first
    expect(latest.locator('[data-label="Model"]')).to_have_text("120b")
    expect(latest.locator('[data-label="Served by"]')).to_have_text("20b")
    expect(latest.locator('[data-label="Fallback reason"]')).to_have_text("primary_error")
    expect(state_of(page, "20b")).to_have_text("running")


def test_hugging_faces_own_word_is_on_the_card(page: Page, server: Process, simulator: Process) -> None:
    """A card shows what HF says of its endpoint: a start waiting for a GPU, and HF's own idle timer."""
    sim_set(simulator, "endpoints/gpt-oss-20b", pending=120)
    open_dashboard(page, server)
    line = card(page, "20b").locator(".hf-line")
    expect(line).to_contain_text("HF idle timer 25 min")  # the safety net: auto-sleep (10 min) + 15
    assert api(server, "POST", "/api/endpoints/wake/20b").status_code == 202
    expect(state_of(page, "20b")).to_have_text("starting")
    expect(line).to_contain_text("HF: pending — Endpoint waiting to be scheduled")


def test_a_phone_screen_needs_no_horizontal_scroll(phone: Page, server: Process) -> None:
    """At 390 by 844 pixels every panel fits the width, the cards stack, and the buttons are finger-sized."""
    assert api(server, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
    assert api(server, "POST", "/v1/chat/completions", key=USER_KEY, json={**CHAT, "model": "20b"}).is_success
    open_dashboard(phone, server)
    expect(state_of(phone, "20b")).to_have_text("running")
    expect(phone.locator("#requests tbody tr")).to_have_count(1)
    expect(phone.locator("#audit tbody tr").first).to_be_visible()
    expect(phone.locator("#costs-chart svg")).to_be_visible()
    widths = phone.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1] == 390
    first, second = card(phone, "120b").bounding_box(), card(phone, "20b").bounding_box()
    assert first and second
    assert second["y"] >= first["y"] + first["height"]
    assert first["x"] + first["width"] <= 390
    button = card(phone, "20b").get_by_role("button", name="Sleep 20b").bounding_box()
    assert button and button["height"] >= 44


def test_the_keyboard_reaches_wake_and_enter_presses_it(page: Page, server: Process) -> None:
    """Tab reaches the Wake button of a sleeping endpoint; Enter asks and wakes it."""
    dialogs = Dialogs(page)
    open_dashboard(page, server)
    expect(state_of(page, "120b")).to_have_text("sleeping")
    wake = page.get_by_role("button", name="Wake 120b")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Wake 120b":
            break
    expect(wake).to_be_focused()
    page.keyboard.press("Enter")
    expect(state_of(page, "120b")).to_have_text(re.compile("starting|running"))
    assert dialogs.asked == ["Wake 120b?"]
    expect(state_of(page, "120b")).to_have_text("running")


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


def usage_row(page: Page, key: str, endpoint: str) -> Locator:
    return page.locator(f'#usage tr[data-usage-key="{key}"][data-usage-endpoint="{endpoint}"]')


def test_the_usage_panel_counts_a_request_of_a_named_key(page: Page, server: Process) -> None:
    """After one chat request with the key `app`, the panel has its row for 20b (1 request, tokens counted)
    and the idle row of 20b's billed time that no request used."""
    assert api(server, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
    assert api(server, "POST", "/v1/chat/completions", key=USER_KEY, json={**CHAT, "model": "20b"}).is_success
    answer = api(server, "GET", "/api/usage")
    assert answer.status_code == 200, answer.text
    wait_until(lambda: any(row["key"] == "app" for row in api(server, "GET", "/api/usage").json()["rows"]))
    open_dashboard(page, server)
    app = usage_row(page, "app", "20b")
    expect(app.locator('[data-label="Requests"]')).to_have_text("1")
    expect(app.locator('[data-label="Completion tokens"]')).to_have_text(re.compile(r"^[1-9][\d,.]*$"))
    expect(app.locator('[data-label="Cost"]')).to_have_text(re.compile(r"^\$\d+\.\d{2,4}$"))
    idle = usage_row(page, "idle", "20b")
    expect(idle.locator('[data-label="Key"]')).to_have_text("idle")
    expect(idle.locator('[data-label="Requests"]')).to_have_text("0")
    expect(page.locator("#usage-note")).to_have_text("")


USAGE = {
    "success": True,
    "since": 1_795_800_000,
    "until": 1_795_886_400,
    "rows": [
        {
            "key": "bob",
            "model_type": "20b",
            "requests": 4,
            "prompt_tokens": 120,
            "completion_tokens": 300,
            "cost": 0.0123,
        },
        {
            "key": None,
            "model_type": "120b",
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.5,
        },
        {
            "key": "alice",
            "model_type": "120b",
            "requests": 12,
            "prompt_tokens": 3400,
            "completion_tokens": 9100,
            "cost": 1.234567,
        },
    ],
    "quotas": {
        "bob": {"tokens_per_day": {"limit": 1000, "used": 1000, "remaining": 0, "resets_at": 1_795_910_400}},
        "alice": {
            "tokens_per_day": {"limit": 2000, "used": 1500, "remaining": 500, "resets_at": 1_795_910_400},
            "tokens_per_month": {
                "limit": 50_000,
                "used": 1500,
                "remaining": 48_500,
                "resets_at": 1_796_083_200,
            },
        },
    },
}


def test_the_usage_panel_shows_rows_by_endpoint_and_a_bar_per_quota(page: Page, server: Process) -> None:
    """Rows sorted by endpoint with the idle row last, costs to the hundredth of a cent, and each quota
    window as a bar of used over limit with what remains and when it resets (UTC)."""
    page.route(
        "**/api/usage*",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(USAGE)),
    )
    open_dashboard(page, server)
    rows = page.locator("#usage tbody tr")
    expect(rows).to_have_count(3)
    keys = [
        (row.get_attribute("data-usage-key"), row.get_attribute("data-usage-endpoint")) for row in rows.all()
    ]
    assert keys == [("alice", "120b"), ("idle", "120b"), ("bob", "20b")]
    expect(usage_row(page, "alice", "120b").locator('[data-label="Cost"]')).to_have_text("$1.2346")
    expect(usage_row(page, "idle", "120b").locator('[data-label="Cost"]')).to_have_text("$0.5000")
    expect(usage_row(page, "idle", "120b").locator('[data-label="Key"]')).to_have_text("idle")
    bars = page.locator("#usage .quota")
    expect(bars).to_have_count(3)
    day = page.locator('#usage .quota[data-quota-key="alice"][data-quota-window="tokens_per_day"]')
    expect(day).to_contain_text("alice · per day")
    expect(day).to_contain_text("resets 2026-11-29 00:00 UTC")
    expect(day.locator("meter")).to_have_attribute("value", "1500")
    expect(day.locator("meter")).to_have_attribute("max", "2000")
    month = page.locator('#usage .quota[data-quota-key="alice"][data-quota-window="tokens_per_month"]')
    expect(month).to_contain_text("resets 2026-12-01 00:00 UTC")
    spent = page.locator('#usage .quota[data-quota-key="bob"] .quota-figures')
    expect(spent).to_have_class(re.compile(r"\bbad\b"))


def test_usage_unavailable_leaves_the_rest_of_the_page_working(page: Page, server: Process) -> None:
    """A 404 from /api/usage says `usage unavailable` in the panel; the cards, the live state and the
    audit log are unaffected (and no script error is raised)."""
    page.route(
        "**/api/usage*",
        lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"detail": "Not Found"}'
        ),
    )
    open_dashboard(page, server)
    expect(page.locator("#usage-note")).to_have_text(re.compile("usage unavailable", re.IGNORECASE))
    expect(page.locator("#usage-body")).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("live")
    expect(state_of(page, "20b")).to_have_text("sleeping")
    expect(page.get_by_role("alert")).to_be_hidden()
    assert api(server, "POST", "/api/endpoints/wake/20b").status_code == 202
    expect(state_of(page, "20b")).to_have_text(re.compile("starting|running"))


def test_an_endpoint_in_its_warm_window_is_woken_and_says_until_when(
    page: Page, simulator: Process, tmp_path: Path
) -> None:
    """An endpoint whose `warm` window is open is woken by the schedule at start, and its card says
    until when it is kept warm; the other endpoint stays asleep."""
    config = tmp_path / "crazy-gary.toml"
    config.write_text('[endpoints.20b]\nurl = "demo/gpt-oss-20b"\nwarm = ["daily 00:00-24:00"]\n')
    server = start_server(simulator, ENDPOINT_AUTO_SLEEP="600", CRAZY_GARY_CONFIG=str(config))
    try:
        open_dashboard(page, server)
        expect(state_of(page, "20b")).to_have_text("running")
        expect(card(page, "20b").locator(".countdown")).to_contain_text("warm until")
        expect(state_of(page, "120b")).to_have_text("sleeping")
        log = api(server, "GET", "/api/endpoints/audit?operation=wake").json()["entries"]
        assert [(entry["actor"], entry["model_type"]) for entry in log] == [("schedule", "20b")]
    finally:
        server.stop()
