package sps2.job.client;

import java.nio.charset.StandardCharsets;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import sps2.operators.io.AvroCodec;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/** Writes token events the way the job does (key = request id), for client tests. */
final class TokenTopic implements AutoCloseable {

    private final KafkaProducer<byte[], byte[]> producer;
    private final String topic;

    TokenTopic(String bootstrapServers, String topic) {
        Properties props = new Properties();
        props.setProperty(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.setProperty(ProducerConfig.LINGER_MS_CONFIG, "0");
        this.producer = new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer());
        this.topic = topic;
    }

    static TokenEvent token(String requestId, int index, String text, boolean finished, FinishReason reason) {
        return TokenEvent.newBuilder().setRequestId(requestId).setIndex(index).setTokenId(index).setText(text)
                .setFinished(finished).setFinishReason(reason).build();
    }

    static TokenEvent rejection(String requestId, String error) {
        return TokenEvent.newBuilder().setRequestId(requestId).setIndex(-1).setFinished(true)
                .setFinishReason(FinishReason.REJECTED).setError(error).build();
    }

    void write(TokenEvent event) throws Exception {
        producer.send(new ProducerRecord<>(topic, event.getRequestId().getBytes(StandardCharsets.UTF_8), AvroCodec.encode(event))).get();
    }

    @Override
    public void close() {
        producer.close();
    }
}
