package sps2.operators.io;

import java.nio.ByteBuffer;
import java.util.Objects;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.schemas.DeadLetter;

/**
 * Writes dead letters to the dead-letter topic: key = the original record's key as the dead letter keeps it
 * (its first {@link RecordLimits#DEAD_LETTER_KEY_BYTES} bytes; null if it had none), value = raw Avro datum of
 * the {@link DeadLetter} ({@link AvroCodec}).
 *
 * <p>Dead letters are bounded when they are made ({@link RequestDeserializer}); one that still encodes to more
 * than {@link RecordLimits#MAX_EVENT_BYTES} is written without its raw bytes (lengths and hash stay) rather
 * than failing the sink and restarting the job.
 */
public final class DeadLetterSerializer implements KafkaRecordSerializationSchema<DeadLetter> {

    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(DeadLetterSerializer.class);

    private final String topic;

    public DeadLetterSerializer(String topic) {
        this.topic = Objects.requireNonNull(topic, "topic");
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(DeadLetter deadLetter, KafkaSinkContext context, Long timestamp) {
        byte[] value = AvroCodec.encode(deadLetter);
        DeadLetter written = deadLetter;
        if (value.length > RecordLimits.MAX_EVENT_BYTES) {
            written = DeadLetter.newBuilder(deadLetter).setKey(null).setValue(null)
                    .setReason(RecordLimits.message(deadLetter.getReason()))
                    .setRequestId(deadLetter.getRequestId() == null ? null : RequestIds.eventId(deadLetter.getRequestId()))
                    .build();
            LOG.warn("The dead letter of {}-{}@{} encodes to {} bytes, more than the {} allowed; it is written without the raw bytes.",
                    deadLetter.getTopic(), deadLetter.getPartition(), deadLetter.getOffset(), value.length, RecordLimits.MAX_EVENT_BYTES);
            value = AvroCodec.encode(written);
        }
        return new ProducerRecord<>(topic, null, timestamp, bytes(written.getKey()), value);
    }

    private static byte[] bytes(ByteBuffer buffer) {
        if (buffer == null) {
            return null;
        }
        ByteBuffer view = buffer.duplicate();
        byte[] bytes = new byte[view.remaining()];
        view.get(bytes);
        return bytes;
    }
}
