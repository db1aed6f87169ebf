"""The job's two readers of the event log, on whichever backend the settings name.

Both backends give the same contract (see ``redis_source`` and ``kafka_source``): the
position is checkpointed and a restore resumes exactly there; the log learns what was
processed only when a checkpoint completes (XACK / offset commit).

- Features (group ``flink-features``): a fresh start folds the whole retained log (the
  Redis group is dropped and recreated at the stream's start; Kafka starts at the earliest
  offsets whatever the group committed).
- Live lake (group ``flink-lake``): never rewound, so an event reaches the lake once; a
  fresh start resumes where the group's last completed checkpoint left it. (Kafka commits
  a checkpoint's offsets asynchronously after it completes; a job stopped right then
  leaves the last checkpoint's records uncommitted, and a *fresh* start lands them again:
  ``--restore`` is exact, and silver drops such repeats by event id. Bounded runs commit
  their final offsets themselves: ``commit_bounded``.)

Records: Redis features records are ``"<entry id>\\t<payload>"`` (the id's time is the
append time, used for freshness figures); Kafka records and all lake records are the
payload only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flink_jobs.job_config import JobConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bounds:
    """Where a bounded run stops, taken once so that both sources stop at the same place.

    Redis: an entry id (``drain``) or a number of empty polls (``idle``, or ``drain`` of an
    empty stream). Kafka: the end offset of each partition as the run starts; a run
    restored from an unbounded run's checkpoint cannot be given one (``drain``).
    """

    redis_stop_at: str | None = None
    redis_idle_polls: int | None = None
    kafka_offsets: dict[int, int] | None = None


def bounds(config: JobConfig) -> Bounds:
    if config.backend == "kafka":
        if config.bounded != "drain" or config.restore_from:
            return Bounds()
        from flashrec.eventlog.kafka import KafkaEventLog

        with KafkaEventLog.from_settings(config.settings) as events:
            return Bounds(kafka_offsets=events.end_offsets())
    stop_at = config.stop_at_id
    idle_polls = config.idle_polls if config.bounded == "idle" else None
    if config.bounded == "drain" and stop_at is None:
        stop_at = _newest_id(config)
        if stop_at is None:  # empty stream: drained once a short silence says so
            idle_polls = config.idle_polls
    return Bounds(redis_stop_at=stop_at, redis_idle_polls=idle_polls)


def _newest_id(config: JobConfig) -> str | None:
    """``drain``: the stream's newest id now (the run ends once that much is processed)."""
    import redis

    r = redis.Redis.from_url(config.settings.redis_url, decode_responses=True)
    try:
        newest = r.xrevrange(config.settings.events_stream, count=1)
    finally:
        r.close()
    return newest[0][0] if newest else None


def groups(config: JobConfig) -> list[str]:
    return [config.group] + ([config.lake_group] if config.lake else [])


def commit_bounded(config: JobConfig, stop: Bounds) -> None:
    """After a bounded Kafka run finished: commit where both groups stopped.

    WHY: KafkaSource commits a checkpoint's offsets asynchronously when it completes, and a
    finished task may exit before the final checkpoint's commit is sent; the lake's group
    would then resume a few records early on its next fresh start. Every record up to these
    offsets was processed and the final checkpoint completed (the job finished), so the
    commit is exact. (Redis acknowledges synchronously: nothing to do.)
    """
    if config.backend != "kafka" or stop.kafka_offsets is None:
        return
    from flashrec.eventlog.kafka import KafkaEventLog

    with KafkaEventLog.from_settings(config.settings) as events:
        for group in groups(config):
            events.commit_offsets(group, stop.kafka_offsets)


def reset_features_group(config: JobConfig) -> bool:
    """A fresh start rebuilds state from the whole retained log.

    Its state starts empty, so resuming where an earlier run left it would fold only later
    events (wrong totals and windows). Redis: the group is dropped and the source recreates
    it at the log's start. Kafka: nothing to do (the source starts at the earliest offsets;
    the group's commits are overwritten by the first checkpoint). True if something was reset.
    """
    if config.backend != "redis":
        return False
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


def features_stream(env: Any, config: JobConfig, stop: Bounds) -> Any:
    """The features source as a DataStream of ``str`` at ``config.consumers`` parallelism."""
    return _events_stream(
        env, config, stop, "events", group=config.group, kafka_start="earliest",
        consumers=config.consumers, consumer_prefix=config.consumer_prefix,
        block_ms=config.block_ms, emit_ids=True,
    )  # fmt: skip


def lake_stream(env: Any, config: JobConfig, stop: Bounds) -> Any:
    """The live lake's source (payloads only) at parallelism 1.

    One reader is plenty (either source reads far more than the job processes), and the
    bounded modes end it together with the features source.
    """
    return _events_stream(
        env, config, stop, "events-lake", group=config.lake_group, kafka_start="committed",
        consumers=1, consumer_prefix="lake", block_ms=max(config.block_ms, 50), emit_ids=False,
    )  # fmt: skip


def _events_stream(
    env: Any, config: JobConfig, stop: Bounds, name: str, *, group: str, kafka_start: str,
    consumers: int, consumer_prefix: str, block_ms: int, emit_ids: bool,
) -> Any:  # fmt: skip
    """One consumer group's source on the configured log, as a DataStream of ``str``
    (``<backend>-<name>`` in the job graph; Kafka ids are not emitted, ``emit_ids`` is for
    the Redis source's entry ids)."""
    from pyflink.common import Types, WatermarkStrategy

    if config.backend == "kafka":
        from flink_jobs.kafka_source import kafka_events_source

        source = kafka_events_source(
            config.settings, group, start=kafka_start, stop_offsets=stop.kafka_offsets
        )
    else:
        from flink_jobs.redis_source import redis_stream_source

        s = config.settings
        source = redis_stream_source(
            s.redis_url, s.events_stream, group,
            consumers=consumers, consumer_prefix=consumer_prefix,
            batch_size=config.batch_size, block_ms=block_ms,
            stop_after_empty_polls=stop.redis_idle_polls, stop_at_id=stop.redis_stop_at,
            emit_ids=emit_ids,
        )  # fmt: skip
    return env.from_source(
        source, WatermarkStrategy.no_watermarks(), f"{config.backend}-{name}",
        type_info=Types.STRING(),
    ).set_parallelism(consumers)  # fmt: skip
