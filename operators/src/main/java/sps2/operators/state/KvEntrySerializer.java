package sps2.operators.state;

import java.io.IOException;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Flink serializer of {@link KvEntry}: a version byte, then the block table, token ids, positions and
 * slots as length-prefixed int arrays, then the K and V values as length-prefixed float arrays (empty
 * unless the job keeps KV values for snapshot recovery).
 */
public final class KvEntrySerializer extends TypeSerializerSingleton<KvEntry> {
    public static final KvEntrySerializer INSTANCE = new KvEntrySerializer();
    private static final int VERSION = 2;

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
        writeInts(e.tokens(), out);
        writeInts(e.positions(), out);
        writeInts(e.slots(), out);
        writeFloats(e.k(), out);
        writeFloats(e.v(), out);
    }

    @Override
    public KvEntry deserialize(DataInputView in) throws IOException {
        int version = in.readByte();
        if (version != VERSION) {
            throw new IOException("Unknown KV entry format version " + version);
        }
        return new KvEntry(readInts(in), readInts(in), readInts(in), readInts(in), readFloats(in), readFloats(in));
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

    private static void writeFloats(float[] v, DataOutputView out) throws IOException {
        out.writeInt(v.length);
        for (float x : v) {
            out.writeFloat(x);
        }
    }

    private static float[] readFloats(DataInputView in) throws IOException {
        int n = in.readInt();
        if (n < 0) {
            throw new IOException("Negative array length " + n + " in a KV entry");
        }
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = in.readFloat();
        }
        return v;
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
