"""The alert rules, the Prometheus config and the dashboard, checked with Prometheus' own
``promtool`` (Debian's ``prometheus`` package, installed by ``make setup``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from flashrec.settings import Settings
from orchestration import monitoring

pytestmark = pytest.mark.integration


def _promtool(*args: str) -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: make setup installs Debian's prometheus package"
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_rules_are_valid() -> None:
    out = _promtool("check", "rules", str(monitoring.RULES))
    assert "SUCCESS" in out


def test_alerts_fire_on_synthetic_series() -> None:
    """``promtool test rules``: each alert fires where it should and not on healthy series."""
    _promtool("test", "rules", str(monitoring.RULE_TESTS))


def test_every_alert_has_a_firing_case() -> None:
    rules = yaml.safe_load(monitoring.RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(monitoring.RULE_TESTS.read_text())
    fired = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == fired, f"alerts without a firing test: {sorted(alerts - fired)}"


def test_generated_config_is_valid(tmp_path) -> None:
    settings = Settings.from_env({"FLASHREC_VAR_DIR": str(tmp_path), "FLASHREC_ADMIN_TOKEN": "t"})
    path = monitoring.write_config(settings)
    _promtool("check", "config", str(path))
    doc = yaml.safe_load(path.read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert set(jobs) == set(monitoring.targets(settings))
    assert "authorization" in jobs["scorer"] and "authorization" not in jobs["forecast"]


def test_dashboard_panels_query_only_exported_or_recorded_series() -> None:
    """Every panel has a query, and every metric it names is one the platform exports (a
    typo would otherwise only show up as an empty panel)."""
    dashboard = json.loads(monitoring.DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    assert exprs and all(exprs)
    rules = yaml.safe_load(monitoring.RULES.read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    for expr in exprs:
        bare = re.sub(r"\{[^}]*\}|by \([^)]*\)|\[[^\]]*\]", " ", expr)
        series = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", bare))
        series -= {"by", "or", "and", "e"}  # keywords; "e" of 1e-9
        for name in series:
            assert (
                name in recorded
                or name in {"up", "ALERTS"}
                or name.startswith(("flashrec_", "flink_", "process_"))
            ), (name, expr)
