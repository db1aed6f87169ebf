"""Real-time features: the event log -> Flink keyed state -> Feast online, stock, rescore.

    python -m flink_jobs.features_job run [--bounded drain|idle] [--restore [CHK]] ...
    python -m flink_jobs.features_job start [--restore] ...   # background, pidfile, log
    python -m flink_jobs.features_job status                  # alive, lag, checkpoint age
    python -m flink_jobs.features_job stop

The dataflow (``build``, two shuffles; see ``job_operators`` for why): the Redis Streams
source (consumer group ``flink-features``, entries XACKed when a checkpoint covering them
completes) -> parse with the shared event model (rejections dead-lettered) -> key by the
item's shard: fold the item view, attach the item's category to storefront events, flush
item rows, stock and sold-out state -> key by the shopper's shard: fold the user and
session views, flush their rows and the rescore signals. Flushes coalesce per key and run
every ``flush_ms`` (stretched under load).

Recovery: view states, the keys changed since the last flush and the source's position
are one consistent checkpoint (every ``checkpoint_interval_ms``, kept on disk when the job
dies). ``--restore`` restarts from the latest completed ``chk-N``: the states come back as
of the checkpoint, the changed keys are written again, and the source replays the entries
not acknowledged by it, so each event is folded into the restored state exactly once;
writes are absolute values, so rows written twice are simply rewritten.
"""

from __future__ import annotations

import argparse
import logging
import os
import site
import sys
from pathlib import Path
from typing import Any

from flashrec.features import ITEM, SESSION, USER
from flashrec.settings import PROJECT_ROOT, Settings
from flink_jobs.job_config import JobConfig

log = logging.getLogger("flink_jobs.features_job")

JOB_NAME = "flashrec-features"


def thread_mode_pythonpath(environ: dict[str, str] | None = None) -> str:
    """PYTHONPATH for thread mode's embedded interpreter (pemja inside the JVM).

    It does not see a virtualenv whose python is a symlink (no pyvenv.cfg lookup), so it
    gets the venv's site-packages and the project root explicitly.
    """
    env = os.environ if environ is None else environ
    parts = [*site.getsitepackages(), str(PROJECT_ROOT)]
    parts += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)


def flink_configuration(config: JobConfig) -> dict[str, str]:
    """The Flink settings of this job (local mini-cluster unless ``jobmanager`` is set)."""
    from flink_jobs.redis_source import jar_url

    conf = {
        "pipeline.name": JOB_NAME,
        "pipeline.jars": jar_url(config.jar_path),
        "python.execution-mode": config.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.time": "10",  # process mode: don't hold results 1 s
        "rest.bind-port": "0",  # several mini-clusters may share a machine
        "execution.checkpointing.interval": f"{config.checkpoint_interval_ms} ms",
        "execution.checkpointing.dir": config.checkpoint_dir.as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": "hashmap",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2 s",
    }
    if config.jobmanager != "local":
        host, _, port = config.jobmanager.rpartition(":")
        conf.update({"execution.target": "remote", "rest.address": host, "rest.port": port})
    if config.restore_from:
        conf["execution.state-recovery.path"] = config.restore_from
    conf.update(config.extra_flink_conf)
    return conf


def _stop_at_id(config: JobConfig) -> str | None:
    """``drain``: the stream's newest id now (the run ends once that much is processed)."""
    import redis

    r = redis.Redis.from_url(config.settings.redis_url, decode_responses=True)
    try:
        newest = r.xrevrange(config.settings.events_stream, count=1)
    finally:
        r.close()
    return newest[0][0] if newest else None


def reset_group(config: JobConfig) -> bool:
    """A fresh start (no ``--restore``) rebuilds state from the whole retained log.

    Its state starts empty, so resuming the consumer group where an earlier run left it
    would fold only later events (wrong totals and windows): the group is dropped and the
    source recreates it at the log's start. Returns True if a group was dropped.
    """
    import redis

    r = redis.Redis.from_url(config.settings.redis_url, decode_responses=True)
    try:
        dropped = bool(r.xgroup_destroy(config.settings.events_stream, config.group))
    except redis.ResponseError:  # no stream yet
        dropped = False
    finally:
        r.close()
    if dropped:
        log.warning(
            "fresh start: consumer group %s reset to the start of %s (use --restore to "
            "continue from the latest checkpoint instead)",
            config.group, config.settings.events_stream,
        )  # fmt: skip
    return dropped


