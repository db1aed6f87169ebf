package io.flashrec.flink;

import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.TreeMap;

/**
 * Static assignment: split i goes to reader (i % parallelism) when that reader registers. The
 * split set never grows, so each reader is told "no more splits" right after its assignment (a
 * reader without splits then finishes). Splits of a failed reader come back via addSplitsBack.
 */
final class RedisStreamEnumerator
        implements SplitEnumerator<RedisStreamSplit, Collection<RedisStreamSplit>> {

    private final SplitEnumeratorContext<RedisStreamSplit> context;
    private final TreeMap<Integer, RedisStreamSplit> unassigned = new TreeMap<>();

    RedisStreamEnumerator(
            SplitEnumeratorContext<RedisStreamSplit> context, Collection<RedisStreamSplit> splits) {
        this.context = context;
        for (RedisStreamSplit s : splits) {
            unassigned.put(s.index, s);
        }
    }

    @Override
    public void start() {}

    @Override
    public void handleSplitRequest(int subtaskId, String requesterHostname) {}

    @Override
    public void addSplitsBack(List<RedisStreamSplit> splits, int subtaskId) {
        for (RedisStreamSplit s : splits) {
            unassigned.put(s.index, s);
        }
        if (context.registeredReaders().containsKey(subtaskId)) {
            assignTo(subtaskId);
        }
    }

    @Override
    public void addReader(int subtaskId) {
        assignTo(subtaskId);
    }

    private void assignTo(int subtaskId) {
        int parallelism = context.currentParallelism();
        Iterator<RedisStreamSplit> it = unassigned.values().iterator();
        while (it.hasNext()) {
            RedisStreamSplit split = it.next();
            if (split.index % parallelism == subtaskId) {
                context.assignSplit(split, subtaskId);
                it.remove();
            }
        }
        context.signalNoMoreSplits(subtaskId);
    }

    @Override
    public Collection<RedisStreamSplit> snapshotState(long checkpointId) {
        return new ArrayList<>(unassigned.values());
    }

    @Override
    public void close() {}

    /** Enumerator checkpoint: the splits not yet handed to a reader. */
    static final class StateSerializer
            implements SimpleVersionedSerializer<Collection<RedisStreamSplit>> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(Collection<RedisStreamSplit> splits) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                out.writeInt(splits.size());
                for (RedisStreamSplit s : splits) {
                    RedisStreamSplit.Serializer.write(s, out);
                }
            }
            return bytes.toByteArray();
        }

        @Override
        public Collection<RedisStreamSplit> deserialize(int version, byte[] data)
                throws IOException {
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
                int n = in.readInt();
                List<RedisStreamSplit> splits = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    splits.add(RedisStreamSplit.Serializer.read(version, in));
                }
                return splits;
            }
        }
    }
}
