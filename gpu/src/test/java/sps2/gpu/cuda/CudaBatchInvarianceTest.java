package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.BlockAllocator;
import sps2.gpu.KvPool;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;
import sps2.model.DType;
import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.shapes.RandomWeights;

/**
 * The batch-invariant CUDA backend gives a row the same bits whatever else is in its launch: the same product
 * row for 1 to 1,000 rows, the same attention row from one-shot prefill, chunks of any size and decode (across
 * the fixed 1,024-key segments), and at the model level the same logits for a prompt prefilled in one piece or
 * in chunks, and for a request decoded alone or inside a batch of 32. Fresh random inputs every run; bit
 * equality, no tolerance. Skipped without a GPU.
 */
class CudaBatchInvarianceTest {
    private static CudaBackend be;
    private final java.util.Random rnd = new java.util.Random(System.nanoTime());

    @BeforeAll
    static void open() {
        if (CudaBackend.isAvailable()) {
            be = new CudaBackend(0, true);
        }
    }

    @AfterAll
    static void close() {
        if (be != null) {
            be.close();
            be = null;
        }
    }

    @BeforeEach
    void needGpu() {
        assumeTrue(be != null, () -> "No CUDA GPU here, skipping: " + CudaBackend.unavailableReason());
    }

    private float[] randn(int n, double scale) {
        return TestArrays.randn(rnd, n, scale);
    }

    private Tensor act(int rows, int cols, float[] v) {
        Tensor t = be.allocate(rows, cols);
        be.write(t, 0, v, 0, rows);
        return t;
    }

    private static float[] read(Backend b, Tensor t, int rows) {
        float[] out = new float[rows * t.cols()];
        b.read(t, 0, out, 0, rows);
        return out;
    }

