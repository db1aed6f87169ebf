"""The supervised programs' launcher: backoff between quick crashes, leftovers killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from orchestration import launch


def test_backoff_doubles_after_short_runs_and_resets_after_a_long_one() -> None:
    now = 1000.0
    assert launch.backoff_s({}, now, 30) == (0.0, 0)  # first start
    assert launch.backoff_s({"started": 0.0}, now, 30) == (0.0, 0)  # explicit start
    assert launch.backoff_s({"started": now - 5, "failures": 0}, now, 30) == (1.0, 1)
    assert launch.backoff_s({"started": now - 5, "failures": 3}, now, 30) == (8.0, 4)
    assert launch.backoff_s({"started": now - 5, "failures": 9}, now, 30) == (30.0, 10)
    assert launch.backoff_s({"started": now - 61, "failures": 9}, now, 30) == (0.0, 0)


def test_the_next_run_kills_what_the_killed_one_left_behind(tmp_path) -> None:
    """A program started through the launcher leaves a child behind (as a killed BentoML
    arbiter leaves its workers); the next launch kills it before it execs."""
    state, env_file = tmp_path / "p.launch", tmp_path / "p.env.json"
    env_file.write_text(json.dumps(dict(os.environ)))
    orphan_pid = tmp_path / "orphan.pid"
    script = (
        "import subprocess, sys, pathlib; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "start_new_session=True); "
        f"pathlib.Path({str(orphan_pid)!r}).write_text(str(p.pid))"
    )
    first = subprocess.run(
        [sys.executable, "-m", "orchestration.launch", "--state", str(state), "--env",
         str(env_file), "--", sys.executable, "-c", script],
        check=True, timeout=60,
    )  # fmt: skip
    assert first.returncode == 0
    orphan = int(orphan_pid.read_text())
    os.kill(orphan, 0)  # still alive: its parent exited without it
    token = json.loads(state.read_text())["token"]
    assert launch.processes_with_token(token) == [orphan]
    subprocess.run(
        [sys.executable, "-m", "orchestration.launch", "--state", str(state), "--env",
         str(env_file), "--backoff-max", "0", "--", sys.executable, "-c", "pass"],
        check=True, timeout=60,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while launch.processes_with_token(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert launch.processes_with_token(token) == []
