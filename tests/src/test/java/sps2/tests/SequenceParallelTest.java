package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import sps2.schemas.GenerateRequest;

/** Sequence-parallel prefill and decode with dense attention give the tokens of single-process generation. */
class SequenceParallelTest extends JobTestBase {
    /** A long story-like prompt of roughly the given number of tokens. */
    static String longPrompt(int sentences) {
        String[] parts = {"Lily went to the park with her mom.", "She saw a big red ball and a small dog.", "The dog was happy and ran fast.",
                "Tom came to play with them.", "They laughed and played all day.", "Then it was time to go home."};
        StringBuilder b = new StringBuilder("Once upon a time");
        for (int i = 0; i < sentences; i++) {
            b.append(' ').append(parts[i % parts.length]);
        }
        return b.toString();
    }

    private static final java.util.Map<String, int[]> REFERENCE = new java.util.concurrent.ConcurrentHashMap<>();

    private static int[] reference(Path model, GenerateRequest r) {
        return REFERENCE.computeIfAbsent(r.getRequestId(), k -> JobEndToEndTest.reference(model, r));
    }

    /**
     * A ~1,500-token prompt and 256 generated tokens, greedy and sampled, plus short ones: every mode and
     * SP degree gives exactly the tokens of single-process generation (dense attention).
     */
    @ParameterizedTest(name = "mode {0}, {1} shards, append {2}")
    @CsvSource({"sps2, 1, tail", "sps2, 2, tail", "sps2, 4, tail", "sps2, 2, least-loaded", "sarathi, 1, tail", "sarathi, 2, tail"})
    void longPromptsGiveTheReferenceTokens(String mode, int shards, String append) throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        List<GenerateRequest> requests = List.of(
                JobEndToEndTest.request("long-greedy", longPrompt(115), 256, 0f, 1),
                JobEndToEndTest.request("long-sampled", longPrompt(112), 256, 0.9f, 77),
                JobEndToEndTest.request("short", "Once upon a time", 16, 0f, 3),
                JobEndToEndTest.request("tiny", "A", 12, 0.5f, 4));
        sps2.operators.JobSettings base = JobHarness.settings(model, mode, shards, "dense");
        sps2.operators.JobSettings settings = new sps2.operators.JobSettings(base.modelPath(), null, base.modelName(), base.backend(), base.mode(), shards,
                base.csa(), sps2.operators.JobSettings.AppendPolicy.parse(append), base.chunkSize(), base.minSegment(), base.kvBlocks(), base.blockSize(), base.maxTokensCap(), base.contextLength(),
                base.runtimeId(), base.threadsPerShard());
        try (JobHarness.RunningJob job = harness.new RunningJob(settings, 0)) {
            requests.forEach(job::send);
            job.awaitFinished(requests.stream().map(GenerateRequest::getRequestId).toList(), Duration.ofMinutes(5));
            for (GenerateRequest r : requests) {
                assertArrayEquals(reference(model, r), job.tokens(r.getRequestId()), "request " + r.getRequestId());
            }
        }
    }
}
