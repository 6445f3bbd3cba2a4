package sps2.gpu;

import java.util.random.RandomGenerator;

import sps2.model.HostTensor;

/**
 * Inputs of the backend tests: Gaussian arrays, and arrays rounded to bfloat16 as the device stores them. The
 * values are drawn with the generator's own {@code nextGaussian}, one per element in order, so a test's inputs
 * depend only on its generator and seed.
 */
public final class TestArrays {
    private TestArrays() {
    }

    /** n values from N(0, 1): {@code (float) rnd.nextGaussian()} each (times 1.0, which changes no double). */
    public static float[] randn(RandomGenerator rnd, int n) {
        return randn(rnd, n, 1.0);
    }

    /** n values from N(0, scale^2). */
    public static float[] randn(RandomGenerator rnd, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextGaussian() * scale);
        }
        return a;
    }

    /** Each value rounded to the nearest bfloat16, as a float. */
    public static float[] bf16(float[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Float.intBitsToFloat((HostTensor.toBf16(a[i]) & 0xffff) << 16);
        }
        return r;
    }
}
