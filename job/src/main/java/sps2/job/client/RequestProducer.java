package sps2.job.client;

import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import sps2.operators.io.AvroCodec;
import sps2.operators.io.KafkaIo;
import sps2.schemas.GenerateRequest;

/**
 * Sends {@link GenerateRequest}s to the requests topic: key = request id, value = raw Avro datum,
 * with the latency-tuned producer settings of {@link KafkaIo}. Thread-safe.
 */
public final class RequestProducer implements AutoCloseable {

    private final KafkaProducer<byte[], byte[]> producer;
    private final String topic;

    public RequestProducer(String bootstrapServers, String topic) {
        this.topic = Objects.requireNonNull(topic, "topic");
        Properties props = KafkaIo.latencyProducerProperties();
        props.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.setProperty(ProducerConfig.CLIENT_ID_CONFIG, "sps2-client-requests");
        this.producer = new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
    }

    /** Sends a request; the future completes when the broker has acknowledged it. */
    public CompletableFuture<RecordMetadata> send(GenerateRequest request) {
        return send(request.getRequestId(), AvroCodec.encode(request));
    }

    /** Sends an already encoded value (for example an Avro single object, or bytes to test the dead-letter path). */
    public CompletableFuture<RecordMetadata> send(String key, byte[] value) {
        CompletableFuture<RecordMetadata> acked = new CompletableFuture<>();
        byte[] keyBytes = key == null ? null : key.getBytes(StandardCharsets.UTF_8);
        producer.send(new ProducerRecord<>(topic, keyBytes, value), (metadata, error) -> {
            if (error != null) {
                acked.completeExceptionally(error);
            } else {
                acked.complete(metadata);
            }
        });
        return acked;
    }

    public void flush() {
        producer.flush();
    }

    @Override
    public void close() {
        producer.close();
    }
}
