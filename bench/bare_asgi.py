"""The honest ceiling: the same read path as the BentoML service, served by bare uvicorn.

WHY: BentoML's cost is only visible against the same work done without it. This app calls
the very same ``ReadPath`` (same Lua round trip, same policy, same impression batching,
same response bytes) from the same raw ASGI callable, under one uvicorn worker with uvloop
and httptools, and nothing else (no metrics: a strict ceiling).

    python -m bench.bare_asgi --port 8081
"""

from __future__ import annotations

import argparse

import uvicorn

from bentos.read_asgi import make_app
from bentos.read_core import ReadPath, ServingConfig
from flashrec.settings import Settings


def build_app():  # noqa: ANN201 - an ASGI callable
    """One ReadPath per process (uvicorn calls this in each worker when --workers > 1)."""
    return make_app(
        ReadPath(ServingConfig.from_settings(Settings.from_env())), handle_lifespan=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "bench.bare_asgi:build_app" if args.workers > 1 else build_app(),
        factory=args.workers > 1,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        workers=args.workers,
    )


if __name__ == "__main__":
    main()
