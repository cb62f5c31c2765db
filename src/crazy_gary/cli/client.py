"""The CLI's one door to a running crazy-gary server.

A call gives back the server's JSON object, or ends the command with one line on stderr
(``error: …``) and exit status 1. No traceback reaches the user from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from types import TracebackType

    import httpx2

__all__ = [
    "DEFAULT_SERVER",
    "ServerClient",
    "fail",
    "require",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Print ``error: <message>`` on stderr and end the command with `exit_code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(exit_code)


def require(body: dict[str, Any], field: str, kind: type) -> Any:
    """`body[field]` when it is a `kind`; otherwise end the command saying the answer was unexpected."""
    value = body.get(field)
    if isinstance(value, kind):
        return value
    fail(_sentence(body) or f"the server's answer has no valid '{field}' (is it a crazy-gary server?)")


class ServerClient:
    """JSON calls to one crazy-gary server, with an optional bearer key.

    Every failure — unreachable server, refused key, error answer, non-JSON answer — ends the
    command through :func:`fail`; callers only ever see successful (2xx) JSON objects. httpx2 is
    imported when a client is made, not at the top: `--help`, `serve` and `doctor` have no use for it.
    """

    def __init__(self, server: str, key: str | None) -> None:
        import httpx2

        self._quick = httpx2.Timeout(30.0, connect=5.0)
        # A waiting wake is bounded by the server (the endpoint's wake timeout, which an operator
        # may set long), so the client does not cut it short; Ctrl-C ends it.
        self._waiting = httpx2.Timeout(30.0, connect=5.0, read=None)
        self.server = server.rstrip("/")
        self.key = key or None
        headers = {"Accept": "application/json", "User-Agent": "crazy-gary-cli"}
        if self.key is not None:
            if not (self.key.isascii() and self.key.isprintable()):
                fail("the key (--key or CRAZY_GARY_KEY) must be printable ASCII text")
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            self._http = httpx2.Client(base_url=self.server, headers=headers, timeout=self._quick)
        except httpx2.InvalidURL:
            fail(f"--server is not a valid URL: {server!r}")

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET `path`; the answer's JSON object."""
        return self._call("GET", path, params, self._quick)

    def post(
        self, path: str, params: dict[str, str] | None = None, *, waiting: bool = False
    ) -> dict[str, Any]:
        """POST `path` without a body; the answer's JSON object. `waiting`: no read timeout."""
        return self._call("POST", path, params, self._waiting if waiting else self._quick)

    def _call(
        self, method: str, path: str, params: dict[str, str] | None, timeout: httpx2.Timeout
    ) -> dict[str, Any]:
        import httpx2

        try:
            response = self._http.request(method, path, params=params, timeout=timeout)
        except httpx2.TransportError as exc:
            self._unreachable(exc)
        return self._read(response)

    def stream(self, path: str, *, quiet: bool = False) -> httpx2.Response | None:
        """GET `path` as an open stream (the caller closes it). A refused call ends the command; so
        does an unreachable server, unless `quiet`, where it gives None (to try again later)."""
        import httpx2

        # The server sends at least a heartbeat every 15 s: silence three times as long means it is gone.
        timeout = httpx2.Timeout(30.0, connect=5.0, read=45.0)
        request = self._http.build_request(
            "GET", path, headers={"Accept": "text/event-stream"}, timeout=timeout
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx2.TransportError as exc:
            if quiet and not isinstance(exc, httpx2.UnsupportedProtocol):
                return None
            self._unreachable(exc)
        if response.status_code != 200:
            response.read()
            response.close()
            self._read(response)  # an error answer: ends the command with the server's sentence
            fail(f"crazy-gary at {self.server} answered {response.status_code} instead of an event stream")
        return response

    def _unreachable(self, exc: httpx2.TransportError) -> NoReturn:
        import httpx2

        if isinstance(exc, httpx2.UnsupportedProtocol):
            fail(f"--server must start with http:// or https://, not {self.server!r}")
        if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
            fail(f"cannot reach crazy-gary at {self.server} (is `crazy-gary serve` running?)")
        if isinstance(exc, httpx2.TimeoutException):
            fail(f"crazy-gary at {self.server} did not answer in time")
        fail(f"the connection to crazy-gary at {self.server} failed: {exc}")

    def _read(self, response: httpx2.Response) -> dict[str, Any]:
        body = _json_object(response)
        if body is None:
            fail(
                f"crazy-gary at {self.server} answered HTTP {response.status_code} with something "
                "that is not JSON (is --server the address of a crazy-gary server?)"
            )
        if response.is_success:
            return body
        sentence = _sentence(body) or f"the server answered HTTP {response.status_code}"
        if response.status_code == 401:
            hint = "check --key or CRAZY_GARY_KEY" if self.key else "give one with --key or CRAZY_GARY_KEY"
            fail(f"the server refused the key: {sentence} ({hint})")
        retry_after = response.headers.get("Retry-After")
        if response.status_code == 429 and retry_after:
            fail(f"{sentence} (retry after {retry_after} s)")
        fail(sentence)


def _json_object(response: httpx2.Response) -> dict[str, Any] | None:
    """The answer's body when it is a JSON object, else None."""
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both derive from it
        return None
    return body if isinstance(body, dict) else None


def _sentence(body: dict[str, Any]) -> str | None:
    """The server's error sentence: the ``error`` field of its error shape, or a framework's ``detail``."""
    for field in ("error", "detail"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    return None
