"""Prometheus for ``make up``: one scrape job per process, the alert rules, a local TSDB.

    python -m orchestration.monitoring run      # write the config, then exec prometheus
    python -m orchestration.monitoring config   # print the config it would write

WHY generated from the settings: the stack, the tests and the benchmarks run on ports of
their own; the scrape targets must be the ones the processes actually bind. The config
goes to ``<var_dir>/prometheus/prometheus.yml`` with the TSDB beside it; the rules are the
repository's ``orchestration/prometheus/rules.yml`` (checked by ``promtool`` in the tests).
The binary is Debian's ``prometheus`` package (``make setup`` installs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from flashrec.settings import PROJECT_ROOT, Settings

RULES = PROJECT_ROOT / "orchestration" / "prometheus" / "rules.yml"
RULE_TESTS = PROJECT_ROOT / "orchestration" / "prometheus" / "rules_test.yml"
DASHBOARD = PROJECT_ROOT / "orchestration" / "grafana" / "flashrec.json"
#: Scrape jobs whose port is an admin surface (token-protected when a token is set).
ADMIN_JOBS = frozenset(
    {"gateway", "read_api", "model_service", "scorer", "attribution", "flink_features"}
)


def folder(settings: Settings) -> Path:
    return settings.var_dir / "prometheus"


def targets(settings: Settings) -> dict[str, str]:
    """Scrape job (= the process) -> host:port of its /metrics."""
    admin = settings.admin_host if settings.admin_host not in ("0.0.0.0", "::") else "127.0.0.1"
    out = {
        "gateway": f"{admin}:{settings.gateway_admin_port}",
        "read_api": f"{admin}:{settings.read_api_admin_port}",
        "model_service": f"{admin}:{settings.model_service_admin_port}",
        "scorer": f"{admin}:{settings.scorer_metrics_port}",
        "attribution": f"{admin}:{settings.attribution_metrics_port}",
        "flink_features": f"{admin}:{settings.flink_metrics_port}",
        "forecast": f"127.0.0.1:{settings.forecast_port}",
        "prometheus": f"127.0.0.1:{settings.prometheus_port}",
    }
    if settings.flink_reporter_port:
        out["flink_jvm"] = f"127.0.0.1:{settings.flink_reporter_port}"
    return out


def config(settings: Settings, token_file: Path | None = None) -> dict[str, Any]:
    interval = f"{settings.prometheus_scrape_interval_s:g}s"
    jobs = []
    for job, target in targets(settings).items():
        scrape: dict[str, Any] = {"job_name": job, "static_configs": [{"targets": [target]}]}
        if token_file is not None and job in ADMIN_JOBS:
            scrape["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
        jobs.append(scrape)
    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "scrape_timeout": f"{min(settings.prometheus_scrape_interval_s, 10.0):g}s",
        },
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
    }


def write_config(settings: Settings) -> Path:
    """``prometheus.yml`` (and the admin token, 0600, when one is set) under var/."""
    out = folder(settings)
    out.mkdir(parents=True, exist_ok=True)
    token_file = None
    if settings.admin_token:
        token_file = out / "admin-token"
        token_file.touch(mode=0o600)
        token_file.write_text(settings.admin_token)
    path = out / "prometheus.yml"
    path.write_text(
        "# written by orchestration.monitoring from the settings; do not edit\n"
        + yaml.safe_dump(config(settings, token_file), sort_keys=False)
    )
    return path


def command(settings: Settings, config_path: Path) -> list[str]:
    exe = shutil.which("prometheus")
    if exe is None:
        raise SystemExit("prometheus not found: apt-get install prometheus (make setup does)")
    return [
        exe,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={folder(settings) / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        "--log.level=warn",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.monitoring")
    parser.add_argument("command", choices=("run", "config"))
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "config":
        print(yaml.safe_dump(config(settings), sort_keys=False))
        return 0
    argv_ = command(settings, write_config(settings))
    sys.stdout.flush()
    os.execv(argv_[0], argv_)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
