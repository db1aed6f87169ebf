"""Event gateway: storefronts POST events here; valid ones reach the event log.

``bentoml serve bentos.gateway:Gateway``. Routes on the storefront's port:

- ``POST /events``: one event object, or a JSON array of them (strings inside an array
  are taken as raw event lines). Always 200 with a verdict per event once the body is
  readable; rejected events are dead-lettered, never silently dropped. 4xx only when
  the body as a whole is unreadable (empty, not UTF-8 JSON, nested too deeply, not an
  object/array, too large, too slow to arrive, batch over the maximum), always with a
  JSON ``error`` saying what was wrong; 503 when the event log is down (retry: ids are
  released).
- ``GET /openapi/gateway.json``: the OpenAPI description (``gateway_schema``).
- ``GET /healthz`` (and ``/livez``, ``/readyz``): BentoML's own probes, 503 unless the event
  log answers (``__is_ready__``); liveness (``__is_alive__``) does not depend on it, since
  restarting the gateway would not bring Redis/Kafka back. BentoML serves /healthz itself,
  so a route of ours there would never be reached. A storefront-facing load balancer should
  probe /readyz.

/metrics (``gateway_metrics``: responses by route and status, events by outcome) is served
on the admin surface (``admin``), not here. BentoML's own metrics (and its /metrics route on
this port) are off: they label requests by raw path, unbounded under hostile traffic.

The body is read as a stream, counted against the size limit as it arrives and bounded in
time, so a chunked body without Content-Length never sits whole in memory, and a client
that stalls mid-body gets 408 before BentoML's request timeout would answer 504.

The routes are a small Starlette app mounted with ``bentoml.asgi_app``: a typed
``@bentoml.api`` parses the body before our code runs, so it cannot tell a storefront
*why* its body was unreadable, and it rebuilds a JSON schema per response (slow). The
service class still owns the resources (event log, dedupe store) and their lifecycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from bentos.admin import AdminConfig, AdminServer, is_first_worker, metrics
from bentos.gateway_config import GatewayConfig
from bentos.gateway_metrics import GatewayMetrics
from bentos.gateway_schema import gateway_openapi
from flashrec.eventlog.factory import build_event_log
from flashrec.events import load_json
from flashrec.ingest import IngestLimits, RedisDedupeStore, ingest
from flashrec.settings import Settings

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
log = logging.getLogger("flashrec.gateway")

_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit accepts '²', int() does not


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    # ensure_ascii: client text may hold lone surrogates, which UTF-8 cannot encode.
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status, headers, media_type="application/json")


def _error(status: int, message: str) -> Response:
    # A stalled body will not finish: close. (A too-large one may: the server discards the
    # rest without keeping it, and a client that sends all before reading gets its 413.)
    headers = {"Connection": "close"} if status == 408 else None
    return _json(status, {"error": message}, headers)


async def _read_body(request: Request, cfg: GatewayConfig) -> bytes | Response:
    """The whole body, or the 4xx that says why not: counted as it arrives (a chunked body
    has no Content-Length to check first) and bounded in time."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            return _error(400, f"Content-Length is not a number: {declared[:32]!r}")
        if not _DIGITS.fullmatch(declared) or int(declared) > cfg.max_body_bytes:
            return _error(413, f"body larger than {cfg.max_body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(cfg.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > cfg.max_body_bytes:
                    return _error(413, f"body larger than {cfg.max_body_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        return _error(408, f"body not received within {cfg.body_timeout_s:g} s")
    except ClientDisconnect:
        return _error(400, "the client went away before the body was complete")
    return b"".join(chunks)


def _read_batch(body: bytes, cfg: GatewayConfig) -> list[Any] | Response:
    """The payloads of a readable body, or the 4xx that says why it is not readable."""
    if not body.strip():
        return _error(400, "empty body: send an event object or a JSON array of events")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(400, f"body is not valid JSON: not UTF-8 text ({exc.reason} at {exc.start})")
    try:
        data = load_json(text)
    except ValueError as exc:
        return _error(400, f"body is not valid JSON: {exc}")
    except RecursionError:
        return _error(400, "body is nested too deeply: send flat event objects")
    if isinstance(data, dict):
        return [text]  # the raw text, kept verbatim if dead-lettered
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
    body = await _read_body(request, cfg)
    batch = body if isinstance(body, Response) else _read_batch(body, cfg)
    if isinstance(batch, Response):
        service.metrics.refused_body(batch.status_code)
        return batch
    try:
        result = await run_in_threadpool(service.ingest_batch, batch)
    except Exception as exc:  # the event log is unreachable: nothing was accepted
        log.warning("ingestion failed, answering 503: %r", exc)
        return _error(503, "event log unavailable: nothing was accepted, retry the batch")
    return _json(200, result)


async def openapi(_: Request) -> Response:
    return _json(200, gateway_openapi(bentoml.get_current_service().config))


_ROUTES = {"/events": "POST", "/openapi/gateway.json": "GET"}
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


async def _no_route(request: Request) -> Response:
    """Anything else, as JSON that names the problem. WHY a catch-all route: BentoML only
    hands the mounted app paths that one of its routes matches; the rest would get
    Starlette's bare "Not Found"."""
    path = request.scope["path"]
    if path in _ROUTES:
        return _json(405, {"error": f"use {_ROUTES[path]} on {path}, not {request.method[:16]}"})
    return _json(404, {"error": f"no route {path[:100]}"})


app = Starlette(
    routes=[
        Route("/events", post_events, methods=["POST"]),
        Route("/openapi/gateway.json", openapi, methods=["GET"]),
        Route("/{path:path}", _no_route, methods=_METHODS),  # last: what nothing else matched
    ]
)


class ResponseCounter:
    """ASGI middleware: counts every response by route and status code. BentoML's own
    traffic metrics are off here because they label by raw path: every random URL a client
    tries would become a new time series (unbounded memory on the gateway)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                service: Gateway = bentoml.get_current_service()
                service.metrics.response(
                    scope["path"], message["status"], time.perf_counter() - started
                )
            await send(message)

        await self.app(scope, receive, counting_send)


@bentoml.service(
    name="flashrec_gateway",
    workers=1,
    traffic={"timeout": 30},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(app, path="/")
class Gateway:
    """Owns the event log, the dedupe store and the admin surface of one worker."""

    def __init__(self) -> None:
        settings = Settings.from_env()
        self.config = GatewayConfig.from_settings(settings)
        self.limits = IngestLimits.from_settings(settings)
        self.log = build_event_log(settings)
        self.dedupe = RedisDedupeStore(
            settings.redis_url, self.config.dedupe_prefix, self.config.dedupe_window_s
        )
        self.metrics = GatewayMetrics()
        self.admin: AdminServer | None = None
        if is_first_worker():
            self.admin = AdminServer(
                "gateway", AdminConfig.for_service(settings, "gateway"), {"/metrics": metrics}
            )
            self.admin.start()

    def ingest_batch(self, payloads: list[Any]) -> dict[str, Any]:
        result = ingest(payloads, self.log, self.dedupe, limits=self.limits)
        self.metrics.ingested(result.accepted, result.dead_lettered, result.dead_letters_lost)
        return result.to_dict()

    def event_log_reachable(self) -> bool:
        try:
            self.log.length()
        except Exception as exc:
            log.warning("event log unreachable: %r", exc)
            return False
        return True

    def __is_alive__(self) -> bool:  # GET /healthz, /livez: the process answers
        return True  # restarting the gateway would not bring Redis/Kafka back

    def __is_ready__(self) -> bool:  # GET /readyz
        return self.event_log_reachable()

    @bentoml.on_shutdown
    def close(self) -> None:
        if self.admin is not None:
            self.admin.stop()
        self.log.close()
        self.dedupe.close()


Gateway.add_asgi_middleware(ResponseCounter)
