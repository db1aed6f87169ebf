"""BentoML service of the storefront read path: ``bentoml serve bentos.read_api:ReadAPI``.

The route is a raw ASGI app (``read_asgi``) mounted with ``@bentoml.asgi_app``; BentoML
still owns the process model (workers, sockets, graceful shutdown), health endpoints and
/metrics. WHY the configuration below: profiled with py-spy under wrk, BentoML's default
per-request layers cost more than the Redis read itself. Each knob removes one layer for
this route; CPU per request on the shared 2-core machine (bench/slo_read.py, load ~10,
one knob at a time on the defaults): defaults 1474 us, metrics off 1334, access log off
1363, tracing excluded 871, all of them 605; the same app under bare uvicorn 354.

- ``tracing.excluded_urls``: the OpenTelemetry middleware returns at once for our route
  instead of opening a span and a context per request (the largest single cost).
- ``logging.access.enabled: false``: the access-log middleware formats a line per request.
- ``metrics.enabled: false``: BentoML's traffic-metrics middleware does three labelled
  multiprocess metric updates per request (skip_paths only skips one of them). We record
  our own, cheaper metrics (``read_metrics``) and serve /metrics on the admin surface
  (``admin``: its own port, optionally a token) with prometheus_client's multiprocess
  collector over the directory BentoML gives each worker. /ab/stats is there too: the
  storefront's port answers /recommendations and its schema only.
- ``traffic.timeout``: cannot be switched off (must be > 0); 5 s is only a backstop, the
  Redis read has its own 100 ms bound and a degraded answer.

What remains (~100 us of CPU per request here, against ~9 us for the raw app's own
dispatch, measured in process): BentoML's context middleware (builds a Request and its
headers), the timeout middleware (a Task and a timer per request), Starlette's routing and
exception layers. None of them can be configured away.

``ReadAPIDefault`` mounts the same app with BentoML's defaults: the "before" of the
benchmark. The model is never called here: lists come from Redis, written by the scorer.
"""

from __future__ import annotations

import functools

import bentoml

from bentos.admin import (
    AdminConfig,
    AdminServer,
    Answer,
    is_first_worker,
    json_answer,
    metrics,
)
from bentos.read_asgi import make_app
from bentos.read_core import ReadPath, ServingConfig
from bentos.read_metrics import ReadMetrics
from flashrec.serving.cache import read_ab_stats
from flashrec.settings import Settings

HOT_PATHS = ["/recommendations"]


def ab_stats(redis_url: str) -> Answer:
    """GET /ab/stats (admin): 503 with the reason when Redis cannot answer, never a 500."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        return json_answer(200, read_ab_stats(client))
    except (redis.RedisError, OSError) as exc:
        return json_answer(503, {"error": f"redis unavailable, no stats: {exc}"})
    finally:
        client.close()


class ReadWorker:
    """What one worker process holds: the read path, its metrics and (first worker only)
    the admin surface. Built at import, because the ASGI app is mounted at class
    definition; the metrics and the admin port start with the worker (after fork)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = ServingConfig.from_settings(settings)
        self.read_path = ReadPath(self.config)
        self.metrics: ReadMetrics | None = None
        self.admin: AdminServer | None = None

    def bad_request(self) -> None:
        if self.metrics is not None:
            self.metrics.bad_request()

    async def start(self) -> None:
        if self.metrics is None:
            self.metrics = ReadMetrics()
        self.read_path.observer = self.metrics.observe
        if self.admin is None and is_first_worker():
            self.admin = AdminServer(
                "read_api",
                AdminConfig.for_service(self.settings, "read_api"),
                {
                    "/metrics": metrics,
                    "/ab/stats": functools.partial(ab_stats, self.config.redis_url),
                },
            )
            self.admin.start()
        await self.read_path.start()

    async def stop(self) -> None:
        if self.admin is not None:
            self.admin.stop()
            self.admin = None
        await self.read_path.stop()


worker = ReadWorker(Settings.from_env())
app = make_app(worker.read_path, on_bad_request=worker.bad_request)


class _Lifecycle:
    """Both services run the same worker (BentoML finds inherited hooks)."""

    @bentoml.on_startup
    async def start(self) -> None:
        await worker.start()

    @bentoml.on_shutdown
    async def stop(self) -> None:
        await worker.stop()


@bentoml.service(
    name="flashrec_read",
    workers=1,
    traffic={"timeout": 5},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": HOT_PATHS},
)
@bentoml.asgi_app(app, path="/")
class ReadAPI(_Lifecycle):
    """Storefront recommendations from the Redis cache (tuned BentoML configuration)."""

    async def __is_ready__(self) -> bool:  # GET /readyz: Redis answers (liveness: /livez)
        return await worker.read_path.redis_ok()


@bentoml.service(name="flashrec_read_default", workers=1)
@bentoml.asgi_app(app, path="/")
class ReadAPIDefault(_Lifecycle):
    """Same app under BentoML's default configuration (benchmark baseline only)."""
