package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import sps2.gpu.AttentionBatch;
import sps2.gpu.BlockAllocator;
import sps2.gpu.CompactKv;
import sps2.gpu.KvPool;
import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;
import sps2.model.HostTensor;

/**
 * Every CUDA kernel against a float64 reference computed here on fresh random inputs. Outputs are poisoned
 * with NaN before each run, so an unwritten element fails; the bound is ||out - ref|| / ||ref|| below 1e-2
 * where values are stored as bf16 and 1e-4 where the whole path is float32. Skipped without a GPU.
 */
class CudaBackendTest extends CudaTestBase {
    private static final double BF16_TOL = 1e-2;
    private static final double F32_TOL = 1e-4;

    @AfterAll
    static void close() {
        if (be != null) {
            be.close();
        }
    }

    // ---- helpers ----

    private float[] randn(int n, double scale) {
        return TestArrays.randn(rnd, n, scale);
    }

    private static float[] bf16(float[] a) {
        return TestArrays.bf16(a);
    }

    private Tensor act(int rows, int cols, float[] values) {
        Tensor t = be.allocate(rows, cols);
        be.write(t, 0, values, 0, rows);
        return t;
    }

    private Tensor f32(int rows, int cols, float[] values) {
        Tensor t = be.allocateFloat(rows, cols);
        be.write(t, 0, values, 0, rows);
        return t;
    }

    private Tensor weight(int rows, int cols, float[] values) {
        return be.upload(HostTensor.ofFloats("w", values, rows, cols));
    }

    private float[] read(Tensor t, int rows) {
        float[] out = new float[rows * t.cols()];
        be.read(t, 0, out, 0, rows);
        return out;
    }

    private Tensor poisoned(int rows, int cols) {
        Tensor t = be.allocate(rows, cols);
        be.fill(t, Float.NaN);
        return t;
    }

    private Tensor poisonedF32(int rows, int cols) {
        Tensor t = be.allocateFloat(rows, cols);
        be.fill(t, Float.NaN);
        return t;
    }

    /** ||out - ref|| / ||ref||, infinite when out holds a NaN. */
    static double relErr(float[] out, double[] ref) {
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            if (Float.isNaN(out[i])) {
                return Double.POSITIVE_INFINITY;
            }
            num += (out[i] - ref[i]) * (out[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-300));
    }

    private static void close(double tol, float[] out, double[] ref, String what) {
        double e = relErr(out, ref);
        assertTrue(e < tol, what + ": relative error " + e + " is not below " + tol);
    }

    // ---- element-wise and row-wise ----

