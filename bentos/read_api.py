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
  our own, cheaper metrics (``read_metrics``) and serve /metrics from the mounted app with
  prometheus_client's multiprocess collector over the directory BentoML gives each worker.
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

import bentoml

from bentos.read_asgi import make_app
from bentos.read_core import ReadPath, ServingConfig
from bentos.read_metrics import ReadMetrics, exposition
from flashrec.serving.cache import read_ab_stats
from flashrec.settings import Settings

HOT_PATHS = ["/recommendations"]

_config = ServingConfig.from_settings(Settings.from_env())
_read_path = ReadPath(_config)
_metrics: list[ReadMetrics] = []


def _stats() -> dict[str, object]:
    import redis

    client = redis.Redis.from_url(_config.redis_url, socket_timeout=2.0)
    try:
        return read_ab_stats(client)
    finally:
        client.close()


def _bad_request() -> None:
    if _metrics:
        _metrics[0].bad_request()


app = make_app(_read_path, stats=_stats, on_bad_request=_bad_request, metrics=exposition)


async def _start() -> None:
    if not _metrics:
        _metrics.append(ReadMetrics())
    _read_path.observer = _metrics[0].observe
    await _read_path.start()


@bentoml.service(
    name="flashrec_read",
    workers=1,
    traffic={"timeout": 5},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": HOT_PATHS},
)
@bentoml.asgi_app(app, path="/")
class ReadAPI:
    """Storefront recommendations from the Redis cache (tuned BentoML configuration)."""

    @bentoml.on_startup
    async def start(self) -> None:
        await _start()

    @bentoml.on_shutdown
    async def stop(self) -> None:
        await _read_path.stop()


@bentoml.service(name="flashrec_read_default", workers=1)
@bentoml.asgi_app(app, path="/")
class ReadAPIDefault:
    """Same app under BentoML's default configuration (benchmark baseline only)."""

    @bentoml.on_startup
    async def start(self) -> None:
        await _start()

    @bentoml.on_shutdown
    async def stop(self) -> None:
        await _read_path.stop()
