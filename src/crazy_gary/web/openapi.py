"""Paths of plain Starlette routes in the app's OpenAPI schema, which FastAPI writes only for its own."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

__all__ = ["add_openapi_paths"]


def add_openapi_paths(app: FastAPI, paths: dict[str, Any]) -> None:
    """Add `paths` to the schema `app.openapi()` builds (once, as FastAPI keeps it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            build()["paths"].update(paths)
        schema: dict[str, Any] = app.openapi_schema or {}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
