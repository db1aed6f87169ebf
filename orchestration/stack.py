"""`make up` / `make down`: the whole platform as local background processes.

Each component is one process group with a pidfile in var/run/ and a log in var/logs/,
started in dependency order and considered up when its health URL answers (or, for
workers without HTTP, when the process is still alive after a short grace period).
Stopping sends SIGTERM to the group, then SIGKILL after a timeout.

    python -m orchestration.stack up|down|status [component ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flashrec.settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]
    health_url: str | None
    start_timeout_s: float = 90.0
    #: Own BENTOML_HOME (under var/) for services that need no model store: two
    #: `bentoml serve` sharing one home wipe each other's Prometheus multiprocess files.
    own_bentoml_home: bool = False


def components(settings: Settings) -> list[Component]:
    """Start order: model service before the scorer, stream job before the gateway."""
    py = sys.executable
    bin_dir = Path(py).parent
    serve = (str(bin_dir / "bentoml"), "serve")
    local = "127.0.0.1"
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
        Component("flink_features", (py, "-m", "flink_jobs.features_job", "run"), None, 20.0),
        Component("scorer", (py, "-m", "flashrec.scoring", "run"), None, 10.0),
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


def _pidfile(settings: Settings, name: str) -> Path:
    return settings.var_dir / "run" / f"{name}.pid"


def _pid(settings: Settings, name: str) -> int | None:
    path = _pidfile(settings, name)
    if not path.exists():
        return None
    pid = int(path.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    return pid


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(settings: Settings, component: Component) -> str:
    if _pid(settings, component.name):
        return f"{component.name}: already running"
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _pidfile(settings, component.name).parent.mkdir(parents=True, exist_ok=True)
    with (logs / f"{component.name}.log").open("ab") as log:
        # Its own session: a signal to the group reaches every child (dagster dev ignores
        # signals inherited from a non-interactive shell otherwise).
        env = dict(os.environ)
        if component.own_bentoml_home:
            env["BENTOML_HOME"] = str(settings.var_dir / f"bentoml-{component.name}")
        proc = subprocess.Popen(
            component.argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _pidfile(settings, component.name).write_text(str(proc.pid))
    deadline = time.monotonic() + component.start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return (
                f"{component.name}: exited with {proc.returncode}, see {logs}/{component.name}.log"
            )
        if component.health_url is None or _healthy(component.health_url):
            if component.health_url is None:
                time.sleep(min(5.0, component.start_timeout_s))
                if proc.poll() is not None:
                    return f"{component.name}: exited with {proc.returncode}"
            return f"{component.name}: up (pid {proc.pid})"
        time.sleep(0.5)
    return (
        f"{component.name}: started (pid {proc.pid}) but not healthy after "
        f"{component.start_timeout_s:.0f}s"
    )


def stop(settings: Settings, name: str, timeout_s: float = 8.0) -> str:
    pid = _pid(settings, name)
    if pid is None:
        return f"{name}: not running"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid(settings, name):
        time.sleep(0.2)
    if _pid(settings, name):
        os.killpg(pid, signal.SIGKILL)
    _pidfile(settings, name).unlink(missing_ok=True)
    return f"{name}: stopped"


def status(settings: Settings) -> list[str]:
    lines = []
    for component in components(settings):
        pid = _pid(settings, component.name)
        health = ""
        if pid and component.health_url:
            health = " healthy" if _healthy(component.health_url) else " not answering"
        lines.append(
            f"{component.name:<16} {'running pid ' + str(pid) if pid else 'stopped'}"
            f"{health}  {component.health_url or ''}"
        )
    return lines


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
        for component in chosen:
            print(start(settings, component), flush=True)
    elif args.action == "down":
        for component in reversed(chosen):
            print(stop(settings, component.name), flush=True)
    print("\n".join(status(settings)))


if __name__ == "__main__":
    main()
