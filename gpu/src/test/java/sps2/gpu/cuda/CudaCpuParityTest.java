package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.BlockAllocator;
import sps2.gpu.CompactKv;
import sps2.gpu.KvPool;
import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.HostTensor;

/**
 * The same ops on the CUDA backend (bf16 storage) and the CPU backend (float32) on fresh random inputs:
 * ||cuda - cpu|| / ||cpu|| below 1e-2, NaN never passes. Skipped without a GPU.
 */
class CudaCpuParityTest extends CudaTestBase {
    private static final CpuBackend cpu = new CpuBackend(2);

    @AfterAll
    static void closeCpu() {
        cpu.close();
    }

    /** One logical tensor on both backends. */
    private record Pair(Tensor g, Tensor c) {
        Tensor on(Backend b) {
            return b == be ? g : c;
        }
    }

    private float[] randn(int n, double scale) {
        return TestArrays.randn(rnd, n, scale);
    }

    private Pair act(int rows, int cols, float[] v) {
        Tensor g = be.allocate(rows, cols), c = cpu.allocate(rows, cols);
        be.write(g, 0, v, 0, rows);
        cpu.write(c, 0, v, 0, rows);
        return new Pair(g, c);
    }

    private Pair out(int rows, int cols, boolean f32) {
        Tensor g = f32 ? be.allocateFloat(rows, cols) : be.allocate(rows, cols);
        be.fill(g, Float.NaN);
        return new Pair(g, cpu.allocateFloat(rows, cols));
    }

    private Pair weight(HostTensor w) {
        return new Pair(be.upload(w), cpu.upload(w));
    }

    private Pair ints(int[] v) {
        return new Pair(be.upload(v), cpu.upload(v));
    }

