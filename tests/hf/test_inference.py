"""InferenceClient against a scripted endpoint on loopback: attempts counted, errors translated."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from aiohttp import web

from crazy_gary.errors import UpstreamError
from crazy_gary.hf.inference import InferenceClient, quiet_retry_hooks

from ..conftest import fast_retries


class Endpoint:
    """Answers each POST with the next scripted status (then 200); `cut` breaks off a stream."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.calls = 0
        self.url = ""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"object": "chat.completion"}, status=status)

    async def cut(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"data: {}\n\n")
        assert request.transport is not None
        request.transport.close()
        return response


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    served = Endpoint()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", served.chat)
    app.router.add_post("/cut/v1/chat/completions", served.cut)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    served.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield served
    await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[InferenceClient]:
    inference = InferenceClient(attempts=3)
    with fast_retries():
        yield inference
    await inference.aclose()


@pytest.fixture
def default_hooks() -> Iterator[None]:
    yield
    stamina.instrumentation.set_on_retry_hooks(None)


async def test_retried_answer_says_how_many_attempts(endpoint: Endpoint, client: InferenceClient) -> None:
    """503, 503, 200: one answer, three calls, `attempts` 3."""
    endpoint.statuses = [503, 503]
    answer = await client.open(endpoint.url + "/v1/chat/completions", b"{}", {})
    assert (answer.status, answer.attempts, endpoint.calls) == (200, 3, 3)
    await answer.aread()
    await answer.aclose()


async def test_retries_spent_raise_with_the_attempts(endpoint: Endpoint, client: InferenceClient) -> None:
    """Three 502s: UpstreamError with status 502 and `attempts` 3; a 500 is answered, not retried."""
    endpoint.statuses = [502, 502, 502, 500]
    with pytest.raises(UpstreamError) as raised:
        await client.open(endpoint.url + "/v1/chat/completions", b"{}", {})
    assert (raised.value.status, raised.value.attempts) == (502, 3)
    answer = await client.open(endpoint.url + "/v1/chat/completions", b"{}", {})
    assert (answer.status, answer.attempts, endpoint.calls) == (500, 1, 4)
    await answer.aclose()


async def test_a_body_broken_off_is_an_upstream_error(endpoint: Endpoint, client: InferenceClient) -> None:
    """An endpoint that closes the connection mid-body: UpstreamError (connect), never retried."""
    answer = await client.open(endpoint.url + "/cut/v1/chat/completions", b"{}", {})
    with pytest.raises(UpstreamError) as raised:
        async for _ in answer.aiter_bytes():
            pass
    await answer.aclose()
    assert (raised.value.kind, endpoint.calls) == ("connect", 1)


def test_quiet_retry_hooks_turns_stamina_instrumentation_off(default_hooks: None) -> None:
    """No stamina hook is left to log or count a retry once `quiet_retry_hooks` ran."""
    quiet_retry_hooks()
    assert stamina.instrumentation.get_on_retry_hooks() == ()
