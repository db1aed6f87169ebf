"""Event gateway: storefronts POST events here; valid ones reach the event log.

``bentoml serve bentos.gateway:Gateway``. Routes:

- ``POST /events``: one event object, or a JSON array of them (strings inside an array
  are taken as raw event lines). Always 200 with a verdict per event once the body is
  readable; rejected events are dead-lettered, never silently dropped. 4xx only when
  the body as a whole is unreadable (empty, not JSON, not an object/array, too large,
  batch over the maximum); 503 when the event log is down (retry: ids are released).
- ``GET /healthz`` (and ``/livez``, ``/readyz``): BentoML's own probes, 503 unless the event
  log answers (``__is_alive__``/``__is_ready__``). BentoML serves /healthz itself, so a route
  of ours there would never be reached. A storefront-facing load balancer should probe
  /readyz; give a Kubernetes liveness probe a generous failureThreshold, since restarting
  the gateway does not bring Redis/Kafka back.

The routes are a small Starlette app mounted with ``bentoml.asgi_app``: a typed
``@bentoml.api`` parses the body before our code runs, so it cannot tell a storefront
*why* its body was unreadable, and it rebuilds a JSON schema per response (slow). The
service class still owns the resources (event log, dedupe store) and their lifecycle.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bentos.gateway_config import GatewayConfig
from flashrec.eventlog.factory import build_event_log
from flashrec.ingest import IngestLimits, RedisDedupeStore, ingest
from flashrec.settings import Settings

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
log = logging.getLogger("flashrec.gateway")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _read_batch(body: bytes, cfg: GatewayConfig) -> list[Any] | JSONResponse:
    """The payloads of a readable body, or the 4xx that says why it is not readable."""
    if len(body) > cfg.max_body_bytes:
        return _error(413, f"body larger than {cfg.max_body_bytes} bytes")
    if not body.strip():
        return _error(400, "empty body: send an event object or a JSON array of events")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    if isinstance(data, dict):
        return [body.decode("utf-8")]  # the raw text, kept verbatim if dead-lettered
    if not isinstance(data, list):
        return _error(400, f"body must be an event object or an array, not {type(data).__name__}")
    if not data:
        return _error(400, "empty batch: the array holds no events")
    if len(data) > cfg.max_batch:
        return _error(413, f"batch of {len(data)} events is over the maximum of {cfg.max_batch}")
    return data


async def post_events(request: Request) -> Response:
    service: Gateway = bentoml.get_current_service()
    cfg = service.config
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cfg.max_body_bytes:
        return _error(413, f"body larger than {cfg.max_body_bytes} bytes")
    batch = _read_batch(await request.body(), cfg)
    if isinstance(batch, Response):
        return batch
    try:
        result = await run_in_threadpool(service.ingest_batch, batch)
    except Exception as exc:  # the event log is unreachable: nothing was accepted
        log.warning("ingestion failed, answering 503: %r", exc)
        return _error(503, "event log unavailable: nothing was accepted, retry the batch")
    return JSONResponse(result)


app = Starlette(routes=[Route("/events", post_events, methods=["POST"])])


@bentoml.service(
    name="flashrec_gateway",
    workers=1,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(app, path="/")
class Gateway:
    """Owns the event log and the dedupe store of one worker."""

    def __init__(self) -> None:
        settings = Settings.from_env()
        self.config = GatewayConfig.from_settings(settings)
        self.limits = IngestLimits.from_settings(settings)
        self.log = build_event_log(settings)
        self.dedupe = RedisDedupeStore(
            settings.redis_url, self.config.dedupe_prefix, self.config.dedupe_window_s
        )

    def ingest_batch(self, payloads: list[Any]) -> dict[str, Any]:
        return ingest(payloads, self.log, self.dedupe, limits=self.limits).to_dict()

    def event_log_reachable(self) -> bool:
        try:
            self.log.length()
        except Exception as exc:
            log.warning("event log unreachable: %r", exc)
            return False
        return True

    def __is_alive__(self) -> bool:  # GET /healthz, /livez
        return self.event_log_reachable()

    def __is_ready__(self) -> bool:  # GET /readyz
        return self.event_log_reachable()

    @bentoml.on_shutdown
    def close(self) -> None:
        self.log.close()
        self.dedupe.close()
