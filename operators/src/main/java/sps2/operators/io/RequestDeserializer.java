package sps2.operators.io;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

import org.apache.avro.Schema;
import org.apache.avro.message.MissingSchemaException;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.schemas.DeadLetter;
import sps2.schemas.GenerateRequest;

/**
 * Reads records of the requests topic into {@link ParsedRequest}s and never throws: a record whose
 * value is not a readable {@link GenerateRequest} becomes a dead letter with its coordinates, the reason,
 * and a bounded copy of the raw record (prefixes of key and value, their lengths and the value's SHA-256:
 * see {@link RecordLimits}), so bad input never stops the job and no dead letter outgrows a Kafka record.
 *
 * <p>A value larger than {@code maxRequestBytes} is not parsed (parsing and tokenizing megabytes would
 * hold up every request behind it): it becomes a dead letter at once, and when its request id can be
 * read from its first bytes the dead letter names the id the client's rejection goes to
 * ({@link DeadLetter#getRequestId()}, see {@link RequestIds#eventId}).
 *
 * <p>Accepted encodings (see {@link AvroCodec}): a raw Avro binary datum of the current schema,
 * or Avro's single-object encoding whose fingerprint names the current schema or one of the writer
 * schemas given to the constructor (older or newer versions of {@code GenerateRequest}, resolved
 * to the current one).
 */
public final class RequestDeserializer implements KafkaRecordDeserializationSchema<ParsedRequest> {

    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(RequestDeserializer.class);

    /** Writer schemas as JSON (Avro's Schema is not serializable on every version). */
    private final List<String> writerSchemasJson;
    private final int maxRequestBytes;

    private transient AvroCodec.RequestReader reader;

    /** A deserializer that reads raw datums and single objects of the current schema only. */
    public RequestDeserializer() {
        this(List.of());
    }

    /** A deserializer that also reads single objects written with any of the given schemas. */
    public RequestDeserializer(List<Schema> writerSchemas) {
        this(writerSchemas, RecordLimits.DEFAULT_MAX_REQUEST_BYTES);
    }

    /**
     * A deserializer that also reads single objects written with any of the given schemas and leaves
     * values larger than {@code maxRequestBytes} unparsed.
     */
    public RequestDeserializer(List<Schema> writerSchemas, int maxRequestBytes) {
        if (maxRequestBytes < 1) {
            throw new IllegalArgumentException("The largest request record must be at least 1 byte, not " + maxRequestBytes + ".");
        }
        List<String> json = new ArrayList<>(writerSchemas.size());
        for (Schema schema : writerSchemas) {
            json.add(schema.toString());
        }
        this.writerSchemasJson = List.copyOf(json);
        this.maxRequestBytes = maxRequestBytes;
    }

    /** Largest value this deserializer parses, in bytes. */
    public int maxRequestBytes() {
        return maxRequestBytes;
    }

    @Override
    public void open(DeserializationSchema.InitializationContext context) {
        reader();
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<ParsedRequest> out) {
        ParsedRequest parsed = parse(record.topic(), record.partition(), record.offset(), record.key(), record.value(),
                System.currentTimeMillis());
        if (!parsed.isRequest()) {
            LOG.debug("Record {}-{}@{} goes to the dead-letter topic: {}", record.topic(), record.partition(),
                    record.offset(), parsed.deadLetter().getReason());
        }
        out.collect(parsed);
    }

    /** Parses one record's value; a pure function apart from the decoder cache. Never throws. */
    public ParsedRequest parse(String topic, int partition, long offset, byte[] key, byte[] value, long nowMs) {
        String reason;
        String rejectedId = null;
        if (value == null) {
            reason = "The record has no value (a tombstone), so it holds no request.";
        } else if (value.length == 0) {
            reason = "The record's value is empty, so it holds no request.";
        } else if (value.length > maxRequestBytes) {
            String id = reader().peekRequestId(value);
            rejectedId = id == null ? null : RequestIds.eventId(id);
            reason = "The value is " + value.length + " bytes, more than the " + maxRequestBytes
                    + " bytes a request may have here, so it was not read"
                    + (rejectedId == null ? "." : "; request " + RecordLimits.quote(rejectedId) + " was rejected.");
        } else {
            try {
                return ParsedRequest.of(reader().read(value), nowMs);
            } catch (MissingSchemaException e) {
                reason = "The value is an Avro single object written with a schema the job does not know ("
                        + e.getMessage() + ").";
            } catch (Exception e) {
                // Avro reports malformed input with many exception types (EOF, negative lengths, bad
                // union or enum indices, invalid UTF-8 is replaced rather than reported).
                reason = "The value (" + value.length + " bytes) is not an Avro GenerateRequest: "
                        + e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage()) + ".";
            }
        }
        return ParsedRequest.dead(deadLetter(topic, partition, offset, key, value, reason, rejectedId, nowMs), nowMs);
    }

    /** A dead letter with bounded copies of the raw key and value (see {@link RecordLimits}). */
    static DeadLetter deadLetter(String topic, int partition, long offset, byte[] key, byte[] value, String reason,
            String rejectedId, long nowMs) {
        return DeadLetter.newBuilder()
                .setTopic(topic)
                .setPartition(partition)
                .setOffset(offset)
                .setKey(prefix(key, RecordLimits.DEAD_LETTER_KEY_BYTES))
                .setKeyLength(key == null ? -1 : key.length)
                .setValue(prefix(value, RecordLimits.DEAD_LETTER_VALUE_BYTES))
                .setValueLength(value == null ? -1 : value.length)
                .setValueSha256(value == null ? null : ByteBuffer.wrap(RequestIds.sha256(value)))
                .setReason(RecordLimits.message(reason))
                .setRequestId(rejectedId)
                .setTimestampMs(nowMs)
                .build();
    }

    private static ByteBuffer prefix(byte[] bytes, int max) {
        return bytes == null ? null : ByteBuffer.wrap(java.util.Arrays.copyOf(bytes, Math.min(bytes.length, max)));
    }

    @Override
    public TypeInformation<ParsedRequest> getProducedType() {
        return ParsedRequestTypeInfo.INSTANCE;
    }

    private AvroCodec.RequestReader reader() {
        if (reader == null) {
            List<Schema> schemas = new ArrayList<>(writerSchemasJson.size());
            for (String json : writerSchemasJson) {
                schemas.add(new Schema.Parser().parse(json));
            }
            reader = new AvroCodec.RequestReader(schemas);
        }
        return reader;
    }
}
