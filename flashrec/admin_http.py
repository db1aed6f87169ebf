"""The admin listener: metrics and control endpoints on a port of their own.

WHY a stdlib server in a thread: admin calls are rare (a scrape every few seconds) and
blocking (redis-py, reading metric files); a thread keeps them off whatever the process
does for its real work (a storefront's event loop, a scorer's batch, a Flink operator),
and it needs no framework, so every process of the platform can have one: the BentoML
services (``bentos.admin`` adds their multiprocess metrics), the scorer, the attribution
worker and the stream job. Bound to ``FLASHREC_ADMIN_HOST`` (loopback by default); with
``FLASHREC_ADMIN_TOKEN`` set, every request must carry ``Authorization: Bearer <token>``.
``/livez`` answers 200 while the process runs (supervision's health check).
"""

from __future__ import annotations

import hmac
import http.server
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from flashrec.settings import Settings

log = logging.getLogger(__name__)

JSON = "application/json"
#: What an admin route returns: status, body, content type.
Answer = tuple[int, bytes, str]
Handler = Callable[[], Answer]
#: The Settings field holding each process's admin (metrics) port.
ADMIN_PORTS = {
    "gateway": "gateway_admin_port",
    "read_api": "read_api_admin_port",
    "model_service": "model_service_admin_port",
    "scorer": "scorer_metrics_port",
    "attribution": "attribution_metrics_port",
    "flink_features": "flink_metrics_port",
}


def json_answer(status: int, doc: Any) -> Answer:
    return status, orjson.dumps(doc), JSON


def livez() -> Answer:
    """GET /livez: the process answers (never depends on Redis: a restart would not help)."""
    return json_answer(200, {"status": "ok"})


def process_metrics() -> Answer:
    """GET /metrics of a single-process program: this interpreter's default registry."""
    import prometheus_client as pc

    return 200, pc.generate_latest(pc.REGISTRY), pc.CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class AdminConfig:
    """Where the admin listener binds and the token it asks for ("" = none)."""

    host: str
    port: int
    token: str = ""

    @classmethod
    def for_service(cls, settings: Settings, service: str) -> AdminConfig:
        """Each service has an admin port of its own (``ADMIN_PORTS``)."""
        port = getattr(settings, ADMIN_PORTS[service])
        return cls(settings.admin_host, port, settings.admin_token)


def _handler_class(
    routes: Mapping[str, Handler], token: str
) -> type[http.server.BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode("latin-1") if token else b""

    class AdminHandler(http.server.BaseHTTPRequestHandler):
        server_version = "flashrec-admin"
        sys_version = ""
        # Errors found before the version is parsed get a status line too (the stdlib's
        # default, HTTP/0.9, answers them with a bare body no HTTP/1.x client can read).
        default_request_version = "HTTP/1.0"
        timeout = 10  # a client that stalls mid-request loses its connection, not a thread

        def _reply(self, answer: Answer, extra: Mapping[str, str] | None = None) -> None:
            status, body, content_type = answer
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _authorized(self) -> bool:
            if not expected:
                return True
            given = self.headers.get("Authorization", "").encode("latin-1", "replace")
            return hmac.compare_digest(given, expected)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
            if not self._authorized():
                problem = "admin endpoints need the header 'Authorization: Bearer <token>'"
                self._reply(json_answer(401, {"error": problem}), {"WWW-Authenticate": "Bearer"})
                return
            path = self.path.partition("?")[0]
            route = routes.get(path)
            if route is None:
                self._reply(json_answer(404, {"error": "no route", "routes": sorted(routes)}))
                return
            try:
                answer = route()
            except Exception as exc:  # a bug in a route: say so, keep serving
                log.exception("admin route %s failed", path)
                answer = json_answer(500, {"error": f"{path} failed: {type(exc).__name__}"})
            self._reply(answer)

        do_HEAD = do_GET  # noqa: N815

        def __getattr__(self, name: str) -> Any:
            # Any other method: 405 (the stdlib would answer 501, a server error).
            if name.startswith("do_"):
                return self._not_allowed
            raise AttributeError(name)

        def _not_allowed(self) -> None:
            self._reply(json_answer(405, {"error": f"use GET, not {self.command[:16]}"}))

        def send_error(self, code: int, message: str | None = None, explain: str | None = None):
            # The stdlib parser's refusals, as JSON like every other answer here. They are
            # the client's fault: a request line claiming HTTP/2 is a 400, not a 505.
            if code == 505:
                code, message = 400, "only HTTP/1.x is served here"
            self.close_connection = True
            reason = message or self.responses.get(code, ("error",))[0]
            self._reply(json_answer(code, {"error": reason}))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("admin %s " + format, self.address_string(), *args)

    return AdminHandler


class AdminServer:
    """One admin listener serving ``routes`` (path -> handler) in a daemon thread."""

    def __init__(self, name: str, config: AdminConfig, routes: Mapping[str, Handler]) -> None:
        self.name = name
        self.config = config
        self.routes = {"/livez": livez, **routes}
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from the configured one only when that is 0)."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind now (raises OSError naming the port if it is taken) and serve in a thread."""
        handler = _handler_class(self.routes, self.config.token)
        try:
            server = http.server.ThreadingHTTPServer((self.config.host, self.config.port), handler)
        except OSError as exc:
            raise OSError(
                f"{self.name} admin surface cannot bind {self.config.host}:{self.config.port}"
                f": {exc}"
            ) from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"{self.name}-admin", daemon=True
        )
        self._thread.start()
        auth = "token required" if self.config.token else "no token"
        log.info("%s admin surface on %s:%d (%s)", self.name, self.config.host, self.port, auth)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
