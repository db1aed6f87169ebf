"""The serving stack of the SLO benchmark: its own environment, start in parallel, stop all.

WHY its own environment: the benchmark flushes and fills a Redis database (13 by default)
and runs every component on free loopback ports with a work folder of its own
(``var/bench/slo/work``: pidfiles, logs, Feast registry, Flink checkpoints, BentoML
homes), so it never touches the database, ports or model store of a ``make up`` stack.

Components are the ones ``orchestration.stack`` defines (same commands, health URLs,
pidfiles and logs), started with its ``start``; independent ones start together, which
roughly halves the start-up on two cores. Dagster is left out unless asked for: it is the
offline orchestrator, not on the path of an event or a read. Stopping always ends the
whole process group of every component (the Flink JVM included) and is safe to call
twice, from ``finally`` after an error or Ctrl-C.

    python -m bench.slo_stack apply-feast    # (internal) register the Feast views once
"""

from __future__ import annotations

import contextlib
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
    """Variables for every component (and this process): free ports, own folders."""
    ports = {name: free_port() for name in ("gateway", "read_api", "model_service")}
    return {
        "REDIS_URL": redis_url,
        "FLASHREC_VAR_DIR": str(work),
        "FLASHREC_GATEWAY_PORT": str(ports["gateway"]),
        "FLASHREC_READ_API_PORT": str(ports["read_api"]),
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

    def __init__(self, settings: Settings, *, with_dagster: bool = False, log=print) -> None:
        self.settings = settings
        self.log = log
        names = (*SERVING, "dagster") if with_dagster else SERVING
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
        thread (e.g. wait for the model to be registered). Raises if any failed."""
        order = {
            # the scorer fetches the catalog from the model service at start
            "model_service": ["model_service", "scorer"],
            "read_api": ["read_api"],
            "flink_features": ["flink_features"],
            "gateway": ["gateway"],
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
        """Started components whose leader still runs (a zombie counts as dead)."""
        from flink_jobs.job_process import alive

        return {name: alive(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        """End every component's process group (parallel; SIGKILL after a grace period)."""
        from flink_jobs.job_process import stop_group

        self._stopping.set()
        run_dir = self.settings.var_dir / "run"
        pids = dict(self.pids)
        for pidfile in run_dir.glob("*.pid") if run_dir.exists() else []:
            with contextlib.suppress(ValueError, OSError):
                pids.setdefault(pidfile.stem, int(pidfile.read_text()))
        results: dict[str, str] = {}

        def end(name: str, pid: int) -> None:
            results[name] = stop_group(pid, timeout_s=15.0)  # the whole group, JVM included
            stack.stop(self.settings, name)  # pidfile bookkeeping

        threads = [threading.Thread(target=end, args=item, daemon=True) for item in pids.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if results:
            self.log("stopped: " + ", ".join(f"{k} {v}" for k, v in sorted(results.items())))
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
