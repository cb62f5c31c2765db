"""The dashboard page's policies panel: each endpoint's requests replayed on a click, a table per
endpoint with the cheapest policy one can choose marked, and a failed replay said in the panel."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, Route, expect

from ..integration.conftest import USER_KEY, Process, api
from .conftest import CHAT, open_dashboard


def test_a_click_replays_each_endpoints_own_requests(page: Page, server: Process) -> None:
    """After two requests to 20b, a click fills a table per endpoint with the four default policies;
    20b's rows count its requests' cold hits, and one policy is marked the cheapest."""
    assert api(server, "POST", "/api/endpoints/wake/20b?wait=true").status_code == 200
    for _ in range(2):
        assert api(
            server, "POST", "/v1/chat/completions", key=USER_KEY, json={**CHAT, "model": "20b"}
        ).is_success
    open_dashboard(page, server)
    page.get_by_role("button", name="Replay the last 7 days").click()
    table = page.locator('#policies table[data-policies-endpoint="20b"]')
    expect(table).to_be_visible(timeout=60_000)
    expect(table.locator("caption")).to_have_text("20b")
    expect(table.locator("tbody tr")).to_have_count(4)
    for policy in ("idle:15m", "adaptive", "oracle", "always"):
        expect(table.locator(f'tr[data-policy="{policy}"]')).to_have_count(1)
    expect(table.locator('tr[data-policy="oracle"] [data-label="Cold hits"]')).to_have_text("0")
    expect(table.locator('tr[data-policy="always"] [data-label="Saved"]')).to_have_text("$0")
    expect(table.locator('[data-label="Policy"]', has_text="(cheapest)")).to_have_count(1)
    expect(page.locator('#policies table[data-policies-endpoint="120b"]')).to_be_visible()
    expect(page.locator("#policies-note")).to_have_text("")
    expect(page.get_by_role("button", name="Replay the last 7 days")).to_be_enabled()


def test_a_failed_replay_is_said_in_the_panel(page: Page, server: Process) -> None:
    def refuse(route: Route) -> None:
        body = {"success": False, "error": "The store is not available.", "code": "store_unavailable"}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(body))

    page.route(re.compile(r".*/api/endpoints/policies.*"), refuse)
    open_dashboard(page, server)
    page.get_by_role("button", name="Replay the last 7 days").click()
    expect(page.locator("#policies-note")).to_have_text("The replay failed: The store is not available.")
    expect(page.locator("#policies-list")).to_be_hidden()
    expect(page.locator("#cards .card")).to_have_count(2)  # the rest of the page goes on
