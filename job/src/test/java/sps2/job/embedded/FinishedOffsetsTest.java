package sps2.job.embedded;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;

import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import sps2.operators.io.AvroCodec;
import sps2.operators.io.FinishedOffsets;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.operators.io.RequestIds;
import sps2.schemas.DeadLetter;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * The committed offsets of the request group never pass a request whose outcome is not in Kafka, across partitions,
 * dead letters, over-long ids, unfinished token events and a restart of the committer; and a model of the rule
 * checked against random interleavings.
 */
@Timeout(180)
class FinishedOffsetsTest {

    private static EmbeddedKafka kafka;
    private static KafkaProducer<byte[], byte[]> producer;

    @BeforeAll
    static void startBroker() throws Exception {
        kafka = EmbeddedKafka.start();
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 0);
        producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }

    @AfterAll
    static void stopBroker() {
        if (producer != null) {
            producer.close();
        }
        if (kafka != null) {
            kafka.close();
        }
    }

    private static KafkaTopics topics(String name) throws Exception {
        KafkaTopics topics = KafkaTopics.withPrefix(name + "-");
        kafka.createTopics(2, topics.requests());
        kafka.createTopics(1, topics.tokens(), topics.deadLetters());
        return topics;
    }

    private static long send(String topic, int partition, byte[] value) throws Exception {
        RecordMetadata written = producer.send(new ProducerRecord<>(topic, partition, null, value)).get();
        return written.offset();
    }

    private static long request(KafkaTopics topics, int partition, String id) throws Exception {
        return send(topics.requests(), partition,
                AvroCodec.encode(GenerateRequest.newBuilder().setRequestId(id).setPrompt("Once").setMaxTokens(4).build()));
    }

    private static void token(KafkaTopics topics, String id, int index, boolean finished) throws Exception {
        send(topics.tokens(), 0, AvroCodec.encode(TokenEvent.newBuilder().setRequestId(id).setIndex(index).setFinished(finished)
                .setFinishReason(finished ? FinishReason.LENGTH : FinishReason.NONE).build()));
    }

    private static Map<Integer, Long> committed(String group, KafkaTopics topics) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = kafka.admin()
                .listConsumerGroupOffsets(Map.of(group, new ListConsumerGroupOffsetsSpec())).partitionsToOffsetAndMetadata(group).get();
        Map<Integer, Long> byPartition = new HashMap<>();
        offsets.forEach((tp, om) -> {
            if (tp.topic().equals(topics.requests()) && om != null) {
                byPartition.put(tp.partition(), om.offset());
            }
        });
        return byPartition;
    }

    @Test
    void theCommittedOffsetStopsAtTheFirstRequestWithoutAnOutcome() throws Exception {
        KafkaTopics topics = topics("basic");
        String group = "g-basic";
        KafkaIo io = new KafkaIo(kafka.bootstrapServers(), group, topics);
        String longId = "L".repeat(10_000);
        // partition 0: a, garbage, b, long id; partition 1: c, d
        long a = request(topics, 0, "a");
        long garbage = send(topics.requests(), 0, new byte[] {1, 2, 3});
        long b = request(topics, 0, "b");
        long longIdOffset = request(topics, 0, longId);
        long c = request(topics, 1, "c");
        long d = request(topics, 1, "d");
        try (FinishedOffsets finished = new FinishedOffsets(io.finishedOffsets(io.maxRequestBytes()))) {
            finished.round();
            assertEquals(Map.of(0, a, 1, c), committed(group, topics), "nothing has an outcome yet");
            assertEquals(6, finished.unfinished());

            token(topics, "b", 0, true); // b finishes before a: the offset must stay at a
            token(topics, "a", 0, false); // a token, but not a's last
            token(topics, "d", 0, true);
            finished.round();
            assertEquals(Map.of(0, a, 1, c), committed(group, topics));

            token(topics, "a", 1, true);
            finished.round();
            assertEquals(Map.of(0, garbage, 1, c), committed(group, topics), "now the unreadable record is the first without an outcome");

            send(topics.deadLetters(), 0, AvroCodec.encode(DeadLetter.newBuilder().setTopic(topics.requests()).setPartition(0)
                    .setOffset(garbage).setReason("unreadable").build()));
            finished.round();
            assertEquals(Map.of(0, longIdOffset, 1, c), committed(group, topics), "b is done already; the long id is next");
        }

        // A new committer (a restarted job) picks up from the committed offsets and the outcome positions of their metadata.
        try (FinishedOffsets restarted = new FinishedOffsets(io.finishedOffsets(io.maxRequestBytes()))) {
            restarted.round();
            assertEquals(Map.of(0, longIdOffset, 1, c), committed(group, topics));
            TokenEvent rejection = TokenEvent.newBuilder().setRequestId(RequestIds.eventId(longId)).setIndex(-1).setFinished(true)
                    .setFinishReason(FinishReason.REJECTED).setError("too long").build();
            send(topics.tokens(), 0, AvroCodec.encode(rejection));
            token(topics, "c", 0, true);
            restarted.round();
            assertEquals(Map.of(0, longIdOffset + 1, 1, d + 1), committed(group, topics),
                    "d finished before the restart: its outcome is above the metadata's position and still counts");
            assertEquals(0, restarted.unfinished());
        }
    }

    @Test
    void aRunningCommitterFollowsOnItsOwnThread() throws Exception {
        KafkaTopics topics = topics("thread");
        String group = "g-thread";
        KafkaIo io = new KafkaIo(kafka.bootstrapServers(), group, topics).withFinishedCommitInterval(Duration.ofMillis(50));
        long first = request(topics, 0, "x");
        try (FinishedOffsets finished = new FinishedOffsets(io.finishedOffsets(io.maxRequestBytes()))) {
            finished.start();
            awaitCommitted(group, topics, Map.of(0, first, 1, 0L));
            token(topics, "x", 0, true);
            awaitCommitted(group, topics, Map.of(0, first + 1, 1, 0L));
        }
    }

    /**
     * Random interleavings of requests (two partitions, repeated ids) and outcomes written while rounds run; after
     * every round, each request below a committed offset must have had a finished event written for its id.
     */
    @Test
    void neverCommitsPastARequestWithoutAnOutcomeUnderRandomInterleavings() throws Exception {
        KafkaTopics topics = topics("random");
        String group = "g-random";
        KafkaIo io = new KafkaIo(kafka.bootstrapServers(), group, topics);
        Random random = new Random(15);
        Map<Integer, List<String>> idsByPartition = Map.of(0, new java.util.ArrayList<>(), 1, new java.util.ArrayList<>());
        java.util.Set<String> finishedIds = new java.util.HashSet<>();
        java.util.List<String> open = new java.util.ArrayList<>();
        int rounds = 0;
        try (FinishedOffsets finished = new FinishedOffsets(io.finishedOffsets(io.maxRequestBytes()))) {
            for (int step = 0; step < 120; step++) {
                int what = random.nextInt(10);
                if (what < 4) {
                    int partition = random.nextInt(2);
                    String id = "r" + random.nextInt(60);
                    request(topics, partition, id);
                    idsByPartition.get(partition).add(id);
                    open.add(id);
                } else if (what < 8 && !open.isEmpty()) {
                    String id = open.remove(random.nextInt(open.size()));
                    boolean last = random.nextInt(3) > 0;
                    token(topics, id, 0, last);
                    if (last) {
                        finishedIds.add(id);
                    } else {
                        open.add(id);
                    }
                } else {
                    finished.round();
                    rounds++;
                    Map<Integer, Long> committed = committed(group, topics);
                    for (int p = 0; p < 2; p++) {
                        long upTo = committed.getOrDefault(p, 0L);
                        List<String> ids = idsByPartition.get(p);
                        assertTrue(upTo <= ids.size());
                        for (int o = 0; o < upTo; o++) {
                            assertTrue(finishedIds.contains(ids.get(o)), "offset " + o + " of partition " + p + " (" + ids.get(o)
                                    + ") is committed without an outcome");
                        }
                    }
                }
            }
            // Finish everything: the committed offsets reach the ends.
            for (String id : new java.util.HashSet<>(open)) {
                token(topics, id, 1, true);
            }
            finished.round();
            assertEquals(Map.of(0, (long) idsByPartition.get(0).size(), 1, (long) idsByPartition.get(1).size()), committed(group, topics));
        }
        assertTrue(rounds > 10, "the random walk ran " + rounds + " rounds");
    }

    private static void awaitCommitted(String group, KafkaTopics topics, Map<Integer, Long> want) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        Map<Integer, Long> got = committed(group, topics);
        while (!want.equals(got)) {
            assertTrue(System.nanoTime() < deadline, "committed " + got + ", expected " + want);
            java.util.concurrent.locks.LockSupport.parkNanos(20_000_000L); // the committed offsets have no change notification
            got = committed(group, topics);
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
