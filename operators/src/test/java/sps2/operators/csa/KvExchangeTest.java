package sps2.operators.csa;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import sps2.gpu.CompactKv;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomWeights;

class KvExchangeTest {
    private final SplittableRandom rnd = new SplittableRandom(11);
    private final ModelConfig c = ModelShapes.get("tiny");

    private float[] random(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /** Each KV head's selected rows land at its own rows of the compact K/V, padded to the longest head with valid rows. */
    @Test
    void gatherLaysOutEachHeadsRowsAtItsOwnOffset() {
        int n = 9;
        int hs = c.headSize();
        int nKv = c.nKvHeads();
        float[] k = random(n * c.kvDim());
        float[] v = random(n * c.kvDim());
        int[][] sparse = {{0, 4, 8}, {2, 3}};
        try (CpuBackend b = new CpuBackend(1); Tensor kt = b.allocate(n, c.kvDim()); Tensor vt = b.allocate(n, c.kvDim())) {
            b.write(kt, 0, k, 0, n);
            b.write(vt, 0, v, 0, n);
            CompactKv kv = KvExchange.gather(b, kt, vt, nKv, hs, sparse);
            assertArrayEquals(new int[] {3, 2}, kv.lens());
            assertEquals(3, kv.maxLen());
            assertEquals(nKv * 3, kv.k().rows());
            assertEquals(5L * 2 * hs * 4, KvExchange.bytes(kv, hs, WireType.F32));
            float[] gk = new float[nKv * 3 * hs];
            float[] gv = new float[nKv * 3 * hs];
            b.read(kv.k(), 0, gk, 0, nKv * 3);
            b.read(kv.v(), 0, gv, 0, nKv * 3);
            for (int g = 0; g < nKv; g++) {
                for (int i = 0; i < sparse[g].length; i++) {
                    int r = sparse[g][i];
                    for (int e = 0; e < hs; e++) {
                        assertEquals(k[r * c.kvDim() + g * hs + e], gk[(g * 3 + i) * hs + e]);
                        assertEquals(v[r * c.kvDim() + g * hs + e], gv[(g * 3 + i) * hs + e]);
                    }
                }
            }
            // the padding row of head 1 repeats one of its rows: finite values, never read by attention
            for (int e = 0; e < hs; e++) {
                assertEquals(k[2 * c.kvDim() + hs + e], gk[(3 + 2) * hs + e]);
            }
            CompactKv dense = KvExchange.gather(b, kt, vt, nKv, hs, new int[][] {{0, 1, 2, 3, 4, 5, 6, 7, 8}, {0, 1, 2, 3, 4, 5, 6, 7, 8}});
            assertEquals(KvExchange.denseBytes(c, n, WireType.F32), KvExchange.bytes(dense, hs, WireType.F32));
        }
    }

    /** Heads with different row counts land at their own rows of the compact K/V: same result as building it by hand. */
    @Test
    void attendAndMergeOfARaggedBlockEqualsAttentionOverTheSameKeys() {
        int n = 6;
        int hs = c.headSize();
        int qDim = c.nHeads() * hs;
        int[] lens = {5, 2};
        int maxLen = 5;
        float[][] kh = {random(5 * hs), random(2 * hs)};
        float[][] vh = {random(5 * hs), random(2 * hs)};
        float[] q = random(n * qDim);
        float[] att = random(n * qDim);
        float[] lse = random(n * c.nHeads());
        try (CpuBackend b = new CpuBackend(1); LlamaModel m = new LlamaModel(b, RandomWeights.generate(c, DType.F32, 1), null);
                LlamaModel.Workspace ws = m.workspace(n); LlamaModel.Workspace ref = m.workspace(n)) {
            for (LlamaModel.Workspace w : List.of(ws, ref)) {
                b.write(w.q, 0, q, 0, n);
                b.write(w.att, 0, att, 0, n);
                b.write(w.lse, 0, lse, 0, n);
            }
            // the keys as a segment's K/V rows, head g's selected rows gathered
            int[][] rows = {{0, 1, 2, 3, 4}, {1, 3}};
            try (Tensor segK = b.allocate(5, c.kvDim()); Tensor segV = b.allocate(5, c.kvDim())) {
                float[] sk = random(5 * c.kvDim());
                float[] sv = random(5 * c.kvDim());
                for (int g = 0; g < 2; g++) {
                    for (int i = 0; i < lens[g]; i++) {
                        System.arraycopy(kh[g], i * hs, sk, rows[g][i] * c.kvDim() + g * hs, hs);
                        System.arraycopy(vh[g], i * hs, sv, rows[g][i] * c.kvDim() + g * hs, hs);
                    }
                }
                b.write(segK, 0, sk, 0, 5);
                b.write(segV, 0, sv, 0, 5);
                KvExchange.attendAndMerge(m, ws, n, KvExchange.gather(b, segK, segV, 2, hs, rows));
            }
            try (Tensor k = b.allocate(2 * maxLen, hs); Tensor v = b.allocate(2 * maxLen, hs)) {
                for (int g = 0; g < 2; g++) {
                    b.write(k, g * maxLen, kh[g], 0, lens[g]);
                    b.write(v, g * maxLen, vh[g], 0, lens[g]);
                }
                m.attendRemoteAndMerge(ref, new CompactKv(k, v, maxLen, lens), n);
            }
            float[] got = new float[n * qDim];
            float[] want = new float[n * qDim];
            b.read(ws.att, 0, got, 0, n);
            b.read(ref.att, 0, want, 0, n);
            assertArrayEquals(want, got);
        }
    }
}
