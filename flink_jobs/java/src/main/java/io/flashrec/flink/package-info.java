/**
 * A minimal Redis Streams source for Flink 2.x (consumer groups, ack on checkpoint completion,
 * pending-list replay on restart: at-least-once). Entry point: {@link
 * io.flashrec.flink.RedisStreamSource#builder()}.
 */
package io.flashrec.flink;
