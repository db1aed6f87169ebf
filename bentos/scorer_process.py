"""``python -m bentos.scorer_process run|once|status``: the background scorer as a process.

The scoring logic is framework-free (``flashrec.scoring``); this is the service around it,
beside the model service it calls. WHY a features factory by name (``--features
module:function``): the default reader (``bentos.scorer_features:feast_reader``) imports
Feast, which only ``run`` needs; tests and benchmarks pass their own.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

from flashrec.eventlog.redis_streams import RedisStreamsEventLog
from flashrec.scoring.catalog import Catalog
from flashrec.scoring.model_client import ModelClient, ModelServiceDown
from flashrec.scoring.scorer import Scorer, ScorerConfig, read_status
from flashrec.settings import Settings

log = logging.getLogger("flashrec.scoring")
DEFAULT_FEATURES = "bentos.scorer_features:feast_reader"


def load_object(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def catalog_cache(settings: Settings) -> Path:
    return settings.artifacts_dir / "scoring" / "catalog.json"


def load_catalog(path: str | None, client: ModelClient, cache_path: Path) -> tuple[Catalog, str]:
    """The catalog from ``path`` (artifact folder or catalog.json), else from the model
    service (then cached on disk), else the cached copy: the content and segment tiers
    must work even when the model service is down at start."""
    if path:
        p = Path(path)
        if p.is_dir():
            meta = json.loads((p / "meta.json").read_text())
            return Catalog.load(p / "catalog.json"), str(meta["model_version"])
        return Catalog.load(p), p.stem
    try:
        doc = client.catalog()
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(doc))
    except ModelServiceDown:
        if not cache_path.exists():
            raise
        log.warning("model service down at start: using the cached catalog %s", cache_path)
        doc = json.loads(cache_path.read_text())
    return Catalog.from_json(doc["catalog"]), str(doc["model_version"])


def build(args: argparse.Namespace, settings: Settings) -> Scorer:
    overrides = {k: v for k, v in (("group", args.group), ("consumer", args.consumer)) if v}
    config = ScorerConfig.from_settings(settings, **overrides)
    url = args.model_url or settings.model_service_url
    model = ModelClient(url)
    catalog, version = load_catalog(args.catalog, model, catalog_cache(settings))
    reader = load_object(args.features)(settings)
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=max(5.0, config.block_ms / 1000 + 5),
        socket_connect_timeout=2.0,
    )
    event_log = RedisStreamsEventLog(
        settings.redis_url, settings.rescore_stream, settings.deadletter_stream
    )

    def refresh() -> tuple[Catalog, str] | None:
        info = model.info()
        if info["versions"].get("champion") == scorer.catalog_version:
            return None
        doc = model.catalog()
        return Catalog.from_json(doc["catalog"]), str(doc["model_version"])

    scorer = Scorer(
        client,
        event_log,
        reader,
        catalog,
        rank=model.rank,
        config=config,
        rescore_stream=settings.rescore_stream,
        catalog_version=version,
        read_items=reader,
        refresh_catalog=None if args.catalog else refresh,
    )
    return scorer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bentos.scorer_process")
    parser.add_argument("command", choices=("run", "once", "status"))
    parser.add_argument("--model-url", help="model service base URL")
    parser.add_argument("--features", default=DEFAULT_FEATURES, help="module:factory(settings)")
    parser.add_argument("--catalog", help="model artifact folder or catalog.json")
    parser.add_argument("--group", help="consumer group (default: scorer)")
    parser.add_argument("--consumer", help="consumer name, stable across restarts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()
    if args.command == "status":
        group = args.group or ScorerConfig.from_settings(settings).group
        client = redis.Redis.from_url(settings.redis_url)
        event_log = RedisStreamsEventLog(
            settings.redis_url, settings.rescore_stream, settings.deadletter_stream
        )
        print(json.dumps(read_status(client, event_log, group), indent=2))
        return 0
    scorer = build(args, settings)
    if args.command == "once":
        scorer.start()
        while scorer.step() is not None:
            pass
        print(json.dumps(read_status(scorer.client, scorer.log, scorer.config.group), indent=2))
        return 0
    from flashrec.scoring import metrics

    server = metrics.serve(scorer, settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("scorer %s/%s running", scorer.config.group, scorer.config.consumer)
    t0 = time.monotonic()
    scorer.run(stop)
    server.stop()
    log.info("scorer stopped after %.0f s: %s", time.monotonic() - t0, scorer.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
