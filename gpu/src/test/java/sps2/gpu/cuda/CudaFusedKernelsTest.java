package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;
import sps2.model.HostTensor;

/**
 * The fused kernels of the decode step give, bit for bit, what the kernels they replace give: the products of one
 * input (Q, K and V; gate and up) in one GEMV launch (and within bf16 rounding of a float64 reference), RoPE of q
 * and k in one launch, and the residual add with the next RMSNorm. Every output element is written (poisoned with
 * NaN first). Fresh random inputs each run. Skipped without a GPU.
 */
class CudaFusedKernelsTest extends CudaTestBase {

    private float[] random(int n) {
        return TestArrays.randn(rnd, n);
    }

    @Test
    void oneLaunchEqualsSeparateProductsForEveryDecodeBatch() {
        int k = 512;
        int[][] shapes = {{640, 128, 128}, {1024, 2048}};
        for (int[] rows : shapes) {
            float[][] w = new float[rows.length][];
            Tensor[] ws = new Tensor[rows.length];
            for (int i = 0; i < rows.length; i++) {
                w[i] = random(rows[i] * k);
                ws[i] = be.upload(HostTensor.ofFloats("w" + i, w[i], rows[i], k));
            }
            try (Tensor x = be.allocate(8, k)) {
                for (int n = 1; n <= 8; n++) {
                    float[] xs = random(n * k);
                    be.write(x, 0, xs, 0, n);
                    Tensor[] fused = new Tensor[rows.length];
                    Tensor[] alone = new Tensor[rows.length];
                    for (int i = 0; i < rows.length; i++) {
                        fused[i] = be.allocate(8, rows[i]);
                        alone[i] = be.allocate(8, rows[i]);
                        be.fill(fused[i], Float.NaN);
                        be.fill(alone[i], Float.NaN);
                    }
                    be.matmul(fused, x, ws, n);
                    for (int i = 0; i < rows.length; i++) {
                        be.matmul(alone[i], x, ws[i], n);
                    }
                    for (int i = 0; i < rows.length; i++) {
                        float[] a = new float[n * rows[i]];
                        float[] b = new float[n * rows[i]];
                        be.read(fused[i], 0, a, 0, n);
                        be.read(alone[i], 0, b, 0, n);
                        assertArrayEquals(b, a, "product " + i + " of " + rows.length + ", " + n + " rows");
                        double num = 0;
                        double den = 0;
                        for (int r = 0; r < n; r++) {
                            for (int c = 0; c < rows[i]; c++) {
                                double ref = 0;
                                for (int e = 0; e < k; e++) {
                                    ref += (double) bf16(xs[r * k + e]) * bf16(w[i][c * k + e]);
                                }
                                double d = a[r * rows[i] + c] - ref;
                                num += d * d;
                                den += ref * ref;
                            }
                        }
                        double rel = Math.sqrt(num / den);
                        assertTrue(rel < 1e-2, "relative error " + rel);
                        fused[i].close();
                        alone[i].close();
                    }
                }
            } finally {
                for (Tensor t : ws) {
                    t.close();
                }
            }
        }
    }

    @Test
    void ropeOfQAndKInOneLaunchEqualsTwoLaunches() {
        int n = 37;
        int hs = 64;
        int qh = 32;
        int kh = 8;
        float[] inv = new float[hs / 2];
        for (int j = 0; j < inv.length; j++) {
            inv[j] = (float) Math.pow(500000, -2.0 * j / hs);
        }
        int[] pos = new int[n];
        for (int i = 0; i < n; i++) {
            pos[i] = rnd.nextInt(100000);
        }
        float[] q = random(n * qh * hs);
        float[] k = random(n * kh * hs);
        try (Tensor f = be.upload(HostTensor.ofFloats("inv", inv, inv.length)); Tensor p = be.upload(pos); Tensor q1 = be.allocate(n, qh * hs);
                Tensor k1 = be.allocate(n, kh * hs); Tensor q2 = be.allocate(n, qh * hs); Tensor k2 = be.allocate(n, kh * hs)) {
            be.write(q1, 0, q, 0, n);
            be.write(q2, 0, q, 0, n);
            be.write(k1, 0, k, 0, n);
            be.write(k2, 0, k, 0, n);
            be.rope(q1, qh, k1, kh, hs, p, f, n);
            be.rope(q2, qh, hs, p, f, n);
            be.rope(k2, kh, hs, p, f, n);
            float[] a = new float[n * qh * hs];
            float[] b = new float[n * qh * hs];
            be.read(q1, 0, a, 0, n);
            be.read(q2, 0, b, 0, n);
            assertArrayEquals(b, a, "q");
            a = new float[n * kh * hs];
            b = new float[n * kh * hs];
            be.read(k1, 0, a, 0, n);
            be.read(k2, 0, b, 0, n);
            assertArrayEquals(b, a, "k");
        }
    }

    @Test
    void residualAddWithTheNextNormEqualsAddThenNorm() {
        int dim = 2048;
        for (int n : new int[] {1, 5, 300}) {
            float[] x = random(n * dim);
            float[] y = random(n * dim);
            float[] w = random(dim);
            try (Tensor wt = be.upload(HostTensor.ofFloats("w", w, dim)); Tensor x1 = be.allocate(n, dim); Tensor x2 = be.allocate(n, dim);
                    Tensor y1 = be.allocate(n, dim); Tensor y2 = be.allocate(n, dim); Tensor o2 = be.allocate(n, dim)) {
                be.write(x1, 0, x, 0, n);
                be.write(x2, 0, x, 0, n);
                be.write(y1, 0, y, 0, n);
                be.write(y2, 0, y, 0, n);
                be.fill(o2, Float.NaN);
                be.addRmsnorm(y1, x1, y1, wt, n, 1e-5f); // out over y, as the model calls it
                be.add(x2, y2, n);
                be.rmsnorm(o2, x2, wt, n, 1e-5f);
                float[] a = new float[n * dim];
                float[] b = new float[n * dim];
                be.read(y1, 0, a, 0, n);
                be.read(o2, 0, b, 0, n);
                assertArrayEquals(b, a, "normalised, " + n + " rows");
                be.read(x1, 0, a, 0, n);
                be.read(x2, 0, b, 0, n);
                assertArrayEquals(b, a, "residual, " + n + " rows");
            }
        }
    }

    private static float bf16(float x) {
        return Float.intBitsToFloat((HostTensor.toBf16(x) & 0xffff) << 16);
    }
}
