package sps2.gpu.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import sps2.gpu.AttentionBatch;
import sps2.gpu.BlockAllocator;
import sps2.gpu.KvPool;
import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;
import sps2.model.HostTensor;

/**
 * Which kernels give a row the same bits whatever the other rows: a measurement run on the GPU machine
 * (`java ... sps2.gpu.cuda.CudaInvarianceProbe`), not a test. For each GEMM kernel and row count it prints
 * whether rows 0..7 match, bit for bit, the rows of one reference launch; the same for the operands swapped
 * (W as the activations, X as the weights: the output transposed); and for attention, whether the last rows
 * of a 1,024-token prompt match between one-shot prefill, a 512-row chunk and a one-row decode, per kernel
 * variant.
 */
public final class CudaInvarianceProbe {
    private final CudaBackend be;
    private final Random rnd = new Random(7);

    private CudaInvarianceProbe(CudaBackend be) {
        this.be = be;
    }

    public static void main(String[] args) {
        try (CudaBackend be = new CudaBackend(0)) {
            CudaInvarianceProbe p = new CudaInvarianceProbe(be);
            p.gemms(2048, 2048);
            p.gemms(8192, 2048);
            p.attention();
        }
    }

    private float[] randn(int n) {
        return TestArrays.randn(rnd, n);
    }

    private Tensor act(int rows, int cols, float[] v) {
        Tensor t = be.allocate(rows, cols);
        be.write(t, 0, v, 0, rows);
        return t;
    }

    private float[] read(Tensor t, int rows) {
        float[] out = new float[rows * t.cols()];
        be.read(t, 0, out, 0, rows);
        return out;
    }

    /** Rows 0..7 of out[m, n] = x[m, k] . w[n, k]^T by one kernel, float32 output. */
    private float[] rows(Tensor x, Tensor w, int m, int nOut, String kernel, int splits) {
        try (Tensor o = be.allocateFloat(m, nOut)) {
            be.fill(o, Float.NaN);
            be.matmul(o, x, w, m, kernel, splits);
            float[] all = read(o, Math.min(m, 8));
            return all;
        }
    }

    private void gemms(int nOut, int k) {
        int maxM = 512;
        float[] xv = randn(maxM * k), wv = randn(nOut * k);
        Tensor x = act(maxM, k, xv);
        Tensor w = be.upload(HostTensor.ofFloats("w", wv, nOut, k));
        // swapped: W as activations [nOut, k], X rows as the weight matrix [m, k]
        Tensor wAsAct = act(nOut, k, wv);
        float[] ref = rows(x, w, maxM, nOut, "gemm_128x128", 1);
        List<String> kernels = new ArrayList<>();
        for (GemmKernel g : java.util.stream.Stream.of(GemmPlanner.GEMMS, GemmPlanner.INVARIANT_TILES, GemmPlanner.WGMMAS, GemmPlanner.WGMMA_OPTIONAL)
                .flatMap(List::stream).toList()) {
            kernels.add(g.name());
        }
        System.out.printf("%nGEMM %d x %d: rows 0..7 bit-equal to gemm_128x128 at M=%d (float32 out)%n", nOut, k, maxM);
        System.out.printf("%-26s %6s %6s %6s %6s %6s%n", "kernel", "M=1", "M=8", "M=33", "M=200", "M=512");
        int[] ms = {1, 8, 33, 200, 512};
        for (String kn : kernels) {
            StringBuilder line = new StringBuilder(String.format("%-26s", kn));
            for (int m : ms) {
                String cell;
                try {
                    float[] got = rows(x, w, m, nOut, kn, 1);
                    cell = verdict(got, ref, Math.min(m, 8), nOut);
                } catch (RuntimeException e) {
                    cell = "err";
                }
                line.append(String.format(" %6s", cell));
            }
            System.out.println(line);
        }
        for (int m : new int[] {1, 4, 8}) {
            System.out.printf("%-26s %s%n", "gemv M=" + m, verdict(rows(x, w, m, nOut, "gemv", 0), ref, m, nOut));
        }
        for (int splits : new int[] {2, 4}) {
            System.out.printf("%-26s %s%n", "gemm_64x64 split " + splits, verdict(rows(x, w, 8, nOut, "gemm_64x64", splits), ref, 8, nOut));
        }
        // operands swapped: outT[nOut, m] = W . X^T; element (n, r) against ref (r, n)
        for (String kn : List.of("gemm_64x64", "gemm_32x64", "gemm_128x128", "wgmma_128x128", "wgmma_tma_128x256")) {
            for (int m : new int[] {8, 64}) {
                String cell;
                try (Tensor xw = be.upload(HostTensor.ofFloats("x", java.util.Arrays.copyOf(xv, m * k), m, k));
                        Tensor oT = be.allocateFloat(nOut, m)) {
                    be.fill(oT, Float.NaN);
                    be.matmul(oT, wAsAct, xw, nOut, kn, 1);
                    float[] t = read(oT, nOut);
                    int rowsCmp = Math.min(m, 8);
                    float[] got = new float[rowsCmp * nOut];
                    for (int r = 0; r < rowsCmp; r++) {
                        for (int n = 0; n < nOut; n++) {
                            got[r * nOut + n] = t[n * m + r];
                        }
                    }
                    cell = verdict(got, ref, rowsCmp, nOut);
                } catch (RuntimeException e) {
                    cell = "err " + e.getMessage();
                }
                System.out.printf("%-26s %s%n", "swapped " + kn + " m=" + m, cell);
            }
        }
        x.close();
        w.close();
        wAsAct.close();
    }

