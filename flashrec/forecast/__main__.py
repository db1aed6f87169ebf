"""``python -m flashrec.forecast run [--host H] [--port P]``: the forecast exporter."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import redis

from flashrec.forecast.exporter import ForecastExporter, make_server
from flashrec.settings import Settings


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m flashrec.forecast")
    parser.add_argument("command", choices=("run",))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=settings.forecast_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2.0)
    exporter = ForecastExporter(settings, client)
    server = make_server(exporter, args.host, args.port)
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.getLogger("flashrec.forecast").info(
        "forecast exporter on :%d, horizon %.0f s", server.server_address[1], exporter.horizon_s
    )
    exporter.run(stop)
    server.shutdown()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
