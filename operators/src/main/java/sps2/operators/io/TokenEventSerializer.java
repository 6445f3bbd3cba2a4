package sps2.operators.io;

import java.nio.charset.StandardCharsets;
import java.util.Objects;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;

import sps2.schemas.TokenEvent;

/**
 * Writes token events to the tokens topic: key = request id (UTF-8), so all events of one request
 * land on one partition in emission order; value = raw Avro datum ({@link AvroCodec}).
 */
public final class TokenEventSerializer implements KafkaRecordSerializationSchema<TokenEvent> {

    private static final long serialVersionUID = 1L;

    private final String topic;

    public TokenEventSerializer(String topic) {
        this.topic = Objects.requireNonNull(topic, "topic");
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(TokenEvent event, KafkaSinkContext context, Long timestamp) {
        byte[] key = event.getRequestId().getBytes(StandardCharsets.UTF_8);
        return new ProducerRecord<>(topic, null, timestamp, key, AvroCodec.encode(event));
    }
}
