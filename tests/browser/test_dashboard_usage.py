"""The dashboard page's usage panel: rows by key and endpoint, a bar per quota, and usage unavailable."""

from __future__ import annotations

import json
import re

from playwright.sync_api import Locator, Page, expect

from ..integration.conftest import USER_KEY, Process, api, wait_until
from .conftest import CHAT, open_dashboard, state_of


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
