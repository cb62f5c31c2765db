"""The soak test's accounting: which outcomes count as answered, clear errors, refused or lost."""

from __future__ import annotations

import json

import aiohttp
from bench._soak_outcomes import Outcome, Tally, classify_answer, classify_failure, percentile
from multidict import CIMultiDict

SSE = CIMultiDict({"Content-Type": "text/event-stream"})


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def test_a_plain_2xx_answer_is_answered() -> None:
    """A whole 200 is an answer, whatever its body."""
    assert classify_answer(200, CIMultiDict(), b"{}", stream=False)[0] is Outcome.ANSWERED


def test_a_stream_is_answered_only_when_it_reached_its_end() -> None:
    """A chat stream needs its `[DONE]`, a Responses stream its `response.completed`; cut, it is lost."""
    done = b'data: {"choices": []}\n\ndata: [DONE]\n\n'
    completed = b'event: response.completed\ndata: {"type": "response.completed"}\n\n'
    cut = b'data: {"choices": []}\n\n'
    assert classify_answer(200, SSE, done, stream=True)[0] is Outcome.ANSWERED
    assert classify_answer(200, SSE, completed, stream=True)[0] is Outcome.ANSWERED
    assert classify_answer(200, SSE, cut, stream=True)[0] is Outcome.LOST
    assert classify_answer(200, SSE, b": waiting for 120b\n\n", stream=True)[0] is Outcome.LOST


def test_a_stream_that_ends_with_an_error_event_is_a_clear_error() -> None:
    """The error event of a held stream that could not be served (its 200 went out already)."""
    body = b': waiting for 120b\n\ndata: {"error": {"code": "no_capacity"}}\n\ndata: [DONE]\n\n'
    assert classify_answer(200, SSE, body, stream=True)[0] is Outcome.CLEAR_ERROR
    responses = b'event: error\ndata: {"type": "error", "code": "no_capacity"}\n\n'
    assert classify_answer(200, SSE, responses, stream=True)[0] is Outcome.CLEAR_ERROR


def test_errors_are_clear_only_in_the_error_shape_and_with_retry_after_where_due() -> None:
    """A 502 in the error shape is clear; a 503 or 429 also needs Retry-After; plain text is lost."""
    shaped = _json({"success": False, "error": "x", "code": "upstream_error"})
    assert classify_answer(502, CIMultiDict(), shaped, stream=False)[0] is Outcome.CLEAR_ERROR
    vllm = _json({"error": {"message": "bad", "type": "BadRequestError", "param": None, "code": 400}})
    assert classify_answer(400, CIMultiDict(), vllm, stream=True)[0] is Outcome.CLEAR_ERROR
    with_retry = CIMultiDict({"Retry-After": "3"})
    assert classify_answer(503, with_retry, shaped, stream=False) == (
        Outcome.CLEAR_ERROR,
        "503 upstream_error",
    )
    assert classify_answer(503, CIMultiDict(), shaped, stream=False)[0] is Outcome.LOST
    assert classify_answer(429, CIMultiDict(), shaped, stream=False)[0] is Outcome.LOST
    assert classify_answer(500, CIMultiDict(), b"Internal Server Error", stream=False)[0] is Outcome.LOST


def test_a_refused_connection_is_refused_and_a_dropped_one_is_lost() -> None:
    """Refused before sending is told apart; a reset, a disconnect or a timeout after it is lost."""
    assert classify_failure(ConnectionRefusedError(111, "refused"), sent=False)[0] is Outcome.REFUSED
    assert classify_failure(ConnectionResetError(104, "reset"), sent=False)[0] is Outcome.LOST
    assert classify_failure(ConnectionRefusedError(111, "refused"), sent=True)[0] is Outcome.LOST
    outcome, reason = classify_failure(aiohttp.ServerDisconnectedError(), sent=True)
    assert outcome is Outcome.LOST and "ServerDisconnectedError" in reason
    assert classify_failure(TimeoutError(), sent=True)[0] is Outcome.LOST


def test_the_tally_counts_outcomes_and_keeps_latencies_of_answers_only() -> None:
    """Refused and lost requests have no latency; lost ones are listed with what they met."""
    tally = Tally()
    tally.record("chat", Outcome.ANSWERED, "200", 10.0)
    tally.record("chat", Outcome.CLEAR_ERROR, "503 no_capacity", 30.0)
    tally.record("chat", Outcome.REFUSED, "connection refused", 0.1)
    tally.record("stream", Outcome.LOST, "stream cut before its end", 5.0, at=12.0)
    assert tally.total == 4 and tally[Outcome.LOST] == 1
    assert tally.latencies_ms == [10.0, 30.0]
    assert tally.lost_reasons == {"stream: stream cut before its end": 1}
    assert tally.error_reasons == {"503 no_capacity": 1}
    assert percentile(tally.latencies_ms, 0.99) == 30.0
    assert percentile([], 0.99) == 0.0
