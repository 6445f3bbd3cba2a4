package sps2.gpu;

import java.util.Objects;

import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * Sampling on the host with {@link Sampler}: the default of {@link Backend#sample} and the CUDA backend's
 * fallback for the rows its kernel leaves to the host. One Sampler per thread, grown to the largest
 * vocabulary it has seen.
 */
public final class HostSampling {
    private static final ThreadLocal<Sampler> SAMPLER = ThreadLocal.withInitial(() -> new Sampler(1));
    /** Most floats read to the host at once: 16 MB. */
    private static final int READ_FLOATS = 4 << 20;

    private HostSampling() {
    }

    /** Checks the arguments of {@link Backend#sample}. */
    public static void check(Tensor logits, int n, SamplingParams[] params, int[] positions) {
        if (logits.isInt()) {
            throw new IllegalArgumentException("Sampling needs a float logits tensor, not an integer one");
        }
        if (n < 0 || n > logits.rows()) {
            throw new IllegalArgumentException("Cannot sample " + n + " rows from a logits tensor of " + logits.rows() + " rows");
        }
        if (params.length < n || positions.length < n) {
            throw new IllegalArgumentException("Sampling " + n + " rows needs as many parameters and positions, got "
                    + params.length + " and " + positions.length);
        }
        for (int i = 0; i < n; i++) {
            Objects.requireNonNull(params[i], "sampling params of row " + i);
        }
    }

    /** Reads the first {@code n} rows of logits to the host and samples each with the Sampler. */
    public static int[] sample(Backend backend, Tensor logits, int n, SamplingParams[] params, int[] positions) {
        check(logits, n, params, positions);
        int[] out = new int[n];
        if (n == 0) {
            return out;
        }
        int vocab = logits.cols();
        int chunk = Math.max(1, Math.min(n, READ_FLOATS / vocab));
        float[] rows = new float[chunk * vocab];
        Sampler sampler = SAMPLER.get();
        for (int r0 = 0; r0 < n; r0 += chunk) {
            int m = Math.min(chunk, n - r0);
            backend.read(logits, r0, rows, 0, m);
            for (int i = 0; i < m; i++) {
                out[r0 + i] = sampler.sample(rows, i * vocab, vocab, params[r0 + i], positions[r0 + i]);
            }
        }
        return out;
    }

    /** Reads one row of logits to the host and samples it with the Sampler. */
    public static int sampleRow(Backend backend, Tensor logits, int row, SamplingParams params, int position) {
        float[] values = new float[logits.cols()];
        backend.read(logits, row, values, 0, 1);
        return SAMPLER.get().sample(values, 0, values.length, params, position);
    }
}
