package sps2.gpu.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import sps2.gpu.AttentionBatch;
import sps2.gpu.CompactKv;
import sps2.gpu.KvPool;
import sps2.gpu.ReferenceLlama;
import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;

class CpuBackendTest {
    private final SplittableRandom rnd = new SplittableRandom(42);

    private float[] random(int n) {
        return TestArrays.randn(rnd, n);
    }

    @Test
    void matmulMatchesFloat64() {
        try (CpuBackend b = new CpuBackend(2)) {
            for (int[] s : new int[][] {{1, 37, 19}, {9, 64, 130}, {33, 300, 70}}) {
                int n = s[0], in = s[1], outs = s[2];
                float[] x = random(n * in);
                float[] w = random(outs * in);
                Tensor xt = b.allocate(n, in);
                b.write(xt, 0, x, 0, n);
                Tensor wt = b.upload(sps2.model.HostTensor.ofFloats("w", w, outs, in));
                Tensor ot = b.allocate(n, outs);
                float[] out = new float[n * outs];
                java.util.Arrays.fill(out, Float.NaN);
                b.write(ot, 0, out, 0, n);
                b.matmul(ot, xt, wt, n);
                b.read(ot, 0, out, 0, n);
                double[] ref = new double[n * outs];
                for (int r = 0; r < n; r++) {
                    for (int o = 0; o < outs; o++) {
                        double acc = 0;
                        for (int i = 0; i < in; i++) {
                            acc += (double) x[r * in + i] * w[o * in + i];
                        }
                        ref[r * outs + o] = acc;
                    }
                }
                double err = ReferenceLlama.relativeError(out, ref);
                assertTrue(err < 1e-5, "matmul " + java.util.Arrays.toString(s) + " error " + err);
            }
        }
    }

