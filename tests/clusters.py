"""Real clusters for tests, started from the installed wheels (nothing is downloaded).

- A Flink session cluster: one JobManager and one TaskManager, each its own JVM process
  (``bin/jobmanager.sh start-foreground`` / ``bin/taskmanager.sh start-foreground`` of the
  distribution inside the apache-flink package), reached through its REST endpoint. Its
  ``conf`` is a copy of the package's with free ports and fast failure detection, beside
  symlinks to the package's ``bin``, ``lib``, ``opt`` and ``plugins``.
- A Spark standalone cluster: a master and one worker, each its own JVM process, started
  with pyspark's ``bin/spark-class`` (pyspark ships no ``sbin/start-*.sh``), reached by a
  ``spark://`` URL.

Every process runs in a session of its own, so stopping a cluster ends all of it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kafka_broker import free_port

HOST = "127.0.0.1"


def _get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )  # fmt: skip


def _stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """End the process's whole session, also when its leader is gone already: a killed
    TaskManager leaves Python workers behind in its group otherwise (~380 MB each)."""
    if proc is None:
        return
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        os.killpg(proc.pid, signal.SIGKILL)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _wait(predicate, timeout: float, what: str, procs: list[subprocess.Popen], logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{what}: a process exited ({proc.returncode}):\n{tail}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what}: not ready within {timeout}s")


# -- Flink ------------------------------------------------------------------------------------


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# Log lines that tell a stuck recovery apart: task state changes, restarts, checkpoints.
_LIFECYCLE_WORDS = ("switched from", "Restart", "checkpoint", "Checkpoint", "Declin")


@dataclass
class FlinkCluster:
    """A running session cluster: its REST endpoint and its two kinds of process."""

    home: Path
    rest_port: int
    env: dict[str, str]
    jobmanager: subprocess.Popen | None = None
    taskmanagers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def rest(self) -> str:
        """``host:port``: what ``FLASHREC_FLINK_JOBMANAGER`` is set to."""
        return f"{HOST}:{self.rest_port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    def overview(self) -> dict[str, Any]:
        return _get_json(f"http://{self.rest}/overview")

    def start_jobmanager(self) -> None:
        log = self.log_dir / "jobmanager.out"
        self.jobmanager = _spawn([str(self.home / "bin" / "jobmanager.sh"), "start-foreground"],
                                 log, self.env)  # fmt: skip

    def start_taskmanager(self, timeout: float = 90.0) -> subprocess.Popen:
        """One more TaskManager; returns once the JobManager counts it."""
        before = len([p for p in self.taskmanagers if p.poll() is None])
        log = self.log_dir / f"taskmanager-{len(self.taskmanagers)}.out"
        proc = _spawn([str(self.home / "bin" / "taskmanager.sh"), "start-foreground"], log,
                      self.env)  # fmt: skip
        self.taskmanagers.append(proc)
        _wait(lambda: self.overview()["taskmanagers"] >= before + 1, timeout,
              "flink taskmanager", [proc], [log])  # fmt: skip
        return proc

    def kill_taskmanager(self) -> int:
        """``kill -9`` of the live TaskManager as its host or pod dies: the JVM and the Python
        workers it started (its process group), no shutdown hook running; the JVM's pid.
        Killing the JVM alone would leave its Python workers running as orphans."""
        proc = next(p for p in reversed(self.taskmanagers) if p.poll() is None)
        os.killpg(proc.pid, signal.SIGKILL)  # start-foreground execs: the pid is the JVM
        proc.wait(30)
        return proc.pid

    def jobs(self, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        listed = _get_json(f"http://{self.rest}/jobs/overview")["jobs"]
        return [j for j in listed if states is None or j["state"] in states]

    def restored_checkpoint(self, job_id: str) -> int | None:
        """Id of the checkpoint the job last restored from (None: never restored)."""
        latest = _get_json(f"http://{self.rest}/jobs/{job_id}/checkpoints").get("latest") or {}
        restored = latest.get("restored")
        return int(restored["id"]) if restored else None

    def diagnose(self, lines: int = 40) -> str:
        """The JobManager's view for a failed test: each job's state and root exception,
        and the warnings and errors its log and the TaskManagers' logs hold."""
        parts = []
        try:
            for job in self.jobs():
                parts.append(f"job {job['jid']} {job['name']}: {job['state']}")
                failure = _get_json(f"http://{self.rest}/jobs/{job['jid']}/exceptions")
                for entry in (failure.get("exceptionHistory") or {}).get("entries", [])[:3]:
                    parts.append(str(entry.get("stacktrace", ""))[:1500])
                if job["state"] in ("CANCELED", "FINISHED"):
                    continue
                detail = _get_json(f"http://{self.rest}/jobs/{job['jid']}")
                for vertex in detail.get("vertices", []):
                    parts.append(f"  vertex {vertex['name'][:60]}: {vertex['status']}")
                checkpoints = _get_json(f"http://{self.rest}/jobs/{job['jid']}/checkpoints")
                parts.append(f"  checkpoints: {checkpoints.get('counts')}")
                failed = (checkpoints.get("latest") or {}).get("failed") or {}
                if failed:
                    parts.append(f"  latest failed checkpoint: {failed.get('failure_message')}")
                names = {v["id"]: v["name"][:60] for v in detail.get("vertices", [])}
                for entry in checkpoints.get("history", []):
                    if entry.get("status") == "IN_PROGRESS":
                        parts.extend(self._checkpoint_acks(job["jid"], entry["id"], names))
        except OSError as exc:
            parts.append(f"REST: {exc!r}")
        for log in sorted(self.log_dir.glob("*.log")):
            noted = [
                line for line in log.read_text(errors="replace").splitlines()
                if " WARN " in line or " ERROR " in line
            ]  # fmt: skip
            parts.append(f"-- {log.name}: last {lines} warnings/errors")
            parts.extend(noted[-lines:])
            lifecycle = [
                line for line in log.read_text(errors="replace").splitlines()
                if any(word in line for word in _LIFECYCLE_WORDS)
            ]  # fmt: skip
            parts.append(f"-- {log.name}: last {lines} task and checkpoint transitions")
            parts.extend(lifecycle[-lines:])
        return "\n".join(parts)

    def _checkpoint_acks(self, jid: str, checkpoint: int, names: dict[str, str]) -> list[str]:
        """Which tasks have not acknowledged an in-progress checkpoint (a stuck one)."""
        details = _get_json(f"http://{self.rest}/jobs/{jid}/checkpoints/details/{checkpoint}")
        return [
            f"  checkpoint {checkpoint} in progress, {names.get(vid, vid)}: "
            f"{task.get('num_acknowledged_subtasks')}/{task.get('num_subtasks')} acknowledged"
            for vid, task in (details.get("tasks") or {}).items()
        ]

    def cancel_all(self, timeout: float = 60.0) -> None:
        """Cancel every job still active (a failed test must not hold the slots)."""
        active = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING", "FAILING")
        for job in self.jobs(active):
            request = urllib.request.Request(
                f"http://{self.rest}/jobs/{job['jid']}?mode=cancel", method="PATCH"
            )
            urllib.request.urlopen(request, timeout=10).close()
        deadline = time.monotonic() + timeout
        while self.jobs(active) and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in self.taskmanagers:
            _stop(proc)
        _stop(self.jobmanager)


