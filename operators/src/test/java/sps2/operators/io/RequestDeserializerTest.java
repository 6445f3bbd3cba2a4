package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import org.apache.avro.Schema;
import org.apache.avro.SchemaBuilder;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

import sps2.schemas.DeadLetter;
import sps2.schemas.GenerateRequest;

class RequestDeserializerTest {

    private static final byte[] KEY = "k1".getBytes(StandardCharsets.UTF_8);

    /**
     * A later version of GenerateRequest: a new field "tenant" and no "priority" (it has a default
     * in the current schema, so old and new are compatible both ways).
     */
    private static Schema evolvedSchema() {
        return SchemaBuilder.record("GenerateRequest").namespace("sps2.schemas").fields()
                .requiredString("requestId")
                .name("prompt").type().nullable().stringType().noDefault()
                .requiredInt("maxTokens")
                .name("temperature").type().floatType().floatDefault(0f)
                .name("seed").type().longType().longDefault(0L)
                .name("tenant").type().stringType().stringDefault("")
                .endRecord();
    }

    private static byte[] evolvedSingleObject(Schema schema) throws IOException {
        GenericRecord record = new GenericData.Record(schema);
        record.put("requestId", "evolved-1");
        record.put("prompt", "Hello");
        record.put("maxTokens", 5);
        record.put("temperature", 0.5f);
        record.put("seed", 7L);
        record.put("tenant", "acme");
        return new BinaryMessageEncoder<GenericRecord>(GenericData.get(), schema).encode(record).array();
    }

    private static List<ParsedRequest> deserialize(RequestDeserializer deserializer, byte[] key, byte[] value) {
        List<ParsedRequest> out = new ArrayList<>();
        deserializer.deserialize(new ConsumerRecord<>("requests", 3, 1234L, key, value), new Collector<>() {
            @Override
            public void collect(ParsedRequest record) {
                out.add(record);
            }

            @Override
            public void close() {
            }
        });
        return out;
    }

    private static ParsedRequest one(RequestDeserializer deserializer, byte[] value) {
        List<ParsedRequest> out = deserialize(deserializer, KEY, value);
        assertEquals(1, out.size(), "every record yields exactly one parsed request");
        return out.get(0);
    }

    @Test
    void readsRawDatumAndSingleObject() {
        GenerateRequest request = Requests.text("r1", "Once upon a time").build();
        RequestDeserializer deserializer = new RequestDeserializer();
        long before = System.currentTimeMillis();
        ParsedRequest raw = one(deserializer, AvroCodec.encode(request));
        ParsedRequest single = one(deserializer, AvroCodec.encodeSingleObject(request));
        assertTrue(raw.isRequest());
        assertEquals(request, raw.request());
        assertEquals(request, single.request());
        assertTrue(raw.readTimestampMs() >= before && raw.readTimestampMs() <= System.currentTimeMillis());
    }

    @Test
    void readsSingleObjectsOfAnEvolvedWriterSchemaItWasGiven() throws IOException {
        Schema evolved = evolvedSchema();
        byte[] value = evolvedSingleObject(evolved);

        ParsedRequest parsed = one(new RequestDeserializer(List.of(evolved)), value);
        assertTrue(parsed.isRequest(), () -> parsed.deadLetter().getReason());
        GenerateRequest request = parsed.request();
        assertEquals("evolved-1", request.getRequestId());
        assertEquals("Hello", request.getPrompt());
        assertEquals(5, request.getMaxTokens());
        assertEquals(0.5f, request.getTemperature());
        assertEquals(7L, request.getSeed());
        assertEquals(1.0f, request.getTopP(), "fields the writer lacks take the current schema's defaults");
        assertEquals(0, request.getPriority());

        // Without the writer schema the fingerprint is unknown: a dead letter that says so.
        ParsedRequest unknown = one(new RequestDeserializer(), value);
        assertFalse(unknown.isRequest());
        assertTrue(unknown.deadLetter().getReason().contains("schema the job does not know"),
                unknown.deadLetter().getReason());
    }

