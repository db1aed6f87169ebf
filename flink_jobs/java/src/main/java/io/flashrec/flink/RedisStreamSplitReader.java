package io.flashrec.flink;

import org.apache.flink.connector.base.source.reader.RecordsBySplits;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsAddition;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsChange;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsRemoval;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.List;

/**
 * Reads one split (one consumer) in a fetcher thread of its own.
 *
 * <p>Phase 1 replays the consumer's pending entries (XREADGROUP ... STREAMS key &lt;cursor&gt;,
 * paging from 0-0): those not newer than the split's checkpointed lastEmittedId are skipped
 * (already emitted before that checkpoint), later ones are emitted again. Phase 2 reads new
 * entries (XREADGROUP ... BLOCK blockMs STREAMS key &gt;). Ids arrive in ascending order.
 */
final class RedisStreamSplitReader implements SplitReader<RedisStreamSplitReader.Entry, RedisStreamSplit> {

    private static final Logger LOG = LoggerFactory.getLogger(RedisStreamSplitReader.class);
    private static final int MAX_CONSECUTIVE_IO_ERRORS = 5;

    /** One stream entry; payload null: trimmed away while pending (not emitted, but acked). */
    static final class Entry {
        final String id;
        final String payload;

        Entry(String id, String payload) {
            this.id = id;
            this.payload = payload;
        }
    }

    private final RedisStreamSource.Config cfg;
    private RespClient client;
    private RedisStreamSplit split;
    private boolean replayingPending;
    private String pendingCursor;
    private int emptyPolls;
    private int ioErrors;

    RedisStreamSplitReader(RedisStreamSource.Config cfg) {
        this.cfg = cfg;
    }

    @Override
    public RecordsWithSplitIds<Entry> fetch() throws IOException {
        RecordsBySplits.Builder<Entry> out = new RecordsBySplits.Builder<>();
        if (split == null) {
            return out.build();
        }
        try {
            if (client == null) {
                client = RespClient.connect(cfg.redisUrl, cfg.blockMs + 10_000);
                createGroup();
            }
            if (replayingPending) {
                fetchPending(out);
            } else {
                fetchNew(out);
            }
            ioErrors = 0;
        } catch (RespClient.RedisError e) {
            if (!e.getMessage().startsWith("NOGROUP")) {
                throw e;
            }
            LOG.warn("consumer group {} vanished from {}; recreating it", cfg.group, cfg.stream);
            createGroup();
        } catch (IOException e) {
            // Transient connection trouble: reconnect a few times, then fail the task (it will
            // restart from the last checkpoint and replay the pending list: nothing is lost).
            closeClient();
            if (++ioErrors > MAX_CONSECUTIVE_IO_ERRORS) {
                throw e;
            }
            LOG.warn("redis read failed ({}), reconnecting", e.toString());
            sleepQuietly(200L * ioErrors);
        }
        return out.build();
    }

    private void createGroup() throws IOException {
        try {
            client.call("XGROUP", "CREATE", cfg.stream, cfg.group, cfg.startId, "MKSTREAM");
        } catch (RespClient.RedisError e) {
            if (!e.getMessage().startsWith("BUSYGROUP")) {
                throw e;
            }
        }
    }

    private void fetchPending(RecordsBySplits.Builder<Entry> out) throws IOException {
        List<Object> entries = entriesOf(client.call(
                "XREADGROUP", "GROUP", cfg.group, split.consumer, "COUNT",
                Integer.toString(cfg.batchSize), "STREAMS", cfg.stream, pendingCursor));
        if (entries.isEmpty()) {
            LOG.info("{}: pending entries replayed, now reading new entries", split.consumer);
            replayingPending = false;
            return;
        }
        boolean reachedEnd = false;
        for (Object e : entries) {
            List<?> entry = (List<?>) e;
            String id = (String) entry.get(0);
            pendingCursor = id;
            if (cfg.stopAtId != null && StreamIds.compare(id, cfg.stopAtId) >= 0) {
                reachedEnd = true;
                if (StreamIds.compare(id, cfg.stopAtId) > 0) {
                    continue; // beyond the end: left pending for a later job
                }
            }
            if (StreamIds.compare(id, split.lastEmittedId) <= 0) {
                // Emitted before the restored checkpoint: its effects are in the restored state.
                // Not emitted again; XACKed with the next completed checkpoint (id <= lastEmitted).
                continue;
            }
            out.add(split.consumer, new Entry(id, payloadOf(entry.get(1))));
        }
        if (reachedEnd) {
            out.addFinishedSplit(split.consumer);
        }
    }

