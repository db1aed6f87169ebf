package io.flashrec.flink;

import org.apache.flink.api.connector.source.SourceSplit;
import org.apache.flink.core.io.SimpleVersionedSerializer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;

/**
 * One consumer of the consumer group. Its checkpointed state is the consumer name (which owns
 * the pending-entries list in Redis) and the id of the last entry emitted before the checkpoint.
 */
public final class RedisStreamSplit implements SourceSplit {
    final int index;
    final String consumer;
    final String lastEmittedId;

    RedisStreamSplit(int index, String consumer, String lastEmittedId) {
        this.index = index;
        this.consumer = consumer;
        this.lastEmittedId = lastEmittedId;
    }

    @Override
    public String splitId() {
        return consumer;
    }

    @Override
    public String toString() {
        return "RedisStreamSplit{" + consumer + ", lastEmitted=" + lastEmittedId + "}";
    }

    /** Mutable per-split state owned by the reader's main thread (updated on each emit). */
    static final class State {
        final int index;
        final String consumer;
        String lastEmittedId;

        State(RedisStreamSplit split) {
            this.index = split.index;
            this.consumer = split.consumer;
            this.lastEmittedId = split.lastEmittedId;
        }

        RedisStreamSplit toSplit() {
            return new RedisStreamSplit(index, consumer, lastEmittedId);
        }
    }

    /** Versioned binary form of a split (used in reader and enumerator checkpoints). */
    static final class Serializer implements SimpleVersionedSerializer<RedisStreamSplit> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(RedisStreamSplit split) throws IOException {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            try (DataOutputStream out = new DataOutputStream(bytes)) {
                write(split, out);
            }
            return bytes.toByteArray();
        }

        @Override
        public RedisStreamSplit deserialize(int version, byte[] data) throws IOException {
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
                return read(version, in);
            }
        }

        static void write(RedisStreamSplit split, DataOutputStream out) throws IOException {
            out.writeInt(split.index);
            out.writeUTF(split.consumer);
            out.writeUTF(split.lastEmittedId);
        }

        static RedisStreamSplit read(int version, DataInputStream in) throws IOException {
            if (version != 1) {
                throw new IOException("unknown RedisStreamSplit version " + version);
            }
            return new RedisStreamSplit(in.readInt(), in.readUTF(), in.readUTF());
        }
    }
}