    @Test
    void unreadableValuesBecomeDeadLettersWithTheRawRecord() {
        RequestDeserializer deserializer = new RequestDeserializer();
        byte[] garbage = "definitely not avro".getBytes(StandardCharsets.UTF_8);
        ParsedRequest parsed = one(deserializer, garbage);
        assertFalse(parsed.isRequest());
        assertNull(parsed.request());
        DeadLetter letter = parsed.deadLetter();
        assertEquals("requests", letter.getTopic());
        assertEquals(3, letter.getPartition());
        assertEquals(1234L, letter.getOffset());
        assertArrayEquals(KEY, bytes(letter.getKey()));
        assertArrayEquals(garbage, bytes(letter.getValue()));
        assertTrue(letter.getReason().startsWith("The value (19 bytes) is not an Avro GenerateRequest"), letter.getReason());
        assertEquals(parsed.readTimestampMs(), letter.getTimestampMs());
    }

    @Test
    void tombstonesEmptyTruncatedAndOverlongValuesAreDeadLetters() {
        RequestDeserializer deserializer = new RequestDeserializer();
        byte[] good = AvroCodec.encode(Requests.text("r2", "hello").build());

        ParsedRequest tombstone = deserialize(deserializer, null, null).get(0);
        assertTrue(tombstone.deadLetter().getReason().contains("tombstone"));
        assertNull(tombstone.deadLetter().getKey());
        assertNull(tombstone.deadLetter().getValue());
        assertEquals(-1, tombstone.deadLetter().getValueLength());
        assertNull(tombstone.deadLetter().getValueSha256());

        assertTrue(one(deserializer, new byte[0]).deadLetter().getReason().contains("empty"));
        assertFalse(one(deserializer, Arrays.copyOf(good, good.length - 3)).isRequest());
        assertTrue(one(deserializer, Arrays.copyOf(good, good.length + 2)).deadLetter().getReason().contains("unread bytes"));
        // A single-object header with a fingerprint of nothing known.
        byte[] bogusHeader = {(byte) 0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0};
        assertFalse(one(deserializer, bogusHeader).isRequest());
    }

    @Test
    void hugeDeclaredLengthsAreRejectedWithoutAllocating() {
        // requestId declared as a string of 1 GiB, followed by nothing.
        ByteArrayOutputStream string = new ByteArrayOutputStream();
        writeVarLong(string, 1L << 30);
        // promptTokens declared as an array of 2^30 ints, followed by a single int.
        ByteArrayOutputStream array = new ByteArrayOutputStream();
        array.write(2); // requestId "a"
        array.write('a');
        array.write(0); // model: null branch
        array.write(0); // prompt: null branch
        array.write(2); // promptTokens: array branch
        writeVarLong(array, 1L << 30);
        array.write(2);

        RequestDeserializer deserializer = new RequestDeserializer();
        long start = System.nanoTime();
        for (int i = 0; i < 100; i++) {
            assertTrue(one(deserializer, string.toByteArray()).deadLetter().getReason().contains("EOFException"));
            assertTrue(one(deserializer, array.toByteArray()).deadLetter().getReason().contains("EOFException"));
        }
        // Materialising the declared sizes would take gigabytes and up to seconds per value.
        long elapsedMs = (System.nanoTime() - start) / 1_000_000;
        assertTrue(elapsedMs < 2_000, "200 crafted values took " + elapsedMs + " ms");
    }

    private static void writeVarLong(ByteArrayOutputStream out, long value) {
        long zigzag = (value << 1) ^ (value >> 63);
        while ((zigzag & ~0x7FL) != 0) {
            out.write((int) ((zigzag & 0x7F) | 0x80));
            zigzag >>>= 7;
        }
        out.write((int) zigzag);
    }

