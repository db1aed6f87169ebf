"""Real ``bentoml serve`` processes for the HTTP tests: the gateway and the read API.

WHY shared: the gateway's and read API's own tests, the schemathesis runs and the hostile
corpus all talk to the same servers; each starts once per test session (~6-10 s apiece
on two cores), on free ports, with its admin surface on a port of its own.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis

from flashrec.settings import PROJECT_ROOT
from tests.kafka_broker import free_port

#: The gateway under test waits this long for a body (the default, 10 s, would make the
#: slow-body cases of the hostile corpus slow).
GATEWAY_BODY_TIMEOUT_S = 2.0
READ_ADMIN_TOKEN = "read-api-test-token"


@dataclass
class Server:
    """One running ``bentoml serve``; ``port`` is the storefront's, ``admin_port`` the other."""

    name: str
    port: int
    admin_port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    home: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log_tail(self, n: int = 3000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-n:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def serve(target: str, admin_env: str, env: dict[str, str]) -> Server:
    """Start ``bentoml serve target`` and wait until /readyz answers 200 (60 s at most)."""
    port, admin_port = free_port(), free_port()
    home = Path(tempfile.mkdtemp(prefix="bentoml-home-"))
    full_env = {
        **os.environ,
        **env,
        admin_env: str(admin_port),
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a file (never blocks the server), closed in stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1"]
        + ["--port", str(port)],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(target, port, admin_port, proc, log, home)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve {target} exited: {server.log_tail()}")
        try:
            with urllib.request.urlopen(server.base + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{target} was not ready within 60 s: {server.log_tail()}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Gateway:
    """The gateway under test, its streams (unique to this session) and a Redis client."""

    server: Server
    events: str
    deadletter: str
    redis: redis.Redis

    @property
    def port(self) -> int:
        return self.server.port

    def post(self, body: bytes | str | object, raw: bool = False) -> tuple[int, dict]:
        if not raw:
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/events", body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")
        finally:
            conn.close()

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def counts(self) -> tuple[int, int]:
        """(events appended, dead letters) so far: the streams' lengths."""
        return int(self.redis.xlen(self.events)), int(self.redis.xlen(self.deadletter))

    def dead_letters(self) -> list[dict[str, str]]:
        return [
            {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in self.redis.xrange(self.deadletter)
        ]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.server.admin + "/metrics", timeout=10) as resp:
            return resp.read().decode()


def admin_get(base: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    """GET on an admin surface, with ``Authorization: Bearer token`` when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
