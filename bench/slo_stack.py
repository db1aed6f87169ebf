"""The serving stack of the SLO benchmark: its own environment, start in parallel, stop all.

WHY its own environment: the benchmark flushes and fills a Redis database (13 by default)
and runs every component on free loopback ports with a work folder of its own
(``var/bench/slo/work``: its own supervisord, logs, Feast registry, Flink checkpoints,
BentoML homes), so it never touches the database, ports or model store of a ``make up``
stack.

Components are the ones ``orchestration.stack`` defines (same commands, health URLs,
supervision and logs), started with its ``start``; independent ones start together, which
roughly halves the start-up on two cores. A component that crashes (or that a fault run
kills) is restarted by the work folder's supervisord, as under ``make up``. Dagster is
left out unless asked for: it is the offline orchestrator, not on the path of an event or
a read. Stopping ends every component's process group (the Flink JVM included) and the
supervisord, and is safe to call twice, from ``finally`` after an error or Ctrl-C.

    python -m bench.slo_stack apply-feast    # (internal) register the Feast views once
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.parity import bench_redis_url
from bench.slo_read import free_port
from flashrec.settings import PROJECT_ROOT, Settings
from orchestration import stack

SERVING = ("model_service", "read_api", "flink_features", "scorer", "gateway")
FORBIDDEN_DBS = {0, 9, 12, 14, 15}  # the project's and other benchmarks' databases


def redis_db_url(redis_url: str, db: int) -> str:
    if db in FORBIDDEN_DBS:
        raise SystemExit(f"Redis database {db} belongs to someone else; pick another")
    return bench_redis_url(redis_url, db)


def environment(work: Path, redis_url: str) -> dict[str, str]:
    """Variables for every component (and this process): free ports (metrics ports
    included, so a ``make up`` stack's are never taken), own folders."""
    names = ("gateway", "read_api", "model_service", "gateway_admin", "read_api_admin")
    ports = {name: free_port() for name in names}
    metrics = (
        "MODEL_SERVICE_ADMIN", "SCORER_METRICS", "ATTRIBUTION_METRICS", "FLINK_METRICS",
        "PROMETHEUS",
    )  # fmt: skip
    return {
        **{f"FLASHREC_{name}_PORT": str(free_port()) for name in metrics},
        "FLASHREC_FLINK_REPORTER_PORT": "0",  # Flink's own reporter: not read here
        "REDIS_URL": redis_url,
        "FLASHREC_VAR_DIR": str(work),
        "FLASHREC_GATEWAY_PORT": str(ports["gateway"]),
        "FLASHREC_READ_API_PORT": str(ports["read_api"]),
        "FLASHREC_GATEWAY_ADMIN_PORT": str(ports["gateway_admin"]),
        "FLASHREC_READ_API_ADMIN_PORT": str(ports["read_api_admin"]),
        "FLASHREC_MODEL_SERVICE_PORT": str(ports["model_service"]),
        "FLASHREC_MODEL_SERVICE_URL": f"http://127.0.0.1:{ports['model_service']}",
        "FLASHREC_DAGSTER_PORT": str(free_port()),
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "DAGSTER_HOME": str(work / "dagster"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "FEAST_USAGE": "False",
        "PYTHONWARNINGS": "ignore",
    }


def run_helper(argv: list[str], log: Path, timeout_s: float) -> str:
    """A one-shot helper process (model preparation, Feast apply): its stdout, or raise
    with the tail of its log."""
    with log.open("wb") as err:
        proc = subprocess.run(
            [sys.executable, *argv],
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=timeout_s,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2500:]
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{tail}")
    return proc.stdout.decode()


def apply_feast() -> None:
    """Register the feature views in this work folder's registry, under the lock the
    Flink job's sink takes (so both may try; the second is a no-op)."""
    from flink_jobs.job_sinks import apply_once, open_online_store

    settings = Settings.from_env()
    apply_once(open_online_store(settings), settings.var_dir)


class Stack:
    """Starts the serving components of ``settings`` and stops every one it started."""

    def __init__(
        self,
        settings: Settings,
        *,
        with_dagster: bool = False,
        extra: tuple[str, ...] = (),
        log=print,
    ) -> None:
        self.settings = settings
        self.log = log
        names = (*SERVING, *extra, *(("dagster",) if with_dagster else ()))
        self.components = {c.name: c for c in stack.components(settings) if c.name in names}
        self.pids: dict[str, int] = {}
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def use_jar(self, jar: Path) -> None:
        """The Flink job reads the project's compiled source jar instead of building one."""
        c = self.components["flink_features"]
        self.components[c.name] = dataclasses.replace(c, argv=(*c.argv, "--jar", str(jar)))

    @property
    def logs(self) -> Path:
        return self.settings.var_dir / "logs"

    def start_one(self, name: str) -> bool:
        if self._stopping.is_set():
            return False
        component = self.components[name]
        (self.logs / f"{name}.log").unlink(missing_ok=True)  # this run's log only
        t0 = time.monotonic()
        message = stack.start(self.settings, component)
        pid = stack._pid(self.settings, name)  # noqa: SLF001 - the pidfile stack wrote
        with self._lock:
            if pid:
                self.pids[name] = pid
            ok = ": up" in message
            if not ok:
                self.errors.append(message)
        self.log(f"  {message} in {time.monotonic() - t0:.0f}s")
        return ok

    def start(self, ready: dict[str, Callable[[], None]]) -> None:
        """Start everything; ``ready[name]`` (if given) runs first in that component's
        thread (e.g. wait for the model to be registered). Raises if any failed.

        A stack an interrupted earlier run left in this work folder is ended first.
        """
        stack.shutdown(self.settings)
        order = {
            # the scorer fetches the catalog from the model service at start
            "model_service": ["model_service", "scorer"],
            "read_api": ["read_api"],
            "flink_features": ["flink_features"],
            "gateway": ["gateway"],
            "attribution": ["attribution"],
            "dagster": ["dagster"],
        }
        threads = []
        for first, chain in order.items():
            if first not in self.components:
                continue

            def run(chain: list[str] = chain) -> None:
                for name in chain:
                    try:
                        if name in ready:
                            ready[name]()
                    except Exception as exc:  # noqa: BLE001 - reported, then raised below
                        with self._lock:
                            self.errors.append(f"{name}: {exc}")
                        return
                    if not self.start_one(name):
                        return

            threads.append(threading.Thread(target=run, name=f"start-{first}", daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short joins: Ctrl-C reaches the main thread
        if self.errors:
            raise RuntimeError("stack did not start:\n  " + "\n  ".join(self.errors))

    def alive(self) -> dict[str, bool]:
        """Started components with a live process now (supervisord's view: one that was
        killed and is being restarted counts as dead until it runs again)."""
        return {name: self.pid(name) is not None for name in self.pids}

    def pid(self, name: str) -> int | None:
        """The component's current pid (it changes when supervision restarts it)."""
        return stack._pid(self.settings, name)  # noqa: SLF001

    def stop(self) -> None:
        """Stop every component (its whole process group) and the work folder's supervisord."""
        self._stopping.set()
        t0 = time.monotonic()
        message = stack.shutdown(self.settings)
        if self.pids:
            self.log(
                f"stopped {', '.join(sorted(self.pids))} ({message}, {time.monotonic() - t0:.0f}s)"
            )
        self.pids.clear()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["apply-feast"]:
        apply_feast()
        print(json.dumps({"feast": "applied"}))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
