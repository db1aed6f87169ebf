"""The features job on a Flink session cluster: submitted with ``bin/flink run``, controlled
through the JobManager's REST endpoint (``FLASHREC_FLINK_JOBMANAGER=host:port``).

WHY ``bin/flink run`` and not a remote environment from this interpreter: PyFlink's
``get_execution_environment`` always builds a local mini-cluster outside a Flink client
context, and Python jobs need the client to ship ``flink-python`` with them. So ``run
--jobmanager H:P`` starts ``bin/flink run -m H:P -pym flink_jobs.features_job run ...
--submitted`` (the CLI of the installed apache-flink package), whose Python client builds
the same dataflow and submits it with its jars (Redis source or Kafka connector) through
``pipeline.jars``. The TaskManagers run the operators in this interpreter's environment
(``python.executable``; thread mode also gets ``python.pythonpath``): on Kubernetes the
``flink`` image provides it at the same path.

Recovery on a cluster is Flink's own: a failed TaskManager's tasks restart (restart
strategy) from the latest completed checkpoint, on a TaskManager that is (or comes) up.
``stop`` takes a savepoint and stops the job; ``stop(drain=True)`` also ends its input, so
the last landing files are committed and every pending feature row is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flashrec.settings import PROJECT_ROOT
from flink_jobs.job_config import JobConfig

ACTIVE = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING")


def flink_cli() -> Path:
    """``bin/flink`` of the installed apache-flink package (its own distribution)."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent / "bin" / "flink"


def submit_command(config: JobConfig, run_args: list[str]) -> list[str]:
    python = sys.executable
    return [
        str(flink_cli()), "run", "-m", config.jobmanager,
        "-pyexec", python, "-pyclientexec", python,
        "-pym", "flink_jobs.features_job", "run", *run_args, "--submitted",
    ]  # fmt: skip


def submit(config: JobConfig, run_args: list[str]) -> int:
    """Run ``bin/flink run`` in the foreground (attached: it returns when the job ends);
    its exit code. ``run_args``: this command's own ``run`` arguments, passed on."""
    from flink_jobs.job_config import thread_mode_pythonpath

    log_dir = config.flink_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": thread_mode_pythonpath(),  # the client imports this checkout's code
        "FLINK_LOG_DIR": str(log_dir),  # not inside site-packages
    }
    print(f"submitting to the session cluster at {config.jobmanager}", flush=True)
    return subprocess.run(submit_command(config, run_args), cwd=PROJECT_ROOT, env=env).returncode


# -- REST ---------------------------------------------------------------------------------------


def _call(config: JobConfig, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{config.jobmanager}{path}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def jobs(config: JobConfig, name: str, states: tuple[str, ...] = ACTIVE) -> list[dict[str, Any]]:
    """The cluster's jobs called ``name`` in one of ``states`` (newest first)."""
    listed = _call(config, "/jobs/overview")["jobs"]
    found = [j for j in listed if j["name"] == name and j["state"] in states]
    return sorted(found, key=lambda j: j["start-time"], reverse=True)


def reachable(config: JobConfig) -> bool:
    try:
        _call(config, "/overview")
        return True
    except (OSError, urllib.error.URLError):
        return False


def stop(config: JobConfig, job_id: str, *, drain: bool = False, timeout_s: float = 120.0) -> str:
    """Stop ``job_id`` with a savepoint under ``<checkpoint_dir>/savepoints``; its location.

    ``drain=True`` ends the sources' input first (MAX_WATERMARK, then ``finish``): sinks
    commit what they hold and the job ends FINISHED, as a bounded run does.
    """
    target = (config.checkpoint_dir / "savepoints").as_uri()
    trigger = _call(config, f"/jobs/{job_id}/stop", {"targetDirectory": target, "drain": drain})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = _call(config, f"/jobs/{job_id}/savepoints/{trigger['request-id']}")
        if state["status"]["id"] == "COMPLETED":
            operation = state.get("operation") or {}
            if "failure-cause" in operation:
                cause = operation["failure-cause"].get("stack-trace", "")[:2000]
                raise RuntimeError(f"stop of {job_id} failed: {cause}")
            return operation.get("location", "")
        time.sleep(0.5)
    raise TimeoutError(f"stop of {job_id} did not complete within {timeout_s}s")
