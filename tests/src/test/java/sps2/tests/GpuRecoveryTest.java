package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.UUID;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import sps2.gpu.Backend;
import sps2.gpu.Backends;
import sps2.gpu.Generator;
import sps2.gpu.LlamaModel;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.sampler.SamplingParams;
import sps2.model.shapes.RandomCheckpointWriter;
import sps2.operators.JobSettings;
import sps2.operators.csa.CsaPolicy;
import sps2.schemas.GenerateRequest;

/**
 * The promise of {@link RecoveryTest} on the GPU with the batch-invariant kernels: a failure in the middle of
 * generation, and every request still ends with exactly the tokens of single-process generation on the same GPU
 * (a request prefilled again after the restart, or resumed from its kept K/V, computes the bits it computed before).
 * The model has the head size and grouping of the real shapes (64, 4 query heads per KV head), so that every
 * attention row goes through the invariant kernels. Skipped without a GPU.
 */
class GpuRecoveryTest extends JobTestBase {
    private static Path dir;
    private static Path model;
    /** The requests every case sends, and their tokens from single-process generation (computed once). */
    private static List<GenerateRequest> requests;
    private static java.util.Map<String, int[]> reference;

    @BeforeAll
    static void writeModel() throws Exception {
        if (Backends.cudaUnavailableReason() != null) {
            return;
        }
        dir = Files.createTempDirectory("sps2-gpu-recovery");
        ModelConfig c = new ModelConfig(512, 1024, 2, 8, 2, 2048, 4096, 500000f, 1e-5f, false, null);
        model = RandomCheckpointWriter.write(c, "test-d64", dir, DType.BF16, 11, RandomCheckpointWriter.Progress.NONE);
        requests = requests();
        reference = references(requests);
    }

    private static List<GenerateRequest> requests() {
        SplittableRandom rnd = new SplittableRandom(5);
        List<GenerateRequest> list = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            List<Integer> prompt = new ArrayList<>();
            for (int t = 0; t < 200 + 300 * i; t++) {
                prompt.add(rnd.nextInt(2048));
            }
            list.add(GenerateRequest.newBuilder().setRequestId("gpu-rec" + i).setPromptTokens(prompt).setMaxTokens(40)
                    .setTemperature(i % 2 == 0 ? 0f : 0.9f).setTopP(0.9f).setSeed(70 + i).setIgnoreEos(true).build());
        }
        return list;
    }

    @AfterAll
    static void removeModel() throws Exception {
        if (dir != null) {
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @ParameterizedTest(name = "mode {0}, {1} shard(s), KV recovery {2}")
    // SP 1 only: with SP > 1 the remote segments' attention (compact K/V) and the partial merges are not batch-invariant
    // kernels, so on the GPU an SP > 1 run promises the same tokens after recovery only up to bf16 rounding (README, Status).
    @CsvSource({"sps2, 1, recompute", "sps2, 1, snapshot", "sarathi, 1, recompute"})
    void aFailureMidGenerationChangesNoTokenOnTheGpu(String mode, int shards, String recovery) throws Exception {
        assumeTrue(Backends.cudaUnavailableReason() == null, () -> "No CUDA GPU here, skipping: " + Backends.cudaUnavailableReason());
        JobSettings settings = new JobSettings(model.toString(), null, "default", JobSettings.BackendKind.CUDA, JobSettings.Mode.parse(mode), shards,
                CsaPolicy.parse("dense"), JobSettings.AppendPolicy.TAIL, 256, 16, 1024, 16, 4096, 1 << 20, "gpu-rec-" + UUID.randomUUID(), 1,
                JobSettings.KvRecovery.parse(recovery), JobSettings.Kernels.INVARIANT);
        try (RecoveryHooks hooks = new RecoveryHooks(100); JobHarness.RunningJob job = harness.new RunningJob(settings.withHooks(hooks), 100)) {
            requests.forEach(job::send);
            job.awaitFinished(requests.stream().map(GenerateRequest::getRequestId).toList(), Duration.ofMinutes(5));
            int events = 0;
            for (GenerateRequest r : requests) {
                assertArrayEquals(reference.get(r.getRequestId()), job.tokens(r.getRequestId()), "request " + r.getRequestId());
                events += job.events.get(r.getRequestId()).size();
            }
            int tokens = requests.stream().mapToInt(r -> job.tokens(r.getRequestId()).length).sum();
            assertTrue(events > tokens, "the injected failure should have caused replayed events; got " + events + " for " + tokens + " tokens");
        }
    }

    /** Single-process generation of each request on the same GPU with the invariant kernels, one model for all. */
    private static java.util.Map<String, int[]> references(List<GenerateRequest> rs) {
        ModelWeights w = ModelLoader.load(model);
        java.util.Map<String, int[]> out = new java.util.HashMap<>();
        try (Backend b = Backends.cuda(0, true); LlamaModel m = new LlamaModel(b, w, null)) {
            Generator g = new Generator(m, 512);
            for (GenerateRequest r : rs) {
                int[] prompt = r.getPromptTokens().stream().mapToInt(Integer::intValue).toArray();
                SamplingParams p = new SamplingParams(r.getTemperature(), r.getTopK(), r.getTopP(), r.getMinP(), r.getSeed());
                out.put(r.getRequestId(), g.generate(prompt, r.getMaxTokens(), p, t -> false));
            }
        }
        return out;
    }
}
