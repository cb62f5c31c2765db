"""What the gateway accepts: each API's body, and paths and headers under an endpoint's address."""

from __future__ import annotations

import json

import pytest

from crazy_gary.errors import EndpointNotFound
from crazy_gary.inference_requests import (
    BadRequest,
    endpoint_path,
    forwarded_headers,
    parse_api_request,
    parse_endpoint_request,
)


def resolve(model: str) -> str:
    if model in ("120b", "gpt-oss-120b"):
        return "120b"
    raise EndpointNotFound(model)


def test_each_api_needs_its_own_field() -> None:
    """Chat needs messages, completions a prompt, Responses and embeddings an input."""
    cases = {
        "chat": ("messages", [{"role": "user", "content": "hi"}]),
        "completions": ("prompt", "Once upon"),
        "responses": ("input", "hi"),
        "embeddings": ("input", ["a", "b"]),
    }
    for api, (name, value) in cases.items():
        request = parse_api_request(json.dumps({"model": "gpt-oss-120b", name: value}).encode(), api, resolve)
        assert (request.api, request.key, request.method) == (api, "120b", "POST")
        assert request.path == f"/v1/{'chat/completions' if api == 'chat' else api}"
        with pytest.raises(BadRequest, match=f"'{name}'"):
            parse_api_request(json.dumps({"model": "120b"}).encode(), api, resolve)
    with pytest.raises(BadRequest, match="'input'"):
        parse_api_request(b'{"model": "120b", "input": ""}', "responses", resolve)


def test_bad_bodies_and_unknown_models_are_refused() -> None:
    for raw, message in (
        (b"{", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"prompt": "x"}', "'model'"),
        (b"[" * 100_000, "not valid JSON"),
    ):
        with pytest.raises(BadRequest, match=message):
            parse_api_request(raw, "completions", resolve)
    with pytest.raises(EndpointNotFound):
        parse_api_request(b'{"model": "nope", "prompt": "x"}', "completions", resolve)


def test_streams_are_asked_for_but_embeddings_never_stream() -> None:
    assert parse_api_request(b'{"model":"120b","prompt":"x","stream":true}', "completions", resolve).stream
    assert not parse_api_request(b'{"model":"120b","input":"x","stream":true}', "embeddings", resolve).stream
    assert not parse_api_request(b'{"model":"120b","input":"x","stream":"yes"}', "responses", resolve).stream


@pytest.mark.parametrize(
    "raw_path",
    [
        "..",
        "v1/../../admin",
        "%2e%2e/secrets",
        "%2E.",
        ".",
        "v1/./models",
        "/evil.example/x",  # //evil.example/x after the endpoint's address
        "v1//models",
        "a%2fb",
        "a%2F..%2Fb",
        "a%5cb",
        "a\\b",
        "a%00b",
        "a%0d%0aHost:%20x",
    ],
)
def test_paths_that_could_leave_the_endpoint_are_refused(raw_path: str) -> None:
    with pytest.raises(BadRequest, match="under the endpoint's address"):
        endpoint_path(raw_path, "")


def test_paths_under_the_endpoint_are_kept_as_encoded_with_their_query() -> None:
    assert endpoint_path("v1/chat/completions", "") == "/v1/chat/completions"
    assert endpoint_path("", "") == "/"
    assert endpoint_path("v1/models/", "") == "/v1/models/"
    assert endpoint_path("search/a%20b", "q=1&x=%2F") == "/search/a%20b?q=1&x=%2F"
    assert endpoint_path("files/...hidden", "") == "/files/...hidden"  # three dots are a name


def test_only_end_to_end_headers_go_upstream_and_never_the_callers_key() -> None:
    headers = {
        "Authorization": "Bearer caller-key",
        "Cookie": "session=1",
        "Host": "crazy-gary",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "gone",
        "Keep-Alive": "timeout=5",
        "Transfer-Encoding": "chunked",
        "Content-Length": "12",
        "Accept-Encoding": "gzip",
        "Proxy-Authorization": "Basic x",
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "X-Custom": "kept",
    }
    assert forwarded_headers(headers) == {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "X-Custom": "kept",
    }


def test_a_json_model_is_set_to_what_the_serving_endpoint_expects() -> None:
    fallback = "gpt-oss-20b"
    request = parse_endpoint_request("120b", "post", "/v1/chat/completions", b'{"model":"dummy","x":1}', {})
    assert request.method == "POST"
    assert json.loads(request.body_for(fallback)) == {"model": "gpt-oss-20b", "x": 1}
    without_model = parse_endpoint_request("120b", "POST", "/generate", b'{"inputs":"hi"}', {})
    assert without_model.body_for(fallback) == b'{"inputs":"hi"}'
    not_json = parse_endpoint_request("120b", "POST", "/upload", b"\x00\x01binary", {})
    assert not_json.body is None and not_json.body_for(fallback) == b"\x00\x01binary"
    streamed = parse_endpoint_request("120b", "POST", "/v1/completions", b'{"stream":true,"prompt":"x"}', {})
    assert streamed.stream


def test_a_stream_is_sent_asking_for_its_usage_unless_the_caller_did() -> None:
    """Chat and completions streams ask for their usage; the caller's own choice is kept when it
    asked, and replaced (then the event is taken out again) when it said no."""
    plain = parse_api_request(b' {"model": "120b", "messages": [], "stream": true}', "chat", resolve)
    assert plain.strip_usage
    assert json.loads(plain.body_for(None)) == {
        "model": "120b",
        "messages": [],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    said_no = b'{"model": "120b", "prompt": "x", "stream": true, "stream_options": {"include_usage": false}}'
    refused = parse_api_request(said_no, "completions", resolve)
    assert refused.strip_usage and json.loads(refused.body_for("gpt-oss-120b"))["stream_options"] == {
        "include_usage": True
    }
    asked = b'{"model": "120b", "messages": [], "stream": true, "stream_options": {"include_usage": true}}'
    kept = parse_api_request(asked, "chat", resolve)
    assert not kept.strip_usage and kept.body_for(None) == asked
    assert not parse_api_request(
        b'{"model": "120b", "input": "x", "stream": true}', "responses", resolve
    ).strip_usage


def test_a_chat_stream_through_an_endpoint_address_is_asked_for_its_usage_too() -> None:
    body = b'{"model": "dummy", "messages": [], "stream": true}'
    chat = parse_endpoint_request("120b", "POST", "/v1/chat/completions", body, {})
    assert chat.strip_usage and json.loads(chat.body_for("gpt-oss-120b"))["stream_options"] == {
        "include_usage": True
    }
    assert not parse_endpoint_request("120b", "POST", "/generate_stream", body, {}).strip_usage
    assert not parse_endpoint_request(
        "120b", "POST", "/v1/chat/completions", body.replace(b"true", b"false"), {}
    ).strip_usage
