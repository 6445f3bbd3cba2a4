package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;

import sps2.schemas.DeadLetter;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/** Bad input never stops the job: each case gets its error event while good requests complete. */
class BadInputTest extends JobTestBase {
    private static GenerateRequest.Builder ok(String id) {
        return GenerateRequest.newBuilder().setRequestId(id).setPrompt("Once upon a time").setMaxTokens(10).setTemperature(0f);
    }

    @Test
    void everyBadRequestGetsItsErrorAndGoodRequestsComplete() throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        Map<String, GenerateRequest> bad = new LinkedHashMap<>();
        bad.put("empty-prompt", ok("empty-prompt").setPrompt("").build());
        bad.put("no-prompt", ok("no-prompt").setPrompt(null).build());
        bad.put("too-long", ok("too-long").setPrompt("Once upon a time ".repeat(700)).build());
        bad.put("zero-max", ok("zero-max").setMaxTokens(0).build());
        bad.put("huge-max", ok("huge-max").setMaxTokens(1_000_000).build());
        bad.put("nan-temperature", ok("nan-temperature").setTemperature(Float.NaN).build());
        bad.put("negative-temperature", ok("negative-temperature").setTemperature(-1f).build());
        bad.put("top-p-zero", ok("top-p-zero").setTopP(0f).build());
        bad.put("top-p-big", ok("top-p-big").setTopP(1.5f).build());
        bad.put("unknown-model", ok("unknown-model").setModel("gpt-17").build());
        bad.put("bad-token-id", ok("bad-token-id").setPrompt(null).setPromptTokens(List.of(1, 99999)).build());
        List<String> good = List.of("good-before", "good-after");
        try (JobHarness.RunningJob job = harness.new RunningJob(JobHarness.settings(model, "sps2", 1, "dense"), 0)) {
            job.send(ok("good-before").setMaxTokens(20).build());
            job.sendRaw(new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
            bad.values().forEach(job::send);
            job.send(ok("good-after").setMaxTokens(20).build());
            List<String> all = new ArrayList<>(bad.keySet());
            all.addAll(good);
            Map<String, List<TokenEvent>> events = job.awaitFinished(all, Duration.ofMinutes(2));
            for (String id : bad.keySet()) {
                List<TokenEvent> e = events.get(id);
                assertEquals(1, e.size(), id + " must get exactly one event: " + e);
                TokenEvent ev = e.get(0);
                assertTrue(ev.getFinished() && (ev.getFinishReason() == FinishReason.REJECTED || ev.getFinishReason() == FinishReason.ERROR), id + ": " + ev);
                assertTrue(ev.getError() != null && ev.getError().length() > 10, id + " needs a message: " + ev);
            }
            GenerateRequest ref = ok("x").setMaxTokens(20).build();
            int[] want = JobEndToEndTest.reference(model, ref);
            assertArrayEquals(want, job.tokens("good-before"));
            assertArrayEquals(want, job.tokens("good-after"));
            assertDeadLetter(job, 8);
        }
    }

    /**
     * A model with no tokenizer (a random checkpoint, as make-model writes) still serves token-id requests with
     * the reference tokens; a text prompt or stop strings get a rejection that says why, and the job goes on.
     */
    @Test
    void aModelWithoutTokenizerServesTokenIdsAndRejectsText(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path model = sps2.model.shapes.RandomCheckpointWriter.write(sps2.model.shapes.ModelShapes.get("tiny"), "tiny", dir.resolve("m"),
                sps2.model.DType.F32, 5, sps2.model.shapes.RandomCheckpointWriter.Progress.NONE).getParent();
        List<Integer> prompt = List.of(1, 17, 42, 99, 7, 3);
        GenerateRequest ids = GenerateRequest.newBuilder().setRequestId("ids").setPromptTokens(prompt).setMaxTokens(12).setTemperature(0f).build();
        GenerateRequest text = GenerateRequest.newBuilder().setRequestId("text").setPrompt("Once upon a time").setMaxTokens(5).build();
        GenerateRequest stops = GenerateRequest.newBuilder(ids).setRequestId("stops").setStopStrings(List.of("end")).build();
        try (JobHarness.RunningJob job = harness.new RunningJob(JobHarness.settings(model, "sps2", 1, "dense"), 0)) {
            job.send(text);
            job.send(stops);
            job.send(ids);
            Map<String, List<TokenEvent>> events = job.awaitFinished(List.of("ids", "text", "stops"), Duration.ofMinutes(2));
            for (String id : List.of("text", "stops")) {
                TokenEvent ev = events.get(id).get(0);
                assertEquals(FinishReason.REJECTED, ev.getFinishReason(), id + ": " + ev);
                assertTrue(ev.getError().contains("no tokenizer"), id + ": " + ev.getError());
            }
            sps2.model.ModelWeights w = sps2.model.ModelLoader.load(model);
            int[] p = prompt.stream().mapToInt(Integer::intValue).toArray();
            int[] want;
            try (sps2.gpu.cpu.CpuBackend b = new sps2.gpu.cpu.CpuBackend(1); sps2.gpu.LlamaModel m = new sps2.gpu.LlamaModel(b, w, null)) {
                int[] n = {0};
                want = new sps2.gpu.Generator(m, 64).generate(p, 12, sps2.model.sampler.SamplingParams.greedy(), t -> ++n[0] >= 12);
            }
            assertArrayEquals(want, job.tokens("ids"));
            assertTrue(events.get("ids").stream().allMatch(e -> e.getText().isEmpty()), "events of a model without a tokenizer carry no text");
        }
    }

