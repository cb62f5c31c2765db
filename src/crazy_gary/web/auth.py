"""API keys and roles: Bearer keys, viewer < user < operator, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import Request

from crazy_gary._structlog import structlog
from crazy_gary.config import ApiKey, Role
from crazy_gary.inference_requests import API_PATHS
from crazy_gary.web.edge import check_model_type
from crazy_gary.web.errors import ApiError

__all__ = ["Caller", "KeyRing", "identify", "operation_of", "refuse", "request_id", "require"]

_RANK: dict[str, int] = {"viewer": 0, "user": 1, "operator": 2}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    """Who made a request: the key's role and how the audit log names it (never the key)."""

    role: Role
    actor: str
    key_digest: str = field(default="", repr=False)  # SHA-256 of the key: what rate limits count by


def _actor(key: ApiKey) -> str:
    if key.name:
        return key.name
    digest = hashlib.sha256(key.key.encode()).hexdigest()[:8]
    return f"{key.role}:{digest}"


class KeyRing:
    """The configured keys; looks a presented key up without timing leaks."""

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self._keys = [
            (key.key.encode(), Caller(key.role, _actor(key), hashlib.sha256(key.key.encode()).hexdigest()))
            for key in keys
        ]

    def identify(self, presented: str) -> Caller | None:
        candidate = presented.encode()
        found: Caller | None = None
        for secret, caller in self._keys:  # look at every key: the time taken says nothing
            if hmac.compare_digest(secret, candidate):
                found = caller
        return found


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _invalid_actor(presented: str) -> str:
    return f"invalid-key:{hashlib.sha256(presented.encode()).hexdigest()[:8]}"


def identify(request: Request, keyring: KeyRing) -> tuple[Caller | None, str]:
    """The caller the request's key names (None without a valid key) and how the audit log names it."""
    presented = _bearer(request)
    if presented is None:
        return None, "anonymous"
    caller = keyring.identify(presented)
    return (caller, caller.actor) if caller is not None else (None, _invalid_actor(presented))


def request_id(request: Request) -> str | None:
    """The id the request logging gave this request, if any."""
    bound = structlog.contextvars.get_contextvars().get("request_id")
    return str(bound) if bound else request.headers.get("x-request-id")


def operation_of(request: Request) -> str:
    """What a refused caller tried, for the audit log: wake, sleep, the inference API (chat,
    completions, responses, embeddings, endpoint — as a quota refusal names it), or read."""
    path = request.url.path
    for operation in ("wake", "sleep"):
        if path.startswith(f"/api/endpoints/{operation}"):
            return operation
    for api, api_path in API_PATHS.items():
        if path == api_path:
            return api
    return "endpoint" if path.startswith("/endpoints/") else "read"


def refuse(request: Request, actor: str, error: ApiError) -> ApiError:
    """Audit a refused attempt (401, 403, 429), then hand back the error to raise or answer."""
    recorder = getattr(request.app.state, "recorder", None)
    if recorder is not None:
        recorder.refused(
            actor=actor,
            operation=operation_of(request),
            model_type=request.path_params.get("model_type"),
            status=error.status,
            reason=error.message,
            request_id=request_id(request),
        )
    return error


def require(role: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency admitting keys of `role` or higher; refusals are audited.

    Once the key is admitted, a path's `{model_type}` that is no endpoint name is a 400.
    """

    async def dependency(request: Request) -> Caller:
        keyring: KeyRing = request.app.state.keyring
        presented = _bearer(request)
        if presented is None:
            message = "An API key is required: send Authorization: Bearer <key>."
            raise refuse(request, "anonymous", ApiError(401, "missing_key", message, _CHALLENGE))
        caller = keyring.identify(presented)
        if caller is None:
            error = ApiError(401, "invalid_key", "The API key is not valid.", _CHALLENGE)
            raise refuse(request, _invalid_actor(presented), error)
        if _RANK[caller.role] < _RANK[role]:
            message = f"This needs the {role} role; the key has the {caller.role} role."
            raise refuse(request, caller.actor, ApiError(403, "forbidden", message))
        request.state.caller = caller
        check_model_type(request)  # after the key checks: a refusal never depends on the rest of the call
        return caller

    return dependency
