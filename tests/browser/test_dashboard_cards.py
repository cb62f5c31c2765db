"""The dashboard page's cards: wake and sleep, errors and fallbacks, HF's word, warm windows, phone, keys."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from ..integration.conftest import USER_KEY, VIEWER_KEY, Process, api, sim_set, start_server, status_of
from .conftest import AUTO_SLEEP, CHAT, SCREENSHOT, Dialogs, card, open_dashboard, seconds, state_of


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
