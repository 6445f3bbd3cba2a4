package sps2.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.Test;

import sps2.gpu.cpu.CpuBackend;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/** {@link Backend#sample}'s default (rows read to the host, the Sampler on each) and its use in {@link Generator}. */
class HostSamplingTest {
    private final Random rnd = new Random(System.nanoTime());

    @Test
    void everyRowGetsTheSamplersToken() {
        try (CpuBackend b = new CpuBackend(1)) {
            for (int vocab : new int[] {512, 5000}) {
                SamplingCases.Batch batch = SamplingCases.batch(rnd, vocab, 40);
                try (Tensor t = b.allocate(batch.rows(), vocab)) {
                    b.write(t, 0, batch.logits(), 0, batch.rows());
                    assertArrayEquals(batch.expected(), b.sample(t, batch.rows(), batch.params(), batch.positions()), "vocab " + vocab);
                    // a prefix of the rows, with longer parameter arrays than needed
                    int[] prefix = b.sample(t, 3, batch.params(), batch.positions());
                    assertArrayEquals(Arrays.copyOf(batch.expected(), 3), prefix);
                }
            }
        }
    }

    @Test
    void aRowTheSamplerRejectsRaisesItsError() {
        int vocab = 300;
        SamplingCases.Batch batch = SamplingCases.batch(rnd, vocab, 4);
        float[] logits = batch.logits().clone();
        logits[2 * vocab + rnd.nextInt(vocab)] = Float.NaN;
        Arrays.fill(logits, 3 * vocab, 4 * vocab, Float.NEGATIVE_INFINITY);
        String want = assertThrows(IllegalArgumentException.class,
                () -> new Sampler(vocab).sample(logits, 2 * vocab, vocab, batch.params()[2], batch.positions()[2])).getMessage();
        try (CpuBackend b = new CpuBackend(1); Tensor t = b.allocate(4, vocab)) {
            b.write(t, 0, logits, 0, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.sample(t, 4, batch.params(), batch.positions()));
            assertEquals(want, e.getMessage(), "the first bad row's error, as the Sampler words it");
            assertArrayEquals(Arrays.copyOf(batch.expected(), 2), b.sample(t, 2, batch.params(), batch.positions()), "the rows before it");
            int[] negative = batch.positions().clone();
            negative[0] = -1;
            assertThrows(IllegalArgumentException.class, () -> b.sample(t, 1, batch.params(), negative));
            assertThrows(IllegalArgumentException.class, () -> b.sample(t, 5, batch.params(), batch.positions()));
            assertThrows(IllegalArgumentException.class, () -> b.sample(t, 4, Arrays.copyOf(batch.params(), 3), batch.positions()));
        }
    }

    @Test
    void generatorDrawsWhatTheSamplerDrawsFromTheReadLogits() {
        ModelConfig c = TestModels.tinyConfig();
        ModelWeights w = TestModels.random(c, rnd.nextLong());
        int[] prompt = new int[9];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = rnd.nextInt(c.vocabSize());
        }
        SamplingParams p = new SamplingParams(0.9f, 20, 0.95f, 0.01f, rnd.nextLong());
        try (CpuBackend b = new CpuBackend(2); LlamaModel m = new LlamaModel(b, w, null)) {
            int[] got = new Generator(m, 4).generate(prompt, 12, p, t -> false);
            int[] want = SamplingCases.hostSampled(m, prompt, 12, p, 4);
            assertArrayEquals(want, got);
        }
    }
}
