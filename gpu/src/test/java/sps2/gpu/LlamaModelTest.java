package sps2.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import sps2.gpu.cpu.CpuBackend;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;

class LlamaModelTest {

    private static int[] randomTokens(int n, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(vocab);
        }
        return t;
    }

    @Test
    void logitsMatchFloat64ReferenceAtEveryChunking() {
        ModelConfig c = TestModels.tinyConfig();
        ModelWeights w = TestModels.random(c, 7);
        int[] tokens = randomTokens(37, c.vocabSize(), 11);
        double[][] ref = new ReferenceLlama(w).logits(tokens);
        try (CpuBackend b = new CpuBackend(2); LlamaModel m = new LlamaModel(b, w, null)) {
            for (int chunk : new int[] {1, 5, 64}) {
                try (Sequence s = new Sequence(m, 64, chunk)) {
                    float[] logits = s.forward(tokens).clone();
                    double err = ReferenceLlama.relativeError(logits, ref[tokens.length - 1]);
                    assertTrue(err < 1e-4, "chunk " + chunk + ": relative error " + err);
                }
            }
        }
    }

    @Test
    void prefillOfManyTokensEqualsSingleTokenSteps() {
        for (long scalarWork : new long[] {CpuBackend.COLD_WORK, 0}) { // the scalar forms of a cold start, then vectors throughout
            prefillEqualsSteps(scalarWork);
        }
    }

    private static void prefillEqualsSteps(long scalarWork) {
        ModelConfig c = TestModels.tinyConfig();
        ModelWeights w = TestModels.random(c, 3);
        int[] tokens = randomTokens(29, c.vocabSize(), 5);
        try (CpuBackend b = new CpuBackend(2, scalarWork); LlamaModel m = new LlamaModel(b, w, null);
                Sequence whole = new Sequence(m, 64, 64); Sequence steps = new Sequence(m, 64, 1)) {
            float[] a = whole.forward(tokens).clone();
            float[] z = null;
            for (int t : tokens) {
                z = steps.forward(new int[] {t});
            }
            assertArrayEquals(a, z, 0f, "prefill and single steps must agree exactly on the CPU backend");
            // and generation continues identically from both
            int next = 17;
            assertArrayEquals(whole.forward(new int[] {next}).clone(), steps.forward(new int[] {next}), 0f);
        }
    }

    /** The scalar forms of a cold backend and the vector kernels give the same logits, bit for bit. */
    @Test
    void scalarAndVectorFormsGiveTheSameLogits() {
        ModelConfig c = TestModels.tinyConfig();
        ModelWeights w = TestModels.random(c, 4);
        int[] tokens = randomTokens(45, c.vocabSize(), 6);
        float[][] got = new float[2][];
        long[] scalarWork = {Long.MAX_VALUE, 0};
        for (int k = 0; k < 2; k++) {
            try (CpuBackend b = new CpuBackend(2, scalarWork[k]); LlamaModel m = new LlamaModel(b, w, null); Sequence s = new Sequence(m, 64, 16)) {
                s.forward(java.util.Arrays.copyOf(tokens, 40));
                for (int t = 40; t < tokens.length; t++) {
                    s.forward(new int[] {tokens[t]});
                }
                got[k] = s.forward(new int[] {1}).clone();
            }
        }
        assertArrayEquals(got[0], got[1], 0f, "scalar and vector forms must agree exactly");
    }
}
