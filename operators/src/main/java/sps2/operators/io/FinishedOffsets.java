package sps2.operators.io;

import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.schemas.DeadLetter;
import sps2.schemas.TokenEvent;

/**
 * Commits, for each partition of the requests topic, the offset below which <b>every request has its
 * outcome in Kafka</b>: a finished token event (a last token, an error or a rejection) for its id in the
 * tokens topic, or its dead letter in the dead-letter topic. The job starts from these offsets whenever it
 * has no checkpoint to resume from, so a fresh start skips no request that never finished; requests above
 * the offset that did finish are served again, with identical tokens, and consumers deduplicate them by
 * (request id, index).
 *
 * <p>How it knows, without any Flink state: it reads the requests topic from the committed offset and
 * classifies each record exactly as the job does ({@link RequestDeserializer}, {@link RequestIds#eventId}),
 * and it reads the tokens and dead-letter topics. A round measures the outcome topics' end offsets first,
 * then reads requests up to their end offsets measured after that, then outcomes up to the first
 * measurement: an outcome is appended after its request was (the job read the request from the topic), so
 * every outcome it processes belongs to a request it has already seen. Each commit's metadata records
 * where in the outcome topics the outcomes of the requests above the committed offset can start, so a
 * restart reads only from there.
 *
 * <p>A request counts as done once any finished event for its id is in the tokens topic: a retry of a
 * request after it finished is answered by the first run's events. Request ids must therefore be unique for
 * as long as the topics keep them (the job's own contract).
 *
 * <p>It runs on one thread of its own; Kafka errors are logged and the next round tries again.
 */
