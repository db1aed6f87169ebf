"""A redis-server of one's own: free port, data folder, AOF on, restartable.

WHY: the fault run restarts Redis in the middle of a surge and the soak reads Redis'
``used_memory``; neither may touch the machine's shared redis-server (other stacks,
benchmarks and tests use its databases). This one is started with the persistence the
platform documents for production-like runs: AOF on, fsync every second
(``appendfsync everysec``: a crash of the server may lose the last second of writes; a
clean restart, SIGTERM, writes everything out first), RDB snapshots off.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from bench.slo_read import free_port


class RedisServer:
    """``start`` / ``restart`` / ``stop`` one ``redis-server`` (its own process group)."""

    def __init__(self, data_dir: Path, *, port: int | None = None, appendonly: bool = True) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found (make setup installs it)")
        return [
            exe,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self.pings():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"redis-server on {self.port} did not start:\n{log}")
            time.sleep(0.05)
        return self

    def pings(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: Redis flushes its AOF and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, down_s: float = 0.0) -> float:
        """Stop, stay down ``down_s``, start again (reloading the AOF); returns the seconds
        Redis was unreachable."""
        t0 = time.monotonic()
        self.stop()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - t0

    def used_memory(self) -> int:
        return int(redis.Redis(port=self.port).info("memory")["used_memory"])