    /**
     * Every output element of the vector kernels is the fused multiply-add chain of {@link Scalar#dot}, bit for bit, whether its
     * row is multiplied alone or in a batch, by one thread or two: the shapes reach every register tile (4 rows x
     * 4 panels and the 1-row and 1-panel edges) and partial last panels.
     */
    @Test
    void matmulRowsAreExactAloneAndBatchedOnAnyThreadCount() {
        for (int threads : new int[] {1, 2}) {
            // vectors from the first call; the scalar forms of a cold backend are the definition itself
            try (CpuBackend b = new CpuBackend(threads, 0)) {
                for (int[] s : new int[][] {{1, 288, 288}, {7, 37, 19}, {70, 288, 130}, {130, 172, 70}, {9, 5, 3}}) {
                    int n = s[0], in = s[1], outs = s[2];
                    float[] x = random(n * in);
                    float[] w = random(outs * in);
                    Tensor wt = b.upload(sps2.model.HostTensor.ofFloats("w", w, outs, in));
                    Tensor xt = b.allocate(n, in);
                    b.write(xt, 0, x, 0, n);
                    Tensor ot = b.allocate(n, outs);
                    b.matmul(ot, xt, wt, n);
                    float[] batched = new float[n * outs];
                    b.read(ot, 0, batched, 0, n);
                    Tensor x1 = b.allocate(1, in);
                    Tensor o1 = b.allocate(1, outs);
                    float[] alone = new float[outs];
                    for (int r = 0; r < n; r++) {
                        b.write(x1, 0, x, r * in, 1);
                        b.matmul(o1, x1, wt, 1);
                        b.read(o1, 0, alone, 0, 1);
                        for (int c = 0; c < outs; c++) {
                            float want = Scalar.dot(x, r * in, w, c * in, in);
                            String where = threads + " threads, shape " + java.util.Arrays.toString(s) + ", row " + r + ", col " + c;
                            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(batched[r * outs + c]), "batched, " + where);
                            assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(alone[c]), "alone, " + where);
                        }
                    }
                }
            }
        }
    }

    /** Attention in the scalar forms and in vectors gives the same bits, for head sizes with and without a vector tail. */
    @Test
    void attentionScalarAndVectorFormsAgreeBitForBit() {
        for (int hs : new int[] {8, 24, 32}) {
            int nHeads = 4, nKv = 2, n = 5, len = 37;
            float[] q = random(n * nHeads * hs);
            float[] k = random(nKv * len * hs);
            float[] v = random(nKv * len * hs);
            float[][] out = new float[2][];
            long[] scalarWork = {Long.MAX_VALUE, 0};
            for (int c = 0; c < 2; c++) {
                try (CpuBackend b = new CpuBackend(1, scalarWork[c])) {
                    Tensor qt = b.allocate(n, nHeads * hs);
                    b.write(qt, 0, q, 0, n);
                    Tensor o = b.allocate(n, nHeads * hs), l = b.allocate(n, nHeads);
                    b.attention(o, l, qt, n, compact(b, k, v, nKv, hs, len, 0, len), nHeads, nKv, hs);
                    out[c] = new float[n * nHeads * (hs + 1)];
                    b.read(o, 0, out[c], 0, n);
                    b.read(l, 0, out[c], n * nHeads * hs, n);
                }
            }
            for (int e = 0; e < out[0].length; e++) {
                assertEquals(Float.floatToRawIntBits(out[0][e]), Float.floatToRawIntBits(out[1][e]), "head size " + hs + ", element " + e);
            }
        }
    }

    /** Attention over all keys equals attention over two disjoint halves merged by log-sum-exp. */
    @Test
    void partialAttentionsMergeExactly() {
        int nHeads = 4, nKv = 2, hs = 8, n = 5, len = 23, half = 9;
        try (CpuBackend b = new CpuBackend(2)) {
            float[] q = random(n * nHeads * hs);
            float[] k = random(nKv * len * hs);
            float[] v = random(nKv * len * hs);
            Tensor qt = b.allocate(n, nHeads * hs);
            b.write(qt, 0, q, 0, n);
            Tensor full = b.allocate(n, nHeads * hs), fullL = b.allocate(n, nHeads);
            b.attention(full, fullL, qt, n, compact(b, k, v, nKv, hs, len, 0, len), nHeads, nKv, hs);
            Tensor a = b.allocate(n, nHeads * hs), aL = b.allocate(n, nHeads);
            Tensor c = b.allocate(n, nHeads * hs), cL = b.allocate(n, nHeads);
            b.attention(a, aL, qt, n, compact(b, k, v, nKv, hs, len, 0, half), nHeads, nKv, hs);
            b.attention(c, cL, qt, n, compact(b, k, v, nKv, hs, len, half, len), nHeads, nKv, hs);
            b.mergeAttention(a, aL, c, cL, n, nHeads, hs);
            assertClose(b, full, a, n, 1e-5);
            assertClose(b, fullL, aL, n, 1e-5);
        }
    }

    /** Paged causal attention of a chunk equals unmasked attention over each row's visible prefix. */
    @Test
    void pagedCausalAttentionMatchesCompact() {
        int nHeads = 4, nKv = 2, hs = 8, len = 21, q0 = 14, blockSize = 4;
        int n = len - q0;
        try (CpuBackend b = new CpuBackend(2)) {
            float[] q = random(n * nHeads * hs);
            float[] k = random(len * nKv * hs);
            float[] v = random(len * nKv * hs);
            KvPool pool = b.allocateKvPool(1, nKv * hs, 8, blockSize);
            int[] table = {5, 2, 7, 0, 3, 1};
            int[] slots = new int[len];
            for (int t = 0; t < len; t++) {
                slots[t] = table[t / blockSize] * blockSize + t % blockSize;
            }
            Tensor kt = b.allocate(len, nKv * hs), vt = b.allocate(len, nKv * hs);
            b.write(kt, 0, k, 0, len);
            b.write(vt, 0, v, 0, len);
            b.kvWrite(pool, 0, kt, vt, b.upload(slots), len);
            Tensor qt = b.allocate(n, nHeads * hs);
            b.write(qt, 0, q, 0, n);
            Tensor out = b.allocate(n, nHeads * hs), lse = b.allocate(n, nHeads);
            b.attention(out, lse, qt, pool, 0, b.prepare(AttentionBatch.single(n, len, table)), nHeads, nKv, hs);
            float[] got = new float[n * nHeads * hs];
            b.read(out, 0, got, 0, n);
            for (int j = 0; j < n; j++) {
                // keys of row j: tokens 0..q0+j, regathered per head
                int vis = q0 + j + 1;
                float[] kh = new float[nKv * vis * hs];
                float[] vh = new float[nKv * vis * hs];
                for (int g = 0; g < nKv; g++) {
                    for (int t = 0; t < vis; t++) {
                        System.arraycopy(k, t * nKv * hs + g * hs, kh, (g * vis + t) * hs, hs);
                        System.arraycopy(v, t * nKv * hs + g * hs, vh, (g * vis + t) * hs, hs);
                    }
                }
                Tensor q1 = b.allocate(1, nHeads * hs);
                b.write(q1, 0, q, j * nHeads * hs, 1);
                Tensor o1 = b.allocate(1, nHeads * hs), l1 = b.allocate(1, nHeads);
                Tensor khT = b.allocate(nKv * vis, hs), vhT = b.allocate(nKv * vis, hs);
                b.write(khT, 0, kh, 0, nKv * vis);
                b.write(vhT, 0, vh, 0, nKv * vis);
                b.attention(o1, l1, q1, 1, new CompactKv(khT, vhT, vis, new int[] {vis, vis}), nHeads, nKv, hs);
                float[] want = new float[nHeads * hs];
                b.read(o1, 0, want, 0, 1);
                for (int e = 0; e < want.length; e++) {
                    assertTrue(Math.abs(want[e] - got[j * nHeads * hs + e]) < 1e-5, "row " + j + " element " + e);
                }
            }
        }
    }

    private static CompactKv compact(CpuBackend b, float[] k, float[] v, int nKv, int hs, int len, int from, int to) {
        int m = to - from;
        Tensor kt = b.allocate(nKv * m, hs), vt = b.allocate(nKv * m, hs);
        for (int g = 0; g < nKv; g++) {
            b.write(kt, g * m, k, (g * len + from) * hs, m);
            b.write(vt, g * m, v, (g * len + from) * hs, m);
        }
        int[] lens = new int[nKv];
        java.util.Arrays.fill(lens, m);
        return new CompactKv(kt, vt, m, lens);
    }

    private static void assertClose(CpuBackend b, Tensor want, Tensor got, int n, double tol) {
        float[] x = new float[n * want.cols()];
        float[] y = new float[n * got.cols()];
        b.read(want, 0, x, 0, n);
        b.read(got, 0, y, 0, n);
        double[] ref = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            ref[i] = x[i];
        }
        double err = ReferenceLlama.relativeError(y, ref);
        assertTrue(err < tol, "relative error " + err);
    }
}
