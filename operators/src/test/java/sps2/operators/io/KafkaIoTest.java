package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.junit.jupiter.api.Test;

class KafkaIoTest {

    @Test
    void topicsHaveDefaultsAndPrefixes() {
        assertEquals(List.of("sps2-requests", "sps2-tokens", "sps2-dead-letters", "sps2-feedback"), KafkaTopics.defaults().all());
        assertEquals("t1-sps2-tokens", KafkaTopics.withPrefix("t1-").tokens());
    }

    @Test
    void clientsAreTunedForLatency() {
        assertEquals("0", KafkaIo.latencyProducerProperties().getProperty(ProducerConfig.LINGER_MS_CONFIG));
        assertEquals("1", KafkaIo.latencyConsumerProperties().getProperty(ConsumerConfig.FETCH_MIN_BYTES_CONFIG));
        assertEquals(String.valueOf(KafkaIo.FETCH_MAX_WAIT_MS),
                KafkaIo.latencyConsumerProperties().getProperty(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG));
    }

    @Test
    void buildsSourceAndSinks() {
        KafkaIo io = new KafkaIo("localhost:9092", "sps2", KafkaTopics.defaults());
        assertSame(ParsedRequestTypeInfo.INSTANCE, io.requestSource().getProducedType());
        io.tokenSink();
        io.deadLetterSink();
    }

    @Test
    void producersAllowMoreThanAnyRecordTheJobWritesAndTheSourceLeavesCommitsToFinishedOffsets() {
        int maxRequestSize = Integer.parseInt(KafkaIo.latencyProducerProperties().getProperty(ProducerConfig.MAX_REQUEST_SIZE_CONFIG));
        assertTrue(maxRequestSize >= 4 * RecordLimits.MAX_EVENT_BYTES, "room for a batch of the largest events: " + maxRequestSize);
        KafkaIo io = new KafkaIo("localhost:9092", "sps2", KafkaTopics.defaults()).withMaxRequestBytes(1234);
        RequestSource source = io.requestSource();
        assertEquals(1234, io.finishedOffsets(1234).maxRequestBytes());
        assertEquals("sps2", io.finishedOffsets(1234).groupId());
        assertNotNull(source.kafka());
    }
}
