package sps2.job.embedded;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class EmbeddedKafkaTest {

    @Test
    @Timeout(120)
    void producesAndConsumesThroughARealBroker() throws Exception {
        Path directory;
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            directory = kafka.directory();
            assertTrue(Files.isDirectory(directory));
            assertTrue(kafka.bootstrapServers().matches("localhost:\\d+"), kafka.bootstrapServers());

            kafka.createTopics(3, "greetings");
            kafka.createTopics(3, "greetings"); // idempotent
            assertEquals(Set.of("greetings"), kafka.admin().listTopics().names().get());

            Properties producerProps = new Properties();
            producerProps.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            RecordMetadata sent;
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps, new ByteArraySerializer(), new ByteArraySerializer())) {
                sent = producer.send(new ProducerRecord<>("greetings", "k".getBytes(StandardCharsets.UTF_8),
                        "hello".getBytes(StandardCharsets.UTF_8))).get();
            }

            Properties consumerProps = new Properties();
            consumerProps.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            consumerProps.setProperty(ConsumerConfig.GROUP_ID_CONFIG, "test-group");
            consumerProps.setProperty(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                consumer.subscribe(List.of("greetings"));
                ConsumerRecord<byte[], byte[]> received = null;
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (received == null && System.nanoTime() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                        received = record;
                    }
                }
                assertTrue(received != null, "no record within 60 s");
                assertEquals(sent.partition(), received.partition());
                assertEquals(sent.offset(), received.offset());
                assertArrayEquals("hello".getBytes(StandardCharsets.UTF_8), received.value());
            }
        }
        assertFalse(Files.exists(directory), "the broker's folder is deleted on close");
    }
}
