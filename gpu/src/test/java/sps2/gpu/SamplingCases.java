package sps2.gpu;

import java.util.Random;

import sps2.model.HostTensor;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * Random logits rows and sampling parameters that reach every branch of the {@link Sampler}: spread,
 * peaked, tied, constant, masked and very wide rows; greedy, plain temperature (tiny to huge), top-k,
 * top-p and min-p alone and together. Fresh draws every run (the caller's Random).
 */
public final class SamplingCases {
    /** How many row shapes {@link #row} knows. */
    public static final int ROW_KINDS = 10;
    /** How many parameter families {@link #params} knows. */
    public static final int PARAM_KINDS = 8;

    private SamplingCases() {
    }

    /** A batch of rows with one row shape and one parameter family per row, both drawn at random. */
    public record Batch(int vocab, int rows, float[] logits, SamplingParams[] params, int[] positions) {
        /** The Sampler's token for each row, or -1 where it raises an IllegalArgumentException. */
        public int[] expected() {
            Sampler s = new Sampler(vocab);
            int[] out = new int[rows];
            for (int i = 0; i < rows; i++) {
                try {
                    out[i] = s.sample(logits, i * vocab, vocab, params[i], positions[i]);
                } catch (IllegalArgumentException e) {
                    out[i] = -1;
                }
            }
            return out;
        }

        /** The same batch with every logit rounded to bfloat16 (what a bf16 tensor holds). */
        public Batch bf16() {
            return new Batch(vocab, rows, SamplingCases.bf16(logits), params, positions);
        }
    }

    public static Batch batch(Random rnd, int vocab, int rows) {
        float[] logits = new float[rows * vocab];
        SamplingParams[] params = new SamplingParams[rows];
        int[] positions = new int[rows];
        for (int i = 0; i < rows; i++) {
            row(rnd, logits, i * vocab, vocab, rnd.nextInt(ROW_KINDS));
            params[i] = params(rnd, vocab, rnd.nextInt(PARAM_KINDS));
            positions[i] = rnd.nextInt(1 << 20);
        }
        return new Batch(vocab, rows, logits, params, positions);
    }

    /** One row of every (row shape, parameter family) pair, in that order: ROW_KINDS * PARAM_KINDS rows. */
    public static Batch everyKind(Random rnd, int vocab) {
        int rows = ROW_KINDS * PARAM_KINDS;
        float[] logits = new float[rows * vocab];
        SamplingParams[] params = new SamplingParams[rows];
        int[] positions = new int[rows];
        for (int i = 0; i < rows; i++) {
            row(rnd, logits, i * vocab, vocab, i / PARAM_KINDS);
            params[i] = params(rnd, vocab, i % PARAM_KINDS);
            positions[i] = rnd.nextInt(1 << 20);
        }
        return new Batch(vocab, rows, logits, params, positions);
    }

    /** Fills one row of logits with the given shape. */
    public static void row(Random rnd, float[] a, int off, int vocab, int kind) {
        switch (kind) {
            case 0, 1, 2 -> gaussian(rnd, a, off, vocab, kind == 0 ? 1 : kind == 1 ? 3 : 10);
            case 3 -> { // one token far above the rest
                gaussian(rnd, a, off, vocab, 1);
                a[off + rnd.nextInt(vocab)] += 25;
            }
            case 4 -> { // few distinct values: large groups of equal weights
                for (int i = 0; i < vocab; i++) {
                    a[off + i] = rnd.nextInt(5);
                }
            }
            case 5 -> java.util.Arrays.fill(a, off, off + vocab, (float) rnd.nextGaussian() * 4);
            case 6 -> { // masked tokens
                gaussian(rnd, a, off, vocab, 2);
                for (int i = 0; i < vocab; i++) {
                    if (rnd.nextInt(10) < 3) {
                        a[off + i] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
            case 7 -> gaussian(rnd, a, off, vocab, 60); // most weights underflow to 0
            case 8 -> { // a tie for the maximum among several tokens
                gaussian(rnd, a, off, vocab, 2);
                float top = 12 + (float) rnd.nextGaussian();
                for (int t = 0; t < 10; t++) {
                    a[off + rnd.nextInt(vocab)] = top;
                }
            }
            default -> { // a few strong candidates over a long tail, like a language model's
                gaussian(rnd, a, off, vocab, 2);
                for (int t = 0; t < 8; t++) {
                    a[off + rnd.nextInt(vocab)] = 10 + 5 * rnd.nextFloat();
                }
            }
        }
    }

    /** Parameters of one family (0 greedy, 1 temperature, 2 tiny temperature, 3 huge, 4 top-k, 5 top-p, 6 min-p, 7 all). */
    public static SamplingParams params(Random rnd, int vocab, int kind) {
        long seed = rnd.nextLong();
        float t = pick(rnd, 0.3f, 0.7f, 1f, 1.3f, 2f);
        return switch (kind) {
            case 0 -> SamplingParams.greedy();
            case 1 -> SamplingParams.temperature(t, seed);
            case 2 -> SamplingParams.temperature(pick(rnd, 1e-3f, 1e-6f, 1e-30f, Float.MIN_VALUE), seed);
            case 3 -> SamplingParams.temperature(pick(rnd, 50f, 1e4f, 1e30f, Float.MAX_VALUE), seed);
            case 4 -> new SamplingParams(t, new int[] {1, 2, 5, 40, 1000, vocab - 1, vocab, vocab + 3}[rnd.nextInt(8)], 1f, 0f, seed);
            case 5 -> new SamplingParams(t, 0, pick(rnd, 0.05f, 0.3f, 0.5f, 0.9f, 0.95f, 0.999f, 0.99999994f), 0f, seed);
            case 6 -> new SamplingParams(t, 0, 1f, pick(rnd, 0.001f, 0.05f, 0.1f, 0.5f, 0.99f), seed);
            default -> new SamplingParams(t, new int[] {0, 10, 50, 500}[rnd.nextInt(4)], pick(rnd, 0.8f, 0.95f, 1f),
                    pick(rnd, 0f, 0.02f), seed);
        };
    }

    private static float pick(Random rnd, float... values) {
        return values[rnd.nextInt(values.length)];
    }

    private static void gaussian(Random rnd, float[] a, int off, int vocab, double sigma) {
        for (int i = 0; i < vocab; i++) {
            a[off + i] = (float) (rnd.nextGaussian() * sigma);
        }
    }

    public static float[] bf16(float[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Float.intBitsToFloat((HostTensor.toBf16(a[i]) & 0xffff) << 16);
        }
        return r;
    }

    /** The tokens of {@code steps} steps drawn on the host from {@link Sequence#forward}'s logits: what {@link Generator} must give. */
    public static int[] hostSampled(LlamaModel m, int[] prompt, int steps, SamplingParams p, int blockSize) {
        int vocab = m.config().vocabSize();
        int[] want = new int[steps];
        try (Sequence s = new Sequence(m, prompt.length + steps, blockSize)) {
            sps2.model.sampler.Sampler sampler = new sps2.model.sampler.Sampler(vocab);
            float[] logits = s.forward(prompt);
            for (int i = 0; i < steps; i++) {
                want[i] = sampler.sample(logits, 0, vocab, p, s.length());
                logits = s.forward(new int[] {want[i]});
            }
        }
        return want;
    }
}
