package io.flashrec.flink;

import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * A Flink (2.x Source API) source reading one Redis stream through a consumer group.
 *
 * <p>Splits: one split per consumer ({@code <consumerPrefix>-<i>}, i &lt; consumers), assigned
 * statically to reader {@code i % parallelism}. Each split is read by its own fetcher thread with
 * its own connection.
 *
 * <p>Delivery (at-least-once): an entry read with XREADGROUP sits in the consumer's pending list
 * (PEL) until XACKed, and the reader XACKs an entry only after a checkpoint that covers its
 * emission has completed ({@code notifyCheckpointComplete}): it then acknowledges the
 * consumer's pending entries up to the id that was last emitted before that checkpoint. The
 * split state is the consumer name plus that last emitted id. On (re)start every split first
 * replays its consumer's PEL: entries up to the checkpointed id are not emitted again (their
 * effects are in the restored Flink state) and get acknowledged, later ones are emitted again.
 * So nothing is lost on a crash, and only entries emitted after the last completed checkpoint
 * are delivered twice. Without checkpointing nothing is ever acknowledged (entries stay pending
 * and the next run replays them). Restore from the latest checkpoint: entries acknowledged by a
 * later checkpoint have left the PEL and cannot be replayed from an older one.
 *
 * <p>Output: the entry's "payload" field as a String, or "id\tpayload" when {@code emitIds}
 * is set (split on the first tab). An entry without a "payload" field is emitted as a JSON
 * object of its fields so that downstream validation can dead-letter it instead of it vanishing.
 */
public final class RedisStreamSource
        implements Source<String, RedisStreamSplit, Collection<RedisStreamSplit>> {

    private static final long serialVersionUID = 1L;

    /** Immutable settings shared by the enumerator, the readers and the fetchers. */
    public static final class Config implements Serializable {
        private static final long serialVersionUID = 1L;
        final String redisUrl;
        final String stream;
        final String group;
        final String consumerPrefix;
        final int consumers;
        final String startId;
        final int batchSize;
        final int blockMs;
        final int stopAfterEmptyPolls; // 0 = never
        final String stopAtId; // null = never
        final boolean emitIds;

        Config(Builder b) {
            this.redisUrl = b.redisUrl;
            this.stream = b.stream;
            this.group = b.group;
            this.consumerPrefix = b.consumerPrefix;
            this.consumers = b.consumers;
            this.startId = b.startId;
            this.batchSize = b.batchSize;
            this.blockMs = b.blockMs;
            this.stopAfterEmptyPolls = b.stopAfterEmptyPolls;
            this.stopAtId = b.stopAtId;
            this.emitIds = b.emitIds;
        }

        boolean bounded() {
            return stopAfterEmptyPolls > 0 || stopAtId != null;
        }
    }

    /** Builder (plain setters, convenient from py4j). */
    public static final class Builder {
        private String redisUrl = "redis://127.0.0.1:6379/0";
        private String stream;
        private String group;
        private String consumerPrefix = "flink";
        private int consumers = 1;
        private String startId = "0";
        private int batchSize = 1000;
        private int blockMs = 100;
        private int stopAfterEmptyPolls = 0;
        private String stopAtId = null;
        private boolean emitIds = false;

        public Builder redisUrl(String v) { this.redisUrl = v; return this; }
        public Builder stream(String v) { this.stream = v; return this; }
        public Builder group(String v) { this.group = v; return this; }
        /** Consumers are named prefix-0 .. prefix-(n-1); keep names stable across restarts. */
        public Builder consumerPrefix(String v) { this.consumerPrefix = v; return this; }
        public Builder consumers(int v) { this.consumers = v; return this; }
        /** Where a newly created group starts: "0" (whole retained stream) or "$" (new only). */
        public Builder startId(String v) { this.startId = v; return this; }
        public Builder batchSize(int v) { this.batchSize = v; return this; }
        public Builder blockMs(int v) { this.blockMs = v; return this; }
        /** Bounded: a split finishes after this many consecutive empty polls (0 = unbounded). */
        public Builder stopAfterEmptyPolls(int v) { this.stopAfterEmptyPolls = v; return this; }
        /** Bounded: emit entries up to and including this id, then finish. */
        public Builder stopAtId(String v) { this.stopAtId = v; return this; }
        public Builder emitIds(boolean v) { this.emitIds = v; return this; }

        public RedisStreamSource build() {
            if (stream == null || group == null) {
                throw new IllegalArgumentException("stream and group are required");
            }
            if (consumers < 1 || batchSize < 1 || blockMs < 1 || stopAfterEmptyPolls < 0) {
                throw new IllegalArgumentException(
                        "consumers, batchSize, blockMs must be >= 1, stopAfterEmptyPolls >= 0");
            }
            if (stopAtId != null) {
                StreamIds.parse(stopAtId); // validate early
            }
            return new RedisStreamSource(new Config(this));
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    private final Config config;

    private RedisStreamSource(Config config) {
        this.config = config;
    }

    @Override
    public Boundedness getBoundedness() {
        return config.bounded() ? Boundedness.BOUNDED : Boundedness.CONTINUOUS_UNBOUNDED;
    }

    @Override
    public SourceReader<String, RedisStreamSplit> createReader(SourceReaderContext ctx) {
        return new RedisStreamReader(config, ctx);
    }

    @Override
    public SplitEnumerator<RedisStreamSplit, Collection<RedisStreamSplit>> createEnumerator(
            SplitEnumeratorContext<RedisStreamSplit> ctx) {
        List<RedisStreamSplit> splits = new ArrayList<>();
        for (int i = 0; i < config.consumers; i++) {
            splits.add(new RedisStreamSplit(i, config.consumerPrefix + "-" + i, "0-0"));
        }
        return new RedisStreamEnumerator(ctx, splits);
    }

    @Override
    public SplitEnumerator<RedisStreamSplit, Collection<RedisStreamSplit>> restoreEnumerator(
            SplitEnumeratorContext<RedisStreamSplit> ctx, Collection<RedisStreamSplit> unassigned) {
        return new RedisStreamEnumerator(ctx, unassigned);
    }

    @Override
    public SimpleVersionedSerializer<RedisStreamSplit> getSplitSerializer() {
        return new RedisStreamSplit.Serializer();
    }

    @Override
    public SimpleVersionedSerializer<Collection<RedisStreamSplit>>
            getEnumeratorCheckpointSerializer() {
        return new RedisStreamEnumerator.StateSerializer();
    }
}
