"""`make up` for real: every process supervised, scraped by a real Prometheus, restarted
after ``kill -9``.

One stack for the whole module (``python -m orchestration.stack up``, as ``make up`` runs
it), on free ports, a work folder of its own and a redis-server of its own (AOF on), with
Dagster included. Then, in order: every scrape target is up; while traffic flows through
the gateway and the read API, every panel query of the Grafana dashboard returns data from
that Prometheus; each process is killed with -9 and comes back by itself (new pid,
healthy), with its scrape target up again.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.redis_server import RedisServer
from flashrec.settings import PROJECT_ROOT, Settings
from orchestration import monitoring, stack, supervise
from tests.kafka_broker import free_port

pytestmark = pytest.mark.integration

PORTS = (
    "FLASHREC_GATEWAY_PORT",
    "FLASHREC_READ_API_PORT",
    "FLASHREC_MODEL_SERVICE_PORT",
    "FLASHREC_FORECAST_PORT",
    "FLASHREC_GATEWAY_ADMIN_PORT",
    "FLASHREC_READ_API_ADMIN_PORT",
    "FLASHREC_MODEL_SERVICE_ADMIN_PORT",
    "FLASHREC_SCORER_METRICS_PORT",
    "FLASHREC_ATTRIBUTION_METRICS_PORT",
    "FLASHREC_FLINK_METRICS_PORT",
    "FLASHREC_FLINK_REPORTER_PORT",
    "FLASHREC_PROMETHEUS_PORT",
    "FLASHREC_DAGSTER_PORT",
)
PROBES = [f"stack-probe-{i}" for i in range(6)]


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    work: Path

    def prometheus(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.settings.prometheus_port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def targets(self) -> dict[str, str]:
        active = self.prometheus("/api/v1/targets")["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    def log_tail(self, name: str, n: int = 2500) -> str:
        path = self.work / "var" / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def _run(argv: list[str], env: dict[str, str], timeout_s: float, log: Path) -> str:
    with log.open("wb") as err:
        proc = subprocess.run(
            [sys.executable, *argv], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
            stderr=err, timeout=timeout_s, check=False,
        )  # fmt: skip
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{out[-2000:]}\n{log.read_text()[-2000:]}")
    return out


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    redis_server = RedisServer(work / "redis").start()
    env = {
        **os.environ,
        **{name: str(free_port()) for name in PORTS},
        "REDIS_URL": redis_server.url,
        "FLASHREC_VAR_DIR": str(work / "var"),
        "BENTOML_HOME": str(work / "var" / "bentoml"),
        "DAGSTER_HOME": str(work / "var" / "dagster"),
        "FLASHREC_PROMETHEUS_SCRAPE_INTERVAL_S": "1",
        "FLASHREC_ADMIN_TOKEN": "",
        "FLASHREC_SUPERVISOR_BACKOFF_MAX_S": "2",
        "FLASHREC_ADAPTIVE_LOOP": "off",
    }
    env["FLASHREC_MODEL_SERVICE_URL"] = f"http://127.0.0.1:{env['FLASHREC_MODEL_SERVICE_PORT']}"
    (work / "var" / "dagster").mkdir(parents=True)
    settings = Settings.from_env(env)
    logs = work / "setup"
    logs.mkdir()
    t0 = time.monotonic()
    feast = threading.Thread(
        target=_run,
        args=(["-m", "bench.slo_stack", "apply-feast"], env, 600, logs / "feast.log"),
        daemon=True,
    )
    feast.start()
    _run(["-m", "bench.slo_model", "--work", str(work / "var")], env, 600, logs / "model.log")
    feast.join()
    out = _run(["-m", "orchestration.stack", "up"], env, 1200, logs / "up.log")
    print(f"\nmake up (model, feast apply, stack): {time.monotonic() - t0:.0f}s\n{out}")
    running = Stack(settings, env, work)
    try:
        yield running
    finally:
        t1 = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "orchestration.stack", "down"], cwd=PROJECT_ROOT, env=env,
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        print(f"make down: {time.monotonic() - t1:.0f}s")
        redis_server.stop()


def _wait(predicate, timeout_s: float, what: str, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last: {got!r})")
        time.sleep(every_s)


def test_every_scrape_target_is_up(running: Stack) -> None:
    expected = set(monitoring.targets(running.settings))
    assert {"gateway", "read_api", "model_service", "scorer", "attribution"} <= expected
    assert {"flink_features", "flink_jvm", "forecast", "prometheus"} <= expected

    def all_up() -> bool | dict[str, str]:
        got = running.targets()
        return set(got) == expected and all(h == "up" for h in got.values()) or got

    got = _wait(lambda: all_up() is True, 120, "every target up")
    assert got is True
    rules = running.prometheus("/api/v1/rules")["data"]["groups"]
    assert {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"} >= {
        "TargetDown", "StreamJobLagging", "CheckpointStale", "ReadFallbackShareHigh",
        "GatewayErrorRate", "ReadLatencyHigh", "DeadLetterGrowth",
    }  # fmt: skip


class Traffic(threading.Thread):
    """Simulated events through the gateway (with its deliberate bad lines), probe
    shoppers warm enough for the model, and reads of them (impressions for attribution)."""

    def __init__(self, running: Stack) -> None:
        super().__init__(daemon=True, name="traffic")
        self.running = running
        self.stop = threading.Event()
        self.publisher: subprocess.Popen[bytes] | None = None
        self.reads = 0

    def run(self) -> None:
        from bench.slo_load import ReadClient, gateway_client
        from bench.slo_probes import warm_up_events
        from flashrec.simulator import SimulationConfig
        from flashrec.simulator.stream import LiveTraffic

        s = self.running.settings
        self.publisher = subprocess.Popen(
            [sys.executable, "-m", "flashrec.publish", "--via", "gateway", "--rate", "60",
             "--duration", "400", "--run-id", "stack-test"],
            cwd=PROJECT_ROOT, env=self.running.env, stdout=subprocess.DEVNULL,
            stderr=(self.running.work / "setup" / "publish.log").open("wb"),
        )  # fmt: skip
        items = list(
            LiveTraffic(SimulationConfig.from_settings(s), run_id="catalog").catalog.item_ids
        )
        gateway, reader = gateway_client(s.gateway_port), ReadClient(s.read_api_port)
        rng = random.Random(5)
        round_ = 0
        while not self.stop.is_set():
            if round_ % 10 == 0:  # the probes' views keep them personalized: model calls
                gateway.post(warm_up_events(PROBES, items, 12, seed=round_))
            for user in PROBES:
                got = reader.items(user)
                self.reads += got is not None
                if got and rng.random() < 0.5:  # a click on what was shown: attributed
                    from bench.slo_probes import probe_event

                    click = probe_event(f"{user}-c{round_}", "click", user, got[0])
                    gateway.post([click.to_json()])
            round_ += 1
            self.stop.wait(0.5)
        gateway.close()
        reader.close()
        if self.publisher.poll() is None:
            self.publisher.terminate()
            self.publisher.wait(10)


def _has_data(result: dict) -> bool:
    """A non-empty vector with at least one finite value (NaN: no rate in the window)."""
    for series in result["data"]["result"]:
        value = float(series["value"][1])
        if not math.isnan(value):
            return True
    return False


def test_every_dashboard_panel_returns_data(running: Stack) -> None:
    dashboard = json.loads(monitoring.DASHBOARD.read_text())
    queries = {
        t["expr"]: p["title"]
        for p in dashboard["panels"]
        if p["type"] != "row"
        for t in p.get("targets", [])
    }
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 20 and all(p.get("targets") for p in panels), "no empty panel"
    traffic = Traffic(running)
    traffic.start()
    pending = dict(queries)
    started = time.monotonic()
    deadline = started + 240
    try:
        while pending and time.monotonic() < deadline:
            for expr in list(pending):
                got = running.prometheus("/api/v1/query", query=expr)
                assert got["status"] == "success", (expr, got)
                if _has_data(got):
                    del pending[expr]
            time.sleep(2.0)
    finally:
        traffic.stop.set()
        traffic.join(30)
    assert traffic.reads > 0
    print(
        f"\n{len(queries)} panel queries answered with data after {time.monotonic() - started:.0f}s"
    )
    assert not pending, "panels without data: " + "; ".join(
        f"{title}: {expr}" for expr, title in pending.items()
    )


def test_each_process_killed_with_9_comes_back_by_itself(running: Stack) -> None:
    """All at once (the stack must also survive losing several components together)."""
    settings = running.settings
    components = {c.name: c for c in stack.components(settings)}
    paths = supervise.paths(settings)
    before = {name: stack._pid(settings, name) for name in components}  # noqa: SLF001
    assert all(before.values()), before
    t0 = time.monotonic()
    for pid in before.values():
        os.kill(pid, signal.SIGKILL)
    back: dict[str, float] = {}
    deadline = t0 + 360
    while len(back) < len(components) and time.monotonic() < deadline:
        for name, c in components.items():
            if name in back:
                continue
            # running again past the launcher's clean-up of the killed run's children
            # (which could otherwise still answer the health URL), and healthy
            if supervise.restarted(paths, name, before[name]) and (
                c.health_url is None or stack._healthy(c.health_url)  # noqa: SLF001
            ):
                back[name] = time.monotonic() - t0
        time.sleep(1.0)
    missing = sorted(set(components) - set(back))
    assert not missing, "\n".join(f"--- {n} ---\n{running.log_tail(n)}" for n in missing)
    print("\nback after kill -9: " + ", ".join(f"{n} {s:.0f}s" for n, s in sorted(back.items())))
    expected = set(monitoring.targets(settings))
    _wait(
        lambda: (got := running.targets()) and all(got.get(j) == "up" for j in expected),
        120,
        "every target up again",
        2.0,
    )