    /**
     * Records of any size, ids of any length, any number of stop strings: each gets one bounded rejection or
     * dead letter, no sink fails, the job never restarts (a restart would replay the good request's events), and
     * the good requests around them are exact.
     */
    @Test
    void noRecordOfAnySizeMakesTheJobRestart() throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        java.util.Random random = new java.util.Random(15);
        byte[] garbage = new byte[2 << 20];
        random.nextBytes(garbage);
        garbage[0] = 0x7F;
        String longId = "L".repeat(600_000);
        String longIdEvent = sps2.operators.io.RequestIds.eventId(longId);
        Map<String, GenerateRequest> bad = new LinkedHashMap<>();
        bad.put("two-mb-prompt", ok("two-mb-prompt").setPrompt("Once upon a time ".repeat(2 << 20 >> 4)).build());
        bad.put("ten-mb-prompt", ok("ten-mb-prompt").setPrompt("x".repeat(10 << 20)).build());
        bad.put(longIdEvent, ok(longId).build());
        bad.put("long-model", ok("long-model").setModel("m".repeat(300_000)).build());
        bad.put("many-stops", ok("many-stops").setStopStrings(java.util.Collections.nCopies(5000, "stop")).build());
        bad.put("long-stop", ok("long-stop").setStopStrings(List.of("s".repeat(400_000))).build());
        // below the record limit, but no tokenization of it fits the context: rejected before tokenizing
        bad.put("long-text", ok("long-text").setPrompt("a".repeat(900_000)).build());
        try (JobHarness.RunningJob job = harness.new RunningJob(JobHarness.settings(model, "sps2", 1, "dense"), 0)) {
            job.send(ok("good-before").setMaxTokens(20).build());
            job.sendRaw(garbage);
            bad.values().forEach(job::send);
            job.send(ok("good-after").setMaxTokens(20).build());
            List<String> all = new ArrayList<>(bad.keySet());
            all.add("good-before");
            all.add("good-after");
            Map<String, List<TokenEvent>> events = job.awaitFinished(all, Duration.ofMinutes(2));
            for (String id : bad.keySet()) {
                List<TokenEvent> e = events.get(id);
                assertEquals(1, e.size(), id + " must get exactly one event");
                TokenEvent ev = e.get(0);
                assertEquals(FinishReason.REJECTED, ev.getFinishReason(), id + ": " + ev.getError());
                assertTrue(ev.getFinished() && ev.getIndex() == -1, id);
                assertTrue(sps2.operators.io.AvroCodec.encode(ev).length < 4096, id + ": a small event");
            }
            assertTrue(events.get("two-mb-prompt").get(0).getError().contains("bytes a request may have"), events.get("two-mb-prompt").get(0).getError());
            assertTrue(events.get(longIdEvent).get(0).getError().contains("600000 bytes"), events.get(longIdEvent).get(0).getError());
            assertTrue(events.get("long-text").get(0).getError().contains("more than the context"), events.get("long-text").get(0).getError());
            int[] want = JobEndToEndTest.reference(model, ok("x").setMaxTokens(20).build());
            assertArrayEquals(want, job.tokens("good-before"));
            assertArrayEquals(want, job.tokens("good-after"));
            assertEquals(want.length, events.get("good-before").size(), "no restart replayed any event");
            List<DeadLetter> letters = deadLetters(job, 3);
            DeadLetter unreadable = letters.stream().filter(d -> d.getValueLength() == garbage.length).findFirst().orElseThrow();
            assertEquals(sps2.operators.io.RecordLimits.DEAD_LETTER_VALUE_BYTES, unreadable.getValue().remaining());
            assertEquals(java.nio.ByteBuffer.wrap(java.security.MessageDigest.getInstance("SHA-256").digest(garbage)), unreadable.getValueSha256());
            assertTrue(unreadable.getOffset() == 1 && unreadable.getTopic().equals(job.topics.requests()), unreadable.toString());
            assertTrue(letters.stream().anyMatch(d -> "two-mb-prompt".equals(d.getRequestId())));
            assertTrue(letters.stream().anyMatch(d -> "ten-mb-prompt".equals(d.getRequestId())));
        }
    }

    /** Reads the dead-letter topic until {@code count} dead letters have arrived. */
    private static List<DeadLetter> deadLetters(JobHarness.RunningJob job, int count) throws Exception {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, harness.kafka.bootstrapServers());
        List<DeadLetter> letters = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(job.topics.deadLetters(), 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (letters.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    letters.add(sps2.operators.io.AvroCodec.decodeDeadLetter(r.value()));
                }
            }
        }
        assertEquals(count, letters.size(), "dead letters: " + letters);
        return letters;
    }

    private static void assertDeadLetter(JobHarness.RunningJob job, int rawLength) throws Exception {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, harness.kafka.bootstrapServers());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(job.topics.deadLetters(), 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    DeadLetter d = sps2.operators.io.AvroCodec.decodeDeadLetter(r.value());
                    assertEquals(job.topics.requests(), d.getTopic());
                    assertEquals(rawLength, d.getValue().remaining());
                    assertTrue(d.getReason().length() > 5);
                    return;
                }
            }
            throw new AssertionError("No dead letter arrived for the malformed record");
        }
    }
}
