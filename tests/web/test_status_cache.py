"""`GET /api/endpoints/status` on a loopback socket and the manual clock: built once per change, a
strong ETag, 304 for If-None-Match while nothing changed, a new tag and body once something did."""

from __future__ import annotations

import asyncio

import httpx2

from crazy_gary.web.status_cache import StatusCache, matches

from .conftest import USER, VIEWER, Api


async def _status(api: Api, etag: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {VIEWER}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    return await api.http.get("/api/endpoints/status", headers=headers)


async def test_an_unchanged_status_answers_304_to_its_etag_and_a_change_gives_a_new_one(api: Api) -> None:
    """The tag is strong and stays while nothing changes (304, no body); a wake changes tag and body."""
    first = await _status(api)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "no-cache"
    assert first.json()["endpoints"]["120b"]["status"] == "sleeping"
    again = await _status(api, etag)
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert (await _status(api, f'"other", W/{etag}')).status_code == 304
    assert (await api.post("/api/endpoints/wake/120b")).status_code == 202
    changed = await _status(api, etag)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["endpoints"]["120b"]["status"] == "starting"
    assert changed.content != first.content


async def test_reads_share_one_build_until_a_change_or_a_second_passes(api: Api) -> None:
    """Twenty reads of an unchanged fleet build the answer once; a second later the countdown moved."""
    cache: StatusCache = api.app.state.status_cache
    await _status(api)
    builds = cache.builds
    answers = await asyncio.gather(*(_status(api) for _ in range(20)))
    assert cache.builds == builds
    assert len({answer.content for answer in answers}) == 1
    countdown = answers[0].json()["endpoints"]["20b"]["auto_sleep_in"]
    assert countdown is not None
    await api.clock.advance(1.0)
    later = await _status(api, answers[0].headers["etag"])
    assert later.status_code == 200 and cache.builds == builds + 1
    assert later.json()["endpoints"]["20b"]["auto_sleep_in"] == countdown - 1


async def test_a_held_request_shows_at_once_though_the_clock_stands_still(api: Api) -> None:
    """Counts that change without a state change (a request held for a cold start) are in the very
    next answer: the answer is built again on every change, not only with time."""
    etag = (await _status(api)).headers["etag"]
    body = {"model": "120b", "messages": [{"role": "user", "content": "hi"}]}
    held = asyncio.ensure_future(
        api.http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {USER}"})
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while api.app.state.manager.endpoint("120b").pending == 0:
        assert loop.time() < deadline, "the request was never held"
        await asyncio.sleep(0.001)
    answer = await _status(api, etag)
    assert answer.status_code == 200
    assert answer.json()["endpoints"]["120b"]["pending"] == 1
    # HF reports the start failed: the hold ends, and the request goes to 20b (unreachable here)
    api.hf.records["gpt-oss-120b"].state = "failed"
    while not held.done():
        assert loop.time() < deadline, "the hold never ended"
        await api.clock.advance(1.0)
        await asyncio.sleep(0.001)
    assert (await held).status_code in (502, 503)
    assert (await _status(api)).json()["endpoints"]["120b"]["pending"] == 0


def test_if_none_match_is_compared_as_rfc_9110_says() -> None:
    """Weak comparison, lists and `*` match; another tag or no header does not."""
    assert matches('"abc"', '"abc"') and matches('W/"abc"', '"abc"') and matches('"x", "abc"', '"abc"')
    assert matches("*", '"abc"')
    assert not matches('"abd"', '"abc"') and not matches(None, '"abc"') and not matches("", '"abc"')
