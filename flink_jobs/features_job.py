"""Real-time features: the event log -> Flink keyed state -> Feast online, stock, rescore.

    python -m flink_jobs.features_job run [--bounded drain|idle] [--restore [CHK]] ...
    python -m flink_jobs.features_job run --jobmanager HOST:PORT ... # on a session cluster
    python -m flink_jobs.features_job start [--restore] ...   # background, pidfile, log
    python -m flink_jobs.features_job status                  # alive, lag, checkpoint age
    python -m flink_jobs.features_job stop

The dataflow (``build``, two shuffles; see ``job_operators`` for why): the event log's
source (``event_sources``: Redis Streams or Kafka, consumer group ``flink-features``; the
log learns what was processed when a checkpoint covering it completes: XACK or offset
commit) -> parse with the shared event model (rejections dead-lettered) -> key by the
item's shard: fold the item view, attach the item's category to storefront events, flush
item rows, stock and sold-out state -> key by the shopper's shard: fold the user and
session views, flush their rows and the rescore signals. Flushes coalesce per key and run
every ``flush_ms`` (stretched under load). Beside it, a second source on its own consumer
group writes every accepted event into the lake's live landing files (``lake_sink``),
committed by the same checkpoints.

Recovery: view states, the keys changed since the last flush and the source's position
are one consistent checkpoint (every ``checkpoint_interval_ms``, kept on disk when the job
dies). ``--restore`` restarts from the latest completed ``chk-N``: the states come back as
of the checkpoint, the changed keys are written again, and the source resumes at the
checkpointed position, so each event is folded into the restored state exactly once;
writes are absolute values, so rows written twice are simply rewritten. On a session
cluster (``session_cluster``) Flink restarts failed tasks from that checkpoint itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from flashrec.features import ITEM, SESSION, USER
from flashrec.settings import Settings
from flink_jobs.event_sources import Bounds
from flink_jobs.job_config import JOB_NAME, JobConfig, thread_mode_pythonpath

log = logging.getLogger("flink_jobs.features_job")


def reporter_classpath(config: JobConfig) -> dict[str, str]:
    """Environment that puts Flink's Prometheus reporter on the mini-cluster's classpath.

    WHY: the wheel ships the reporter under ``pyflink/plugins/``, but a local mini-cluster
    loads reporters from its classpath only (the plugin folder is for standalone
    clusters). PyFlink builds that classpath from ``FLINK_LIB_DIR``, so the job gets a
    lib folder of its own (``var/flink/lib``: links to PyFlink's jars plus the reporter).
    ``FLINK_HOME`` must be set too, or PyFlink resets ``FLINK_LIB_DIR`` to its own.
    """
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    lib = config.flink_dir / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    jars = [*home.joinpath("lib").glob("*.jar"), *home.glob("plugins/metrics-prometheus/*.jar")]
    for link in lib.glob("*.jar"):
        if not link.exists():  # a dangling link (another PyFlink version)
            link.unlink()
    for jar in jars:
        link = lib / jar.name
        if not link.is_symlink():
            link.symlink_to(jar)
    return {"FLINK_HOME": str(home), "FLINK_LIB_DIR": str(lib)}


def flink_configuration(config: JobConfig) -> dict[str, str]:
    """The Flink settings of this job (the jars are added to the environment: ``job_jars``).

    On a session cluster the client is ``bin/flink run`` (``session_cluster``), which names
    the cluster itself; the TaskManagers get this interpreter and, in thread mode, its
    import path (``python.pythonpath``; the mini-cluster gets it from PYTHONPATH).
    """
    conf = {
        "pipeline.name": JOB_NAME,
        "python.execution-mode": config.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.time": "10",  # process mode: don't hold results 1 s
        "execution.checkpointing.interval": f"{config.checkpoint_interval_ms} ms",
        # No tolerated failures (Flink's default): an expired checkpoint restarts the job.
        "execution.checkpointing.timeout": f"{config.checkpoint_timeout_s} s",
        "execution.checkpointing.dir": config.checkpoint_dir.as_uri(),
        "execution.checkpointing.savepoint-dir": (config.checkpoint_dir / "savepoints").as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": config.state_backend,
    }
    if config.on_cluster:
        conf["python.pythonpath"] = thread_mode_pythonpath()
        # A lost TaskManager takes a while to be replaced (a new process or pod): keep
        # retrying from the last checkpoint, backing off to 30 s, for about 4 minutes.
        conf.update(
            {
                "restart-strategy.type": "exponential-delay",
                "restart-strategy.exponential-delay.initial-backoff": "1 s",
                "restart-strategy.exponential-delay.max-backoff": "30 s",
                "restart-strategy.exponential-delay.attempts-before-reset-backoff": "12",
            }
        )
    else:
        conf["rest.bind-port"] = "0"  # several mini-clusters may share a machine
        conf.update(
            {
                "restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": "3",
                "restart-strategy.fixed-delay.delay": "2 s",
            }
        )
    if config.state_backend == "rocksdb":
        # Production option: state on local disk (not the heap), and each checkpoint
        # uploads only the files that changed since the last one.
        conf["execution.checkpointing.incremental"] = "true"
        conf["state.backend.rocksdb.localdir"] = str(config.flink_dir / "rocksdb")
    if config.reporter_port:
        conf["metrics.reporter.prom.factory.class"] = (
            "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
        )
        conf["metrics.reporter.prom.port"] = str(config.reporter_port)
    if config.restore_from:
        conf["execution.state-recovery.path"] = config.restore_from
    conf.update(config.extra_flink_conf)
    return conf


def job_jars(config: JobConfig) -> list[str]:
    """``file://`` URLs of the jars the job ships: the source of the configured backend
    (built or fetched first when missing)."""
    if config.backend == "kafka":
        from flink_jobs.kafka_source import jar_urls

        return jar_urls(config.connector_dir)
    from flink_jobs import build_java

    build_java.build(config.jar_path, log=log.info)
    return [config.jar_path.resolve().as_uri()]


def build(env: Any, config: JobConfig, stop: Bounds | None = None) -> None:
    """Add the dataflow to ``env`` (a StreamExecutionEnvironment holding ``job_jars``);
    ``stop``: where a bounded run ends (``event_sources.bounds``; None: taken here)."""
    from pyflink.common import Types

    from flink_jobs.event_sources import bounds, features_stream
    from flink_jobs.job_operators import PICKLED, ParseAndRoute, ShardFold, ShardOf
    from flink_jobs.lake_sink import add_lake_sink

    stop = stop or bounds(config)
    shoppers = (USER.name, SESSION.name)
    (
        features_stream(env, config, stop)
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
    if config.lake:
        add_lake_sink(env, config, stop)


def run(config: JobConfig) -> None:
    """Run the job from this process (blocks; returns when a bounded run has drained): on a
    local mini-cluster, or as the client that ``bin/flink run`` started (``submitted``)."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    from flink_jobs import drain, event_sources

    os.environ["PYTHONPATH"] = thread_mode_pythonpath()  # before the JVM starts
    if config.reporter_port and not config.on_cluster:
        os.environ.update(reporter_classpath(config))
    jars = job_jars(config)
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if not config.restore_from:
        event_sources.reset_features_group(config)
    conf = Configuration()
    for key, value in flink_configuration(config).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.add_jars(*jars)  # appends: keeps what a `bin/flink run` client already ships
    env.set_parallelism(config.parallelism)
    env.set_buffer_timeout(config.buffer_timeout_ms)
    stop = event_sources.bounds(config)
    build(env, config, stop)
    s = config.settings
    log.info(
        "starting %s: %s %s group %s, writer %s, %s, checkpoints %s every %d ms%s",
        JOB_NAME, config.backend,
        s.kafka_events_topic if config.backend == "kafka" else s.events_stream,
        config.group, config.writer,
        f"cluster {config.jobmanager}" if config.on_cluster else "local mini-cluster",
        config.checkpoint_dir, config.checkpoint_interval_ms,
        f", restored from {config.restore_from}" if config.restore_from else "",
    )  # fmt: skip
    if drain.needed(config):
        drain.execute_until_drained(env, config, JOB_NAME)
    else:
        env.execute(JOB_NAME)
        event_sources.commit_bounded(config, stop)


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
            help="restore from the latest completed checkpoint (or the given chk-N folder; "
            "'auto': the latest taken since the last fresh start, if any: supervised restarts)",
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
        p.add_argument(
            "--no-lake",
            dest="lake",
            action="store_false",
            default=None,
            help="do not write the live events into the lake's landing files",
        )
        # set by session_cluster.submit for the client that `bin/flink run` starts
        p.add_argument("--submitted", action="store_true", default=None, help=argparse.SUPPRESS)
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
            "stock_key", "soldout_key", "jar", "lake", "submitted",
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
        if args.restore == "auto":
            config = config.with_(restore_from=job_process.auto_restore(config))
        elif args.restore:
            config = config.with_(restore_from=job_process.resolve_restore(config, args.restore))
        job_process.prune_checkpoints(config, keep=config.restore_from)
        if config.on_cluster and not config.submitted:
            from flink_jobs import session_cluster

            return session_cluster.submit(config, argv[1:])
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
