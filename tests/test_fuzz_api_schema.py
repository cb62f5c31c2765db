"""Fuzz the REST API with schemathesis from its own OpenAPI schema, with four callers and their keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from pydantic import TypeAdapter, ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from ._fuzz_app import (
    ENDPOINT_PATHS,
    MAX_INT64,
    MODEL_NAMES,
    OPERATOR,
    OPERATOR_PREFIXES,
    PUBLIC_PATHS,
    REQUEST_TIMEOUT,
    SEED,
    USER_PREFIXES,
    VIEWER,
    WRONG,
    ApiCase,
    LiveApp,
    check_error_shape,
    live_app,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("fuzz-api")) as live:
        yield live


@pytest.fixture(scope="module")
def api_schema(served: LiveApp) -> schemathesis.BaseSchema:
    """The app's own schema from `/openapi.json`: positive and negative data, coverage cases, fixed seed."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"mode": "all", "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    loaded = schemathesis.openapi.from_url(
        served.url + "/openapi.json", config=config, timeout=REQUEST_TIMEOUT
    )

    @loaded.hook
    def before_generate_path_parameters(
        context: schemathesis.HookContext, strategy: SearchStrategy[dict[str, Any]]
    ) -> SearchStrategy[dict[str, Any]]:
        # Random strings almost never name an endpoint: mix in the real keys and names.
        if "{key}" in context.operation.path:  # an endpoint's address: its key and a path under it
            address = st.fixed_dictionaries(
                {"key": st.sampled_from(MODEL_NAMES), "path": st.sampled_from(ENDPOINT_PATHS)}
            )
            return st.one_of(strategy, address)
        known = st.sampled_from(MODEL_NAMES).map(lambda name: {"model_type": name})
        return st.one_of(strategy, known)

    return loaded


@pytest.fixture(autouse=True)
def _schemathesis_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's `from_fixture` renames `node._nodeid`, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# An event stream never ends: it has no place in generated calls.
# The event stream never ends; the policies are a replay of days of traffic in a process of their
# own, seconds per answer (tests/web/test_policies.py checks its parameter and its errors).
schema = schemathesis.pytest.from_fixture("api_schema").exclude(
    path_regex=r"^/api/endpoints/(events|policies)"
)


# --- what every answer must be ----------------------------------------------------------------------


def _json(response: schemathesis.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        pytest.fail(f"{response.status_code} answer is not JSON: {response.content[:200]!r}")


def _no_capacity(case: ApiCase, response: schemathesis.Response) -> bool:
    """The gateway's own 503 when every endpoint of the chain sleeps (fuzzed sleeps put them to
    sleep, and nothing may wait here): a designed answer, checked for its shape and Retry-After."""
    return response.status_code == 503 and case.path.startswith(USER_PREFIXES)


def check_answer(case: ApiCase, response: schemathesis.Response) -> None:
    """No 5xx; every 4xx in the error shape (429 with Retry-After); every `/api/` answer JSON with `success`."""
    content_type = (response.headers.get("content-type") or [""])[0]
    described = f"{case.method} {case.formatted_path} query={case.query} -> {response.status_code}"
    if _no_capacity(case, response):
        assert check_error_shape(503, content_type, response.content)["code"] == "no_capacity", described
        assert "retry-after" in response.headers, described
        return
    assert response.status_code < 500, f"{described}: {response.content[:300]!r}"
    if response.status_code >= 400:
        check_error_shape(response.status_code, content_type, response.content)
        if response.status_code == 429:
            assert "retry-after" in response.headers, described
    elif case.path.startswith("/api/"):
        assert "success" in _json(response), described


def _truthy(value: object) -> bool:
    """Whether the app could read a `wait` query value (or one of a repeated parameter's) as true."""
    if isinstance(value, list):
        return any(_truthy(item) for item in value)
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return False


def _bounded(case: ApiCase) -> None:
    """Keep generated calls off `?wait=true`, which waits for the manual clock (it never moves)."""
    if not case.query:
        return
    if _truthy(case.query.get("wait")):
        del case.query["wait"]


def _call(case: ApiCase, key: str | None) -> schemathesis.Response:
    _bounded(case)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return case.call(headers=headers, timeout=REQUEST_TIMEOUT)


def _routed(response: schemathesis.Response) -> bool:
    """Whether the call reached a route: an unknown method (405) or a path with `/` (404) has no role."""
    return response.status_code not in (404, 405) or _json(response)["code"] not in (
        "not_found",
        "method_not_allowed",
    )


def _needed_role(path: str) -> str | None:
    if path in PUBLIC_PATHS:
        return None
    if path.startswith(OPERATOR_PREFIXES):
        return "operator"
    if path.startswith(USER_PREFIXES):
        return "user"
    return "viewer"


FUZZ = settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
AUTH_FUZZ = settings(FUZZ, max_examples=8)


# --- schemathesis: every operation of the schema, four callers -------------------------------------


@FUZZ
@schema.parametrize()
def test_operator_key_never_gets_a_server_error(case: ApiCase) -> None:
    """With the operator key, any generated call is answered below 500, errors in the error shape."""
    response = _call(case, OPERATOR)
    check_answer(case, response)
    if _no_capacity(case, response):
        return
    case.validate_response(
        response, checks=[not_a_server_error, content_type_conformance, response_schema_conformance]
    )


@AUTH_FUZZ
@schema.parametrize()
def test_missing_key_is_refused_with_401(case: ApiCase) -> None:
    """Without a key every protected route answers 401 `missing_key`, whatever else the call holds."""
    response = _call(case, None)
    check_answer(case, response)
    if _needed_role(case.path) is not None and _routed(response):
        assert response.status_code == 401, (case.formatted_path, response.status_code, response.content)
        assert _json(response)["code"] == "missing_key"


@AUTH_FUZZ
@schema.parametrize()
def test_wrong_key_is_refused_with_401(case: ApiCase) -> None:
    """A key nobody configured gets 401 `invalid_key` on every protected route."""
    response = _call(case, WRONG)
    check_answer(case, response)
    if _needed_role(case.path) is not None and _routed(response):
        assert response.status_code == 401, (case.formatted_path, response.status_code, response.content)
        assert _json(response)["code"] == "invalid_key"


@AUTH_FUZZ
@schema.parametrize()
def test_viewer_key_is_refused_above_its_role(case: ApiCase) -> None:
    """The viewer key reads, but gets 403 on the gateway (user) and on wake and sleep (operator)."""
    response = _call(case, VIEWER)
    check_answer(case, response)
    if _needed_role(case.path) in ("user", "operator") and _routed(response):
        assert response.status_code == 403, (case.formatted_path, response.status_code, response.content)
        assert _json(response)["code"] == "forbidden"


# --- a case the fuzzing found, fixed since: it stays as a regression test ---


def test_audit_before_beyond_64_bits_is_a_400(served: LiveApp) -> None:
    """An audit `before` no entry id can reach is bad input (400), not an internal error."""
    response = httpx2.get(
        served.url + "/api/endpoints/audit",
        params={"before": str(MAX_INT64 + 1)},
        headers={"Authorization": f"Bearer {VIEWER}"},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 400, response.text
    check_error_shape(400, response.headers["content-type"], response.content)
