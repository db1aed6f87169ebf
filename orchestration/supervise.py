"""supervisord, one per work folder: every ``make up`` process runs under it.

WHY supervisord (the ``supervisor`` package): a maintained supervisor that restarts a
crashed process (``autorestart``), stops whole process groups, rotates each program's log
and answers over XML-RPC, so the stack and the benchmarks drive it from Python.

WHY one per work folder (``<var_dir>/run``: config, socket, pidfile, its own log): the
benchmarks run their stacks isolated (own folder, ports, Redis database) beside a ``make
up`` stack; each gets its own supervisord and never sees the other's programs.

Programs are added one at a time (``install``): each is a file under ``run/programs/``
included by the main config, written when its component is started, so a caller may
change a component's command line (a benchmark passes its own jar) and a running
supervisord picks the new definition up (``reloadConfig``, as ``supervisorctl update``
does). Each program runs through ``orchestration.launch`` (leftovers of a killed run,
backoff between quick crashes, the environment from a file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from flashrec.settings import PROJECT_ROOT, Settings
from orchestration import launch

#: supervisord states in which the program has a live process.
LIVE_STATES = frozenset({"STARTING", "RUNNING"})
SOCKET_MAX = 100  # AF_UNIX paths are limited to ~108 bytes


@dataclass(frozen=True)
class Paths:
    run: Path
    logs: Path

    @property
    def conf(self) -> Path:
        return self.run / "supervisord.conf"

    @property
    def programs(self) -> Path:
        return self.run / "programs"

    @property
    def socket(self) -> Path:
        sock = self.run / "supervisor.sock"
        if len(str(sock)) <= SOCKET_MAX:
            return sock
        digest = hashlib.sha1(str(self.run).encode()).hexdigest()[:12]
        return Path("/tmp") / f"flashrec-supervisor-{digest}.sock"

    def state(self, name: str) -> Path:
        return self.run / f"{name}.launch"

    def env(self, name: str) -> Path:
        return self.run / f"{name}.env.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def paths(settings: Settings) -> Paths:
    return Paths(settings.var_dir / "run", settings.var_dir / "logs")


def main_config(p: Paths) -> str:
    return f"""; written by orchestration.supervise; programs are in programs/*.conf
[supervisord]
logfile={_esc(p.run / "supervisord.log")}
logfile_maxbytes=10MB
logfile_backups=2
pidfile={_esc(p.run / "supervisord.pid")}
childlogdir={_esc(p.logs)}
directory={_esc(PROJECT_ROOT)}
nodaemon=false
silent=true

[unix_http_server]
file={_esc(p.socket)}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_esc(p.socket)}

[include]
files = {_esc(p.programs)}/*.conf
"""


def program_config(
    p: Paths, name: str, argv: Sequence[str], backoff_max_s: float, stop_wait_s: int = 20
) -> str:
    """One ``[program:x]``: restarted whenever it exits, stopped as a whole group."""
    command = [
        sys.executable,
        "-m",
        "orchestration.launch",
        "--state",
        str(p.state(name)),
        "--env",
        str(p.env(name)),
        "--backoff-max",
        f"{backoff_max_s:g}",
        "--",
        *argv,
    ]
    return f"""[program:{name}]
command={_esc(shlex.join(command))}
directory={_esc(PROJECT_ROOT)}
autostart=false
autorestart=true
startsecs=1
startretries=1000
stopsignal=TERM
stopwaitsecs={stop_wait_s}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={_esc(p.log(name))}
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=2
"""


def _esc(value: object) -> str:
    """supervisord's config is read with ``%(name)s`` expansion: a literal % is %%."""
    return str(value).replace("%", "%%")


# -- the daemon -----------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(p: Paths) -> Iterator[None]:
    """Serialize config changes and the daemon's start (benchmarks start components from
    several threads at once)."""
    p.run.mkdir(parents=True, exist_ok=True)
    with (p.run / ".supervise.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def proxy(p: Paths, timeout_s: float = 30.0) -> Any:
    """An XML-RPC client of this folder's supervisord (``.supervisor.<method>``)."""
    transport = SupervisorTransport(None, None, serverurl=f"unix://{p.socket}")
    transport.timeout = timeout_s  # type: ignore[attr-defined]
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def answering(p: Paths) -> bool:
    if not p.socket.exists():
        return False
    try:
        return proxy(p, 5.0).supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def ensure_running(p: Paths, timeout_s: float = 20.0) -> None:
    """Start this folder's supervisord unless it answers already (call under the lock)."""
    if answering(p):
        return
    p.programs.mkdir(parents=True, exist_ok=True)
    p.logs.mkdir(parents=True, exist_ok=True)
    p.conf.write_text(main_config(p))
    with contextlib.suppress(FileNotFoundError):
        p.socket.unlink()  # a stale socket of a supervisord that died
    exe = Path(sys.executable).with_name("supervisord")
    subprocess.run(
        [str(exe), "-c", str(p.conf)], cwd=PROJECT_ROOT, check=True, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout_s
    while not answering(p):
        if time.monotonic() > deadline:
            log = (p.run / "supervisord.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"supervisord did not answer on {p.socket}:\n{log}")
        time.sleep(0.1)


def install(
    p: Paths,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    backoff_max_s: float,
    stop_wait_s: int = 20,
) -> None:
    """Define (or redefine) program ``name``; a changed definition replaces a stopped one."""
    with _locked(p):
        ensure_running(p)
        p.logs.mkdir(parents=True, exist_ok=True)
        env_file = p.env(name)
        env_file.touch(mode=0o600)
        env_file.write_text(json.dumps(dict(env)))
        (p.programs / f"{name}.conf").write_text(
            program_config(p, name, argv, backoff_max_s, stop_wait_s)
        )
        rpc = proxy(p).supervisor
        added, changed, removed = rpc.reloadConfig()[0]
        for group in removed:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcessGroup(group)
            rpc.removeProcessGroup(group)
        for group in changed:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcessGroup(group)
            rpc.removeProcessGroup(group)
            rpc.addProcessGroup(group)
        for group in added:
            rpc.addProcessGroup(group)


def start(p: Paths, name: str) -> None:
    """Start ``name`` now (don't wait: the caller judges health by its own URL)."""
    launch.reset(p.state(name))
    proxy(p).supervisor.startProcess(name, False)


def info(p: Paths, name: str) -> dict[str, Any] | None:
    """supervisord's view of ``name`` (state, pid, start, spawnerr), or None."""
    if not answering(p):
        return None
    try:
        return dict(proxy(p).supervisor.getProcessInfo(name))
    except xmlrpc.client.Fault:
        return None


def pid(p: Paths, name: str) -> int | None:
    """The program's live pid (None when stopped, backing off or unknown)."""
    got = info(p, name)
    if got is None or got["statename"] not in LIVE_STATES or not got["pid"]:
        return None
    return int(got["pid"])


def restarted(p: Paths, name: str, old_pid: int) -> int | None:
    """The new pid of ``name`` once it runs again after ``old_pid`` ended and its launcher
    has cleared what the old run left (so a health check reaches the new process, not a
    leftover worker of the old one), else None."""
    got = info(p, name) or {}
    new_pid = got.get("pid")
    if got.get("statename") != "RUNNING" or new_pid in (None, 0, old_pid):
        return None
    if launch.read_state(p.state(name)).get("pid") != new_pid:
        return None  # the launcher has not got past its clean-up yet
    return int(new_pid)


def stop(p: Paths, name: str) -> bool:
    """Stop ``name`` (TERM to its group, KILL after the wait) and end what a killed earlier
    run left behind. False when it was not running."""
    got = info(p, name)
    if got is None:
        return False
    was_live = got["statename"] in LIVE_STATES or got["statename"] == "BACKOFF"
    with contextlib.suppress(xmlrpc.client.Fault):  # NOT_RUNNING
        proxy(p, 60.0).supervisor.stopProcess(name, True)
    launch.kill_leftovers(launch.read_state(p.state(name)).get("token", ""))
    return was_live


def shutdown(p: Paths, timeout_s: float = 60.0) -> bool:
    """Stop every program, then supervisord itself. False when none was running."""
    if not answering(p):
        return False
    rpc = proxy(p, timeout_s).supervisor
    with contextlib.suppress(xmlrpc.client.Fault, OSError):
        rpc.stopAllProcesses(True)
    for state in p.run.glob("*.launch"):
        launch.kill_leftovers(launch.read_state(state).get("token", ""))
    with contextlib.suppress(xmlrpc.client.Fault, OSError):
        rpc.shutdown()
    deadline = time.monotonic() + timeout_s
    pidfile = p.run / "supervisord.pid"
    while pidfile.exists() and time.monotonic() < deadline:
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pidfile.read_text()), 0)
            time.sleep(0.1)
            continue
        break
    return True
