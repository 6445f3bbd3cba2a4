package sps2.gpu.cpu;

/**
 * The sums of the CPU backend written out in plain Java, with no vector class in sight: they define the bits that
 * every vector kernel reproduces (each output element is one chain of fused multiply-adds in a fixed order), and
 * they run the first products of a process, before the Vector API is worth its start-up (see {@link CpuBackend}).
 */
final class Scalar {
    private Scalar() {
    }

    /** sum over i < n of a[ao + i] * b[bo + i], as one fma chain from 0 in order of i. */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        float acc = 0f;
        for (int i = 0; i < n; i++) {
            acc = Math.fma(a[ao + i], b[bo + i], acc);
        }
        return acc;
    }

    /** out[n, outs] = x[n, in] · wᵀ for a row-major w [outs, in]. */
    static void matmul(float[] o, float[] x, float[] w, int n, int in, int outs) {
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < outs; c++) {
                o[r * outs + c] = dot(x, r * in, w, c * in, in);
            }
        }
    }
}
