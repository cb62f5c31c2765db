"""The alert rules and the Grafana dashboard of deploy/ ask for metrics /metrics really serves, and
are well formed (promtool's own check runs where it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import Api

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yaml"
DASHBOARD = DEPLOY / "grafana" / "crazy-gary.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


async def served_names(api: Api) -> set[str]:
    """Every series name /metrics can serve, from its `# TYPE` lines (a labelled metric has one
    before any series of it exists)."""
    text = (await api.get("/metrics")).text
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= {name, *(name + suffix for suffix in SUFFIXES.get(kind, ()))}
    return names


def asked(expression: str) -> set[str]:
    return set(re.findall(r"\bcrazy_gary_[a-z_]+", expression))


async def test_every_alert_asks_for_served_metrics_and_says_what_to_do(api: Api) -> None:
    names = await served_names(api)
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {"CrazyGaryEndpointStuckStarting", "CrazyGaryCircuitOpen", "CrazyGaryMonthOverBudget"} <= set(
        alerts
    )
    assert {"CrazyGaryHeldRequestsPilingUp", "CrazyGaryReplicaDegraded"} <= set(alerts)
    for name, rule in alerts.items():
        assert asked(rule["expr"]) and asked(rule["expr"]) <= names, name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


async def test_every_dashboard_panel_asks_for_served_metrics(api: Api) -> None:
    names = await served_names(api)
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "crazy-gary" and len(dashboard["panels"]) >= 8
    for panel in dashboard["panels"]:
        (target,) = panel["targets"]
        assert asked(target["expr"]) and asked(target["expr"]) <= names, panel["title"]


def test_promtool_accepts_the_rules() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed here (Debian's `prometheus` package has it)")
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
