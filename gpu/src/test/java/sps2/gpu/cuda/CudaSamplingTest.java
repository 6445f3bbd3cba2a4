package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import sps2.gpu.Generator;
import sps2.gpu.LlamaModel;
import sps2.gpu.SamplingCases;
import sps2.gpu.Tensor;
import sps2.gpu.TestModels;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * Device sampling (sample.cu) against {@link Sampler#sample} on fresh random logits, fp32 and bf16, vocabularies
 * of 512, 1001 (odd rows not 16-byte aligned: the scalar loads), 32000 and 128256, every row shape and parameter
 * family of {@link SamplingCases}: the device's token must be the Sampler's on every row it decides, and
 * {@link CudaBackend#sample} (with the host fallback) on every row. Invalid rows: the kernel marks them and sample() raises the Sampler's error for the first one (the
 * whole call fails, as the host default does); the other rows of the batch are unaffected. Skipped without a GPU.
 */
class CudaSamplingTest extends CudaTestBase {
    private static final int[] VOCABS = {512, 1001, 32000, 128256};

    @AfterAll
    static void close() {
        if (be != null) {
            be.close();
        }
    }

    private static Tensor upload(SamplingCases.Batch b, boolean bf16) {
        Tensor t = bf16 ? be.allocate(b.rows(), b.vocab()) : be.allocateFloat(b.rows(), b.vocab());
        be.write(t, 0, b.logits(), 0, b.rows());
        return t;
    }

    /**
     * Checks every row of one batch on the device (margin scale as given) and through sample(); returns how many
     * valid rows the kernel left to the host.
     */
    private static int check(SamplingCases.Batch batch, boolean bf16, float margin, String what) {
        SamplingCases.Batch ref = bf16 ? batch.bf16() : batch;
        int[] want = ref.expected();
        try (Tensor t = upload(batch, bf16)) {
            int[] codes = be.sampleCodes(t, batch.rows(), batch.params(), batch.positions(), margin);
            int undecided = 0;
            for (int i = 0; i < batch.rows(); i++) {
                int row = i;
                String desc = what + (bf16 ? " bf16" : " fp32") + " vocab " + batch.vocab() + " row " + i + " " + batch.params()[i];
                if (want[i] < 0) {
                    assertEquals(CudaSampling.SAMPLE_INVALID, codes[i], () -> desc + ": the Sampler rejects this row");
                } else if (codes[i] == CudaSampling.SAMPLE_UNDECIDED) {
                    undecided++;
                } else {
                    assertEquals(want[row], codes[row], () -> desc + ": device token");
                }
            }
            if (Arrays.stream(want).allMatch(x -> x >= 0)) {
                assertArrayEquals(want, be.sample(t, batch.rows(), batch.params(), batch.positions(), margin), what + ": sample()");
            }
            return undecided;
        }
    }

    @Test
    void everyRowShapeAndParameterFamilyGetsTheSamplersToken() {
        int rows = 0;
        int undecided = 0;
        for (int vocab : VOCABS) {
            for (boolean bf16 : new boolean[] {false, true}) {
                SamplingCases.Batch b = SamplingCases.everyKind(rnd, vocab);
                undecided += check(b, bf16, 1f, "every kind");
                rows += b.rows();
            }
        }
        assertTrue(undecided <= rows / 50, undecided + " of " + rows + " rows were left to the host; expected about none");
    }

    @Test
    void randomBatchesGetTheSamplersToken() {
        int rows = 0;
        int undecided = 0;
        for (int vocab : VOCABS) {
            for (boolean bf16 : new boolean[] {false, true}) {
                for (int rep = 0; rep < (vocab < 2000 ? 4 : 2); rep++) {
                    SamplingCases.Batch b = SamplingCases.batch(rnd, vocab, vocab == 128256 ? 48 : 96);
                    undecided += check(b, bf16, 1f, "random");
                    rows += b.rows();
                }
            }
        }
        assertTrue(undecided <= rows / 50, undecided + " of " + rows + " rows were left to the host; expected about none");
    }

    /** With no margin the kernel decides every valid row itself; its sums are then its own, and still right here. */
    @Test
    void theDeviceAloneDecidesEveryValidRow() {
        for (int vocab : VOCABS) {
            SamplingCases.Batch b = SamplingCases.everyKind(rnd, vocab);
            assertEquals(0, check(b, true, 0f, "margin 0"), "no row is left to the host with a zero margin");
        }
    }

    /** An infinite margin leaves every row whose sums are not provably exact to the host Sampler. */
    @Test
    void rowsLeftToTheHostGetTheSamplersToken() {
        long before = be.hostSampledRows();
        int undecided = 0;
        for (int vocab : new int[] {512, 32000}) {
            undecided += check(SamplingCases.everyKind(rnd, vocab), false, Float.POSITIVE_INFINITY, "margin inf");
        }
        assertTrue(undecided > 0, "plain temperature over a whole vocabulary has inexact sums: some rows go to the host");
        assertTrue(be.hostSampledRows() - before >= undecided, "sample() sent them to the host Sampler");
    }

    @Test
    void invalidRowsRaiseTheSamplersErrorAndLeaveTheOthersAlone() {
        int vocab = 32000;
        for (boolean bf16 : new boolean[] {false, true}) {
            SamplingCases.Batch ok = SamplingCases.batch(rnd, vocab, 8);
            float[] logits = ok.logits().clone();
            logits[2 * vocab + rnd.nextInt(vocab)] = Float.NaN;
            logits[4 * vocab + rnd.nextInt(vocab)] = Float.POSITIVE_INFINITY;
            Arrays.fill(logits, 6 * vocab, 7 * vocab, Float.NEGATIVE_INFINITY);
            SamplingCases.Batch bad = new SamplingCases.Batch(vocab, 8, logits, ok.params(), ok.positions());
            SamplingCases.Batch ref = bf16 ? bad.bf16() : bad;
            int[] want = ref.expected();
            assertTrue(want[2] < 0 && want[4] < 0 && want[6] < 0, "the Sampler rejects rows 2, 4 and 6");
            check(bad, bf16, 1f, "invalid rows");
            String message = assertThrows(IllegalArgumentException.class, () -> new Sampler(vocab).sample(ref.logits(), 2 * vocab, vocab,
                    ok.params()[2], ok.positions()[2])).getMessage();
            try (Tensor t = upload(bad, bf16)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.sample(t, 8, ok.params(), ok.positions()));
                assertEquals(message, e.getMessage(), "the first invalid row's error, as the Sampler words it");
                assertArrayEquals(Arrays.copyOf(want, 2), be.sample(t, 2, ok.params(), ok.positions()), "the rows before it");
                int[] negative = ok.positions().clone();
                negative[1] = -5;
                IllegalArgumentException p = assertThrows(IllegalArgumentException.class, () -> be.sample(t, 2, ok.params(), negative));
                assertTrue(p.getMessage().contains("-5"), p.getMessage());
            }
        }
    }

    @Test
    void greedyRowsEqualTheArgmaxKernel() {
        int vocab = 128256, n = 16;
        SamplingParams[] greedy = new SamplingParams[n];
        Arrays.fill(greedy, SamplingParams.greedy());
        float[] logits = new float[n * vocab];
        for (int i = 0; i < n; i++) {
            SamplingCases.row(rnd, logits, i * vocab, vocab, rnd.nextInt(SamplingCases.ROW_KINDS));
        }
        try (Tensor t = be.allocate(n, vocab)) {
            be.write(t, 0, logits, 0, n);
            int[] ids = be.sample(t, n, greedy, new int[n]);
            assertArrayEquals(be.argmax(t, n), ids);
        }
    }

    /** Generation on the device (Sequence.next) draws what the Sampler draws from the logits read to the host. */
    @Test
    void generatorSamplesOnTheDeviceAsTheSamplerWould() {
        ModelConfig c = new ModelConfig(128, 256, 2, 2, 2, 1000, 256, 10000f, 1e-5f, false, null);
        ModelWeights w = TestModels.random(c, rnd.nextLong());
        int[] prompt = new int[11];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = rnd.nextInt(c.vocabSize());
        }
        SamplingParams p = new SamplingParams(1.1f, 0, 0.9f, 0f, rnd.nextLong());
        try (LlamaModel m = new LlamaModel(be, w, null)) {
            int[] got = new Generator(m, 8).generate(prompt, 20, p, t -> false);
            int[] want = SamplingCases.hostSampled(m, prompt, 20, p, 8);
            assertArrayEquals(want, got);
        }
    }
}