def build(env: Any, config: JobConfig) -> None:
    """Add the dataflow to ``env`` (a StreamExecutionEnvironment)."""
    from pyflink.common import Types, WatermarkStrategy

    from flink_jobs.job_operators import PICKLED, ParseAndRoute, ShardFold, ShardOf
    from flink_jobs.redis_source import redis_stream_source

    s = config.settings
    stop_at = config.stop_at_id
    idle_polls = config.idle_polls if config.bounded == "idle" else None
    if config.bounded == "drain" and stop_at is None:
        stop_at = _stop_at_id(config)
        if stop_at is None:  # empty stream: drained once a short silence says so
            idle_polls = config.idle_polls
    source = redis_stream_source(
        s.redis_url,
        s.events_stream,
        config.group,
        consumers=config.consumers,
        consumer_prefix=config.consumer_prefix,
        batch_size=config.batch_size,
        block_ms=config.block_ms,
        stop_after_empty_polls=idle_polls,
        stop_at_id=stop_at,
        emit_ids=True,
    )
    shoppers = (USER.name, SESSION.name)
    (
        env.from_source(
            source, WatermarkStrategy.no_watermarks(), "redis-events", type_info=Types.STRING()
        )
        .set_parallelism(config.consumers)
        .flat_map(ParseAndRoute(config, ITEM.name), output_type=PICKLED)
        .set_parallelism(config.consumers)  # chained to the source: log order kept per item
        .name("parse")
        .key_by(ShardOf(), key_type=Types.INT())
        .process(ShardFold("items", (ITEM.name,), config, forward=shoppers), output_type=PICKLED)
        .name("fold-items")
        .key_by(ShardOf(), key_type=Types.INT())
        .process(ShardFold("shoppers", shoppers, config), output_type=PICKLED)
        .name("fold-shoppers")
        .print()  # emits nothing; a terminal operator makes the graph executable
    )


def run(config: JobConfig) -> None:
    """Run the job in this process (blocks; returns when a bounded run has drained)."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    from flink_jobs import build_java

    os.environ["PYTHONPATH"] = thread_mode_pythonpath()  # before the JVM starts
    build_java.build(config.jar_path, log=log.info)
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if not config.restore_from:
        reset_group(config)
    conf = Configuration()
    for key, value in flink_configuration(config).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(config.parallelism)
    env.set_buffer_timeout(config.buffer_timeout_ms)
    build(env, config)
    log.info(
        "starting %s: stream %s group %s, writer %s, checkpoints %s every %d ms%s",
        JOB_NAME, config.settings.events_stream, config.group, config.writer,
        config.checkpoint_dir, config.checkpoint_interval_ms,
        f", restored from {config.restore_from}" if config.restore_from else "",
    )  # fmt: skip
    env.execute(JOB_NAME)


# -- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flink_jobs.features_job", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "start"):
        p = sub.add_parser(name, help="run in the foreground" if name == "run" else "background")
        p.add_argument(
            "--restore",
            nargs="?",
            const="latest",
            default=None,
            help="restore from the latest completed checkpoint (or the given chk-N folder)",
        )
        p.add_argument("--bounded", choices=("none", "drain", "idle"), default=None)
        p.add_argument("--writer", choices=("feast", "redis"), default=None)
        p.add_argument("--parallelism", type=int, default=None)
        p.add_argument("--checkpoint-dir", type=Path, default=None)
        p.add_argument("--checkpoint-interval-ms", type=int, default=None)
        p.add_argument("--flush-ms", type=int, default=None)
        p.add_argument("--flush-rows", type=int, default=None)
        p.add_argument("--group", default=None)
        p.add_argument("--jobmanager", default=None, help="host:port of a Flink REST endpoint")
        p.add_argument("--execution-mode", choices=("thread", "process"), default=None)
        p.add_argument("--catalog-key", default=None)
        p.add_argument("--stock-key", default=None)
        p.add_argument("--soldout-key", default=None)
        p.add_argument("--jar", type=Path, default=None, help="the Redis source jar to use")
    sub.add_parser("status", help="process, consumer lag/pending, latest checkpoint")
    stop = sub.add_parser("stop", help="stop the background job")
    stop.add_argument("--timeout", type=float, default=20.0)
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def config_from_args(args: argparse.Namespace, settings: Settings | None = None) -> JobConfig:
    settings = settings or Settings.from_env()
    overrides = {
        name: getattr(args, name, None)
        for name in (
            "bounded", "writer", "parallelism", "checkpoint_dir", "checkpoint_interval_ms",
            "flush_ms", "flush_rows", "group", "jobmanager", "execution_mode", "catalog_key",
            "stock_key", "soldout_key", "jar",
        )
    }  # fmt: skip
    return JobConfig.from_settings(settings, **overrides)


def main(argv: list[str] | None = None) -> int:
    from flink_jobs import health, job_process

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    config = config_from_args(args)
    if args.command == "run":
        if args.restore:
            config = config.with_(restore_from=job_process.resolve_restore(config, args.restore))
        job_process.prune_checkpoints(config, keep=config.restore_from)
        run(config)
        return 0
    if args.command == "start":
        return job_process.start(config, argv[1:], as_json=args.json)
    if args.command == "stop":
        return job_process.stop(config, timeout_s=args.timeout, as_json=args.json)
    report = health.job_health(config)
    print(report.to_json() if args.json else report.describe())
    return 0 if report.running else 3


if __name__ == "__main__":
    sys.exit(main())
