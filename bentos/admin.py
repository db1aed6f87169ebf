"""The admin surface: stats, metrics and control endpoints on a port of their own.

WHY apart from the storefront's route: /ab/stats and /metrics tell a competitor (or an
attacker) how the sale goes and cost Redis and CPU per call; on the public port anyone
could call them. Each service serves them on a second listener (``FLASHREC_*_ADMIN_PORT``)
bound to ``FLASHREC_ADMIN_HOST`` (loopback by default); with ``FLASHREC_ADMIN_TOKEN`` set,
every admin request must also carry ``Authorization: Bearer <token>`` (for when the admin
port must be reachable from other hosts, e.g. a Prometheus in the cluster).

WHY a stdlib server in a thread, not a second ASGI app: admin calls are rare (a scrape
every 15 s) and blocking (redis-py, reading the Prometheus multiprocess files); a thread
keeps them entirely off the storefront's event loop and adds no per-request work there.
Only the first worker of a service binds the port: the multiprocess collector gives one
worker every worker's metrics, and a bind failure stays loud (startup fails).
"""

from __future__ import annotations

from flashrec.admin_http import (  # noqa: F401 - the services import them from here
    JSON,
    AdminConfig,
    AdminServer,
    Answer,
    Handler,
    json_answer,
    livez,
)


def is_first_worker() -> bool:
    """True in BentoML's first worker (index 1) and outside BentoML (index None)."""
    import bentoml

    return bentoml.server_context.worker_index in (None, 1)


def metrics() -> Answer:
    """GET /metrics: every worker's metrics (ours and BentoML's) in Prometheus' format.
    BentoML starts each worker with ``PROMETHEUS_MULTIPROC_DIR`` set, so one scrape of the
    first worker sees all of them."""
    import prometheus_client as pc
    from prometheus_client import multiprocess

    registry = pc.CollectorRegistry()
    try:
        multiprocess.MultiProcessCollector(registry)
    except ValueError:  # not under BentoML (no multiprocess directory): this process only
        registry = pc.REGISTRY
    return 200, pc.generate_latest(registry), pc.CONTENT_TYPE_LATEST