    private void fetchNew(RecordsBySplits.Builder<Entry> out) throws IOException {
        List<Object> entries = entriesOf(client.call(
                "XREADGROUP", "GROUP", cfg.group, split.consumer, "COUNT",
                Integer.toString(cfg.batchSize), "BLOCK", Integer.toString(cfg.blockMs),
                "STREAMS", cfg.stream, ">"));
        if (entries.isEmpty()) {
            emptyPolls++;
            if (cfg.stopAfterEmptyPolls > 0 && emptyPolls >= cfg.stopAfterEmptyPolls) {
                out.addFinishedSplit(split.consumer);
            } else if (cfg.stopAtId != null && lastStreamIdReached()) {
                out.addFinishedSplit(split.consumer);
            }
            return;
        }
        emptyPolls = 0;
        for (Object e : entries) {
            List<?> entry = (List<?>) e;
            String id = (String) entry.get(0);
            if (cfg.stopAtId != null && StreamIds.compare(id, cfg.stopAtId) >= 0) {
                out.addFinishedSplit(split.consumer);
                if (StreamIds.compare(id, cfg.stopAtId) > 0) {
                    continue;
                }
            }
            out.add(split.consumer, new Entry(id, payloadOf(entry.get(1))));
        }
    }

    /** Nothing new for the group and the stream already holds stopAtId: all was delivered. */
    private boolean lastStreamIdReached() throws IOException {
        List<?> last = (List<?>) client.call("XREVRANGE", cfg.stream, "+", "-", "COUNT", "1");
        return last != null && !last.isEmpty()
                && StreamIds.compare((String) ((List<?>) last.get(0)).get(0), cfg.stopAtId) >= 0;
    }

    /** [[stream, [[id, fields], ...]]] or null -> the entry list (possibly empty). */
    private static List<Object> entriesOf(Object reply) {
        if (reply == null) {
            return List.of();
        }
        List<?> streams = (List<?>) reply;
        if (streams.isEmpty()) {
            return List.of();
        }
        @SuppressWarnings("unchecked")
        List<Object> entries = (List<Object>) ((List<?>) streams.get(0)).get(1);
        return entries == null ? List.of() : entries;
    }

    /**
     * The "payload" field; an entry without one becomes a JSON object of its fields; an entry
     * deleted/trimmed while pending (fields nil) yields null (acknowledged, not emitted).
     */
    private static String payloadOf(Object fields) {
        if (fields == null) {
            return null;
        }
        List<?> kv = (List<?>) fields;
        for (int i = 0; i + 1 < kv.size(); i += 2) {
            if ("payload".equals(kv.get(i))) {
                return (String) kv.get(i + 1);
            }
        }
        StringBuilder json = new StringBuilder("{");
        for (int i = 0; i + 1 < kv.size(); i += 2) {
            if (i > 0) {
                json.append(',');
            }
            quote(json, (String) kv.get(i)).append(':');
            quote(json, (String) kv.get(i + 1));
        }
        return json.append('}').toString();
    }

    private static StringBuilder quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"');
    }

    @Override
    public void handleSplitsChanges(SplitsChange<RedisStreamSplit> change) {
        if (change instanceof SplitsAddition) {
            if (split != null || change.splits().size() != 1) {
                throw new IllegalStateException("one split per fetcher expected, got " + change);
            }
            split = change.splits().get(0);
            replayingPending = true;
            pendingCursor = "0-0";
            emptyPolls = 0;
        } else if (change instanceof SplitsRemoval && split != null
                && change.splits().stream().anyMatch(s -> s.consumer.equals(split.consumer))) {
            split = null;
        }
    }

    @Override
    public void wakeUp() {
        // A blocked XREADGROUP returns within blockMs; nothing to interrupt.
    }

    @Override
    public void close() {
        closeClient();
    }

    private void closeClient() {
        if (client != null) {
            client.close();
            client = null;
        }
    }

    private static void sleepQuietly(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
