package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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

/** Admission on KV capacity: what can never fit is rejected, what fits later waits, nothing overflows. */
class AdmissionTest extends JobTestBase {

    @ParameterizedTest(name = "mode {0}")
    @ValueSource(strings = {"sps2", "sarathi"})
    void requestsWaitForKvSpaceAndImpossibleOnesAreRejected(String mode) throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        JobSettings base = JobHarness.settings(model, mode, 1, "dense");
        // 13 blocks of 16 tokens; block 0 is scratch: 192 tokens of KV in all
        JobSettings small = new JobSettings(base.modelPath(), null, base.modelName(), base.backend(), base.mode(), 1, base.csa(), base.appendPolicy(), 64, 16, 13, 16,
                base.maxTokensCap(), base.contextLength(), base.runtimeId(), 1);
        GenerateRequest a = JobEndToEndTest.request("a", SequenceParallelTest.longPrompt(6), 40, 0f, 1);
        GenerateRequest b = JobEndToEndTest.request("b", SequenceParallelTest.longPrompt(7), 40, 0.7f, 2);
        GenerateRequest tooBig = JobEndToEndTest.request("too-big", SequenceParallelTest.longPrompt(12), 60, 0f, 3);
        try (JobHarness.RunningJob job = harness.new RunningJob(small, 0)) {
            job.send(a);
            job.send(b);
            job.send(tooBig);
            job.awaitFinished(List.of("a", "b", "too-big"), Duration.ofMinutes(2));
            List<TokenEvent> rejected = job.events.get("too-big");
            assertEquals(1, rejected.size());
            assertEquals(FinishReason.REJECTED, rejected.get(0).getFinishReason());
            assertTrue(rejected.get(0).getError().contains("KV"), rejected.get(0).getError());
            // a and b do not fit together (each needs more than half the pool): b waited, both are exact
            assertArrayEquals(JobEndToEndTest.reference(model, a), job.tokens("a"));
            assertArrayEquals(JobEndToEndTest.reference(model, b), job.tokens("b"));
            long aLast = job.events.get("a").stream().mapToLong(TokenEvent::getEmitTimestampMs).max().orElseThrow();
            long bFirst = job.events.get("b").stream().mapToLong(TokenEvent::getEmitTimestampMs).min().orElseThrow();
            assertTrue(bFirst >= aLast, "b must wait for a's KV to be released: b's first token at " + bFirst + ", a's last at " + aLast);
        }
    }
}