    private void same(Pair p, int rows, String what) {
        float[] a = new float[rows * p.g().cols()], b = new float[rows * p.c().cols()];
        be.read(p.g(), 0, a, 0, rows);
        cpu.read(p.c(), 0, b, 0, rows);
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(a[i])) {
                num = Double.POSITIVE_INFINITY;
                break;
            }
            num += (a[i] - b[i]) * (double) (a[i] - b[i]);
            den += b[i] * (double) b[i];
        }
        double e = Math.sqrt(num / Math.max(den, 1e-300));
        assertTrue(e < 1e-2, what + ": CUDA differs from CPU by " + e);
    }

    @Test
    void layerOpsAgree() {
        int n = 37, dim = 256, hidden = 688, heads = 8, hs = 32, vocab = 300;
        HostTensor table = HostTensor.ofFloats("emb", randn(vocab * dim, 1), vocab, dim);
        Pair emb = weight(table);
        int[] ids = new int[n];
        int[] pos = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = rnd.nextInt(vocab);
            pos[i] = 1000 + 3 * i;
        }
        Pair tok = ints(ids), p = ints(pos);
        Pair x = out(n, dim, false);
        for (Backend b : new Backend[] {be, cpu}) {
            b.embed(x.on(b), emb.on(b), tok.on(b), n);
        }
        same(x, n, "embed");

        Pair norm = weight(HostTensor.ofFloats("norm", randn(dim, 1), dim));
        Pair xb = out(n, dim, false);
        for (Backend b : new Backend[] {be, cpu}) {
            b.rmsnorm(xb.on(b), x.on(b), norm.on(b), n, 1e-5f);
        }
        same(xb, n, "rmsnorm");

        Pair wq = weight(HostTensor.ofFloats("wq", randn(dim * dim, 1 / Math.sqrt(dim)), dim, dim));
        Pair q = out(n, dim, false);
        for (Backend b : new Backend[] {be, cpu}) {
            b.matmul(q.on(b), xb.on(b), wq.on(b), n);
        }
        same(q, n, "matmul");

        float[] inv = new float[hs / 2];
        for (int j = 0; j < inv.length; j++) {
            inv[j] = (float) Math.pow(10000, -2.0 * j / hs);
        }
        Pair f = weight(HostTensor.ofFloats("inv", inv, hs / 2));
        for (Backend b : new Backend[] {be, cpu}) {
            b.rope(q.on(b), heads, hs, p.on(b), f.on(b), n);
        }
        same(q, n, "rope");

        Pair g = act(n, hidden, randn(n * hidden, 2)), u = act(n, hidden, randn(n * hidden, 1)), h = out(n, hidden, false);
        for (Backend b : new Backend[] {be, cpu}) {
            b.swiglu(h.on(b), g.on(b), u.on(b), n);
            b.add(x.on(b), xb.on(b), n);
        }
        same(h, n, "swiglu");
        same(x, n, "add");
    }

    @Test
    void attentionAndMergeAgree() {
        int nHeads = 8, nKv = 2, d = 64, bs = 16, kvDim = nKv * d;
        int[] qLen = {1, 50, 1, 20}, kvLen = {300, 120, 40, 20};
        BlockAllocator alloc = new BlockAllocator(64, bs);
        int[][] tables = new int[qLen.length][];
        int[] qStart = new int[qLen.length];
        int rows = 0;
        for (int s = 0; s < qLen.length; s++) {
            tables[s] = alloc.allocate(alloc.blocksFor(kvLen[s]));
            qStart[s] = rows;
            rows += qLen[s];
        }
        KvPool gp = be.allocateKvPool(1, kvDim, 64, bs), cp = cpu.allocateKvPool(1, kvDim, 64, bs);
        for (int s = 0; s < qLen.length; s++) {
            int[] slots = new int[kvLen[s]];
            for (int t = 0; t < kvLen[s]; t++) {
                slots[t] = BlockAllocator.slot(tables[s], bs, t);
            }
            Pair k = act(kvLen[s], kvDim, randn(kvLen[s] * kvDim, 1)), v = act(kvLen[s], kvDim, randn(kvLen[s] * kvDim, 1));
            Pair sl = ints(slots);
            be.kvWrite(gp, 0, k.g(), v.g(), sl.g(), kvLen[s]);
            cpu.kvWrite(cp, 0, k.c(), v.c(), sl.c(), kvLen[s]);
        }
        AttentionBatch batch = new AttentionBatch(qStart, qLen, kvLen, tables);
        Pair q = act(rows, nHeads * d, randn(rows * nHeads * d, 1));
        Pair o = out(rows, nHeads * d, false), l = out(rows, nHeads, true);
        try (AttentionBatch.Prepared pg = be.prepare(batch); AttentionBatch.Prepared pc = cpu.prepare(batch)) {
            be.attention(o.g(), l.g(), q.g(), gp, 0, pg, nHeads, nKv, d);
            cpu.attention(o.c(), l.c(), q.c(), cp, 0, pc, nHeads, nKv, d);
        }
        same(o, rows, "paged attention out");
        same(l, rows, "paged attention lse");

        int maxLen = 90;
        int[] lens = {90, 33};
        Pair ck = act(nKv * maxLen, d, randn(nKv * maxLen * d, 1)), cv = act(nKv * maxLen, d, randn(nKv * maxLen * d, 1));
        Pair o2 = out(rows, nHeads * d, false), l2 = out(rows, nHeads, true);
        be.attention(o2.g(), l2.g(), q.g(), rows, new CompactKv(ck.g(), cv.g(), maxLen, lens), nHeads, nKv, d);
        cpu.attention(o2.c(), l2.c(), q.c(), rows, new CompactKv(ck.c(), cv.c(), maxLen, lens), nHeads, nKv, d);
        same(o2, rows, "compact attention out");
        same(l2, rows, "compact attention lse");

        be.mergeAttention(o.g(), l.g(), o2.g(), l2.g(), rows, nHeads, d);
        cpu.mergeAttention(o.c(), l.c(), o2.c(), l2.c(), rows, nHeads, d);
        same(o, rows, "merged out");
        same(l, rows, "merged lse");
        gp.close();
        cp.close();
    }
}
