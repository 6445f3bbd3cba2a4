package sps2.operators.io;

import java.nio.charset.StandardCharsets;
import java.util.Objects;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.schemas.TokenEvent;

/**
 * Writes token events to the tokens topic: key = request id (UTF-8), so all events of one request
 * land on one partition in emission order; value = raw Avro datum ({@link AvroCodec}).
 *
 * <p>The job bounds every field before it emits an event (see {@link RecordLimits}); should an event still
 * encode to more than {@link RecordLimits#MAX_EVENT_BYTES}, it is written with its id in the bounded form of
 * {@link RequestIds#eventId}, its text and message cut, rather than failing the sink and restarting the job.
 */
public final class TokenEventSerializer implements KafkaRecordSerializationSchema<TokenEvent> {

    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(TokenEventSerializer.class);
    private static final int MAX_TEXT_CHARS = 4096;

    private final String topic;

    public TokenEventSerializer(String topic) {
        this.topic = Objects.requireNonNull(topic, "topic");
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(TokenEvent event, KafkaSinkContext context, Long timestamp) {
        TokenEvent bounded = bounded(event);
        byte[] key = bounded.getRequestId().getBytes(StandardCharsets.UTF_8);
        return new ProducerRecord<>(topic, null, timestamp, key, AvroCodec.encode(bounded));
    }

    /** The event itself if it encodes within {@link RecordLimits#MAX_EVENT_BYTES}, otherwise a bounded copy. */
    static TokenEvent bounded(TokenEvent event) {
        int size = AvroCodec.encode(event).length;
        if (size <= RecordLimits.MAX_EVENT_BYTES) {
            return event;
        }
        TokenEvent cut = TokenEvent.newBuilder(event)
                .setRequestId(RequestIds.eventId(event.getRequestId()))
                .setText(RecordLimits.truncate(event.getText(), MAX_TEXT_CHARS))
                .setError(RecordLimits.message(event.getError()))
                .build();
        LOG.warn("A token event of request {} encodes to {} bytes, more than the {} allowed; it is written with its id, text and message cut.",
                cut.getRequestId(), size, RecordLimits.MAX_EVENT_BYTES);
        return cut;
    }
}
