package io.flashrec.flink;

import org.apache.flink.api.connector.source.SourceOutput;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.source.reader.RecordEmitter;
import org.apache.flink.connector.base.source.reader.SourceReaderBase;
import org.apache.flink.connector.base.source.reader.fetcher.SplitFetcher;
import org.apache.flink.connector.base.source.reader.fetcher.SplitFetcherManager;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.function.Supplier;

/**
 * The source reader: emits entries and acknowledges them once a checkpoint covering them is
 * complete.
 *
 * <p>Ack protocol: a consumer receives entries in ascending id order (own pending list first,
 * then new entries), and the emitter handles them in that order, so at a snapshot every entry
 * of that consumer's pending list with id &lt;= the split's lastEmittedId has been emitted
 * (or deliberately skipped). The reader therefore only remembers, per checkpoint, each
 * consumer's lastEmittedId (O(splits) memory, nothing grows without checkpointing); when the
 * checkpoint completes it XACKs the consumer's pending entries in [-, lastEmittedId], found
 * with XPENDING. A lost or failed notification is made up for by the next one.
 */
final class RedisStreamReader
        extends SourceReaderBase<RedisStreamSplitReader.Entry, String, RedisStreamSplit,
                RedisStreamSplit.State> {

    private static final Logger LOG = LoggerFactory.getLogger(RedisStreamReader.class);
    private static final int ACK_PAGE = 10_000;

    private final RedisStreamSource.Config cfg;
    /** checkpoint id -> (consumer -> last id emitted before that checkpoint's snapshot). */
    private final TreeMap<Long, Map<String, String>> ackUpTo = new TreeMap<>();
    /** Finished splits (bounded mode) whose entries still await their acknowledgement. */
    private final Map<String, String> finished = new HashMap<>();
    private RespClient ackClient;

    RedisStreamReader(RedisStreamSource.Config cfg, SourceReaderContext ctx) {
        super(new PerSplitFetcherManager(() -> new RedisStreamSplitReader(cfg), ctx.getConfiguration()),
                new Emitter(cfg.emitIds), ctx.getConfiguration(), ctx);
        this.cfg = cfg;
    }

    @Override
    public List<RedisStreamSplit> snapshotState(long checkpointId) {
        List<RedisStreamSplit> splits = super.snapshotState(checkpointId);
        Map<String, String> upTo = new HashMap<>(finished);
        for (RedisStreamSplit split : splits) {
            if (StreamIds.compare(split.lastEmittedId, "0-0") > 0) {
                upTo.put(split.consumer, split.lastEmittedId);
            }
        }
        if (!upTo.isEmpty()) {
            ackUpTo.put(checkpointId, upTo);
        }
        return splits;
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) throws Exception {
        super.notifyCheckpointComplete(checkpointId);
        NavigableMap<Long, Map<String, String>> done = ackUpTo.headMap(checkpointId, true);
        if (done.isEmpty()) {
            return;
        }
        Map<String, String> upTo = new HashMap<>();
        for (Map<String, String> m : done.values()) {
            upTo.putAll(m); // ascending checkpoints: later (larger) ids win
        }
        try {
            if (ackClient == null) {
                ackClient = RespClient.connect(cfg.redisUrl, 30_000);
            }
            long acked = 0;
            for (Map.Entry<String, String> e : upTo.entrySet()) {
                acked += ackPendingUpTo(e.getKey(), e.getValue());
            }
            done.clear();
            finished.entrySet().removeIf(
                    f -> StreamIds.compare(upTo.getOrDefault(f.getKey(), "0-0"), f.getValue()) >= 0);
            LOG.debug("checkpoint {} complete: acknowledged {} entries", checkpointId, acked);
        } catch (IOException e) {
            // Kept: retried at the next completed checkpoint (and replayed after a restart).
            LOG.warn("XACK after checkpoint {} failed, will retry: {}", checkpointId, e.toString());
            if (ackClient != null) {
                ackClient.close();
                ackClient = null;
            }
        }
    }

    /** XACK the consumer's pending entries with id <= upTo, a page at a time. */
    private long ackPendingUpTo(String consumer, String upTo) throws IOException {
        long acked = 0;
        while (true) {
            List<?> rows = (List<?>) ackClient.call("XPENDING", cfg.stream, cfg.group, "-", upTo,
                    Integer.toString(ACK_PAGE), consumer);
            if (rows == null || rows.isEmpty()) {
                return acked;
            }
            List<String> cmd = new ArrayList<>(rows.size() + 3);
            cmd.add("XACK");
            cmd.add(cfg.stream);
            cmd.add(cfg.group);
            for (Object row : rows) {
                cmd.add((String) ((List<?>) row).get(0));
            }
            acked += (Long) ackClient.call(cmd);
            if (rows.size() < ACK_PAGE) {
                return acked;
            }
        }
    }

    @Override
    protected void onSplitFinished(Map<String, RedisStreamSplit.State> finishedSplits) {
        for (RedisStreamSplit.State state : finishedSplits.values()) {
            if (StreamIds.compare(state.lastEmittedId, "0-0") > 0) {
                finished.put(state.consumer, state.lastEmittedId);
            }
        }
        LOG.info("finished splits {}", finishedSplits.keySet());
    }

    @Override
    protected RedisStreamSplit.State initializedState(RedisStreamSplit split) {
        return new RedisStreamSplit.State(split);
    }

    @Override
    protected RedisStreamSplit toSplitType(String splitId, RedisStreamSplit.State state) {
        return state.toSplit();
    }

    @Override
    public void close() throws Exception {
        super.close();
        if (ackClient != null) {
            ackClient.close();
        }
    }

    /** Runs in the task's main thread, like snapshotState: no locking needed. */
    static final class Emitter
            implements RecordEmitter<RedisStreamSplitReader.Entry, String, RedisStreamSplit.State> {
        private final boolean emitIds;

        Emitter(boolean emitIds) {
            this.emitIds = emitIds;
        }

        @Override
        public void emitRecord(RedisStreamSplitReader.Entry entry, SourceOutput<String> output,
                RedisStreamSplit.State state) {
            if (entry.payload != null) {
                output.collect(emitIds ? entry.id + "\t" + entry.payload : entry.payload);
            }
            // Ascending per split; ack-only entries (already emitted before the restored
            // checkpoint, or trimmed away) are <= it or must be acknowledged all the same.
            if (StreamIds.compare(entry.id, state.lastEmittedId) > 0) {
                state.lastEmittedId = entry.id;
            }
        }
    }

    /** One fetcher thread (and Redis connection) per split, so each can block in XREADGROUP. */
    static final class PerSplitFetcherManager
            extends SplitFetcherManager<RedisStreamSplitReader.Entry, RedisStreamSplit> {

        PerSplitFetcherManager(
                Supplier<SplitReader<RedisStreamSplitReader.Entry, RedisStreamSplit>> readers,
                Configuration config) {
            super(readers, config);
        }

        @Override
        public void addSplits(List<RedisStreamSplit> splits) {
            for (RedisStreamSplit split : splits) {
                SplitFetcher<RedisStreamSplitReader.Entry, RedisStreamSplit> fetcher =
                        createSplitFetcher();
                fetcher.addSplits(Collections.singletonList(split));
                startFetcher(fetcher);
            }
        }

        @Override
        public void removeSplits(List<RedisStreamSplit> splits) {
            // Splits are never withdrawn by the enumerator; forward for completeness.
            fetchers.values().forEach(f -> f.removeSplits(splits));
        }
    }
}