public final class FinishedOffsets implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(FinishedOffsets.class);
    static final String METADATA_PREFIX = "sps2-outcomes-v1:";
    private static final Duration POLL = Duration.ofMillis(100);

    /**
     * What to follow and how often.
     *
     * @param bootstrapServers Kafka bootstrap servers
     * @param groupId the consumer group whose offsets the job's request source starts from
     * @param topics the job's topics
     * @param maxRequestBytes the job's request size limit (records above it are dead letters)
     * @param interval pause between rounds
     */
    public record Settings(String bootstrapServers, String groupId, KafkaTopics topics, int maxRequestBytes, Duration interval)
            implements Serializable {
        public Settings {
            Objects.requireNonNull(bootstrapServers, "bootstrapServers");
            Objects.requireNonNull(groupId, "groupId");
            Objects.requireNonNull(topics, "topics");
            Objects.requireNonNull(interval, "interval");
        }
    }

    /** A request record whose outcome has not been seen yet. */
    private record Pending(TopicPartition partition, long offset, String key, Map<TopicPartition, Long> outcomeFloor) {
    }

    private final Settings settings;
    private final RequestDeserializer parser;
    private final KafkaConsumer<byte[], byte[]> requests;
    private final KafkaConsumer<byte[], byte[]> outcomes;
    private final Map<TopicPartition, TreeMap<Long, Pending>> pending = new HashMap<>();
    private final Map<String, List<Pending>> byKey = new HashMap<>();
    private final Map<TopicPartition, OffsetAndMetadata> lastCommitted = new HashMap<>();
    private List<TopicPartition> requestPartitions;
    private List<TopicPartition> outcomePartitions;
    /** The outcome topics' end offsets measured at the start of the previous round (at first: where reading began). */
    private Map<TopicPartition, Long> previousOutcomeEnds;
    private boolean begun;
    private volatile int unfinished;
    private volatile boolean closing;
    private ScheduledExecutorService thread;

    public FinishedOffsets(Settings settings) {
        this.settings = settings;
        this.parser = new RequestDeserializer(List.of(), settings.maxRequestBytes());
        Properties common = new Properties();
        common.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, settings.bootstrapServers());
        common.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        common.setProperty(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        common.setProperty(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
        Properties withGroup = new Properties();
        withGroup.putAll(common);
        withGroup.setProperty(ConsumerConfig.GROUP_ID_CONFIG, settings.groupId());
        withGroup.setProperty(ConsumerConfig.CLIENT_ID_CONFIG, settings.groupId() + "-finished-requests");
        common.setProperty(ConsumerConfig.CLIENT_ID_CONFIG, settings.groupId() + "-finished-outcomes");
        this.requests = new KafkaConsumer<>(withGroup, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        this.outcomes = new KafkaConsumer<>(common, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    /** Starts rounds on a thread of its own, one every {@link Settings#interval()}. */
    public synchronized void start() {
        if (thread != null) {
            return;
        }
        thread = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "sps2-finished-offsets-" + settings.groupId());
            t.setDaemon(true);
            return t;
        });
        thread.scheduleWithFixedDelay(this::roundLogged, 0, settings.interval().toMillis(), TimeUnit.MILLISECONDS);
        LOG.info("Committing the offsets of finished requests of {} for group {} every {} ms.", settings.topics().requests(),
                settings.groupId(), settings.interval().toMillis());
    }

    /** Requests read whose outcome has not been seen yet (after the last round). */
    public int unfinished() {
        return unfinished;
    }

    private void roundLogged() {
        if (closing) {
            return;
        }
        try {
            round();
        } catch (WakeupException e) {
            // close() interrupts a round in progress.
        } catch (RuntimeException e) {
            LOG.warn("A round of committing finished request offsets failed; the next round tries again: {}", e.toString());
            if (e instanceof org.apache.kafka.common.errors.InterruptException) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * One round: reads what arrived, commits what it may. Public so tests can run rounds without the thread.
     *
     * @return the offsets committed in this round (empty if nothing changed)
     */
    public Map<TopicPartition, OffsetAndMetadata> round() {
        if (!begun) {
            begin();
            begun = true;
        }
        Map<TopicPartition, Long> outcomeEnds = Map.copyOf(outcomes.endOffsets(outcomePartitions));
        Map<TopicPartition, Long> requestEnds = requests.endOffsets(requestPartitions);
        readRequests(requestEnds);
        readOutcomes(outcomeEnds);
        Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
        for (TopicPartition partition : requestPartitions) {
            TreeMap<Long, Pending> open = pending.get(partition);
            OffsetAndMetadata offset = open.isEmpty()
                    ? new OffsetAndMetadata(requests.position(partition), metadata(outcomeEnds))
                    : new OffsetAndMetadata(open.firstKey(), metadata(open.firstEntry().getValue().outcomeFloor()));
            if (!offset.equals(lastCommitted.get(partition))) {
                commit.put(partition, offset);
            }
        }
        if (!commit.isEmpty()) {
            requests.commitSync(commit);
            lastCommitted.putAll(commit);
            LOG.debug("Committed the offsets of finished requests {}.", commit);
        }
        previousOutcomeEnds = outcomeEnds;
        unfinished = pending.values().stream().mapToInt(Map::size).sum();
        return commit;
    }

    /** Assigns the partitions and seeks to the committed offsets and the outcome positions their metadata names. */
    private void begin() {
        pending.clear();
        byKey.clear();
        lastCommitted.clear();
        KafkaTopics topics = settings.topics();
        List<TopicPartition> requestList = partitions(requests, List.of(topics.requests()));
        outcomePartitions = partitions(outcomes, List.of(topics.tokens(), topics.deadLetters()));
        requestPartitions = requestList;
        requests.assign(requestPartitions);
        outcomes.assign(outcomePartitions);
        Map<TopicPartition, OffsetAndMetadata> committed = requests.committed(new java.util.HashSet<>(requestPartitions));
        Map<TopicPartition, Long> outcomeStart = new HashMap<>();
        boolean fromBeginning = false;
        for (TopicPartition partition : requestPartitions) {
            pending.put(partition, new TreeMap<>());
            OffsetAndMetadata offset = committed.get(partition);
            Map<TopicPartition, Long> floor = offset == null ? null : parseMetadata(offset.metadata());
            if (offset == null) {
                requests.seekToBeginning(List.of(partition));
            } else {
                requests.seek(partition, offset.offset());
                lastCommitted.put(partition, offset);
            }
            if (floor == null || !floor.keySet().containsAll(outcomePartitions)) {
                fromBeginning = true;
            } else {
                floor.forEach((p, o) -> outcomeStart.merge(p, o, Math::min));
            }
        }
        if (fromBeginning) {
            outcomes.seekToBeginning(outcomePartitions);
        } else {
            outcomeStart.forEach((p, o) -> {
                if (outcomePartitions.contains(p)) {
                    outcomes.seek(p, o);
                }
            });
        }
        Map<TopicPartition, Long> start = new HashMap<>();
        for (TopicPartition partition : outcomePartitions) {
            start.put(partition, outcomes.position(partition));
        }
        previousOutcomeEnds = Map.copyOf(start);
        LOG.info("Following requests from {} and outcomes from {}.", committed, start);
    }

    private static List<TopicPartition> partitions(KafkaConsumer<byte[], byte[]> consumer, Collection<String> topics) {
        List<TopicPartition> partitions = new ArrayList<>();
        for (String topic : topics) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic);
            if (infos == null || infos.isEmpty()) {
                throw new IllegalStateException("The topic " + topic + " does not exist.");
            }
            for (PartitionInfo info : infos) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
        }
        return partitions;
    }

    private void readRequests(Map<TopicPartition, Long> ends) {
        while (!closing && behind(requests, ends)) {
            for (ConsumerRecord<byte[], byte[]> record : requests.poll(POLL)) {
                register(record);
            }
        }
    }

    private void readOutcomes(Map<TopicPartition, Long> ends) {
        Map<TopicPartition, Long> seekBack = new HashMap<>();
        while (!closing && behind(outcomes, ends)) {
            for (ConsumerRecord<byte[], byte[]> record : outcomes.poll(POLL)) {
                TopicPartition partition = new TopicPartition(record.topic(), record.partition());
                if (record.offset() >= ends.get(partition)) {
                    // Its request may not have been read yet: leave it to the next round.
                    seekBack.merge(partition, record.offset(), Math::min);
                    continue;
                }
                outcome(record);
            }
        }
        seekBack.forEach(outcomes::seek);
    }

    private static boolean behind(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
        for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
            if (consumer.position(end.getKey()) < end.getValue()) {
                return true;
            }
        }
        return false;
    }

    private void register(ConsumerRecord<byte[], byte[]> record) {
        ParsedRequest parsed = parser.parse(record.topic(), record.partition(), record.offset(), record.key(), record.value(), 0L);
        String key = parsed.isRequest() ? idKey(RequestIds.eventId(parsed.request().getRequestId()))
                : deadLetterKey(record.topic(), record.partition(), record.offset());
        TopicPartition partition = new TopicPartition(record.topic(), record.partition());
        Pending p = new Pending(partition, record.offset(), key, previousOutcomeEnds);
        pending.get(partition).put(record.offset(), p);
        byKey.computeIfAbsent(key, k -> new ArrayList<>()).add(p);
    }

    private void outcome(ConsumerRecord<byte[], byte[]> record) {
        String key;
        try {
            if (record.topic().equals(settings.topics().tokens())) {
                TokenEvent event = AvroCodec.decodeToken(record.value());
                if (!event.getFinished()) {
                    return;
                }
                key = idKey(event.getRequestId());
            } else {
                DeadLetter letter = AvroCodec.decodeDeadLetter(record.value());
                key = deadLetterKey(letter.getTopic(), letter.getPartition(), letter.getOffset());
            }
        } catch (Exception e) {
            LOG.debug("Skipping an unreadable record at {}-{}@{}: {}", record.topic(), record.partition(), record.offset(), e.toString());
            return;
        }
        List<Pending> done = byKey.remove(key);
        if (done != null) {
            for (Pending p : done) {
                pending.get(p.partition()).remove(p.offset());
            }
        }
    }

    private static String idKey(String eventId) {
        return "id:" + eventId;
    }

    private static String deadLetterKey(String topic, int partition, long offset) {
        return "dlq:" + topic + "/" + partition + "/" + offset;
    }

    /** Outcome positions as commit metadata: {@code t<partition>} for the tokens topic, {@code d<partition>} for dead letters. */
    private String metadata(Map<TopicPartition, Long> positions) {
        StringBuilder b = new StringBuilder(METADATA_PREFIX);
        for (TopicPartition partition : outcomePartitions) {
            Long offset = positions.get(partition);
            if (offset == null) {
                continue;
            }
            if (b.length() > METADATA_PREFIX.length()) {
                b.append(',');
            }
            b.append(partition.topic().equals(settings.topics().tokens()) ? 't' : 'd').append(partition.partition()).append('=').append(offset);
        }
        // Kafka keeps up to offset.metadata.max.bytes (4096 by default); without it a restart reads all outcomes.
        return b.length() <= 4000 ? b.toString() : "";
    }

    /** The outcome positions of a commit's metadata, or null if it has none of ours. */
    Map<TopicPartition, Long> parseMetadata(String metadata) {
        if (metadata == null || !metadata.startsWith(METADATA_PREFIX)) {
            return null;
        }
        Map<TopicPartition, Long> positions = new HashMap<>();
        String body = metadata.substring(METADATA_PREFIX.length());
        if (body.isEmpty()) {
            return positions;
        }
        try {
            for (String entry : body.split(",")) {
                int eq = entry.indexOf('=');
                String topic = entry.charAt(0) == 't' ? settings.topics().tokens() : settings.topics().deadLetters();
                positions.put(new TopicPartition(topic, Integer.parseInt(entry.substring(1, eq))), Long.parseLong(entry.substring(eq + 1)));
            }
        } catch (RuntimeException e) {
            return null;
        }
        return positions;
    }

    @Override
    public void close() {
        closing = true;
        requests.wakeup();
        outcomes.wakeup();
        ScheduledExecutorService t;
        synchronized (this) {
            t = thread;
        }
        if (t != null) {
            t.shutdown();
            try {
                if (!t.awaitTermination(30, TimeUnit.SECONDS)) {
                    LOG.warn("The finished-offsets thread of group {} did not stop within 30 s.", settings.groupId());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        closeQuietly(requests);
        closeQuietly(outcomes);
    }

    private static void closeQuietly(KafkaConsumer<byte[], byte[]> consumer) {
        try {
            consumer.close(Duration.ofSeconds(5));
        } catch (RuntimeException e) {
            LOG.debug("Closing a consumer failed: {}", e.toString());
        }
    }
}