    @Test
    void embedGathersRows() {
        int vocab = 50, dim = 96, n = 7;
        float[] table = randn(vocab * dim, 1);
        Tensor w = weight(vocab, dim, table);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = rnd.nextInt(vocab);
        }
        Tensor tok = be.upload(ids);
        Tensor out = poisoned(n, dim);
        be.embed(out, w, tok, n);
        double[] ref = new double[n * dim];
        float[] tb = bf16(table);
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < dim; c++) {
                ref[i * dim + c] = tb[ids[i] * dim + c];
            }
        }
        assertEquals(0.0, relErr(read(out, n), ref), "embedding rows are copies of bf16 table rows");
        w.close();
        tok.close();
        out.close();
    }

    @Test
    void rmsnormInBf16AndFloat32() {
        int n = 5, dim = 320;
        float eps = 1e-5f;
        float[] x = randn(n * dim, 2);
        float[] w = randn(dim, 1);
        Tensor wt = be.upload(HostTensor.ofFloats("norm", w, dim));
        for (boolean full : new boolean[] {false, true}) {
            Tensor xt = full ? f32(n, dim, x) : act(n, dim, x);
            Tensor out = full ? poisonedF32(n, dim) : poisoned(n, dim);
            be.rmsnorm(out, xt, wt, n, eps);
            float[] xs = full ? x : bf16(x);
            double[] ref = new double[n * dim];
            for (int i = 0; i < n; i++) {
                double ss = 0;
                for (int c = 0; c < dim; c++) {
                    ss += (double) xs[i * dim + c] * xs[i * dim + c];
                }
                double inv = 1 / Math.sqrt(ss / dim + eps);
                for (int c = 0; c < dim; c++) {
                    ref[i * dim + c] = xs[i * dim + c] * inv * w[c];
                }
            }
            close(full ? F32_TOL : BF16_TOL, read(out, n), ref, "rmsnorm " + (full ? "f32" : "bf16"));
            xt.close();
            out.close();
        }
    }

    @Test
    void ropeRotatesInterleavedPairsAtLongPositions() {
        int n = 6, heads = 4, hs = 64;
        float[] x = randn(n * heads * hs, 1);
        float[] inv = new float[hs / 2];
        for (int j = 0; j < hs / 2; j++) {
            inv[j] = (float) Math.pow(500000, -2.0 * j / hs);
        }
        int[] pos = {0, 1, 17, 4095, 32767, 131071};
        for (boolean full : new boolean[] {false, true}) {
            Tensor xt = full ? f32(n, heads * hs, x) : act(n, heads * hs, x);
            Tensor pt = be.upload(pos);
            Tensor ft = be.upload(HostTensor.ofFloats("inv", inv, hs / 2));
            be.rope(xt, heads, hs, pt, ft, n);
            float[] xs = full ? x : bf16(x);
            double[] ref = new double[x.length];
            for (int i = 0; i < n; i++) {
                for (int h = 0; h < heads; h++) {
                    for (int j = 0; j < hs / 2; j++) {
                        int at = (i * heads + h) * hs + 2 * j;
                        double a = (double) pos[i] * inv[j];
                        ref[at] = xs[at] * Math.cos(a) - xs[at + 1] * Math.sin(a);
                        ref[at + 1] = xs[at] * Math.sin(a) + xs[at + 1] * Math.cos(a);
                    }
                }
            }
            close(full ? F32_TOL : BF16_TOL, read(xt, n), ref, "rope " + (full ? "f32" : "bf16"));
            xt.close();
            pt.close();
            ft.close();
        }
    }

    @Test
    void swigluAndAdd() {
        int n = 9, w = 1000;
        float[] g = randn(n * w, 2), u = randn(n * w, 1), y = randn(n * w, 1);
        Tensor gt = act(n, w, g), ut = act(n, w, u), out = poisoned(n, w);
        be.swiglu(out, gt, ut, n);
        float[] gs = bf16(g), us = bf16(u);
        double[] ref = new double[n * w];
        for (int i = 0; i < ref.length; i++) {
            ref[i] = gs[i] / (1 + Math.exp(-gs[i])) * us[i];
        }
        close(BF16_TOL, read(out, n), ref, "swiglu");

        Tensor xf = f32(n, w, g);
        Tensor yf = f32(n, w, y);
        be.add(xf, yf, n);
        double[] sum = new double[n * w];
        for (int i = 0; i < sum.length; i++) {
            sum[i] = (double) g[i] + y[i];
        }
        close(F32_TOL, read(xf, n), sum, "add f32");
        Tensor yb = act(n, w, y);
        be.add(xf, yb, n);
        float[] ys = bf16(y);
        for (int i = 0; i < sum.length; i++) {
            sum[i] += ys[i];
        }
        close(F32_TOL, read(xf, n), sum, "add bf16 into a f32 residual");
        for (Tensor t : new Tensor[] {gt, ut, out, xf, yf, yb}) {
            t.close();
        }
    }

    @Test
    void copyRowsConvertsBetweenTypes() {
        int rows = 10, cols = 48;
        float[] a = randn(rows * cols, 1);
        Tensor src = f32(rows, cols, a);
        Tensor dst = poisoned(rows, cols);
        be.copyRows(dst, 2, src, 3, 5);
        float[] out = read(dst, rows);
        float[] as = bf16(a);
        for (int r = 0; r < 5; r++) {
            for (int c = 0; c < cols; c++) {
                assertEquals(as[(3 + r) * cols + c], out[(2 + r) * cols + c]);
            }
        }
        assertTrue(Float.isNaN(out[0]) && Float.isNaN(out[7 * cols]), "rows outside the copy stay untouched");
        src.close();
        dst.close();
    }

    // ---- matmul ----

    private void checkMatmul(int n, int nOut, int k, String kernel, int splits) {
        float[] x = randn(n * k, 1), w = randn(nOut * k, 1.0 / Math.sqrt(k));
        Tensor xt = act(n, k, x), wt = weight(nOut, k, w), out = poisoned(n, nOut);
        be.matmul(out, xt, wt, n, kernel, splits);
        float[] xs = bf16(x), ws = bf16(w);
        double[] ref = new double[n * nOut];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < nOut; j++) {
                double s = 0;
                for (int c = 0; c < k; c++) {
                    s += (double) xs[i * k + c] * ws[j * k + c];
                }
                ref[i * nOut + j] = s;
            }
        }
        close(BF16_TOL, read(out, n), ref, "matmul " + n + "x" + nOut + "x" + k + " " + kernel + " splits " + splits);
        xt.close();
        wt.close();
        out.close();
    }

    @Test
    void matmulDefaultChoiceOnManyShapes() {
        int[][] shapes = {{1, 96, 64}, {3, 256, 512}, {8, 200, 136}, {9, 100, 172}, {17, 512, 256}, {64, 320, 2048}, {130, 384, 192},
                {300, 1024, 512}, {5, 70, 172}};
        for (int[] s : shapes) {
            checkMatmul(s[0], s[1], s[2], null, 0);
        }
    }

    @Test
    void everyGemmKernelAndSplitK() {
        for (GemmKernel g : be.gemmKernels()) {
            checkMatmul(200, 392, 328, g.name(), 1);
            checkMatmul(33, 264, 1024, g.name(), 5);
        }
        checkMatmul(4, 64, 200, "gemv", 0);
        checkMatmul(7, 33, 31, "simple", 0);
    }

    @Test
    void latencyCriticalThreadsGetTheGreatestStreamPriority() throws Exception {
        int normal = be.streamPriority();
        int[] critical = {normal};
        Throwable[] failed = {null};
        Thread t = new Thread(() -> {
            try {
                be.preferLatency();
                critical[0] = be.streamPriority();
                checkMatmul(40, 96, 64, null, 0); // and its work still computes the same
            } catch (Throwable e) {
                failed[0] = e;
            }
        });
        t.start();
        t.join();
        if (failed[0] != null) {
            throw new AssertionError("the latency-critical thread failed", failed[0]);
        }
        assertTrue(critical[0] < normal, "a decode thread's stream must outrank the others: " + critical[0] + " vs " + normal);
    }

    // ---- KV pool and attention ----

    @Test
    void hopperGemmIsInUseOnHopper() {
        int[] major = {0};
        jcuda.driver.CUdevice dev = new jcuda.driver.CUdevice();
        jcuda.driver.JCudaDriver.cuDeviceGet(dev, 0);
        jcuda.driver.JCudaDriver.cuDeviceGetAttribute(major, jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
        assumeTrue(major[0] == 9, "not a Hopper GPU");
        assertTrue(be.hopperKernels(), "the wgmma GEMM passed its start-up check against the mma.sync kernel");
        checkMatmul(1000, 2048, 512, null, 0);
        assertTrue(be.pairGemm(), "the cluster split-K GEMM passed its start-up check");
        assertTrue(be.optionalGemms().containsAll(java.util.List.of(CudaBackend.WGMMA_TMA, CudaBackend.WGMMA_TMA_PAIR)),
                "the TMA GEMMs passed their start-up check (this build has the TMA descriptor shim): " + be.optionalGemms());
        assertEquals(CudaBackend.WGMMA_TMA, be.chooseGemm(4096, 2048), "prefill products use the TMA kernel");
        assertEquals(CudaBackend.WGMMA_TMA_PAIR, be.chooseGemm(1000, 512), "few 128x256 tiles: the TMA kernel split over a cluster");
        checkMatmul(300, 1024, 512, null, 0);
        checkMatmul(1000, 512, 1032, null, 0); // odd K tiles: the second block of each pair gets one fewer
    }

    @Test
    void kvWriteThenReadRoundTrips() {
        int kvDim = 64, n = 11;
        try (KvPool pool = be.allocateKvPool(2, kvDim, 8, 4)) {
            float[] k = randn(n * kvDim, 1), v = randn(n * kvDim, 1);
            int[] slots = {0, 5, 9, 31, 2, 3, 4, 17, 18, 30, 29};
            Tensor kt = act(n, kvDim, k), vt = act(n, kvDim, v), st = be.upload(slots);
            be.kvWrite(pool, 1, kt, vt, st, n);
            Tensor k2 = poisoned(n, kvDim), v2 = poisoned(n, kvDim);
            be.kvRead(pool, 1, st, k2, v2, n);
            assertArrayEquals(bf16(k), read(k2, n));
            assertArrayEquals(bf16(v), read(v2, n));
            assertEquals(2L * 2 * 8 * 4 * kvDim * 2, pool.bytes());
        }
    }

    /** Reference attention in float64 over explicitly given keys for one (row, head). */
    private static double attendRef(float[] q, int qAt, float[][] keys, float[][] vals, int count, int d, double[] out, int outAt) {
        if (count == 0) {
            for (int e = 0; e < d; e++) {
                out[outAt + e] = 0;
            }
            return Double.NEGATIVE_INFINITY;
        }
        double[] s = new double[count];
        double mx = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < count; t++) {
            double dot = 0;
            for (int e = 0; e < d; e++) {
                dot += (double) q[qAt + e] * keys[t][e];
            }
            s[t] = dot / Math.sqrt(d);
            mx = Math.max(mx, s[t]);
        }
        double sum = 0;
        for (int t = 0; t < count; t++) {
            s[t] = Math.exp(s[t] - mx);
            sum += s[t];
        }
        for (int e = 0; e < d; e++) {
            double a = 0;
            for (int t = 0; t < count; t++) {
                a += s[t] * vals[t][e];
            }
            out[outAt + e] = a / sum;
        }
        return mx + Math.log(sum);
    }

    /**
     * Paged attention for a batch of sequences (qLen, kvLen each), random block tables, checks out and lse.
     */
    private void checkPaged(int[] qLens, int[] kvLens, int nHeads, int nKvHeads, int d, int blockSize, String prefill) {
        checkPaged(qLens, kvLens, nHeads, nKvHeads, d, blockSize, prefill, 1);
    }

    /** As above with queries of standard deviation qStd (large values make peaked rows whose max jumps between key tiles). */
    private void checkPaged(int[] qLens, int[] kvLens, int nHeads, int nKvHeads, int d, int blockSize, String prefill, double qStd) {
        int s = qLens.length;
        int kvDim = nKvHeads * d;
        int totalBlocks = 0;
        for (int kl : kvLens) {
            totalBlocks += (kl + blockSize - 1) / blockSize;
        }
        BlockAllocator alloc = new BlockAllocator(totalBlocks + 3, blockSize);
        alloc.allocate(2); // so that tables do not start at block 0
        int[][] tables = new int[s][];
        int[] qStart = new int[s];
        int rows = 0;
        for (int i = 0; i < s; i++) {
            tables[i] = alloc.allocate(alloc.blocksFor(kvLens[i]));
            for (int a = tables[i].length - 1; a > 0; a--) { // scattered blocks, not in order
                int b = rnd.nextInt(a + 1);
                int tmp = tables[i][a];
                tables[i][a] = tables[i][b];
                tables[i][b] = tmp;
            }
            qStart[i] = rows;
            rows += qLens[i];
        }
        String previous = be.prefillVariant();
        be.prefillVariant(prefill);
        try (KvPool pool = be.allocateKvPool(2, kvDim, totalBlocks + 3, blockSize)) {
            float[][][] keys = new float[s][][], vals = new float[s][][];
            for (int i = 0; i < s; i++) {
                int kl = kvLens[i];
                float[] k = randn(kl * kvDim, 1), v = randn(kl * kvDim, 1);
                int[] slots = new int[kl];
                for (int t = 0; t < kl; t++) {
                    slots[t] = BlockAllocator.slot(tables[i], blockSize, t);
                }
                Tensor kt = act(kl, kvDim, k), vt = act(kl, kvDim, v), st = be.upload(slots);
                be.kvWrite(pool, 1, kt, vt, st, kl);
                kt.close();
                vt.close();
                st.close();
                keys[i] = split(bf16(k), kl, kvDim);
                vals[i] = split(bf16(v), kl, kvDim);
            }
            float[] q = randn(rows * nHeads * d, qStd);
            Tensor qt = act(rows, nHeads * d, q);
            Tensor out = poisoned(rows, nHeads * d), lse = poisonedF32(rows, nHeads);
            AttentionBatch batch = new AttentionBatch(qStart, qLens, kvLens, tables);
            try (AttentionBatch.Prepared prep = be.prepare(batch)) {
                be.attention(out, lse, qt, pool, 1, prep, nHeads, nKvHeads, d);
            }
            float[] qs = bf16(q);
            double[] ref = new double[rows * nHeads * d];
            double[] refL = new double[rows * nHeads];
            int g = nHeads / nKvHeads;
            for (int i = 0; i < s; i++) {
                for (int j = 0; j < qLens[i]; j++) {
                    int row = qStart[i] + j;
                    int visible = kvLens[i] - qLens[i] + j + 1;
                    for (int h = 0; h < nHeads; h++) {
                        int kvh = h / g;
                        float[][] kh = headSlice(keys[i], kvh, d, visible), vh = headSlice(vals[i], kvh, d, visible);
                        refL[row * nHeads + h] = attendRef(qs, (row * nHeads + h) * d, kh, vh, visible, d, ref, (row * nHeads + h) * d);
                    }
                }
            }
            String what = "attention q=" + java.util.Arrays.toString(qLens) + " kv=" + java.util.Arrays.toString(kvLens) + " heads " + nHeads
                    + "/" + nKvHeads + " d=" + d + " prefill " + prefill;
            close(BF16_TOL, read(out, rows), ref, what + " out");
            close(F32_TOL * 10, read(lse, rows), refL, what + " lse");
            qt.close();
            out.close();
            lse.close();
        } finally {
            be.prefillVariant(previous);
        }
    }

    private static float[][] split(float[] a, int rows, int cols) {
        float[][] r = new float[rows][cols];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(a, i * cols, r[i], 0, cols);
        }
        return r;
    }

    private static float[][] headSlice(float[][] rows, int head, int d, int count) {
        float[][] r = new float[count][d];
        for (int t = 0; t < count; t++) {
            System.arraycopy(rows[t], head * d, r[t], 0, d);
        }
        return r;
    }

    @Test
    void decodeAttentionWithSplitsAndGqa() {
        checkPaged(new int[] {1, 1, 1}, new int[] {700, 1, 2051}, 8, 2, 64, 16, "w4");
        checkPaged(new int[] {1}, new int[] {5000}, 4, 4, 128, 32, "w4");
        checkPaged(new int[] {1, 1}, new int[] {33, 300}, 8, 4, 8, 4, "w4");
    }

    @Test
    void prefillAttentionOnTensorCores() {
        checkPaged(new int[] {200}, new int[] {200}, 8, 2, 64, 16, "w4");
        checkPaged(new int[] {130, 64}, new int[] {400, 64}, 4, 1, 128, 16, "w8");
        checkPaged(new int[] {77}, new int[] {300}, 8, 8, 64, 64, "w8");
        checkPaged(new int[] {300, 40}, new int[] {700, 40}, 8, 2, 64, 16, "w8_s3");
        checkPaged(new int[] {300, 40, 1}, new int[] {700, 40, 9}, 8, 2, 64, 16, "w4_s3");
        checkPaged(new int[] {600, 17}, new int[] {600, 300}, 8, 4, 64, 16, "w8_s4");
        checkPaged(new int[] {130, 64}, new int[] {400, 64}, 4, 1, 128, 16, "w8_s3");
    }

    /**
     * Every prefill kernel variant (the benchmark times them all) on causal batches with diagonal tiles, rows
     * past a warp's keys, several sequences and GQA, on peaked rows (queries x4: the row max jumps by more
     * than the _rs8 threshold between key tiles), and on compact KV. Collects every failing variant.
     */
    @Test
    void everyPrefillVariantMatchesFloat64() {
        List<String> failed = new ArrayList<>();
        String previous = be.prefillVariant();
        for (CudaAttention.PrefillKernel k : CudaAttention.PREFILLS) {
            String v = k.variant();
            try {
                checkPaged(new int[] {300, 40, 1}, new int[] {700, 40, 9}, 8, 2, 64, 16, v);
                checkPaged(new int[] {600, 17}, new int[] {600, 300}, 8, 4, 64, 16, v, 4);
                checkPaged(new int[] {1000}, new int[] {1000}, 4, 1, 64, 64, v, 2);
                if (CudaAttention.hasPrefill(128, k)) {
                    checkPaged(new int[] {130, 64}, new int[] {400, 64}, 4, 1, 128, 16, v);
                    checkPaged(new int[] {300}, new int[] {300}, 4, 2, 128, 16, v, 4);
                }
                be.prefillVariant(v);
                compactAttention(4);
                compactAttention(2); // GQA 4: the packing kernels run here, the others again
            } catch (AssertionError e) {
                failed.add(v + ": " + e.getMessage());
            } finally {
                be.prefillVariant(previous);
            }
        }
        assertTrue(failed.isEmpty(), "prefill variants that fail: " + failed);
    }

    /**
     * The Hopper prefill kernels (attention_sm90a.cu) on the cases of {@link #everyPrefillVariantMatchesFloat64}, plus
     * a long causal sequence over many 128-key tiles and K/V slots reused many times, and a tile of rows that a
     * warpgroup leaves empty. Run only when asked (-Dsps2.test.hopperAttention=true, in a JVM of its own: a kernel
     * that traps takes the device context with it); scripts/gpu/run-on-device.sh does so after the other tests.
     */
    @Test
    void everyHopperPrefillVariantMatchesFloat64() {
        assumeTrue(Boolean.getBoolean("sps2.test.hopperAttention"),
                "The Hopper attention kernels are checked in a JVM of their own (-Dsps2.test.hopperAttention=true)");
        List<String> failed = new ArrayList<>();
        String previous = be.prefillVariant();
        for (CudaAttention.PrefillKernel k : CudaAttention.HOPPER_PREFILLS) {
            String v = k.variant();
            // a variant that is not loaded falls back to w8_all: the checks below would then pass without running it
            assertTrue(be.hasKernel(k.name(64)), "The Hopper kernel " + k.name(64) + " is not loaded on this device");
            try {
                checkPaged(new int[] {300, 40, 1}, new int[] {700, 40, 9}, 8, 2, 64, 16, v);
                checkPaged(new int[] {600, 17}, new int[] {600, 300}, 8, 4, 64, 16, v, 4);
                checkPaged(new int[] {1000}, new int[] {1000}, 4, 1, 64, 64, v, 2);
                checkPaged(new int[] {2100, 70}, new int[] {2100, 1500}, 8, 2, 64, 16, v);
                be.prefillVariant(v);
                compactAttention(4);
                compactAttention(2); // GQA 4: the packing kernels run here, the others again
            } catch (AssertionError e) {
                failed.add(v + ": " + e.getMessage());
            } finally {
                be.prefillVariant(previous);
            }
        }
        assertTrue(failed.isEmpty(), "Hopper prefill variants that fail: " + failed);
    }

    @Test
    void mixedBatchOfChunksAndDecodes() {
        checkPaged(new int[] {1, 100, 3, 1}, new int[] {90, 160, 3, 1}, 8, 2, 64, 16, "w8");
        checkPaged(new int[] {20, 1}, new int[] {50, 40}, 4, 2, 32, 8, "w4");
    }

    @Test
    void compactAttentionIsUnmaskedPerHead() {
        String previous = be.prefillVariant();
        for (String variant : new String[] {"w8", "w8_s3"}) {
            be.prefillVariant(variant);
            compactAttention(4);
        }
        be.prefillVariant(previous);
    }

    /** Compact attention of 8 query heads over {@code nKvHeads} KV heads (4 or 2) against float64. */
    private void compactAttention(int nKvHeads) {
        for (int[] cfg : new int[][] {{64, 40}, {64, 3}, {128, 20}, {16, 9}}) {
            int d = cfg[0], n = cfg[1], nHeads = 8, maxLen = 150;
            int[] lens = Arrays.copyOf(new int[] {150, 0, 77, 1}, nKvHeads);
            float[] k = randn(nKvHeads * maxLen * d, 1), v = randn(nKvHeads * maxLen * d, 1), q = randn(n * nHeads * d, 1);
            Tensor kt = act(nKvHeads * maxLen, d, k), vt = act(nKvHeads * maxLen, d, v), qt = act(n, nHeads * d, q);
            Tensor out = poisoned(n, nHeads * d), lse = poisonedF32(n, nHeads);
            be.attention(out, lse, qt, n, new CompactKv(kt, vt, maxLen, lens), nHeads, nKvHeads, d);
            float[][] ks = split(bf16(k), nKvHeads * maxLen, d), vs = split(bf16(v), nKvHeads * maxLen, d);
            float[] qs = bf16(q);
            double[] ref = new double[n * nHeads * d];
            double[] refL = new double[n * nHeads];
            for (int i = 0; i < n; i++) {
                for (int h = 0; h < nHeads; h++) {
                    int g = h / (nHeads / nKvHeads);
                    float[][] kh = java.util.Arrays.copyOfRange(ks, g * maxLen, g * maxLen + lens[g]);
                    float[][] vh = java.util.Arrays.copyOfRange(vs, g * maxLen, g * maxLen + lens[g]);
                    refL[i * nHeads + h] = attendRef(qs, (i * nHeads + h) * d, kh, vh, lens[g], d, ref, (i * nHeads + h) * d);
                }
            }
            close(BF16_TOL, read(out, n), ref, "compact attention d=" + d + " n=" + n);
            float[] l = read(lse, n);
            for (int i = 0; i < n * nHeads; i++) {
                if (Double.isInfinite(refL[i])) {
                    assertEquals(Float.NEGATIVE_INFINITY, l[i], "a head without keys has lse -inf");
                    refL[i] = 0;
                    l[i] = 0;
                }
            }
            close(F32_TOL * 10, l, refL, "compact lse d=" + d);
            for (Tensor t : new Tensor[] {kt, vt, qt, out, lse}) {
                t.close();
            }
        }
    }

    @Test
    void mergeOfTwoPartialsEqualsAttentionOverTheUnion() {
        int n = 5, nHeads = 4, d = 64;
        float[] o1 = randn(n * nHeads * d, 1), o2 = randn(n * nHeads * d, 1);
        float[] l1 = randn(n * nHeads, 3), l2 = randn(n * nHeads, 3);
        l2[0] = Float.NEGATIVE_INFINITY; // an empty second part leaves the first as it is
        Tensor a = act(n, nHeads * d, o1), b = act(n, nHeads * d, o2), la = f32(n, nHeads, l1), lb = f32(n, nHeads, l2);
        be.mergeAttention(a, la, b, lb, n, nHeads, d);
        float[] s1 = bf16(o1), s2 = bf16(o2);
        double[] ref = new double[o1.length], refL = new double[l1.length];
        for (int w = 0; w < n * nHeads; w++) {
            double m = Math.max(l1[w], l2[w]);
            double e1 = Math.exp(l1[w] - m), e2 = Math.exp(l2[w] - m);
            refL[w] = m + Math.log(e1 + e2);
            for (int e = 0; e < d; e++) {
                ref[w * d + e] = (s1[w * d + e] * e1 + s2[w * d + e] * e2) / (e1 + e2);
            }
        }
        close(BF16_TOL, read(a, n), ref, "merge out");
        close(F32_TOL, read(la, n), refL, "merge lse");
        for (Tensor t : new Tensor[] {a, b, la, lb}) {
            t.close();
        }
    }

    @Test
    void argmaxPicksTheLargestLogit() {
        int n = 4, vocab = 32000;
        float[] logits = randn(n * vocab, 1);
        int[] want = new int[n];
        for (int i = 0; i < n; i++) {
            want[i] = rnd.nextInt(vocab);
            logits[i * vocab + want[i]] = 10f + i;
        }
        Tensor t = f32(n, vocab, logits);
        assertArrayEquals(want, be.argmax(t, n));
        t.close();
    }

    @Test
    void lseMustBeFloat32() {
        Tensor out = be.allocate(1, 64), q = be.allocate(1, 64), lse = be.allocate(1, 1);
        Tensor k = be.allocate(10, 64), v = be.allocate(10, 64);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> be.attention(out, lse, q, 1, new CompactKv(k, v, 10, new int[] {10}), 1, 1, 64));
        assertTrue(e.getMessage().contains("allocateFloat"), e.getMessage());
        for (Tensor t : new Tensor[] {out, q, lse, k, v}) {
            t.close();
        }
    }

    @Test
    void scratchMemoryIsReusedNotReallocated() {
        Tensor a = be.allocate(100, 1000);
        a.close();
        be.sync();
        long before = be.pooledBytes();
        for (int i = 0; i < 50; i++) {
            be.allocate(100, 1000).close();
        }
        assertEquals(before, be.pooledBytes(), "the pool serves repeated allocations of one size without growing");
    }

    @Test
    void threadsGetTheirOwnStreams() throws Exception {
        int n = 64, k = 256, nOut = 128;
        float[] x = randn(n * k, 1), w = randn(nOut * k, 0.1);
        Tensor wt = weight(nOut, k, w);
        float[][] results = new float[2][];
        Thread[] ts = new Thread[2];
        for (int i = 0; i < 2; i++) {
            int idx = i;
            ts[i] = new Thread(() -> {
                Tensor xt = act(n, k, x), out = poisoned(n, nOut);
                be.matmul(out, xt, wt, n);
                results[idx] = read(out, n);
                xt.close();
                out.close();
            });
            ts[i].start();
        }
        for (Thread t : ts) {
            t.join();
        }
        assertArrayEquals(results[0], results[1], "two threads computing the same product agree");
        assertTrue(!Float.isNaN(results[0][0]));
        wt.close();
    }
}
