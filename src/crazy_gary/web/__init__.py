"""The HTTP face of crazy-gary: FastAPI app factory, routes, auth and error handlers."""

from crazy_gary.web.app import create_app

__all__ = ["create_app"]
