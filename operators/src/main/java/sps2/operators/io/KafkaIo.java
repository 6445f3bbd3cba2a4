package sps2.operators.io;

import java.time.Duration;
import java.util.Objects;
import java.util.Properties;

import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceOptions;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.kafka.clients.producer.ProducerConfig;

import sps2.schemas.DeadLetter;
import sps2.schemas.TokenEvent;

/**
 * Builds the job's Kafka sources and sinks, with client settings tuned for latency rather than
 * throughput: producers send at once ({@code linger.ms=0}), consumers return a fetch as soon as one
 * byte is there and do not park long on an empty partition.
 *
 * <p>Where reading starts: a job restored from a checkpoint (or savepoint) reads from the offsets in it.
 * Otherwise the request source starts from the group's committed offsets, or from the earliest offset for a
 * new group; and the committed offset of a partition is never past a request that has no outcome in Kafka
 * yet ({@link FinishedOffsets}, on the source's first subtask; the Kafka source's own commits on checkpoints
 * are off, since they would commit past requests still running). So a start without state skips no request
 * that never finished, with or without checkpointing; the requests above the committed offset that did
 * finish are served again, with identical tokens.
 *
 * <p>Record sizes: the job parses request values of at most {@code maxRequestBytes} (larger ones become dead
 * letters unread, see {@link RequestDeserializer}); every record it writes is bounded far below the producers'
 * {@code max.request.size} of {@link RecordLimits#PRODUCER_MAX_REQUEST_BYTES} (see {@link RecordLimits}).
 *
 * @param bootstrapServers Kafka bootstrap servers, {@code host:port[,host:port...]}
 * @param groupId consumer group of the request source
 * @param topics topic names
 * @param maxRequestBytes largest request value the job parses
 * @param finishedCommitInterval how often the offsets of finished requests are committed
 */
public record KafkaIo(String bootstrapServers, String groupId, KafkaTopics topics, int maxRequestBytes,
                      Duration finishedCommitInterval) {

    /** How long a fetch waits on the broker for data when there is none (ms). */
    public static final int FETCH_MAX_WAIT_MS = 10;
    /** Default pause between commits of the offsets of finished requests. */
    public static final Duration DEFAULT_FINISHED_COMMIT_INTERVAL = Duration.ofSeconds(1);

    public KafkaIo {
        Objects.requireNonNull(bootstrapServers, "bootstrapServers");
        Objects.requireNonNull(groupId, "groupId");
        Objects.requireNonNull(topics, "topics");
        Objects.requireNonNull(finishedCommitInterval, "finishedCommitInterval");
        if (maxRequestBytes < 1) {
            throw new IllegalArgumentException("The largest request must be at least 1 byte, not " + maxRequestBytes + ".");
        }
    }

    /** Kafka I/O that parses requests of up to {@link RecordLimits#DEFAULT_MAX_REQUEST_BYTES}. */
    public KafkaIo(String bootstrapServers, String groupId, KafkaTopics topics) {
        this(bootstrapServers, groupId, topics, RecordLimits.DEFAULT_MAX_REQUEST_BYTES, DEFAULT_FINISHED_COMMIT_INTERVAL);
    }

    /** The same, with another request size limit. */
    public KafkaIo withMaxRequestBytes(int bytes) {
        return new KafkaIo(bootstrapServers, groupId, topics, bytes, finishedCommitInterval);
    }

    /** The same, committing the offsets of finished requests every {@code interval}. */
    public KafkaIo withFinishedCommitInterval(Duration interval) {
        return new KafkaIo(bootstrapServers, groupId, topics, maxRequestBytes, interval);
    }

    /** Source of parsed requests (unreadable records arrive as dead letters, see {@link RequestDeserializer}). */
    public RequestSource requestSource() {
        return requestSource(new RequestDeserializer(java.util.List.of(), maxRequestBytes));
    }

    public RequestSource requestSource(RequestDeserializer deserializer) {
        Properties consumer = latencyConsumerProperties();
        // FinishedOffsets commits instead: checkpoint offsets would pass requests that are still running.
        consumer.setProperty(KafkaSourceOptions.COMMIT_OFFSETS_ON_CHECKPOINT.key(), "false");
        KafkaSource<ParsedRequest> kafka = KafkaSource.<ParsedRequest>builder()
                .setBootstrapServers(bootstrapServers)
                .setGroupId(groupId)
                .setTopics(topics.requests())
                .setStartingOffsets(OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST))
                .setDeserializer(deserializer)
                .setClientIdPrefix(groupId + "-requests")
                .setProperties(consumer)
                .build();
        return new RequestSource(kafka, finishedOffsets(deserializer.maxRequestBytes()));
    }

    /** What {@link FinishedOffsets} follows for this job. */
    public FinishedOffsets.Settings finishedOffsets(int maxRequestBytes) {
        return new FinishedOffsets.Settings(bootstrapServers, groupId, topics, maxRequestBytes, finishedCommitInterval);
    }

    /** At-least-once sink of token events, keyed by request id. */
    public KafkaSink<TokenEvent> tokenSink() {
        return KafkaSink.<TokenEvent>builder()
                .setBootstrapServers(bootstrapServers)
                .setRecordSerializer(new TokenEventSerializer(topics.tokens()))
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                .setKafkaProducerConfig(latencyProducerProperties())
                .build();
    }

    /** At-least-once sink of dead letters. */
    public KafkaSink<DeadLetter> deadLetterSink() {
        return KafkaSink.<DeadLetter>builder()
                .setBootstrapServers(bootstrapServers)
                .setRecordSerializer(new DeadLetterSerializer(topics.deadLetters()))
                .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                .setKafkaProducerConfig(latencyProducerProperties())
                .build();
    }

    /**
     * Producer settings for latency: no lingering, all replicas acknowledge, idempotence keeps one
     * partition's records in order across retries. Serializers and bootstrap servers are not set.
     */
    public static Properties latencyProducerProperties() {
        Properties props = new Properties();
        props.setProperty(ProducerConfig.LINGER_MS_CONFIG, "0");
        props.setProperty(ProducerConfig.ACKS_CONFIG, "all");
        props.setProperty(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.setProperty(ProducerConfig.COMPRESSION_TYPE_CONFIG, "none");
        props.setProperty(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, Integer.toString(RecordLimits.PRODUCER_MAX_REQUEST_BYTES));
        return props;
    }

    /** Consumer settings for latency. Deserializers, group and bootstrap servers are not set. */
    public static Properties latencyConsumerProperties() {
        Properties props = new Properties();
        props.setProperty(ConsumerConfig.FETCH_MIN_BYTES_CONFIG, "1");
        props.setProperty(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, Integer.toString(FETCH_MAX_WAIT_MS));
        return props;
    }
}