    private static void sameBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": lengths");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + ", expected the bits of " + expected[i]);
            }
        }
    }

    @Test
    void aProductRowIsTheSameForAnyRowCount() {
        int[][] shapes = {{2048, 2048}, {8192, 2048}, {2048, 8192}, {1000, 64}};
        for (int[] s : shapes) {
            int nOut = s[0], k = s[1], maxM = 1000;
            float[] xv = bf16(randn(maxM * k, 1)), wv = bf16(randn(nOut * k, 0.05));
            try (Tensor x = act(maxM, k, xv); Tensor w = be.upload(HostTensor.ofFloats("w", wv, nOut, k))) {
                float[] ref = null;
                for (int m : new int[] {1000, 1, 2, 5, 8, 16, 17, 31, 64, 100, 129, 300}) {
                    try (Tensor o = be.allocate(m, nOut)) {
                        be.fill(o, Float.NaN);
                        be.matmul(o, x, w, m);
                        float[] rows = read(be, o, Math.min(m, 8));
                        if (ref == null) {
                            ref = rows;
                            double num = 0, den = 0;
                            for (int r = 0; r < 8; r++) {
                                for (int n = 0; n < nOut; n++) {
                                    double dot = 0;
                                    for (int e = 0; e < k; e++) {
                                        dot += (double) xv[r * k + e] * wv[n * k + e];
                                    }
                                    num += (rows[r * nOut + n] - dot) * (rows[r * nOut + n] - dot);
                                    den += dot * dot;
                                }
                            }
                            assertTrue(Math.sqrt(num / den) < 1e-2, "product " + nOut + "x" + k + " against float64: " + Math.sqrt(num / den));
                        } else {
                            sameBits(java.util.Arrays.copyOf(ref, rows.length), rows, "product " + nOut + "x" + k + " with " + m + " rows");
                        }
                    }
                }
            }
        }
    }

    @Test
    void anAttentionRowIsTheSameInOneShotPrefillChunksAndDecode() {
        int nHeads = 8, nKv = 2, d = 64, len = 2600, bs = 16;
        int kvDim = nKv * d, w = nHeads * d;
        BlockAllocator alloc = new BlockAllocator(len / bs + 8, bs);
        alloc.allocate(3); // tables that do not start at block 0
        int[] table = alloc.allocate(alloc.blocksFor(len));
        try (KvPool pool = be.allocateKvPool(1, kvDim, len / bs + 8, bs)) {
            int[] slots = new int[len];
            for (int t = 0; t < len; t++) {
                slots[t] = BlockAllocator.slot(table, bs, t);
            }
            float[] kv = bf16(randn(len * kvDim, 1)), vv = bf16(randn(len * kvDim, 1));
            try (Tensor kt = act(len, kvDim, kv); Tensor vt = act(len, kvDim, vv); Tensor st = be.upload(slots)) {
                be.kvWrite(pool, 0, kt, vt, st, len);
            }
            float[] q = bf16(randn(len * w, 2));
            float[] full = attend(q, pool, table, List.of(new int[] {0, len}), nHeads, nKv, d);
            // first the right answer: rows in the first, second and third segment against float64
            for (int row : new int[] {0, 700, 1023, 1024, 1500, 2048, 2599}) {
                for (int h = 0; h < nHeads; h++) {
                    double[] ref = attentionRef(q, kv, vv, row, h, h / (nHeads / nKv), nHeads, kvDim, d);
                    double num = 0, den = 0;
                    for (int e = 0; e < d; e++) {
                        double diff = full[row * w + h * d + e] - ref[e];
                        num += diff * diff;
                        den += ref[e] * ref[e];
                    }
                    double rel = Math.sqrt(num / Math.max(den, 1e-30));
                    if (!(rel < 1e-2)) {
                        throw new AssertionError("attention row " + row + " head " + h + ": relative error " + rel + " against float64");
                    }
                }
            }
            for (int chunk : new int[] {512, 300, 16, 7}) {
                List<int[]> parts = new ArrayList<>();
                for (int q0 = len - 3 * chunk; q0 < len; q0 += chunk) {
                    parts.add(new int[] {q0, Math.min(chunk, len - q0)});
                }
                float[] got = attend(q, pool, table, parts, nHeads, nKv, d);
                int from = len - 3 * chunk;
                sameBits(java.util.Arrays.copyOfRange(full, from * w, len * w), got, "attention in chunks of " + chunk);
            }
            // decode rows at positions around the segment boundaries, each alone and all in one batch
            List<int[]> rows = new ArrayList<>();
            for (int p : new int[] {1022, 1023, 1024, 1025, 2047, 2048, 2599}) {
                rows.add(new int[] {p, 1});
            }
            float[] batched = attend(q, pool, table, rows, nHeads, nKv, d);
            for (int i = 0; i < rows.size(); i++) {
                int p = rows.get(i)[0];
                float[] alone = attend(q, pool, table, List.of(rows.get(i)), nHeads, nKv, d);
                sameBits(java.util.Arrays.copyOfRange(full, p * w, (p + 1) * w), alone, "decode row at position " + p);
                sameBits(alone, java.util.Arrays.copyOfRange(batched, i * w, (i + 1) * w), "decode row at position " + p + " in a batch");
            }
        }
    }

    /** Causal softmax attention of query row {@code row}, head {@code h} (KV head g) in float64. */
    private static double[] attentionRef(float[] q, float[] k, float[] v, int row, int h, int g, int nHeads, int kvDim, int d) {
        double[] s = new double[row + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int t = 0; t <= row; t++) {
            double dot = 0;
            for (int e = 0; e < d; e++) {
                dot += (double) q[(row * nHeads + h) * d + e] * k[t * kvDim + g * d + e];
            }
            s[t] = dot / Math.sqrt(d);
            max = Math.max(max, s[t]);
        }
        double sum = 0;
        double[] out = new double[d];
        for (int t = 0; t <= row; t++) {
            double p = Math.exp(s[t] - max);
            sum += p;
            for (int e = 0; e < d; e++) {
                out[e] += p * v[t * kvDim + g * d + e];
            }
        }
        for (int e = 0; e < d; e++) {
            out[e] /= sum;
        }
        return out;
    }

    private static float[] bf16(float[] a) {
        return TestArrays.bf16(a);
    }

    /**
     * Attention output rows for query pieces {q0, n} of one sequence (each piece its own batch entry over the
     * same cached keys, seeing keys 0 .. q0 + j), concatenated.
     */
    private float[] attend(float[] qAll, KvPool pool, int[] table, List<int[]> pieces, int nHeads, int nKv, int d) {
        int w = nHeads * d;
        int rows = pieces.stream().mapToInt(p -> p[1]).sum();
        float[] q = new float[rows * w];
        int[] qStart = new int[pieces.size()], qLen = new int[pieces.size()], kvLen = new int[pieces.size()];
        int[][] tables = new int[pieces.size()][];
        int at = 0;
        for (int i = 0; i < pieces.size(); i++) {
            int[] p = pieces.get(i);
            System.arraycopy(qAll, p[0] * w, q, at * w, p[1] * w);
            qStart[i] = at;
            qLen[i] = p[1];
            kvLen[i] = p[0] + p[1];
            tables[i] = table;
            at += p[1];
        }
        try (Tensor qt = act(rows, w, q); Tensor out = be.allocateFloat(rows, w); Tensor lse = be.allocateFloat(rows, nHeads);
                AttentionBatch.Prepared prep = be.prepare(new AttentionBatch(qStart, qLen, kvLen, tables))) {
            be.fill(out, Float.NaN);
            be.attention(out, lse, qt, pool, 0, prep, nHeads, nKv, d);
            return read(be, out, rows);
        }
    }

    /** A small model with the head size and grouping of the real shapes (d 64, 4 query heads per KV head). */
    private static LlamaModel model(long seed) {
        ModelConfig c = new ModelConfig(512, 1024, 2, 8, 2, 2048, 4096, 500000f, 1e-5f, false, null);
        return new LlamaModel(be, RandomWeights.generate(c, DType.BF16, seed), null);
    }

    @Test
    void aPromptGivesTheSameLogitsInOnePieceOrInChunks() {
        try (LlamaModel m = model(rnd.nextLong())) {
            int[] prompt = tokens(2300, m.config().vocabSize());
            float[] ref = null;
            for (int chunk : new int[] {4096, 512, 300}) {
                try (sps2.gpu.Sequence s = new sps2.gpu.Sequence(m, 2400, chunk)) {
                    float[] logits = s.forward(prompt).clone();
                    List<float[]> steps = new ArrayList<>();
                    steps.add(logits);
                    int token = argmax(logits);
                    for (int i = 0; i < 4; i++) { // decode across nothing special: positions 2300..2303
                        float[] l = s.forward(new int[] {token}).clone();
                        steps.add(l);
                        token = argmax(l);
                    }
                    float[] all = concat(steps);
                    if (ref == null) {
                        ref = all;
                    } else {
                        sameBits(ref, all, "logits of a prompt prefilled in chunks of " + chunk + " then decoded");
                    }
                }
            }
        }
    }

    @Test
    void aRequestDecodesTheSameAloneAndInABatchOf32() {
        try (LlamaModel m = model(rnd.nextLong())) {
            int vocab = m.config().vocabSize();
            int[][] prompts = new int[32][];
            for (int i = 0; i < prompts.length; i++) {
                prompts[i] = tokens(200 + 37 * i, vocab);
            }
            int steps = 12;
            BatchDecode.Result alone = BatchDecode.run(m, new int[][] {prompts[5]}, steps);
            BatchDecode.Result batch = BatchDecode.run(m, prompts, steps);
            assertArrayEquals(alone.tokens()[0], batch.tokens()[5], "greedy tokens of request 5 alone and in a batch of 32");
            sameBits(alone.lastLogits()[0], batch.lastLogits()[5], "last logits of request 5 alone and in a batch of 32");
        }
    }

    private int[] tokens(int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = rnd.nextInt(vocab);
        }
        return t;
    }

    static int argmax(float[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) {
            if (a[i] > a[best]) {
                best = i;
            }
        }
        return best;
    }

    private static float[] concat(List<float[]> parts) {
        float[] all = new float[parts.stream().mapToInt(p -> p.length).sum()];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, all, at, p.length);
            at += p.length;
        }
        return all;
    }

    /** Prefill of each request alone, then greedy decode steps of all of them in one batch per step. */
    static final class BatchDecode {
        private BatchDecode() {
        }

        /** Each sequence's greedy tokens, and its logits after the last step. */
        record Result(int[][] tokens, float[][] lastLogits) {
        }

        static Result run(LlamaModel m, int[][] prompts, int steps) {
            Backend b = m.backend();
            int n = prompts.length, bs = 16, vocab = m.config().vocabSize();
            int maxLen = 0;
            for (int[] p : prompts) {
                maxLen = Math.max(maxLen, p.length + steps + 1);
            }
            int blocksPer = (maxLen + bs - 1) / bs;
            int[][] tables = new int[n][blocksPer];
            for (int s = 0; s < n; s++) {
                for (int j = 0; j < blocksPer; j++) {
                    tables[s][j] = s * blocksPer + j;
                }
            }
            int[][] out = new int[n][steps];
            int[] len = new int[n];
            int[] next = new int[n];
            float[][] last = new float[n][];
            try (KvPool pool = b.allocateKvPool(m.config().nLayers(), m.config().kvDim(), n * blocksPer, bs);
                    LlamaModel.Workspace ws = m.workspace(Math.max(n, maxLen))) {
                for (int s = 0; s < n; s++) { // prefill each alone
                    float[] l = forward(m, ws, pool, new int[][] {prompts[s]}, new int[][] {tables[s]}, new int[] {0}, vocab)[0];
                    next[s] = argmax(l);
                    len[s] = prompts[s].length;
                }
                for (int t = 0; t < steps; t++) {
                    int[][] feed = new int[n][];
                    for (int s = 0; s < n; s++) {
                        out[s][t] = next[s];
                        feed[s] = new int[] {next[s]};
                    }
                    float[][] l = forward(m, ws, pool, feed, tables, len, vocab);
                    for (int s = 0; s < n; s++) {
                        next[s] = argmax(l[s]);
                        len[s]++;
                    }
                    last = l;
                }
            }
            return new Result(out, last);
        }

        /** One step over several sequences: rows of sequence s are its tokens at positions start[s]... */
        private static float[][] forward(LlamaModel m, LlamaModel.Workspace ws, KvPool pool, int[][] toks, int[][] tables, int[] start, int vocab) {
            Backend b = m.backend();
            int seqs = toks.length, rows = 0;
            for (int[] t : toks) {
                rows += t.length;
            }
            int[] ids = new int[rows], pos = new int[rows], slots = new int[rows], last = new int[seqs];
            int[] qStart = new int[seqs], qLen = new int[seqs], kvLen = new int[seqs];
            int at = 0;
            for (int s = 0; s < seqs; s++) {
                qStart[s] = at;
                qLen[s] = toks[s].length;
                kvLen[s] = start[s] + toks[s].length;
                for (int i = 0; i < toks[s].length; i++, at++) {
                    ids[at] = toks[s][i];
                    pos[at] = start[s] + i;
                    slots[at] = BlockAllocator.slot(tables[s], pool.blockSize(), start[s] + i);
                }
                last[s] = at - 1;
            }
            try (Tensor idT = b.upload(ids); Tensor posT = b.upload(pos); Tensor slotT = b.upload(slots);
                    AttentionBatch.Prepared batch = b.prepare(new AttentionBatch(qStart, qLen, kvLen, tables))) {
                m.embed(ws, idT, rows);
                for (int l = 0; l < m.config().nLayers(); l++) {
                    m.project(l, ws, posT, rows);
                    b.kvWrite(pool, l, ws.k, ws.v, slotT, rows);
                    m.attend(l, ws, pool, batch);
                    m.finishLayer(l, ws, rows);
                }
                m.logits(ws, last);
                float[] all = read(b, ws.logits, seqs);
                float[][] per = new float[seqs][];
                for (int s = 0; s < seqs; s++) {
                    per[s] = java.util.Arrays.copyOfRange(all, s * vocab, (s + 1) * vocab);
                }
                return per;
            }
        }
    }
}
