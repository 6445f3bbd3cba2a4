package sps2.gpu.cuda;

import java.util.Random;

import sps2.model.HostTensor;

/** Inputs of the CUDA tests: Gaussian arrays, and arrays rounded to bfloat16 as the device stores them. */
final class TestArrays {
    private TestArrays() {
    }

    /** n values from N(0, scale^2). */
    static float[] randn(Random rnd, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextGaussian() * scale);
        }
        return a;
    }

    /** Each value rounded to the nearest bfloat16, as a float. */
    static float[] bf16(float[] a) {
        float[] r = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            r[i] = Float.intBitsToFloat((HostTensor.toBf16(a[i]) & 0xffff) << 16);
        }
        return r;
    }
}
