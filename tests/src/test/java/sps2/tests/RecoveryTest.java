package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import sps2.operators.JobSettings;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * A failure in the middle of generation: the job restarts from its last checkpoint, prefills the running
 * requests again from their token history, and every request still ends with exactly the reference
 * tokens — replayed events repeat identical tokens, none is lost.
 */
class RecoveryTest extends JobTestBase {
    @ParameterizedTest(name = "mode {0}, {1} shards, KV recovery {2}")
    @CsvSource({"sps2, 2, recompute", "sarathi, 1, recompute", "sps2, 2, snapshot", "sps2, 1, snapshot"})
    void aFailureMidGenerationLosesNothingAndChangesNothing(String mode, int shards, String recovery) throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        List<GenerateRequest> requests = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            requests.add(JobEndToEndTest.request("rec" + i, SequenceParallelTest.longPrompt(10 + 7 * i), 60, i % 2 == 0 ? 0f : 0.9f, 50 + i));
        }
        try (RecoveryHooks hooks = new RecoveryHooks(120);
                JobHarness.RunningJob job = harness.new RunningJob(JobHarness.settings(model, mode, shards, "dense")
                        .withKvRecovery(JobSettings.KvRecovery.parse(recovery)).withHooks(hooks), 100)) {
            requests.forEach(job::send);
            job.awaitFinished(requests.stream().map(GenerateRequest::getRequestId).toList(), Duration.ofMinutes(3));
            int events = 0;
            for (GenerateRequest r : requests) {
                assertArrayEquals(JobEndToEndTest.reference(model, r), job.tokens(r.getRequestId()), "request " + r.getRequestId());
                events += job.events.get(r.getRequestId()).size();
            }
            int tokens = requests.stream().mapToInt(r -> job.tokens(r.getRequestId()).length).sum();
            assertTrue(events > tokens, "the injected failure should have caused replayed (duplicate) events; got " + events + " for " + tokens + " tokens");
            if (recovery.equals("snapshot")) {
                assertTrue(hooks.resumedFromSnapshot() > 0,
                        "decoding requests should resume from the KV kept in keyed state, not be prefilled again");
            } else {
                assertTrue(hooks.prefilledAgain() > 0, "running requests should be prefilled again");
            }
        }
    }
}
