"""Reading what an answer used: whole answers, streams cut anywhere, the usage event taken out."""

from __future__ import annotations

import json

import pytest

from crazy_gary.usage.tokens import MAX_EVENT, StreamMeter, TokenCount, tokens_of_answer, tokens_of_usage

CHUNK = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 11}}\n\n'
DONE = b"data: [DONE]\n\n"


def test_usage_of_each_api() -> None:
    assert tokens_of_usage({"prompt_tokens": 3, "completion_tokens": 4}) == TokenCount(3, 4)
    assert tokens_of_usage({"input_tokens": 5, "output_tokens": 6}) == TokenCount(5, 6)
    assert tokens_of_usage({"prompt_tokens": 9, "total_tokens": 9}) == TokenCount(9, 0)  # embeddings
    assert tokens_of_usage({"prompt_tokens": -1, "completion_tokens": True}) == TokenCount(0, 0)
    assert tokens_of_usage(None) is None and tokens_of_usage({"x": 1}) is None
    assert tokens_of_answer(
        json.dumps({"usage": {"input_tokens": 2, "output_tokens": 3}}).encode()
    ) == TokenCount(2, 3)
    assert tokens_of_answer(b'{"choices": []}') is None
    assert tokens_of_answer(b'not json but "usage"') is None


@pytest.mark.parametrize("size", [1, 3, 7, 64, 4096])
def test_a_stream_cut_anywhere_loses_nothing_and_its_usage_event_goes(size: int) -> None:
    """Whatever the chunks, what passes is the stream without the usage event, and the usage is read."""
    stream = CHUNK * 3 + USAGE + DONE
    meter = StreamMeter(strip_usage=True)
    passed = b"".join(meter.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + meter.rest()
    assert passed == CHUNK * 3 + DONE
    assert meter.tokens == TokenCount(7, 11)


def test_a_usage_event_the_caller_asked_for_stays() -> None:
    meter = StreamMeter(strip_usage=False)
    assert meter.feed(CHUNK + USAGE + DONE) == CHUNK + USAGE + DONE
    assert meter.tokens == TokenCount(7, 11)


def test_usage_in_a_chunk_with_choices_is_read_and_kept() -> None:
    """vLLM's continuous usage: a content chunk that carries usage is never taken out."""
    chunk = b'data: {"choices": [{"delta": {"content": "x"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\n\n'
    meter = StreamMeter(strip_usage=True)
    assert meter.feed(chunk) == chunk and meter.tokens == TokenCount(1, 1)


def test_a_responses_stream_is_read_from_response_completed_and_passed_on_at_once() -> None:
    """Not stripping, every chunk goes on as it came (half an event too), and the usage is read."""
    completed = {"type": "response.completed", "response": {"usage": {"input_tokens": 4, "output_tokens": 9}}}
    event = b"event: response.completed\r\ndata: " + json.dumps(completed).encode() + b"\r\n\r\n"
    meter = StreamMeter()
    assert meter.feed(event[:20]) == event[:20]
    assert meter.feed(event[20:]) == event[20:]
    assert meter.tokens == TokenCount(4, 9)
    assert meter.rest() == b""


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\n\r\n\r\n", b"\r\n\n\n", b"\n\n\n"])
def test_odd_blank_lines_lose_no_byte_when_stripping(end: bytes) -> None:
    content = b'data: {"choices": [{"delta": {"content": "a"}}]}' + end
    meter = StreamMeter(strip_usage=True)
    stream = content + USAGE + content + DONE
    passed = b"".join(meter.feed(stream[i : i + 5]) for i in range(0, len(stream), 5)) + meter.rest()
    assert passed == content + content + DONE
    assert meter.tokens == TokenCount(7, 11)


def test_a_stream_without_event_ends_is_not_held() -> None:
    """Not stripping, nothing waits; stripping, at most MAX_EVENT bytes wait, then all goes on."""
    assert StreamMeter().feed(b"x" * 10) == b"x" * 10
    meter = StreamMeter(strip_usage=True)
    assert meter.feed(b"x" * 10) == b""
    big = b"y" * (MAX_EVENT + 1)
    assert meter.feed(big) == b"x" * 10 + big
    assert meter.rest() == b""


def test_only_the_usage_of_a_big_answer_is_parsed() -> None:
    big = {
        "data": [{"embedding": [0.5] * 1000, "note": '"usage": 3'}] * 50,
        "usage": {"prompt_tokens": 12, "total_tokens": 12},
    }
    assert tokens_of_answer(json.dumps(big).encode()) == TokenCount(12, 0)