def flink_home_of_package() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


@contextmanager
def flink_session_cluster(
    work: Path, *, slots: int = 2, timeout: float = 120.0, extra: dict[str, Any] | None = None
) -> Iterator[FlinkCluster]:
    """A session cluster under ``work`` (conf, logs); yields it once a TaskManager joined."""
    import yaml

    package = flink_home_of_package()
    home = Path(work) / "flink-home"
    (home / "conf").mkdir(parents=True, exist_ok=True)
    for name in ("bin", "lib", "opt", "plugins"):
        link = home / name
        if not link.exists():
            link.symlink_to(package / name, target_is_directory=True)
    for conf_file in (package / "conf").iterdir():
        if conf_file.name != "config.yaml":
            shutil.copy(conf_file, home / "conf" / conf_file.name)
    conf = _flatten(yaml.safe_load((package / "conf" / "config.yaml").read_text()) or {})
    rest_port = free_port()
    conf.update(
        {
            "jobmanager.rpc.address": HOST, "jobmanager.bind-host": HOST,
            "jobmanager.rpc.port": free_port(), "jobmanager.memory.process.size": "1024m",
            "taskmanager.host": HOST, "taskmanager.bind-host": HOST,
            "taskmanager.numberOfTaskSlots": slots,
            "rest.address": HOST, "rest.bind-address": HOST, "rest.port": rest_port,
            # A killed TaskManager is noticed within seconds, not the default 50 s.
            "heartbeat.interval": 1000, "heartbeat.timeout": 5000,
            **(extra or {}),
        }
    )  # fmt: skip
    (home / "conf" / "config.yaml").write_text(yaml.safe_dump(conf, default_flow_style=False))
    env = {
        **os.environ,
        "FLINK_CONF_DIR": str(home / "conf"),
        "FLINK_LOG_DIR": str(home / "log"),
        "FLINK_PID_DIR": str(home),
    }
    cluster = FlinkCluster(home=home, rest_port=rest_port, env=env)
    try:
        cluster.start_jobmanager()
        _wait(lambda: cluster.overview() is not None, timeout, "flink jobmanager",
              [cluster.jobmanager], [cluster.log_dir / "jobmanager.out"])  # fmt: skip
        cluster.start_taskmanager(timeout)
        yield cluster
    finally:
        cluster.stop()


