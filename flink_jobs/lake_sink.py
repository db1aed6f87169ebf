"""Live events into the lake: the event log -> JSON-lines files in the landing layout.

WHY in the Flink job, through Flink's FileSink (and not a separate drain process): the
files are committed by the same checkpoints that acknowledge the log, so a kill -9 at any
moment neither loses an event nor lands one twice (FileSink's two-phase commit: in-progress
files are hidden, truncated back to the checkpointed length on restore, and renamed to
their final name only when a checkpoint covering them completes). The source is the job's
own log source (``event_sources``), so the lake follows whatever backend the stream job
reads: Redis Streams or Kafka. The pipeline is
Java end to end (source -> sink, no Python operator): it costs the job's Python side
nothing.

Layout: ``<landing_dir>/live/dt=YYYY-MM-DD/part-<uuid>-<n>.jsonl``, bucketed by the UTC
*processing* date (= the ingestion date bronze partitions by; an event's own day is
decided by silver). A file is rolled every ``lake_roll_s`` seconds (or after a quiet
spell, or at 128 MiB) and becomes visible at the next completed checkpoint; bronze only
ever reads finished files (``spark_jobs.bronze.live_files``).

Its consumer group (``flink-lake``) is separate from the features' group on purpose: a
fresh start of the features job rebuilds its state from the whole retained log, but the
lake must not receive those events a second time, so this group is never reset (Kafka:
it starts from its committed offsets, the earliest for a new group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flashrec.lake_layout import LIVE_SOURCE, PART_PREFIX, PART_SUFFIX
from flink_jobs.event_sources import Bounds, lake_stream
from flink_jobs.job_config import JobConfig

if TYPE_CHECKING:
    from pyflink.datastream.connectors.file_system import FileSink

LAKE_GROUP = "flink-lake"
PART_SIZE_BYTES = 128 * 1024 * 1024


def live_landing_path(config: JobConfig) -> str:
    """Base folder (or object-store URI) of the live landing files."""
    return str(config.settings.landing_dir / LIVE_SOURCE)


def file_sink(config: JobConfig) -> FileSink:
    """Row-format FileSink: one JSON payload per line, daily UTC buckets, rolled on time."""
    from pyflink.common.serialization import Encoder
    from pyflink.datastream.connectors.file_system import (
        BucketAssigner,
        FileSink,
        OutputFileConfig,
        RollingPolicy,
    )

    roll_ms = int(config.lake_roll_s * 1000)
    return (
        FileSink.for_row_format(live_landing_path(config), Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.date_time_bucket_assigner("'dt='yyyy-MM-dd", "UTC"))
        .with_rolling_policy(
            RollingPolicy.default_rolling_policy(
                part_size=PART_SIZE_BYTES,
                rollover_interval=roll_ms,
                inactivity_interval=min(roll_ms, 10_000),
            )
        )
        .with_output_file_config(
            OutputFileConfig.builder()
            .with_part_prefix(PART_PREFIX)
            .with_part_suffix(PART_SUFFIX)
            .build()
        )
        .build()
    )


def add_lake_sink(env: Any, config: JobConfig, stop: Bounds) -> None:
    """The lake's own source (own consumer group, payloads only) -> FileSink, both at
    parallelism 1; ``stop`` ends it together with the features source in bounded runs.
    """
    (lake_stream(env, config, stop).sink_to(file_sink(config)).set_parallelism(1).name("live-lake"))
