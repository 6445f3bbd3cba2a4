package sps2.operators.io;

import java.io.IOException;

import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.base.TypeSerializerSingleton;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

import sps2.schemas.DeadLetter;
import sps2.schemas.GenerateRequest;

/**
 * Flink serializer for {@link ParsedRequest}.
 *
 * <p>Layout: one tag byte (0 = request, 1 = dead letter), the read timestamp (long), the length of
 * the Avro datum (int), then the raw Avro binary datum of the current schema ({@link AvroCodec}).
 * The layout does not carry the writer schema, so it suits records in flight between operators,
 * not long-lived state across schema changes.
 */
public final class ParsedRequestSerializer extends TypeSerializerSingleton<ParsedRequest> {

    private static final long serialVersionUID = 1L;

    public static final ParsedRequestSerializer INSTANCE = new ParsedRequestSerializer();

    private static final byte TAG_REQUEST = 0;
    private static final byte TAG_DEAD_LETTER = 1;

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public ParsedRequest createInstance() {
        // A placeholder: ParsedRequest is immutable and deserialize never reuses it.
        return ParsedRequest.dead(DeadLetter.newBuilder().setTopic("").setPartition(0).setOffset(0L).setReason("").build(), 0L);
    }

    @Override
    public ParsedRequest copy(ParsedRequest from) {
        // Avro builders deep-copy the record they start from.
        if (from.isRequest()) {
            return ParsedRequest.of(GenerateRequest.newBuilder(from.request()).build(), from.readTimestampMs());
        }
        return ParsedRequest.dead(DeadLetter.newBuilder(from.deadLetter()).build(), from.readTimestampMs());
    }

    @Override
    public ParsedRequest copy(ParsedRequest from, ParsedRequest reuse) {
        return copy(from);
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(ParsedRequest record, DataOutputView target) throws IOException {
        byte[] datum = record.isRequest() ? AvroCodec.encode(record.request()) : AvroCodec.encode(record.deadLetter());
        target.writeByte(record.isRequest() ? TAG_REQUEST : TAG_DEAD_LETTER);
        target.writeLong(record.readTimestampMs());
        target.writeInt(datum.length);
        target.write(datum);
    }

    @Override
    public ParsedRequest deserialize(DataInputView source) throws IOException {
        byte tag = source.readByte();
        long readTimestampMs = source.readLong();
        byte[] datum = new byte[source.readInt()];
        source.readFully(datum);
        return switch (tag) {
            case TAG_REQUEST -> ParsedRequest.of(AvroCodec.decodeRequest(datum), readTimestampMs);
            case TAG_DEAD_LETTER -> ParsedRequest.dead(AvroCodec.decodeDeadLetter(datum), readTimestampMs);
            default -> throw new IOException("Corrupt ParsedRequest stream: unknown tag " + tag + ".");
        };
    }

    @Override
    public ParsedRequest deserialize(ParsedRequest reuse, DataInputView source) throws IOException {
        return deserialize(source);
    }

    @Override
    public void copy(DataInputView source, DataOutputView target) throws IOException {
        target.writeByte(source.readByte());
        target.writeLong(source.readLong());
        int length = source.readInt();
        target.writeInt(length);
        target.write(source, length);
    }

    @Override
    public TypeSerializerSnapshot<ParsedRequest> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Serializer snapshot; public with a no-argument constructor so Flink can restore it. */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<ParsedRequest> {
        public Snapshot() {
            super(() -> INSTANCE);
        }
    }
}
