"""Billed seconds and cost reports from HF's state history."""

from __future__ import annotations

import pytest

from crazy_gary.core.costs import billed_seconds, cost_report


def test_only_initializing_and_running_are_billed() -> None:
    """Initializing and running count; scaled to zero and paused do not; the last state runs to the end."""
    history = [
        (0.0, "scaledToZero"),
        (100.0, "initializing"),
        (160.0, "running"),
        (460.0, "scaledToZero"),
        (1000.0, "running"),
    ]
    assert billed_seconds(history, 0, 1100) == pytest.approx(60 + 300 + 100)
    assert billed_seconds(history, 150, 200) == pytest.approx(50)


def test_h200_costs_five_dollars_an_hour_and_sleeping_saves() -> None:
    """An H200 x1 running one hour of two costs $5 and saved $5; the month projects the last day."""
    history = [(0.0, "running"), (3600.0, "scaledToZero")]
    report = cost_report(history, first_seen=0.0, now=7200.0, price=5.0)
    assert report.billed_seconds == pytest.approx(3600)
    assert report.cost == pytest.approx(5.0)
    assert report.saved == pytest.approx(5.0)
    assert report.projected_month == pytest.approx(150.0)
