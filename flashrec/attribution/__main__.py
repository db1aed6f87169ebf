"""``python -m flashrec.attribution run|once|status``: the attribution worker as a process."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

import redis

from flashrec.attribution.worker import (
    AttributionConfig,
    AttributionWorker,
    status_key,
)
from flashrec.eventlog.factory import build_event_log
from flashrec.settings import Settings

log = logging.getLogger("flashrec.attribution")


def build(settings: Settings) -> AttributionWorker:
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=10.0, socket_connect_timeout=2.0
    )
    config = AttributionConfig(window_s=settings.attribution_window_s)
    return AttributionWorker(client, build_event_log(settings), config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flashrec.attribution")
    parser.add_argument("command", choices=("run", "once", "status"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.command == "status":
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        print(json.dumps(client.hgetall(status_key()), indent=2))
        return 0
    worker = build(settings)
    if args.command == "once":
        worker.start()
        while worker.step():
            pass
        print(json.dumps(worker.stats.__dict__, indent=2))
        return 0
    from flashrec.attribution import metrics

    server = metrics.serve(worker, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("attribution running (group %s)", worker.config.group)
    worker.run(stop)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
