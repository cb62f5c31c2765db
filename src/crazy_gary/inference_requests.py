"""What the gateway accepts, checked and ready to send: a request of one of the OpenAI APIs (chat,
completions, Responses, embeddings), or any request to an endpoint's own address through crazy-gary.

Knows no web framework: the gateway and HarmonyClient build these from bytes, and the engine sends
them along the routing chain, each to the serving endpoint's URL plus the request's `path`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from crazy_gary.core.ports import CHAT_PATH
from crazy_gary.errors import CrazyGaryError
from crazy_gary.usage.tokens import TokenCount

__all__ = [
    "API_PATHS",
    "Api",
    "BadRequest",
    "InferenceRequest",
    "endpoint_path",
    "forwarded_headers",
    "parse_api_request",
    "parse_endpoint_request",
    "returned_headers",
]

Api = Literal["chat", "completions", "responses", "embeddings", "endpoint"]
API_PATHS: dict[Api, str] = {
    "chat": CHAT_PATH,
    "completions": "/v1/completions",
    "responses": "/v1/responses",
    "embeddings": "/v1/embeddings",
}

# Headers that belong to one connection (RFC 9110 §7.6.1), or to crazy-gary (the caller's key and
# cookies), or that aiohttp sets itself; none of them goes upstream. Accept-Encoding is dropped so
# that answers come back as they are passed on: uncompressed (aiohttp is told not to add its own).
_NOT_FORWARDED = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "cookie",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "x-request-id",
    }
)


# An endpoint's answer headers that stay behind: the connection's own, the length and date and server
# our server sets again, and cookies, which would be set for crazy-gary's origin.
_NOT_RETURNED = frozenset(
    {
        "connection",
        "content-length",
        "content-type",  # passed as the answer's media type
        "date",
        "keep-alive",
        "proxy-authenticate",
        "server",
        "set-cookie",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


_ASK_USAGE = b'{"stream_options":{"include_usage":true},'


class BadRequest(CrazyGaryError):
    """The request is not one the API it was sent to accepts (400)."""

    code = "invalid_request"


@dataclass(frozen=True)
class InferenceRequest:
    """One request to send along the routing chain of the endpoint `key`.

    `body` is the parsed JSON object, or None when the body is not one (an endpoint address may be
    sent anything); `path` (with its query string) is appended to the serving endpoint's URL.
    """

    api: Api
    key: str
    path: str
    raw: bytes
    body: dict[str, Any] | None
    stream: bool
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)  # the caller's, to pass on
    caller: str | None = None  # the key's name (or role and hash), for usage and quotas
    strip_usage: bool = False  # the stream's usage event was asked for by crazy-gary, not the caller
    on_end: Callable[[TokenCount | None, int], None] | None = None  # told the tokens and status at the end

    def body_for(self, model: str | None) -> bytes:
        """The bytes to send to an endpoint serving `model`: the caller's, with `model` set to it
        when the body names one (unchanged when `model` is None: an endpoint we do not name), and
        a stream's usage asked for."""
        body = self.body
        if body is None:
            return self.raw
        renamed = model is not None and "model" in body and body["model"] != model
        if not renamed and not self.strip_usage:
            return self.raw
        if not renamed and "stream_options" not in body:
            # the caller's bytes with one member put first: cheaper than encoding the body again
            return _ASK_USAGE + self.raw[self.raw.index(b"{") + 1 :]
        if renamed:
            body = {**body, "model": model}
        if self.strip_usage:
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        return json.dumps(body, separators=(",", ":")).encode()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, numbers too long, nesting too deep
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _needs(name: str, what: str, check: Callable[[Any], bool]) -> Callable[[dict[str, Any]], None]:
    def require(body: dict[str, Any]) -> None:
        if not check(body.get(name)):
            raise BadRequest(f"The request needs '{name}', {what}.")

    return require