    @Test
    void neverThrowsOnRandomOrMutatedInput() {
        RequestDeserializer deserializer = new RequestDeserializer();
        byte[] good = AvroCodec.encode(Requests.tokens("r3", List.of(1, 2, 3)).setStopStrings(List.of("x")).build());
        Random random = new Random(1);
        int requests = 0;
        for (int i = 0; i < 5000; i++) {
            byte[] value;
            if (i % 2 == 0) {
                value = new byte[random.nextInt(64)];
                random.nextBytes(value);
            } else {
                value = good.clone();
                for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                    value[random.nextInt(value.length)] = (byte) random.nextInt(256);
                }
            }
            ParsedRequest parsed = one(deserializer, value);
            if (parsed.isRequest()) {
                requests++;
            } else {
                assertArrayEquals(value, bytes(parsed.deadLetter().getValue()));
            }
        }
        assertTrue(requests < 5000, "random bytes must not all parse");
    }

    @Test
    void anUnreadableRecordOfTwoMegabytesBecomesABoundedDeadLetter() throws IOException {
        byte[] value = new byte[2 << 20];
        new Random(7).nextBytes(value);
        value[0] = 0x7F; // not the single-object marker, and an id length no value backs
        byte[] key = new byte[5000];
        ParsedRequest parsed = one(new RequestDeserializer(), key, value);
        DeadLetter letter = parsed.deadLetter();
        assertTrue(letter.getReason().contains("more than the " + RecordLimits.DEFAULT_MAX_REQUEST_BYTES), letter.getReason());
        assertEquals(value.length, letter.getValueLength());
        assertEquals(key.length, letter.getKeyLength());
        assertArrayEquals(Arrays.copyOf(value, RecordLimits.DEAD_LETTER_VALUE_BYTES), bytes(letter.getValue()));
        assertArrayEquals(Arrays.copyOf(key, RecordLimits.DEAD_LETTER_KEY_BYTES), bytes(letter.getKey()));
        assertArrayEquals(RequestIds.sha256(value), bytes(letter.getValueSha256()));
        assertNull(letter.getRequestId(), "no id can be read from random bytes");
        byte[] written = new DeadLetterSerializer("dlq").serialize(letter, null, null).value();
        assertTrue(written.length < RecordLimits.MAX_EVENT_BYTES, written.length + " bytes");
        assertEquals(letter, AvroCodec.decodeDeadLetter(written));
    }

    @Test
    void aReadableRequestOverTheSizeLimitIsNotParsedButNamesItsIdForTheRejection() {
        String prompt = "Once upon a time ".repeat(200);
        GenerateRequest request = Requests.text("big-1", prompt).build();
        byte[] raw = AvroCodec.encode(request);
        byte[] single = AvroCodec.encodeSingleObject(request);
        RequestDeserializer small = new RequestDeserializer(List.of(), 1000);
        assertEquals("big-1", one(small, raw).deadLetter().getRequestId());
        assertEquals("big-1", one(small, single).deadLetter().getRequestId());
        assertTrue(one(small, raw).deadLetter().getReason().contains("request 'big-1' was rejected"));
        assertTrue(one(new RequestDeserializer(List.of(), raw.length), raw).isRequest(), "a value at the limit is read");

        String longId = "i".repeat(1_200_000);
        byte[] longIdRaw = AvroCodec.encode(Requests.text(longId, "hi").build());
        DeadLetter letter = one(new RequestDeserializer(), longIdRaw).deadLetter();
        assertEquals(RequestIds.eventId(longId), letter.getRequestId());
        assertTrue(letter.getReason().length() <= RecordLimits.MAX_MESSAGE_CHARS);
    }

    @Test
    void parsingStopsAtTheSizeLimitBeforeTheBytesAreRead() {
        byte[] huge = AvroCodec.encode(Requests.text("huge", "a".repeat(10 << 20)).build());
        RequestDeserializer deserializer = new RequestDeserializer();
        long start = System.nanoTime();
        for (int i = 0; i < 20; i++) {
            assertFalse(one(deserializer, huge).isRequest());
        }
        long perRecordMs = (System.nanoTime() - start) / 20 / 1_000_000;
        // Hashing 10 MB takes a few ms; the reader is held up by no parse and no tokenizer.
        assertTrue(perRecordMs < 200, perRecordMs + " ms per 10 MB record");
    }

    private static ParsedRequest one(RequestDeserializer deserializer, byte[] key, byte[] value) {
        List<ParsedRequest> out = deserialize(deserializer, key, value);
        assertEquals(1, out.size());
        return out.get(0);
    }

    @Test
    void producedTypeIsTheExplicitTypeInfo() {
        assertSame(ParsedRequestTypeInfo.INSTANCE, new RequestDeserializer().getProducedType());
    }

    private static byte[] bytes(ByteBuffer buffer) {
        ByteBuffer view = buffer.duplicate();
        byte[] bytes = new byte[view.remaining()];
        view.get(bytes);
        return bytes;
    }
}
