package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import sps2.gpu.Tensor;
import sps2.model.HostTensor;

/**
 * The fused decode products (Q, K and V; gate and up) in one GEMV launch give, bit for bit, what separate GEMVs
 * give, and both stay within bf16 rounding of a float64 reference; every output element is written (poisoned
 * with NaN first). Fresh random inputs each run. Skipped without a GPU.
 */
class CudaFusedGemvTest extends CudaTestBase {

    private float[] random(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
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

    private static float bf16(float x) {
        return Float.intBitsToFloat((HostTensor.toBf16(x) & 0xffff) << 16);
    }
}
