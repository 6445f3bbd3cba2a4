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
 * value is not a readable {@link GenerateRequest} becomes a dead letter with its raw key and value,
 * its coordinates and the reason, so bad input never stops the job.
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

    private transient AvroCodec.RequestReader reader;

    /** A deserializer that reads raw datums and single objects of the current schema only. */
    public RequestDeserializer() {
        this(List.of());
    }

    /** A deserializer that also reads single objects written with any of the given schemas. */
    public RequestDeserializer(List<Schema> writerSchemas) {
        List<String> json = new ArrayList<>(writerSchemas.size());
        for (Schema schema : writerSchemas) {
            json.add(schema.toString());
        }
        this.writerSchemasJson = List.copyOf(json);
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
            LOG.warn("Record {}-{}@{} goes to the dead-letter topic: {}", record.topic(), record.partition(),
                    record.offset(), parsed.deadLetter().getReason());
        }
        out.collect(parsed);
    }

    /** Parses one record's value; a pure function apart from the decoder cache. Never throws. */
    public ParsedRequest parse(String topic, int partition, long offset, byte[] key, byte[] value, long nowMs) {
        String reason;
        if (value == null) {
            reason = "The record has no value (a tombstone), so it holds no request.";
        } else if (value.length == 0) {
            reason = "The record's value is empty, so it holds no request.";
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
        DeadLetter deadLetter = DeadLetter.newBuilder()
                .setTopic(topic)
                .setPartition(partition)
                .setOffset(offset)
                .setKey(key == null ? null : ByteBuffer.wrap(key))
                .setValue(value == null ? null : ByteBuffer.wrap(value))
                .setReason(reason)
                .setTimestampMs(nowMs)
                .build();
        return ParsedRequest.dead(deadLetter, nowMs);
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