def _text_or_list(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (isinstance(value, list) and len(value) > 0)


# What each API's body must hold beyond `model`; the rest is the endpoint's to check.
_REQUIRED: dict[Api, Callable[[dict[str, Any]], None]] = {
    "chat": _needs("messages", "a list", lambda value: isinstance(value, list)),
    "completions": _needs("prompt", "a string or a list", _text_or_list),
    "responses": _needs("input", "a string or a list", _text_or_list),
    "embeddings": _needs("input", "a string or a list", _text_or_list),
}


def parse_api_request(
    raw: bytes, api: Api, resolve: Callable[[str], str], caller: str | None = None
) -> InferenceRequest:
    """Check `raw` is a request of `api` whose `model` names an endpoint (`resolve` gives its key, or
    raises EndpointNotFound); BadRequest if it is not. A chat or completions stream is sent asking
    for its usage, which is taken out again when the caller did not ask for it."""
    body = _json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("The request needs 'model', a string naming an endpoint.")
    _REQUIRED[api](body)
    stream = api != "embeddings" and body.get("stream") is True
    strip = stream and api in ("chat", "completions") and _usage_not_asked(body)
    return InferenceRequest(
        api, resolve(model), API_PATHS[api], raw, body, stream, caller=caller, strip_usage=strip
    )


def _usage_not_asked(body: dict[str, Any]) -> bool:
    """Whether a stream's body leaves its usage unasked (crazy-gary then asks, and takes it out)."""
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return False  # the endpoint's to refuse, untouched
    return not (isinstance(options, dict) and options.get("include_usage") is True)


def endpoint_path(raw_path: str, query: str) -> str:
    """The path (and query) under an endpoint's address, as the caller encoded it; BadRequest for
    one that could leave the endpoint: a `.` or `..` segment (encoded or not), an empty segment but
    the last (`//host`), or a segment that decodes to a slash, a backslash or a control character.
    An empty `raw_path` is the endpoint's own address."""
    segments = raw_path.split("/")
    for position, segment in enumerate(segments):
        decoded = unquote(segment)
        if (
            (segment == "" and position < len(segments) - 1)
            or decoded.split(";", 1)[0] in (".", "..")  # `..;x`: a dot segment with a parameter
            or any(character in decoded for character in "/\\")
            or not decoded.isprintable()
        ):
            raise BadRequest("The path must stay under the endpoint's address.")
    return "/" + raw_path + (f"?{query}" if query else "")


def _end_to_end(headers: Mapping[str, str], excluded: frozenset[str]) -> dict[str, str]:
    """`headers` without those `excluded`, nor those their `Connection` header names."""
    named = ",".join(value for name, value in headers.items() if name.lower() == "connection")
    connection = {name.strip().lower() for name in named.split(",")}
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in excluded and name.lower() not in connection
    }


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers that go upstream: end to end, and neither its key nor its cookies."""
    return _end_to_end(headers, _NOT_FORWARDED)


def parse_endpoint_request(
    key: str, method: str, path: str, raw: bytes, headers: Mapping[str, str], caller: str | None = None
) -> InferenceRequest:
    """A request to the endpoint `key`'s own address; its body, when a JSON object, may name a
    `model` (replaced by the serving endpoint's) and ask for a stream."""
    body: dict[str, Any] | None = None
    if raw:
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            parsed = None  # not JSON: passed on as it is
        body = parsed if isinstance(parsed, dict) else None
    stream = body is not None and body.get("stream") is True
    route = path.split("?", 1)[0].rstrip("/")
    openai_stream = route.endswith(("/chat/completions", "/v1/completions"))
    strip = stream and openai_stream and body is not None and _usage_not_asked(body)
    return InferenceRequest(
        "endpoint",
        key,
        path,
        raw,
        body,
        stream,
        method=method.upper(),
        headers=forwarded_headers(headers),
        caller=caller,
        strip_usage=strip,
    )


def returned_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """An endpoint's answer headers that go back to the caller of its address: end to end only."""
    return _end_to_end(headers, _NOT_RETURNED)