    /** "same", or the count of differing elements over the compared rows. */
    private static String verdict(float[] got, float[] ref, int rows, int cols) {
        int diff = 0;
        for (int i = 0; i < rows * cols; i++) {
            if (Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(ref[i])) {
                diff++;
            }
        }
        return diff == 0 ? "same" : String.valueOf(diff);
    }

    private void attention() {
        int nHeads = 32, nKv = 8, d = 64, len = 1024, bs = 16;
        int kvDim = nKv * d;
        BlockAllocator alloc = new BlockAllocator(len / bs + 4, bs);
        int[] table = alloc.allocate(alloc.blocksFor(len));
        try (KvPool pool = be.allocateKvPool(1, kvDim, len / bs + 4, bs)) {
            int[] slots = new int[len];
            for (int t = 0; t < len; t++) {
                slots[t] = BlockAllocator.slot(table, bs, t);
            }
            try (Tensor kt = act(len, kvDim, randn(len * kvDim)); Tensor vt = act(len, kvDim, randn(len * kvDim)); Tensor st = be.upload(slots)) {
                be.kvWrite(pool, 0, kt, vt, st, len);
            }
            float[] qv = randn(len * nHeads * d);
            for (int i = 0; i < qv.length; i++) {
                qv[i] *= 2f; // peaked softmax, as in trained models
            }
            Tensor q = act(len, nHeads * d, qv);
            Map<String, String> verdicts = new LinkedHashMap<>();
            String previous = be.prefillVariant();
            System.out.printf("%nAttention (32/8 heads, d 64, 1,024 keys): rows 1016..1023, bits against one-shot prefill with the same variant%n");
            for (CudaAttention.PrefillKernel pk : CudaAttention.PREFILLS) {
                be.prefillVariant(pk.variant());
                float[] full = attend(q, pool, table, 0, len, len, nHeads, nKv, d);
                float[] chunk = attend(q, pool, table, 512, 512, len, nHeads, nKv, d);
                float[] chunk16 = attend(q, pool, table, len - 16, 16, len, nHeads, nKv, d);
                float[] dec = attend(q, pool, table, len - 1, 1, len, nHeads, nKv, d);
                int w = nHeads * d;
                String c = verdict(java.util.Arrays.copyOfRange(chunk, (len - 8 - 512) * w, 512 * w), java.util.Arrays.copyOfRange(full, (len - 8) * w, len * w), 8, w);
                String c16 = verdict(java.util.Arrays.copyOfRange(chunk16, 8 * w, 16 * w), java.util.Arrays.copyOfRange(full, (len - 8) * w, len * w), 8, w);
                String dd = verdict(dec, java.util.Arrays.copyOfRange(full, (len - 1) * w, len * w), 1, w);
                verdicts.put(pk.variant(), "chunk512 " + c + ", chunk16 " + c16 + ", decode(row kernel) " + dd);
            }
            be.prefillVariant(previous);
            verdicts.forEach((k, v) -> System.out.printf("%-14s %s%n", k, v));
            q.close();
        }
    }

    /** Output rows of queries [q0, q0 + qLen) attending to the first kvLen keys (bottom-right causal). */
    private float[] attend(Tensor qAll, KvPool pool, int[] table, int q0, int qLen, int kvLen, int nHeads, int nKv, int d) {
        float[] qv = read(qAll, q0 + qLen);
        try (Tensor q = act(qLen, nHeads * d, java.util.Arrays.copyOfRange(qv, q0 * nHeads * d, (q0 + qLen) * nHeads * d));
                Tensor out = be.allocateFloat(qLen, nHeads * d);
                Tensor lse = be.allocateFloat(qLen, nHeads)) {
            be.fill(out, Float.NaN);
            int visible = q0 + qLen; // the keys of rows q0.. are 0..q0+j: kvLen for this call is q0 + qLen
            AttentionBatch b = AttentionBatch.single(qLen, visible, table);
            try (AttentionBatch.Prepared prep = be.prepare(b)) {
                be.attention(out, lse, q, pool, 0, prep, nHeads, nKv, d);
            }
            return read(out, qLen);
        }
    }
}
