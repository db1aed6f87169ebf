"""`make up` / `make down`: the whole platform as supervised local processes.

Every component is a program of this work folder's supervisord (``orchestration.supervise``,
config and socket in ``var/run/``, one log per component in ``var/logs/``, rotated): a
component that crashes or is killed is restarted by itself, with a growing wait between
quick crashes (``orchestration.launch``). Components are started in dependency order
(independent ones together, ``WAVES``) and considered up when their health URL answers.
Prometheus (Debian's ``prometheus``) starts last and scrapes every component's metrics
port, with the alert rules of ``orchestration/prometheus/rules.yml``
(``orchestration.monitoring``).

    python -m orchestration.stack up|down|status [component ...]

``down`` with no names also ends the supervisord; ``status`` shows supervisord's state of
each component (RUNNING, BACKOFF while it waits to restart one, ...) and its health.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flashrec.settings import Settings
from orchestration import supervise


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]
    health_url: str | None
    start_timeout_s: float = 90.0
    #: Own BENTOML_HOME (under var/) for services that need no model store: two
    #: `bentoml serve` sharing one home wipe each other's Prometheus multiprocess files.
    own_bentoml_home: bool = False
    #: Seconds between SIGTERM and SIGKILL when stopped.
    stop_wait_s: int = 20


def components(settings: Settings) -> list[Component]:
    """Start order: model service before the scorer, stream job before the gateway;
    attribution before the gateway too (it follows the log from its newest entry);
    Prometheus once there is something to scrape."""
    py = sys.executable
    bin_dir = Path(py).parent
    serve = (str(bin_dir / "bentoml"), "serve")
    local = "127.0.0.1"
    admin = settings.admin_host if settings.admin_host not in ("0.0.0.0", "::") else local

    def livez(port: int) -> str:
        return f"http://{admin}:{port}/livez"

    return [
        Component(
            "model_service",
            (
                *serve,
                "bentos.model_service:ModelService",
                "--host",
                local,
                "--port",
                str(settings.model_service_port),
            ),
            f"http://{local}:{settings.model_service_port}/readyz",
        ),
        Component(
            "read_api",
            (
                *serve,
                "bentos.read_api:ReadAPI",
                "--host",
                local,
                "--port",
                str(settings.read_api_port),
            ),
            f"http://{local}:{settings.read_api_port}/readyz",
            own_bentoml_home=True,
        ),
        # --restore auto: a restart after a crash resumes from the newest checkpoint; the
        # start itself is fresh (``start`` leaves a marker, see job_process.auto_restore).
        Component(
            "flink_features",
            (py, "-m", "flink_jobs.features_job", "run", "--restore", "auto"),
            livez(settings.flink_metrics_port),
            240.0,
        ),
        Component(
            "scorer",
            (py, "-m", "bentos.scorer_process", "run"),
            livez(settings.scorer_metrics_port),
            120.0,
        ),
        Component(
            "attribution",
            (py, "-m", "flashrec.attribution", "run"),
            livez(settings.attribution_metrics_port),
            60.0,
        ),
        Component(
            "forecast",
            (py, "-m", "flashrec.forecast", "run"),
            f"http://{local}:{settings.forecast_port}/livez",
            30.0,
        ),
        Component(
            "gateway",
            (
                *serve,
                "bentos.gateway:Gateway",
                "--host",
                local,
                "--port",
                str(settings.gateway_port),
            ),
            f"http://{local}:{settings.gateway_port}/readyz",
            own_bentoml_home=True,
        ),
        Component(
            "prometheus",
            (py, "-m", "orchestration.monitoring", "run"),
            f"http://{local}:{settings.prometheus_port}/-/ready",
            60.0,
        ),
        Component(
            "dagster",
            (
                str(bin_dir / "dagster"),
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                local,
                "-p",
                str(settings.dagster_port),
            ),
            f"http://{local}:{settings.dagster_port}/server_info",
            120.0,
        ),
    ]


#: Components that may start together, wave after wave (the dependencies above); within a
#: wave they start in parallel, which on two cores roughly halves the start-up.
WAVES = (
    ("model_service", "read_api", "flink_features", "attribution", "forecast", "dagster"),
    ("scorer", "gateway"),
    ("prometheus",),
)


def up(settings: Settings, chosen: list[Component]) -> list[str]:
    """Start ``chosen`` wave by wave (see ``WAVES``); one message per component."""
    waves = [[c for c in chosen if c.name in wave] for wave in WAVES]
    placed = {c.name for wave in waves for c in wave}
    waves.append([c for c in chosen if c.name not in placed])
    messages = []
    for wave in (w for w in waves if w):
        with ThreadPoolExecutor(len(wave)) as pool:
            for message in pool.map(lambda c: start(settings, c), wave):
                print(message, flush=True)
                messages.append(message)
    return messages


def _paths(settings: Settings) -> supervise.Paths:
    return supervise.paths(settings)


def _pid(settings: Settings, name: str) -> int | None:
    """The component's live pid (supervisord's view), or None."""
    return supervise.pid(_paths(settings), name)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _environment(settings: Settings, component: Component) -> dict[str, str]:
    """What the program runs with: this process's environment (the caller's settings),
    plus a BentoML home of its own where asked."""
    env = dict(os.environ)
    if component.own_bentoml_home:
        env["BENTOML_HOME"] = str(settings.var_dir / f"bentoml-{component.name}")
    return env


def _prepare(settings: Settings, component: Component) -> str | None:
    """Per-component preparation before a start; a message when it cannot start."""
    if component.name == "dagster":
        from orchestration.instance import write_instance_yaml

        write_instance_yaml(Path(os.environ.get("DAGSTER_HOME", settings.dagster_home)))
    elif component.name == "flink_features":
        from flink_jobs import job_process

        job_process.mark_fresh_start(settings.var_dir / "flink")
    elif component.name == "prometheus" and shutil.which("prometheus") is None:
        return "prometheus: not installed (Debian: apt-get install prometheus; make setup does)"
    return None


def start(settings: Settings, component: Component) -> str:
    """Define the component in supervisord, start it, wait for its health URL."""
    p = _paths(settings)
    if _pid(settings, component.name):
        return f"{component.name}: already running"
    problem = _prepare(settings, component)
    if problem:
        return problem
    supervise.install(
        p,
        component.name,
        component.argv,
        _environment(settings, component),
        backoff_max_s=settings.supervisor_backoff_max_s,
        stop_wait_s=component.stop_wait_s,
    )
    supervise.start(p, component.name)
    log = p.log(component.name)
    deadline = time.monotonic() + component.start_timeout_s
    while time.monotonic() < deadline:
        got = supervise.info(p, component.name) or {}
        state = got.get("statename")
        if state in ("BACKOFF", "EXITED", "FATAL"):
            return f"{component.name}: exited ({state}), see {log}"
        if state == "RUNNING" and (component.health_url is None or _healthy(component.health_url)):
            return f"{component.name}: up (pid {got['pid']})"
        time.sleep(0.5)
    return (
        f"{component.name}: started (pid {_pid(settings, component.name)}) but not healthy "
        f"after {component.start_timeout_s:.0f}s, see {log}"
    )


def stop(settings: Settings, name: str, timeout_s: float = 8.0) -> str:
    """Stop one component (its whole process group); it stays stopped."""
    del timeout_s  # the wait is the component's stop_wait_s, applied by supervisord
    stopped = supervise.stop(_paths(settings), name)
    return f"{name}: {'stopped' if stopped else 'not running'}"


def shutdown(settings: Settings) -> str:
    """Stop every component and this folder's supervisord."""
    return "supervisord: " + ("stopped" if supervise.shutdown(_paths(settings)) else "not running")


def status(settings: Settings) -> list[str]:
    p = _paths(settings)
    lines = []
    for component in components(settings):
        got = supervise.info(p, component.name)
        if got is None:
            lines.append(f"{component.name:<16} not defined")
            continue
        state = got["statename"]
        detail = f"pid {got['pid']}, up {_uptime(got)}" if got["pid"] else ""
        health = ""
        if state == "RUNNING" and component.health_url:
            health = " healthy" if _healthy(component.health_url) else " not answering"
        lines.append(
            f"{component.name:<16} {state:<9} {detail:<24}{health}  {component.health_url or ''}"
        )
    return lines


def _uptime(got: dict) -> str:
    seconds = max(0, int(got.get("now", 0)) - int(got.get("start", 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("only", nargs="*", help="component names (default: all)")
    args = parser.parse_args()
    settings = Settings.from_env()
    chosen = [c for c in components(settings) if not args.only or c.name in args.only]
    if args.action == "up":
        up(settings, chosen)
    elif args.action == "down":
        for component in reversed(chosen):
            print(stop(settings, component.name), flush=True)
        if not args.only:
            print(shutdown(settings), flush=True)
            return
    print("\n".join(status(settings)))


if __name__ == "__main__":
    main()
