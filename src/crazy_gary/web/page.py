"""The dashboard page and its own files, read from the package once, when the app is built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from crazy_gary.web.edge import page_headers

__all__ = ["page_router"]

_FILES = (
    *(
        (name, "text/javascript")
        for name in ("format.js", "live.js", "activity.js", "costs.js", "usage.js", "policies.js")
    ),
    ("dashboard.js", "text/javascript"),
    ("dashboard.css", "text/css"),
    ("favicon.svg", "image/svg+xml"),
)
_REVALIDATE = {"Cache-Control": "no-cache"}


def page_router() -> APIRouter:
    """`/` and the page's files under `/static/` (which the rate limits leave alone).

    `no-cache` makes the browser revalidate, so an upgraded server never runs the previous script.
    """
    static = resources.files("crazy_gary.web").joinpath("static")
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    security_headers = page_headers(page)
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=security_headers)

    for name, media_type in _FILES:
        router.add_api_route(f"/static/{name}", _serve(static.joinpath(name).read_bytes(), media_type))
    return router


def _serve(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=_REVALIDATE)

    return serve
