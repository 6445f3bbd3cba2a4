package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;

import sps2.schemas.DeadLetter;
import sps2.schemas.TokenEvent;

class KafkaSerializersTest {

    @Test
    void tokenEventsAreKeyedByRequestId() throws IOException {
        TokenEvent event = TokenEvent.newBuilder().setRequestId("req-ü").setIndex(0).setTokenId(5).setText("Once").build();
        ProducerRecord<byte[], byte[]> record = new TokenEventSerializer("tokens").serialize(event, null, 17L);
        assertEquals("tokens", record.topic());
        assertNull(record.partition());
        assertEquals(17L, record.timestamp());
        assertArrayEquals("req-ü".getBytes(StandardCharsets.UTF_8), record.key());
        assertEquals(event, AvroCodec.decodeToken(record.value()));
    }

    @Test
    void deadLettersKeepTheOriginalKey() throws IOException {
        DeadLetter letter = DeadLetter.newBuilder().setTopic("requests").setPartition(0).setOffset(5)
                .setKey(ByteBuffer.wrap(new byte[] {9, 8, 7})).setValue(ByteBuffer.wrap(new byte[] {1})).setReason("bad").build();
        ProducerRecord<byte[], byte[]> record = new DeadLetterSerializer("dlq").serialize(letter, null, null);
        assertEquals("dlq", record.topic());
        assertArrayEquals(new byte[] {9, 8, 7}, record.key());
        assertEquals(letter, AvroCodec.decodeDeadLetter(record.value()));

        letter.setKey(null);
        assertNull(new DeadLetterSerializer("dlq").serialize(letter, null, null).key());
    }

    @Test
    void anEventThatWouldOutgrowTheLimitIsWrittenCutRatherThanFailingTheSink() throws IOException {
        String id = "q".repeat(600_000);
        TokenEvent event = TokenEvent.newBuilder().setRequestId(id).setIndex(-1).setFinished(true)
                .setError("e".repeat(200_000)).build();
        ProducerRecord<byte[], byte[]> record = new TokenEventSerializer("tokens").serialize(event, null, null);
        assertTrue(record.value().length <= RecordLimits.MAX_EVENT_BYTES, record.value().length + " bytes");
        TokenEvent written = AvroCodec.decodeToken(record.value());
        assertEquals(RequestIds.eventId(id), written.getRequestId());
        assertArrayEquals(RequestIds.eventId(id).getBytes(StandardCharsets.UTF_8), record.key());
        assertTrue(written.getFinished());

        DeadLetter letter = DeadLetter.newBuilder().setTopic("requests").setPartition(0).setOffset(5)
                .setValue(ByteBuffer.wrap(new byte[200_000])).setValueLength(200_000).setReason("r".repeat(100_000)).build();
        ProducerRecord<byte[], byte[]> dead = new DeadLetterSerializer("dlq").serialize(letter, null, null);
        assertTrue(dead.value().length <= RecordLimits.MAX_EVENT_BYTES, dead.value().length + " bytes");
        DeadLetter writtenLetter = AvroCodec.decodeDeadLetter(dead.value());
        assertEquals(200_000, writtenLetter.getValueLength());
        assertEquals(5, writtenLetter.getOffset());
    }
}
