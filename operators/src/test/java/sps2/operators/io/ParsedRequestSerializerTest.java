package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.junit.jupiter.api.Test;

import sps2.schemas.DeadLetter;
import sps2.schemas.TokenEvent;

class ParsedRequestSerializerTest {

    private static ParsedRequest request() {
        return ParsedRequest.of(Requests.text("r1", "Once upon a time").build(), 1_700_000_000_000L);
    }

    private static ParsedRequest deadLetter() {
        DeadLetter letter = DeadLetter.newBuilder().setTopic("requests").setPartition(1).setOffset(2)
                .setKey(null).setValue(ByteBuffer.wrap(new byte[] {1, 2, 3})).setReason("bad").setTimestampMs(5).build();
        return ParsedRequest.dead(letter, 5L);
    }

    @Test
    void roundTripsBothKindsAndCopiesSerializedForm() throws Exception {
        TypeSerializer<ParsedRequest> serializer = ParsedRequestSerializer.INSTANCE;
        DataOutputSerializer out = new DataOutputSerializer(64);
        for (ParsedRequest record : List.of(request(), deadLetter())) {
            serializer.serialize(record, out);
        }
        byte[] written = out.getCopyOfBuffer();

        DataInputDeserializer in = new DataInputDeserializer(written);
        assertEquals(request(), serializer.deserialize(in));
        assertEquals(deadLetter(), serializer.deserialize(in));
        assertEquals(0, in.available());

        DataInputDeserializer source = new DataInputDeserializer(written);
        DataOutputSerializer copy = new DataOutputSerializer(64);
        serializer.copy(source, copy);
        serializer.copy(source, copy);
        assertEquals(java.util.Arrays.toString(written), java.util.Arrays.toString(copy.getCopyOfBuffer()));
    }

    @Test
    void copyIsDeep() {
        ParsedRequest original = request();
        ParsedRequest copy = ParsedRequestSerializer.INSTANCE.copy(original);
        assertEquals(original, copy);
        assertNotSame(original.request(), copy.request());
        copy.request().setPrompt("changed");
        assertEquals("Once upon a time", original.request().getPrompt());
    }

    @Test
    void snapshotRestoresACompatibleSerializer() throws Exception {
        TypeSerializerSnapshot<ParsedRequest> snapshot = ParsedRequestSerializer.INSTANCE.snapshotConfiguration();
        DataOutputSerializer out = new DataOutputSerializer(16);
        snapshot.writeSnapshot(out);
        ParsedRequestSerializer.Snapshot restored = new ParsedRequestSerializer.Snapshot();
        restored.readSnapshot(snapshot.getCurrentVersion(), new DataInputDeserializer(out.getCopyOfBuffer()), getClass().getClassLoader());
        assertEquals(ParsedRequestSerializer.INSTANCE, restored.restoreSerializer());
        TypeSerializerSchemaCompatibility<ParsedRequest> compatibility =
                ParsedRequestSerializer.INSTANCE.snapshotConfiguration().resolveSchemaCompatibility(restored);
        assertEquals(true, compatibility.isCompatibleAsIs());
    }

    @Test
    void exactlyOneOfRequestAndDeadLetter() {
        assertThrows(IllegalArgumentException.class, () -> new ParsedRequest(null, null, 0L));
        assertThrows(IllegalArgumentException.class,
                () -> new ParsedRequest(request().request(), deadLetter().deadLetter(), 0L));
    }

    @Test
    void typeExtractionFindsTheExplicitTypeInfo() {
        assertSame(ParsedRequestTypeInfo.INSTANCE, TypeInformation.of(ParsedRequest.class));
    }

    /** A pipeline that carries ParsedRequest and TokenEvent with generic (Kryo) types forbidden. */
    @Test
    void pipelineRunsWithGenericTypesDisabled() throws Exception {
        Configuration config = new Configuration();
        config.set(PipelineOptions.GENERIC_TYPES, false);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(config);
        env.setParallelism(2);
        DataStream<ParsedRequest> parsed = env.fromData(ParsedRequestTypeInfo.INSTANCE, request(), deadLetter())
                .rebalance()
                .map(p -> p)
                .returns(ParsedRequest.class);
        DataStream<TokenEvent> events = parsed
                .map(p -> TokenEvent.newBuilder().setRequestId(p.isRequest() ? p.request().getRequestId() : "dead")
                        .setIndex(0).build())
                .returns(TokenEvent.class)
                .rebalance();
        List<String> ids = new ArrayList<>();
        events.executeAndCollect(10).forEach(e -> ids.add(e.getRequestId()));
        ids.sort(null);
        assertEquals(List.of("dead", "r1"), ids);

        // Control: the same setting does reject a type that would need Kryo.
        StreamExecutionEnvironment strict = StreamExecutionEnvironment.getExecutionEnvironment(config);
        strict.fromData(ParsedRequestTypeInfo.INSTANCE, request())
                .map(p -> new StringBuilder(p.request().getRequestId()))
                .returns(StringBuilder.class)
                .print();
        assertThrows(UnsupportedOperationException.class, strict::getStreamGraph);
    }
}
