"""The features job as a background process: pidfile, logs, stop, and its checkpoints.

``start`` launches ``python -m flink_jobs.features_job run ...`` in a session of its own
(the Python client, the JVM and any Python workers form one process group, so ``stop`` can
end all of them and none is left orphaned), logging to ``var/flink/logs/``; the pidfile
``var/flink/features.pid`` (JSON) says what runs. Checkpoints live under
``<checkpoint_dir>/<job id>/chk-N``; a new run has a new job id, so "the latest
checkpoint" is the newest ``chk-N`` holding a ``_metadata`` file (completed) across them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from flashrec.settings import PROJECT_ROOT
from flink_jobs.job_config import JobConfig

PIDFILE = "features.pid"


def pidfile(config: JobConfig) -> Path:
    return config.flink_dir / PIDFILE


def read_pidfile(config: JobConfig) -> dict[str, Any] | None:
    try:
        return json.loads(pidfile(config).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def alive(pid: int) -> bool:
    """Running: it exists and is not a zombie (exited, not yet reaped by its parent)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


# -- checkpoints ----------------------------------------------------------------------------


def completed_checkpoints(root: Path) -> list[Path]:
    """Completed ``chk-N`` folders, oldest first (by their ``_metadata`` time)."""
    done = [p.parent for p in Path(root).glob("*/chk-*/_metadata")]
    return sorted(done, key=lambda p: (p.joinpath("_metadata").stat().st_mtime, p.name))


def latest_checkpoint(root: Path) -> Path | None:
    done = completed_checkpoints(root)
    return done[-1] if done else None


def resolve_restore(config: JobConfig, restore: str) -> str:
    """``latest`` -> the newest completed checkpoint (URI); a path -> its URI."""
    if restore != "latest":
        path = Path(restore.removeprefix("file://"))
        if not (path / "_metadata").exists():
            raise SystemExit(f"{restore} is not a completed checkpoint (no _metadata)")
        return path.resolve().as_uri()
    latest = latest_checkpoint(config.checkpoint_dir)
    if latest is None:
        raise SystemExit(f"--restore: no completed checkpoint under {config.checkpoint_dir}")
    return latest.resolve().as_uri()


FRESH_MARKER = "fresh-start"


def mark_fresh_start(flink_dir: Path) -> None:
    """Record that the job is being started fresh now (``make up``): ``--restore auto``
    restores only checkpoints taken after this moment (see ``auto_restore``)."""
    flink_dir.mkdir(parents=True, exist_ok=True)
    (flink_dir / FRESH_MARKER).write_text(repr(time.time()))


def auto_restore(config: JobConfig) -> str | None:
    """``--restore auto``: the newest checkpoint taken since the last fresh start, else
    None (start fresh).

    WHY: a supervised job is restarted with the same command line after a crash, and must
    then resume from its checkpoint; the start that ``make up`` asked for must not pick up
    a checkpoint of an earlier session (its state belongs to an older log position).
    """
    try:
        since = float((config.flink_dir / FRESH_MARKER).read_text())
    except (OSError, ValueError):
        since = 0.0
    latest = latest_checkpoint(config.checkpoint_dir)
    if latest is None or (latest / "_metadata").stat().st_mtime < since:
        return None
    return latest.resolve().as_uri()


def prune_checkpoints(config: JobConfig, keep: str | None) -> list[Path]:
    """Remove older jobs' checkpoint folders, keeping the one holding the latest checkpoint.

    Why: every run leaves its job folder behind (retained on purpose, for ``--restore``);
    only the newest one can be restored from correctly (the source acknowledged entries up
    to it), so older ones are dead weight.
    """
    root = config.checkpoint_dir
    if not root.exists():
        return []
    latest = latest_checkpoint(root)
    keep_dirs = {p.parent.resolve() for p in [latest] if p is not None}
    if keep:
        keep_dirs.add(Path(keep.removeprefix("file://")).resolve().parent)
    removed = []
    for job_dir in root.iterdir():
        if job_dir.is_dir() and job_dir.resolve() not in keep_dirs:
            shutil.rmtree(job_dir, ignore_errors=True)
            removed.append(job_dir)
    return removed


# -- start / stop ---------------------------------------------------------------------------


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, default=str))
    else:
        print(" ".join(f"{k}={v}" for k, v in data.items()))


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m flink_jobs.features_job <argv>`` in its own session (process group)."""
    from flink_jobs.job_config import thread_mode_pythonpath

    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = thread_mode_pythonpath(env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flink_jobs.features_job", *argv],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start(config: JobConfig, run_args: list[str], *, as_json: bool = False) -> int:
    """Start ``run`` in the background unless one already runs; returns an exit code."""
    current = read_pidfile(config)
    if current and alive(current["pid"]):
        _print({"status": "already-running", **current}, as_json)
        return 1
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log_path = config.flink_dir / "logs" / f"features-{stamp}.log"
    run_args = [a for a in run_args if a != "--json"]
    proc = spawn(["run", *run_args], log_path)
    info = {
        "pid": proc.pid,
        "started_at": datetime.now(UTC).isoformat(),
        "log": str(log_path),
        "args": run_args,
    }
    pidfile(config).parent.mkdir(parents=True, exist_ok=True)
    pidfile(config).write_text(json.dumps(info))
    time.sleep(2.0)  # an immediate failure (bad flag, no Redis) shows up here
    if proc.poll() is not None:
        _print({"status": "failed", "exit_code": proc.returncode, "log": str(log_path)}, as_json)
        return 1
    _print({"status": "started", **info}, as_json)
    return 0


def _group_alive(pgid: int) -> bool:
    # Reap the leader if it is our child: a zombie still counts as a group member.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(pid: int, timeout_s: float = 20.0) -> str:
    """SIGTERM the process group, SIGKILL after ``timeout_s``; returns how it ended.

    Waits for the whole group, not just its leader: the JVM may outlive the Python client
    that started it (its shutdown hooks can hang), and must not be left orphaned.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not-running"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return "stopped"
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed"


def stop_on_cluster(config: JobConfig) -> list[str]:
    """A job on a session cluster outlives its client: stop it there with a savepoint
    (``--restore`` can start from it or from the latest checkpoint). The savepoints."""
    from flink_jobs import session_cluster
    from flink_jobs.job_config import JOB_NAME

    return [
        session_cluster.stop(config, job["jid"])
        for job in session_cluster.jobs(config, JOB_NAME, states=("RUNNING",))
    ]


def stop(config: JobConfig, *, timeout_s: float = 20.0, as_json: bool = False) -> int:
    savepoints = stop_on_cluster(config) if config.on_cluster else []
    current = read_pidfile(config)
    if not current:
        _print({"status": "stopped" if savepoints else "not-running"}, as_json)
        return 0
    outcome = stop_group(int(current["pid"]), timeout_s)
    pidfile(config).unlink(missing_ok=True)
    latest = latest_checkpoint(config.checkpoint_dir)
    _print({"status": outcome, "pid": current["pid"], "latest_checkpoint": latest}, as_json)
    return 0
