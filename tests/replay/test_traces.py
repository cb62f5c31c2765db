"""Reading traces: CSV and JSON lines, Azure's own columns, and one clear line for a bad trace."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from crazy_gary.replay.traces import TraceError, TraceRequest, read_trace

AZURE = Path(__file__).resolve().parents[2] / "samples" / "traces" / "azure-llm-conv-2023-first-2000.csv"


def test_csv_with_our_columns_in_any_order_sorted_by_time(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(
        "model,timestamp,prompt_tokens,completion_tokens,stream,extra\n"
        "20b,2026-12-01T09:00:05Z,10,20,true,x\n"
        "120b,1795856400,5,,false,y\n"
        ",2026-12-01 09:00:01,,,,\n"
    )
    assert read_trace(trace) == [
        TraceRequest(1795856400.0, "120b", 5, 0, False),
        TraceRequest(dt.datetime(2026, 12, 1, 9, 0, 1, tzinfo=dt.UTC).timestamp(), None, 0, 0, False),
        TraceRequest(dt.datetime(2026, 12, 1, 9, 0, 5, tzinfo=dt.UTC).timestamp(), "20b", 10, 20, True),
    ]


def test_json_lines(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(
        '{"timestamp": 100.5, "model": "120b", "stream": true}\n\n{"timestamp": "1970-01-01T00:01:00+00:00"}\n'
    )
    assert read_trace(trace) == [TraceRequest(60.0), TraceRequest(100.5, "120b", stream=True)]


def test_azures_llm_trace_as_published(tmp_path: Path) -> None:
    """Azure's `TIMESTAMP,ContextTokens,GeneratedTokens` with seven digits of fractions."""
    trace = tmp_path / "azure.csv"
    shutil.copy(AZURE, trace)
    requests = read_trace(trace)
    assert len(requests) == 2000
    first = requests[0]
    assert first.at == pytest.approx(dt.datetime(2023, 11, 16, 18, 15, 46, 680590, tzinfo=dt.UTC).timestamp())
    assert (first.prompt_tokens, first.completion_tokens) == (374, 44)
    assert 0 < requests[-1].at - first.at < 3600


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "holds no request"),
        ("when,model\n1,120b\n", "line 1: the header needs a 'timestamp' column (it has when, model)"),
        ("timestamp\nyesterday\n", "line 2: 'yesterday' is not a time"),
        ("timestamp,prompt_tokens\n1,many\n", "line 2: prompt_tokens 'many' is not a whole number"),
        ("timestamp,completion_tokens\n1,-3\n", "line 2: completion_tokens -3 is negative"),
        ("timestamp,stream\n1,maybe\n", "line 2: stream 'maybe' is not true or false"),
        ("timestamp\n1,2\n", "line 2: more fields than the header names"),
        ('{"timestamp": 1}\n[1]\n', "line 2: not a JSON object"),
        ('{"timestamp": 1}\n{"model": "x"}\n', "line 2: no timestamp"),
        ("timestamp\nnan\n", "line 2: 'nan' is not a time"),
    ],
)
def test_a_bad_trace_is_one_clear_line(tmp_path: Path, content: str, problem: str) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text(content)
    with pytest.raises(TraceError) as raised:
        read_trace(trace)
    assert problem in raised.value.message and str(trace) in raised.value.message
    assert "\n" not in raised.value.message


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read the trace"):
        read_trace(tmp_path / "nope.csv")
