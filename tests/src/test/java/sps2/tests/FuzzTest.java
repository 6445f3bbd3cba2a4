package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

import sps2.operators.JobSettings;
import sps2.operators.io.AvroCodec;
import sps2.operators.io.RequestIds;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Fuzzed records of every kind into one running job: random bytes, cut and padded encodings, records of megabytes,
 * requests with out-of-range fields or ids of any length, and small good requests. Every record gets exactly one
 * outcome (a dead letter, a rejection, or its tokens), none twice (the job never restarted), and the committed
 * offset of the request group reaches the end of the topic, which it does only once every record has its outcome.
 */
class FuzzTest extends JobTestBase {
    private static final int RECORDS = 1000;

    @Test
    void everyFuzzedRecordGetsExactlyOneOutcomeAndTheCommittedOffsetReachesTheEnd() throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        Random random = new Random(1515);
        JobSettings settings = JobHarness.settings(model, "sps2", 1, "dense");
        int unreadable = 0;
        Map<String, Boolean> expectRejection = new HashMap<>(); // event id -> rejected (else served)
        try (JobHarness.RunningJob job = harness.new RunningJob(settings, 0)) {
            for (int i = 0; i < RECORDS; i++) {
                int kind = random.nextInt(100);
                GenerateRequest good = GenerateRequest.newBuilder().setRequestId("f" + i).setPrompt("Once upon a time").setMaxTokens(1 + random.nextInt(3))
                        .setTemperature(random.nextFloat()).setSeed(i).build();
                byte[] encoded = AvroCodec.encode(good);
                if (kind < 35) {
                    byte[] noise = new byte[random.nextInt(300)];
                    random.nextBytes(noise);
                    if (noise.length > 0) {
                        noise[0] = (byte) (random.nextInt(64) * 2 + 1); // an odd first byte: a negative id length, never a request
                    }
                    job.sendRaw(noise);
                    unreadable++;
                } else if (kind < 50) {
                    byte[] cut = random.nextBoolean() ? java.util.Arrays.copyOf(encoded, random.nextInt(encoded.length))
                            : java.util.Arrays.copyOf(encoded, encoded.length + 1 + random.nextInt(20));
                    job.sendRaw(cut);
                    unreadable++;
                } else if (kind < 51) {
                    byte[] huge = new byte[(1 << 20) + 1 + random.nextInt(2 << 20)];
                    random.nextBytes(huge);
                    huge[0] = 1;
                    job.sendRaw(huge);
                    unreadable++;
                } else if (kind < 85) {
                    GenerateRequest.Builder bad = GenerateRequest.newBuilder(good);
                    switch (random.nextInt(9)) {
                        case 0 -> bad.setTemperature(-1f - random.nextFloat());
                        case 1 -> bad.setTopP(1.01f + random.nextFloat());
                        case 2 -> bad.setMaxTokens(-random.nextInt(1000));
                        case 3 -> bad.setMaxTokens(5000 + random.nextInt(1_000_000));
                        case 4 -> bad.setPrompt(null).setPromptTokens(List.of(random.nextInt(512), 512 + random.nextInt(100_000)));
                        case 5 -> bad.setModel("m".repeat(1 + random.nextInt(2000)));
                        case 6 -> bad.setStopStrings(java.util.Collections.nCopies(17 + random.nextInt(100), "x"));
                        case 7 -> bad.setRequestId("id".repeat(129 + random.nextInt(5000)) + i);
                        default -> bad.setTopK(-1 - random.nextInt(10));
                    }
                    GenerateRequest r = bad.build();
                    job.send(r);
                    expectRejection.put(RequestIds.eventId(r.getRequestId()), true);
                } else {
                    job.send(good);
                    expectRejection.put(good.getRequestId(), false);
                }
            }
            Map<String, List<TokenEvent>> events = job.awaitFinished(expectRejection.keySet(), Duration.ofMinutes(3));
            for (Map.Entry<String, Boolean> e : expectRejection.entrySet()) {
                List<TokenEvent> got = events.get(e.getKey());
                if (e.getValue()) {
                    assertEquals(1, got.size(), e.getKey() + ": one rejection");
                    assertEquals(FinishReason.REJECTED, got.get(0).getFinishReason(), e.getKey() + ": " + got.get(0).getError());
                } else {
                    int tokens = job.tokens(e.getKey()).length;
                    assertEquals(tokens, got.size(), e.getKey() + ": each token once");
                }
            }
            assertEquals(unreadable, countDeadLetters(job, unreadable), "one dead letter per unreadable record");
            awaitCommittedEnd(job, RECORDS);
            System.out.printf("fuzz: %d records (%d unreadable, %d rejected, %d served), each one outcome, committed offset %d = end%n",
                    RECORDS, unreadable, expectRejection.values().stream().filter(b -> b).count(),
                    expectRejection.values().stream().filter(b -> !b).count(), RECORDS);
        }
    }

    private static int countDeadLetters(JobHarness.RunningJob job, int expected) throws Exception {
        java.util.Properties c = new java.util.Properties();
        c.put(org.apache.kafka.clients.consumer.ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, harness.kafka.bootstrapServers());
        try (org.apache.kafka.clients.consumer.KafkaConsumer<byte[], byte[]> consumer = new org.apache.kafka.clients.consumer.KafkaConsumer<>(c,
                new org.apache.kafka.common.serialization.ByteArrayDeserializer(), new org.apache.kafka.common.serialization.ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(job.topics.deadLetters(), 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            List<Long> offsets = new ArrayList<>();
            while (offsets.size() < expected && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(r -> {
                    try {
                        offsets.add(AvroCodec.decodeDeadLetter(r.value()).getOffset());
                    } catch (java.io.IOException e) {
                        throw new AssertionError("an unreadable dead letter", e);
                    }
                });
            }
            // Anything more would be a second dead letter for a record: read what else is there.
            consumer.poll(Duration.ofMillis(500)).forEach(r -> offsets.add(-1L));
            assertEquals(offsets.size(), new java.util.HashSet<>(offsets).size(), "no record has two dead letters");
            return offsets.size();
        }
    }

    private static void awaitCommittedEnd(JobHarness.RunningJob job, long end) throws Exception {
        String group = "sps2-" + job.settings.runtimeId();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        long committed = -1;
        while (committed != end) {
            Map<TopicPartition, OffsetAndMetadata> offsets = harness.kafka.admin()
                    .listConsumerGroupOffsets(Map.of(group, new ListConsumerGroupOffsetsSpec())).partitionsToOffsetAndMetadata(group).get();
            OffsetAndMetadata om = offsets.get(new TopicPartition(job.topics.requests(), 0));
            committed = om == null ? -1 : om.offset();
            assertTrue(committed <= end);
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("The committed offset is " + committed + ", not the end " + end);
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100)); // committed offsets have no change notification
        }
    }
}
