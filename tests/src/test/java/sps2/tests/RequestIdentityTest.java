package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import sps2.operators.JobSettings;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Request ids and priorities as the scheduler sees them: a retried identical request never disturbs the original,
 * a different request under a running id gets a notice that does not end the original's stream, and priorities
 * order waiting requests over the whole int range.
 */
class RequestIdentityTest extends JobTestBase {

    @ParameterizedTest(name = "mode {0}")
    @ValueSource(strings = {"sps2", "sarathi"})
    void aRetryIsServedOnceAndAConflictingIdDoesNotEndTheOriginal(String mode) throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        GenerateRequest original = JobEndToEndTest.request("dup", "Once upon a time", 60, 0f, 1);
        GenerateRequest conflicting = GenerateRequest.newBuilder(original).setMaxTokens(5).build();
        GenerateRequest same = JobEndToEndTest.request("same", "The little dog", 40, 0.8f, 2);
        GenerateRequest sameAgain = GenerateRequest.newBuilder(same).setPriority(3).setClientTimestampMs(12345).build();
        try (JobHarness.RunningJob job = harness.new RunningJob(JobHarness.settings(model, mode, 1, "dense"), 0)) {
            job.send(original);
            job.send(same);
            job.send(conflicting); // same id while the original runs, different content
            job.send(sameAgain);   // a retry: same content (priority and client clock aside)
            job.send(same);        // and once more, byte for byte
            job.awaitFinished(List.of("dup", "same"), Duration.ofMinutes(2));

            assertArrayEquals(JobEndToEndTest.reference(model, original), job.tokens("dup"), "the original runs to its end");
            List<TokenEvent> dup = job.events.get("dup");
            List<TokenEvent> notices = dup.stream().filter(e -> e.getIndex() < 0).toList();
            assertEquals(1, notices.size(), "one notice for the conflicting request: " + notices);
            TokenEvent notice = notices.get(0);
            assertEquals(-2, notice.getIndex());
            assertFalse(notice.getFinished(), "the notice must not end the original's stream");
            assertEquals(FinishReason.ID_CONFLICT, notice.getFinishReason());
            assertTrue(notice.getError().contains("not served"), notice.getError());
            assertEquals(1, dup.stream().filter(TokenEvent::getFinished).count(), "only the original's last token is finished");

            int[] sameTokens = job.tokens("same");
            assertArrayEquals(JobEndToEndTest.reference(model, same), sameTokens);
            assertEquals(sameTokens.length, job.events.get("same").size(), "the retries added no event at all");
        }
    }

    @ParameterizedTest(name = "mode {0}")
    @ValueSource(strings = {"sps2", "sarathi"})
    void theLowestPriorityGoesLast(String mode) throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        JobSettings base = JobHarness.settings(model, mode, 1, "dense");
        // 13 blocks of 16 tokens, block 0 scratch: 192 tokens of KV, and each request needs more than half of it
        JobSettings small = new JobSettings(base.modelPath(), null, base.modelName(), base.backend(), base.mode(), 1, base.csa(), base.appendPolicy(), 64, 16, 13, 16,
                base.maxTokensCap(), base.contextLength(), base.runtimeId(), 1);
        GenerateRequest first = JobEndToEndTest.request("first", SequenceParallelTest.longPrompt(6), 40, 0f, 1);
        GenerateRequest lowest = GenerateRequest.newBuilder(JobEndToEndTest.request("lowest", SequenceParallelTest.longPrompt(7), 40, 0.7f, 2))
                .setPriority(Integer.MIN_VALUE).build();
        GenerateRequest normal = JobEndToEndTest.request("normal", SequenceParallelTest.longPrompt(6), 40, 0.7f, 3);
        try (JobHarness.RunningJob job = harness.new RunningJob(small, 0)) {
            job.send(first);
            job.send(lowest); // arrives before normal, so only its priority can put it behind
            job.send(normal);
            job.awaitFinished(List.of("first", "lowest", "normal"), Duration.ofMinutes(2));
            assertArrayEquals(JobEndToEndTest.reference(model, lowest), job.tokens("lowest"));
            assertArrayEquals(JobEndToEndTest.reference(model, normal), job.tokens("normal"));
            long normalLast = job.events.get("normal").stream().mapToLong(TokenEvent::getEmitTimestampMs).max().orElseThrow();
            long lowestFirst = job.events.get("lowest").stream().mapToLong(TokenEvent::getEmitTimestampMs).min().orElseThrow();
            assertTrue(lowestFirst >= normalLast, "priority Integer.MIN_VALUE must wait for priority 0: its first token at " + lowestFirst
                    + ", the other's last at " + normalLast);
        }
    }
}
