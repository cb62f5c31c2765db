"""The app on a real loopback socket, on the manual clock, with an in-memory management API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest
from fastapi import FastAPI

from crazy_gary.clock import ManualClock
from crazy_gary.config import Settings
from crazy_gary.web import create_app

from ..conftest import serve_app
from ..core.fakes import FakeManagement

OPERATOR, USER, VIEWER = "op-key-123456", "user-key-123456", "view-key-123456"


@dataclass
class Api:
    http: httpx2.AsyncClient
    clock: ManualClock
    hf: FakeManagement
    app: FastAPI

    async def get(self, path: str, key: str | None = VIEWER) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await self.http.get(path, headers=headers)

    async def post(self, path: str, key: str | None = OPERATOR) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return await self.http.post(path, headers=headers)


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    for name in ("CRAZY_GARY_CONFIG", "HF_BASE_URL_120B", "HF_BASE_URL_20B", "HUGGINGFACE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        CRAZY_GARY_SIMULATE=True,
        CRAZY_GARY_API_KEYS=f"ops:operator:{OPERATOR},user:{USER},viewer:{VIEWER}",
    )
    clock = ManualClock()
    hf = FakeManagement(clock, {"gpt-oss-120b": "scaledToZero", "gpt-oss-20b": "running"})
    app = create_app(settings, clock=clock, management=hf)
    async with serve_app(app) as url, httpx2.AsyncClient(base_url=url) as http:
        await clock.settle()
        yield Api(http, clock, hf, app)
