"""Our own checks of the management API's endpoint objects, fed straight to the adapter's reader:
what an object must say is refused with a reason, what it may leave out or garble is read as unknown."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from crazy_gary.hf.answers import MalformedAnswer, to_upstream

RUNNING: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "mock_running.json").read_text())


def changed(**fields: Any) -> dict[str, Any]:
    """The real running object with top-level `fields` replaced (None: taken out)."""
    body = copy.deepcopy(RUNNING)
    for name, value in fields.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "the endpoint object is missing or not an object"),
        ("running", "the endpoint object is missing or not an object"),
        (changed(name=None), "an endpoint object has no name"),
        (changed(name=""), "an endpoint object has no name"),
        (changed(name=7), "an endpoint object has no name"),
        (changed(status=None), "the status of "),
        (changed(status="running"), "the status of "),
        (changed(status={"url": "https://x"}), "has no state"),
        (changed(status={"state": ""}), "has no state"),
    ],
)
def test_an_object_without_what_it_must_say_is_refused_with_a_reason(raw: object, reason: str) -> None:
    with pytest.raises(MalformedAnswer) as refused:
        to_upstream(raw, "demo")
    assert reason in str(refused.value)


def test_fields_it_may_leave_out_or_garble_are_read_as_unknown() -> None:
    """Compute, scaling, provider and model of the wrong type, counts that are no counts, and an
    empty health route: the endpoint is still read, those fields as unknown and `/health`."""
    raw = changed(compute="big", provider=["aws"], model=None, healthRoute="")
    raw["status"] = {**RUNNING["status"], "url": 42, "message": ""}
    upstream = to_upstream(raw, "demo")
    assert (upstream.name, upstream.state) == (RUNNING["name"], RUNNING["status"]["state"])
    assert upstream.url is None and upstream.message is None
    assert (upstream.instance_type, upstream.vendor, upstream.repository) == (None, None, None)
    assert upstream.health_route == "/health"
    bad_counts = changed()
    bad_counts["compute"]["scaling"] = {"minReplica": "1", "maxReplica": -2, "scaleToZeroTimeout": True}
    upstream = to_upstream(bad_counts, "demo")
    assert (upstream.min_replica, upstream.max_replica, upstream.scale_to_zero_timeout) == (None, None, None)


def test_a_real_object_is_read_whole() -> None:
    upstream = to_upstream(RUNNING, "demo")
    assert upstream.namespace == "demo"
    assert upstream.url == RUNNING["status"]["url"]
    assert upstream.health_route == RUNNING["healthRoute"]
    assert upstream.min_replica == RUNNING["compute"]["scaling"]["minReplica"]