# -- Spark ------------------------------------------------------------------------------------


@dataclass
class SparkCluster:
    master_url: str
    web_port: int
    master: subprocess.Popen
    worker: subprocess.Popen

    def workers_alive(self) -> int:
        state = _get_json(f"http://{HOST}:{self.web_port}/json/")
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


@contextmanager
def spark_standalone_cluster(
    work: Path,
    *,
    cores: int = 2,
    memory: str = "2g",
    timeout: float = 120.0,
    pythonpath: str | None = None,
) -> Iterator[SparkCluster]:
    """A master and one worker; yields once the worker registered. ``pythonpath``: what
    the executors' Python workers import (the project's code), as an installed package
    would be on a real cluster's hosts."""
    import pyspark

    spark_home = Path(pyspark.__file__).resolve().parent
    work = Path(work)
    (work / "worker").mkdir(parents=True, exist_ok=True)
    port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": HOST,
        "PYSPARK_PYTHON": sys.executable,
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    spark_class = str(spark_home / "bin" / "spark-class")
    master_url = f"spark://{HOST}:{port}"
    logs = [work / "master.out", work / "worker.out"]
    master = _spawn([spark_class, "org.apache.spark.deploy.master.Master", "--host", HOST,
                     "--port", str(port), "--webui-port", str(web_port)], logs[0], env)  # fmt: skip
    worker = None
    try:
        _wait(lambda: _get_json(f"http://{HOST}:{web_port}/json/") is not None, timeout,
              "spark master", [master], logs[:1])  # fmt: skip
        worker = _spawn([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", HOST,
                         "--cores", str(cores), "--memory", memory, "--webui-port", "0",
                         "--work-dir", str(work / "worker"), master_url], logs[1], env)  # fmt: skip
        cluster = SparkCluster(master_url, web_port, master, worker)
        _wait(lambda: cluster.workers_alive() >= 1, timeout, "spark worker", [master, worker],
              logs)  # fmt: skip
        yield cluster
    finally:
        _stop(worker)
        _stop(master)
