"""Runs one supervised program: clears what its previous run left, backs off, then execs.

    python -m orchestration.launch --state RUN/NAME.launch --env RUN/NAME.env.json \
        [--backoff-max 30] -- ARGV...

supervisord starts this; it ``exec``s the program, so the pid supervisord watches (and a
``kill -9`` hits) is the program itself. WHY a launcher in between:

- A program killed with -9 leaves its children behind: BentoML's workers still holding
  the port, dagster's webserver and daemon, a JVM. supervisord restarts only the leader
  and signals the process group only when *it* stops a program. Every process of one run
  carries that run's token in its environment (``FLASHREC_RUN_TOKEN``); the next run kills
  whatever still carries the previous token before it starts, so a restart never meets a
  taken port or a twin worker. (A token, not the process group: a group id can be reused
  by an unrelated process once the group is gone; a random token cannot.)
- supervisord backs off only between starts that fail within ``startsecs``; a program
  that crashes after it came up would be restarted at once, in a tight loop. The launcher
  waits 1, 2, 4 ... seconds (up to ``--backoff-max``) before a run that follows a short
  one, and forgets after ``STABLE_S`` of uptime.
- A program started from a non-interactive shell inherits an ignored SIGINT (and dagster
  dev then ignores SIGTERM too): default handlers are restored before the exec.
- The environment comes from a file written by ``orchestration.stack`` at ``make up``:
  a long-lived supervisord would otherwise hand every restart the environment it was
  itself started with.

Standard library only: it runs before every start and restart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import psutil

TOKEN_VAR = "FLASHREC_RUN_TOKEN"
STABLE_S = 60.0  # a run this long resets the backoff


def read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def reset(path: Path) -> None:
    """An explicit start (``make up``): no backoff, but still clear the last run's leftovers."""
    state = read_state(path)
    write_state(path, {"token": state.get("token", ""), "started": 0.0, "failures": 0})


def processes_with_token(token: str) -> list[int]:
    """Pids whose environment carries ``token`` (this process excluded)."""
    if not token:
        return []
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(TOKEN_VAR) == token:
                found.append(proc.pid)
    return found


def kill_leftovers(token: str, timeout_s: float = 10.0) -> list[int]:
    """SIGKILL every process of an earlier run; wait until they are gone."""
    pids = processes_with_token(token)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while processes_with_token(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def backoff_s(state: dict, now: float, backoff_max: float) -> tuple[float, int]:
    """(seconds to wait, consecutive short runs): 0 after a long run or an explicit start."""
    started = float(state.get("started", 0.0))
    if not started or now - started >= STABLE_S:
        return 0.0, 0
    failures = int(state.get("failures", 0)) + 1
    return min(2.0 ** (failures - 1), backoff_max), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.launch")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--env", type=Path, required=True)
    parser.add_argument("--backoff-max", type=float, default=30.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    state = read_state(args.state)
    killed = kill_leftovers(state.get("token", ""))
    if killed:
        print(f"[launch] killed {len(killed)} leftover process(es) of the last run", flush=True)
    now = time.time()
    delay, failures = backoff_s(state, now, args.backoff_max)
    token = uuid.uuid4().hex
    write_state(
        args.state,
        {"token": token, "started": now + delay, "failures": failures, "pid": os.getpid()},
    )
    if delay:
        print(f"[launch] restart {failures} after a short run: waiting {delay:.0f}s", flush=True)
        time.sleep(delay)
    env = json.loads(args.env.read_text())
    env[TOKEN_VAR] = token
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    sys.stdout.flush()
    os.execvpe(command[0], command, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
