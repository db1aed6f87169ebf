"""The events topic through Flink's own KafkaSource (Kafka backend of the event log).

Positions and what a restart does, the same contract as the Redis Streams source:

- Offsets are part of every checkpoint (the source's split state) and are committed to the
  consumer group when that checkpoint completes (``commit.offsets.on.checkpoint``): the
  group's committed offsets are what monitoring reads (lag), never what a restore uses.
- A restore from a checkpoint resumes at exactly the checkpointed offsets.
- Where a run *without* a checkpoint starts is the caller's choice (``start``):
  ``earliest`` (the features job: its state starts empty, so it must fold everything the
  topic retains) or ``committed`` (the live lake: it must never take an event twice, so it
  resumes where its group's last completed checkpoint left it; earliest for a new group).
- ``stop_offsets`` bounds the source: each partition stops there (``run --bounded drain``
  passes the end offsets as the run starts, the same to both sources). Stopping offsets
  live in the split state, so a run restored from an unbounded run's checkpoint never
  stops by itself: ``drain`` handles that case.

Records are the payloads as ``str`` (UTF-8): PyFlink's KafkaSource offers value-only
deserializers, and the job needs nothing else from the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flink_jobs import kafka_jars

if TYPE_CHECKING:
    from pyflink.datastream.connectors.kafka import KafkaSource

    from flashrec.settings import Settings

STARTS = ("earliest", "committed")


def jar_urls(folder: Path) -> list[str]:
    """``file://`` URLs of the connector jars (fetched first when missing)."""
    return [p.resolve().as_uri() for p in kafka_jars.ensure(folder, log=lambda _msg: None)]


def kafka_events_source(
    settings: Settings,
    group: str,
    *,
    start: str,
    stop_offsets: dict[int, int] | None = None,
    client_prefix: str | None = None,
    properties: dict[str, str] | None = None,
) -> KafkaSource:
    """A KafkaSource of ``str`` payloads over the events topic, read as consumer ``group``."""
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource

    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    starting = (
        KafkaOffsetsInitializer.earliest() if start == "earliest" else _committed_or_earliest()
    )
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap_servers)
        .set_topics(settings.kafka_events_topic)
        .set_group_id(group)
        .set_client_id_prefix(client_prefix or group)
        .set_starting_offsets(starting)
        .set_value_only_deserializer(SimpleStringSchema())
        .set_property("commit.offsets.on.checkpoint", "true")
        # New partitions of a running job's topic are picked up within a minute.
        .set_property("partition.discovery.interval.ms", "60000")
    )
    for key, value in (properties or {}).items():
        builder = builder.set_property(key, value)
    if stop_offsets is not None:
        builder = builder.set_bounded(_at_offsets(settings.kafka_events_topic, stop_offsets))
    return builder.build()


def _at_offsets(topic: str, offsets: dict[int, int]):
    """``OffsetsInitializer.offsets({partition: offset})``, built through py4j (see below)."""
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import get_java_class

    jvm = get_gateway().jvm
    # Python ints would arrive as Integer; the connector reads Long values.
    values = jvm.org.apache.flink.python.util.HashMapWrapper(None, get_java_class(jvm.Long))
    for partition, offset in offsets.items():
        values.put(jvm.org.apache.kafka.common.TopicPartition(topic, int(partition)), int(offset))
    initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer
    return KafkaOffsetsInitializer(initializer.OffsetsInitializer.offsets(values.asMap()))


def _committed_or_earliest():
    """``OffsetsInitializer.committedOffsets(EARLIEST)``, built through py4j.

    PyFlink's own wrappers name Kafka's classes (reset strategy, topic partition) by their
    *shaded* names in Flink's SQL connector uber jar; the plain connector and kafka-clients
    jars used here have the unshaded ones.
    """
    from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer
    earliest = jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST
    return KafkaOffsetsInitializer(initializer.OffsetsInitializer.committedOffsets(earliest))
