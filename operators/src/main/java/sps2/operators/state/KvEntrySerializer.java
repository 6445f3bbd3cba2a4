package sps2.operators.state;

import java.io.IOException;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Flink serializer of {@link KvEntry}: a version byte, then the block table, the token count, and the
 * token ids and positions as varint-free int arrays. Version 1 is the only format so far.
 */
public final class KvEntrySerializer extends TypeSerializerSingleton<KvEntry> {
    public static final KvEntrySerializer INSTANCE = new KvEntrySerializer();
    private static final int VERSION = 1;

    @Override
    public boolean isImmutableType() {
        return true;
    }

    @Override
    public KvEntry createInstance() {
        return KvEntry.empty();
    }

    @Override
    public KvEntry copy(KvEntry from) {
        return from;
    }

    @Override
    public KvEntry copy(KvEntry from, KvEntry reuse) {
        return from;
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(KvEntry e, DataOutputView out) throws IOException {
        out.writeByte(VERSION);
        writeInts(e.blockTable(), out);
        out.writeInt(e.tokenCount());
        writeInts(e.tokens(), out);
        writeInts(e.positions(), out);
    }

    @Override
    public KvEntry deserialize(DataInputView in) throws IOException {
        int version = in.readByte();
        if (version != VERSION) {
            throw new IOException("Unknown KV entry format version " + version);
        }
        int[] table = readInts(in);
        int count = in.readInt();
        return new KvEntry(table, count, readInts(in), readInts(in));
    }

    @Override
    public KvEntry deserialize(KvEntry reuse, DataInputView in) throws IOException {
        return deserialize(in);
    }

    @Override
    public void copy(DataInputView in, DataOutputView out) throws IOException {
        serialize(deserialize(in), out);
    }

    @Override
    public TypeSerializerSnapshot<KvEntry> snapshotConfiguration() {
        return new Snapshot();
    }

    private static void writeInts(int[] v, DataOutputView out) throws IOException {
        out.writeInt(v.length);
        for (int x : v) {
            out.writeInt(x);
        }
    }

    private static int[] readInts(DataInputView in) throws IOException {
        int n = in.readInt();
        if (n < 0) {
            throw new IOException("Negative array length " + n + " in a KV entry");
        }
        int[] v = new int[n];
        for (int i = 0; i < n; i++) {
            v[i] = in.readInt();
        }
        return v;
    }

    /** Snapshot for schema compatibility checks on restore. */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<KvEntry> {
        public Snapshot() {
            super(() -> INSTANCE);
        }
    }
}
