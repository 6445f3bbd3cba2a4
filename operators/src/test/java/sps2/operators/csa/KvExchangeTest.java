package sps2.operators.csa;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

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

    @Test
    void sendPacksEachHeadsRowsKThenVAndEqualSelectionsShareOnePayload() {
        int n = 9;
        int hs = c.headSize();
        int nKv = c.nKvHeads();
        float[] k = random(n * c.kvDim());
        float[] v = random(n * c.kvDim());
        int[][] sparse = {{0, 4, 8}, {2, 3}};
        int[][] dense = {{0, 1, 2, 3, 4, 5, 6, 7, 8}, {0, 1, 2, 3, 4, 5, 6, 7, 8}};
        try (CpuBackend b = new CpuBackend(1); Tensor kt = b.allocate(n, c.kvDim()); Tensor vt = b.allocate(n, c.kvDim())) {
            b.write(kt, 0, k, 0, n);
            b.write(vt, 0, v, 0, n);
            KvExchange.Packed[] p = KvExchange.send(b, kt, vt, nKv, hs, List.of(sparse, dense, dense.clone())).await();
            assertSame(p[1], p[2]);
            assertNotSame(p[0], p[1]);
            assertArrayEquals(new int[] {3, 2}, p[0].headLens());
            assertEquals(3, p[0].maxLen());
            assertEquals(WireType.F32, p[0].type());
            assertEquals(KvExchange.denseBytes(c, n, WireType.F32), p[1].bytes());
            int total = 5;
            int at = 0;
            for (int g = 0; g < nKv; g++) {
                for (int r : sparse[g]) {
                    for (int e = 0; e < hs; e++) {
                        assertEquals(k[r * c.kvDim() + g * hs + e], WireType.F32.get(p[0].payload(), 0, at * hs + e));
                        assertEquals(v[r * c.kvDim() + g * hs + e], WireType.F32.get(p[0].payload(), 0, (total + at) * hs + e));
                    }
                    at++;
                }
            }
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
        byte[] payload = new byte[2 * 7 * hs * 4];
        int at = 0;
        for (int g = 0; g < 2; g++) {
            for (int i = 0; i < lens[g] * hs; i++) {
                WireType.F32.put(payload, 0, at + i, kh[g][i]);
                WireType.F32.put(payload, 0, 7 * hs + at + i, vh[g][i]);
            }
            at += lens[g] * hs;
        }
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
            KvExchange.attendAndMerge(m, ws, n, new KvExchange.Packed(WireType.F32, payload, lens, maxLen));
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
