"""PyFlink wrapper around the Java Redis Streams source (``io.flashrec.flink.RedisStreamSource``).

    env = StreamExecutionEnvironment.get_execution_environment(config)
    add_redis_source_jar(env)                      # builds the jar if needed, ships it
    source = redis_stream_source(settings.redis_url, settings.events_stream, "features",
                                 consumers=2, emit_ids=True)
    ds = env.from_source(source, WatermarkStrategy.no_watermarks(), "events",
                         type_info=Types.STRING()).set_parallelism(2)

Records are ``str``: the entry's ``payload`` field, or ``"<entry id>\\t<payload>"`` with
``emit_ids=True`` (use ``split_record``). Delivery is at-least-once *when checkpointing is
enabled*: entries are XACKed only after a checkpoint covering them completes, and a restarted
job replays its consumers' pending entries. Without checkpointing nothing is acknowledged
(entries stay pending and are replayed by the next run). Keep ``consumer_prefix`` and
``consumers`` stable across restarts of the same job (the pending lists belong to those
consumer names), and give two jobs sharing a group different prefixes. Restore from the
*latest* checkpoint: entries acknowledged by a later checkpoint are gone from the pending
list and cannot be replayed from an older one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flink_jobs import build_java

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors import Source

JAVA_CLASS = "io.flashrec.flink.RedisStreamSource"


def redis_source_jar(*, build: bool = True, jar: Path | None = None) -> Path:
    """Path of the source's jar, built first (if missing or stale) unless ``build=False``."""
    path = Path(jar) if jar else build_java.default_jar_path()
    if build:
        return build_java.build(path, log=lambda _msg: None)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `python -m flink_jobs.build_java`")
    return path


def jar_url(jar: Path | None = None) -> str:
    """``file://`` URL of the jar, for ``pipeline.jars``."""
    return redis_source_jar(jar=jar).resolve().as_uri()


def add_redis_source_jar(env: StreamExecutionEnvironment, jar: Path | None = None) -> str:
    """Ship the jar with the job and load it into the gateway JVM; returns its URL.

    Call this before ``redis_stream_source`` (the Java class must be loadable through py4j).
    Alternatively put ``jar_url()`` into ``pipeline.jars`` before creating the environment.
    """
    url = jar_url(jar)
    env.add_jars(url)
    return url


def redis_stream_source(
    redis_url: str,
    stream: str,
    group: str,
    *,
    consumers: int = 1,
    consumer_prefix: str = "flink",
    start_id: str = "0",
    batch_size: int = 1000,
    block_ms: int = 100,
    stop_after_empty_polls: int | None = None,
    stop_at_id: str | None = None,
    emit_ids: bool = False,
) -> Source:
    """A pyflink ``Source`` of ``str`` records reading ``stream`` through consumer ``group``.

    - ``consumers``: number of splits (consumers ``<consumer_prefix>-<i>``); split i runs on
      subtask ``i % parallelism``, so set the source parallelism to ``consumers``.
    - ``start_id``: where the group starts if this call creates it (``"0"``: everything the
      stream still retains; ``"$"``: only entries appended later). An existing group keeps
      its position.
    - ``block_ms``: XREADGROUP BLOCK per poll (bounds the latency of an idle source).
    - Bounded mode (finite jobs, tests): ``stop_after_empty_polls=N`` ends a split after N
      consecutive empty polls (~N * block_ms of silence); ``stop_at_id`` ends once every entry
      up to that id has been delivered to the group. Both unset: unbounded.
    """
    from pyflink.datastream.connectors import Source
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    builder = (
        _java_class(jvm, JAVA_CLASS)
        .builder()
        .redisUrl(redis_url)
        .stream(stream)
        .group(group)
        .consumers(int(consumers))
        .consumerPrefix(consumer_prefix)
        .startId(start_id)
        .batchSize(int(batch_size))
        .blockMs(int(block_ms))
        .stopAfterEmptyPolls(int(stop_after_empty_polls or 0))
        .emitIds(bool(emit_ids))
    )
    if stop_at_id is not None:
        builder = builder.stopAtId(stop_at_id)
    return Source(builder.build())


def split_record(record: str) -> tuple[str, str]:
    """``"<id>\\t<payload>"`` (``emit_ids=True``) -> ``(id, payload)``."""
    entry_id, _, payload = record.partition("\t")
    return entry_id, payload


def _java_class(jvm, name: str):
    """Resolve a class through py4j, with a clear error when the jar was not added."""
    from py4j.java_gateway import JavaClass

    obj = jvm
    for part in name.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, JavaClass):
        raise RuntimeError(
            f"{name} is not loadable in the Flink gateway JVM: call "
            "add_redis_source_jar(env) (or set pipeline.jars) before redis_stream_source()"
        )
    return obj
