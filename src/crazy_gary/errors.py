"""The one exception tree of crazy-gary.

    CrazyGaryError
    ├── ConfigError              a setting is missing or malformed (start-up stops, exit 2)
    ├── EndpointNotFound         no configured endpoint has that key or name
    ├── UpstreamError            an endpoint failed to answer an inference request after retries
    ├── NoCapacity               nothing can serve a request now (503 with Retry-After)
    ├── StoreError               the database could not be reached or refused a statement
    └── ManagementError          the Hugging Face management API failed us
        ├── ManagementAuthError  it refused HUGGINGFACE_API_KEY (401/403)
        ├── ManagementUnavailable it could not be reached, or kept answering 5xx/429
        └── ManagementRejected   it refused the operation (4xx), e.g. resuming a failed endpoint

One more derives from the root where it is raised: ``crazy_gary.engine.BadRequest``, a chat request
that is not an OpenAI chat request (400).

Errors of the libraries below are translated into these at one boundary, with ``raise … from exc``.
Every error carries a ``code`` (snake_case) that the web layer puts in its JSON error shape.
"""

from __future__ import annotations

import re

__all__ = [
    "ConfigError",
    "CrazyGaryError",
    "EndpointNotFound",
    "ManagementAuthError",
    "ManagementError",
    "ManagementRejected",
    "ManagementUnavailable",
    "NoCapacity",
    "StoreError",
    "UpstreamError",
]


class CrazyGaryError(Exception):
    """Root of every error crazy-gary raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CrazyGaryError):
    """A setting is missing or malformed; the message names the variable, on one line."""

    code = "invalid_configuration"

    def __init__(self, message: str) -> None:
        # every character str.splitlines() would break at, and the other controls, escaped
        one_line = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: repr(m.group())[1:-1], message)
        super().__init__(one_line)


class EndpointNotFound(CrazyGaryError):
    """No configured endpoint answers to this key, name or repository."""

    code = "endpoint_not_found"

    def __init__(self, model_type: str) -> None:
        super().__init__(f"Unknown endpoint '{model_type}'.")
        self.model_type = model_type


class ManagementError(CrazyGaryError):
    """The Hugging Face management API did not do what was asked."""

    code = "upstream_error"


class ManagementAuthError(ManagementError):
    """Hugging Face refused the token (401 or 403)."""

    code = "upstream_unauthorized"


class ManagementUnavailable(ManagementError):
    """The management API could not be reached or kept failing after retries."""

    code = "upstream_unavailable"


class ManagementRejected(ManagementError):
    """The management API refused the operation with a 4xx answer."""

    code = "upstream_rejected"

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class UpstreamError(CrazyGaryError):
    """An endpoint failed to answer after the retries: `kind` is timeout, connect, status, or
    stream (an error event ended its stream)."""

    code = "upstream_error"

    def __init__(self, message: str, *, kind: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.attempts = attempts


class NoCapacity(CrazyGaryError):
    """Nothing can serve the request now; try again after `retry_after` seconds."""

    code = "no_capacity"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(CrazyGaryError):
    """The database could not be reached or refused a statement."""

    code = "store_unavailable"
