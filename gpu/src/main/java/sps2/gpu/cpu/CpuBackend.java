package sps2.gpu.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;
import java.util.function.IntConsumer;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.KvPool;
import sps2.gpu.Tensor;
import sps2.model.HostTensor;

/**
 * The reference backend: float32 on the Java heap, the Vector API for dot products, and a fork-join
 * pool over output rows. Every dot product is accumulated in the same lane order whatever the batch
 * size, so a prefill of N tokens and N single-token steps give bit-identical results.
 */
public final class CpuBackend implements Backend {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Below this many multiply-adds a call runs on the calling thread: forking costs more. */
    private static final long PARALLEL_THRESHOLD = 1 << 16;

    private final ForkJoinPool pool;
    private final int threads;

    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        this.threads = Math.max(1, threads);
        this.pool = new ForkJoinPool(this.threads);
    }

    @Override
    public String name() {
        return "cpu (" + threads + " threads, " + S.length() + "-lane float vectors)";
    }

    public int threads() {
        return threads;
    }

    // ---- memory ----

    @Override
    public Tensor allocate(int rows, int cols) {
        return new CpuTensor(new float[Math.multiplyExact(rows, cols)], rows, cols);
    }

    @Override
    public Tensor upload(HostTensor weight) {
        float[] values = weight.toFloats();
        return new CpuTensor(values, weight.rows(), weight.cols());
    }

    @Override
    public Tensor upload(int[] values) {
        return new CpuIntTensor(values.clone());
    }

    @Override
    public void write(Tensor dst, int dstRow, float[] src, int srcOffset, int rows) {
        CpuTensor d = f(dst);
        System.arraycopy(src, srcOffset, d.data, dstRow * d.cols(), rows * d.cols());
    }

    @Override
    public void read(Tensor src, int srcRow, float[] dst, int dstOffset, int rows) {
        CpuTensor s = f(src);
        System.arraycopy(s.data, srcRow * s.cols(), dst, dstOffset, rows * s.cols());
    }

    @Override
    public void copyRows(Tensor dst, int dstRow, Tensor src, int srcRow, int rows) {
        CpuTensor d = f(dst);
        CpuTensor s = f(src);
        if (d.cols() != s.cols()) {
            throw new IllegalArgumentException("copyRows between widths " + s.cols() + " and " + d.cols());
        }
        System.arraycopy(s.data, srcRow * s.cols(), d.data, dstRow * d.cols(), rows * d.cols());
    }

    @Override
    public KvPool allocateKvPool(int layers, int kvDim, int blocks, int blockSize) {
        return new CpuKvPool(layers, kvDim, blocks, blockSize);
    }

    @Override
    public AttentionBatch.Prepared prepare(AttentionBatch batch) {
        return new AttentionBatch.Prepared() {
            @Override
            public AttentionBatch batch() {
                return batch;
            }

            @Override
            public void close() {
            }
        };
    }

    // ---- model math ----

    @Override
    public void embed(Tensor out, Tensor table, Tensor tokens, int n) {
        CpuTensor o = f(out);
        CpuTensor t = f(table);
        int[] ids = i(tokens).data;
        int dim = t.cols();
        for (int r = 0; r < n; r++) {
            int id = ids[r];
            if (id < 0 || id >= t.rows()) {
                throw new IllegalArgumentException("Token id " + id + " is outside the vocabulary of " + t.rows());
            }
            System.arraycopy(t.data, id * dim, o.data, r * dim, dim);
        }
    }

    @Override
    public void rmsnorm(Tensor out, Tensor x, Tensor weight, int n, float eps) {
        float[] o = f(out).data;
        float[] xs = f(x).data;
        float[] w = f(weight).data;
        int dim = f(x).cols();
        for (int r = 0; r < n; r++) {
            int base = r * dim;
            float ss = dot(xs, base, xs, base, dim) / dim + eps;
            float scale = (float) (1.0 / Math.sqrt(ss));
            for (int j = 0; j < dim; j++) {
                o[base + j] = w[j] * (scale * xs[base + j]);
            }
        }
    }

    @Override
    public void matmul(Tensor out, Tensor x, Tensor w, int n) {
        float[] o = f(out).data;
        float[] xs = f(x).data;
        CpuTensor wt = f(w);
        float[] ws = wt.data;
        int in = wt.cols();
        int outs = wt.rows();
        if (f(x).cols() != in || f(out).cols() != outs) {
            throw new IllegalArgumentException("matmul shapes: x is [" + n + ", " + f(x).cols() + "], w is [" + outs + ", " + in
                    + "], out is [" + n + ", " + f(out).cols() + "]");
        }
        // Work unit: a tile of up to 4 input rows x 2 weight rows, so each weight row read from memory
        // serves 4 tokens in prefill. Decode (n = 1) splits over weight rows only.
        int rowTiles = (n + 3) / 4;
        int colPairs = (outs + 1) / 2;
        long work = (long) n * outs * in;
        forRange(rowTiles * colPairs, work, unit -> {
            int rt = unit / colPairs;
            int cp = unit % colPairs;
            int r0 = rt * 4;
            int rEnd = Math.min(n, r0 + 4);
            int c0 = cp * 2;
            int cEnd = Math.min(outs, c0 + 2);
            if (rEnd - r0 == 4 && cEnd - c0 == 2) {
                tile4x2(o, xs, ws, in, outs, r0, c0);
            } else {
                for (int r = r0; r < rEnd; r++) {
                    for (int c = c0; c < cEnd; c++) {
                        o[r * outs + c] = dot(xs, r * in, ws, c * in, in);
                    }
                }
            }
        });
    }

    /** Eight dot products at once; each accumulates exactly like {@link #dot}. */
    private static void tile4x2(float[] o, float[] x, float[] w, int in, int outs, int r0, int c0) {
        int x0 = r0 * in, x1 = x0 + in, x2 = x1 + in, x3 = x2 + in;
        int w0 = c0 * in, w1 = w0 + in;
        FloatVector a00 = FloatVector.zero(S), a01 = FloatVector.zero(S), a10 = FloatVector.zero(S), a11 = FloatVector.zero(S);
        FloatVector a20 = FloatVector.zero(S), a21 = FloatVector.zero(S), a30 = FloatVector.zero(S), a31 = FloatVector.zero(S);
        int bound = S.loopBound(in);
        int i = 0;
        for (; i < bound; i += S.length()) {
            FloatVector v0 = FloatVector.fromArray(S, w, w0 + i);
            FloatVector v1 = FloatVector.fromArray(S, w, w1 + i);
            FloatVector u = FloatVector.fromArray(S, x, x0 + i);
            a00 = u.fma(v0, a00);
            a01 = u.fma(v1, a01);
            u = FloatVector.fromArray(S, x, x1 + i);
            a10 = u.fma(v0, a10);
            a11 = u.fma(v1, a11);
            u = FloatVector.fromArray(S, x, x2 + i);
            a20 = u.fma(v0, a20);
            a21 = u.fma(v1, a21);
            u = FloatVector.fromArray(S, x, x3 + i);
            a30 = u.fma(v0, a30);
            a31 = u.fma(v1, a31);
        }
        float s00 = a00.reduceLanes(VectorOperators.ADD), s01 = a01.reduceLanes(VectorOperators.ADD);
        float s10 = a10.reduceLanes(VectorOperators.ADD), s11 = a11.reduceLanes(VectorOperators.ADD);
        float s20 = a20.reduceLanes(VectorOperators.ADD), s21 = a21.reduceLanes(VectorOperators.ADD);
        float s30 = a30.reduceLanes(VectorOperators.ADD), s31 = a31.reduceLanes(VectorOperators.ADD);
        for (; i < in; i++) {
            float v0 = w[w0 + i], v1 = w[w1 + i];
            s00 += x[x0 + i] * v0;
            s01 += x[x0 + i] * v1;
            s10 += x[x1 + i] * v0;
            s11 += x[x1 + i] * v1;
            s20 += x[x2 + i] * v0;
            s21 += x[x2 + i] * v1;
            s30 += x[x3 + i] * v0;
            s31 += x[x3 + i] * v1;
        }
        o[r0 * outs + c0] = s00;
        o[r0 * outs + c0 + 1] = s01;
        o[(r0 + 1) * outs + c0] = s10;
        o[(r0 + 1) * outs + c0 + 1] = s11;
        o[(r0 + 2) * outs + c0] = s20;
        o[(r0 + 2) * outs + c0 + 1] = s21;
        o[(r0 + 3) * outs + c0] = s30;
        o[(r0 + 3) * outs + c0 + 1] = s31;
    }

    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        if (n < S.length()) {
            // shorter than one vector (small head sizes): plain loop, same result as the vector path's tail
            float sum = 0;
            for (int i = 0; i < n; i++) {
                sum += a[ao + i] * b[bo + i];
            }
            return sum;
        }
        FloatVector acc = FloatVector.zero(S);
        int bound = S.loopBound(n);
        int i = 0;
        for (; i < bound; i += S.length()) {
            acc = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            sum += a[ao + i] * b[bo + i];
        }
        return sum;
    }

    @Override
    public void rope(Tensor x, int heads, int headSize, Tensor positions, Tensor invFreq, int n) {
        float[] xs = f(x).data;
        int[] pos = i(positions).data;
        float[] inv = f(invFreq).data;
        int width = f(x).cols();
        for (int r = 0; r < n; r++) {
            int p = pos[r];
            for (int j = 0; j < headSize / 2; j++) {
                float angle = p * inv[j];
                float cos = (float) Math.cos(angle);
                float sin = (float) Math.sin(angle);
                for (int h = 0; h < heads; h++) {
                    int at = r * width + h * headSize + 2 * j;
                    float a = xs[at];
                    float b = xs[at + 1];
                    xs[at] = a * cos - b * sin;
                    xs[at + 1] = a * sin + b * cos;
                }
            }
        }
    }

    @Override
    public void swiglu(Tensor out, Tensor gate, Tensor up, int n) {
        float[] o = f(out).data;
        float[] g = f(gate).data;
        float[] u = f(up).data;
        int len = n * f(gate).cols();
        for (int j = 0; j < len; j++) {
            float v = g[j];
            o[j] = v / (1.0f + (float) Math.exp(-v)) * u[j];
        }
    }

    @Override
    public void add(Tensor x, Tensor y, int n) {
        float[] a = f(x).data;
        float[] b = f(y).data;
        int len = n * f(x).cols();
        for (int j = 0; j < len; j++) {
            a[j] += b[j];
        }
    }

    @Override
    public void kvWrite(KvPool pool, int layer, Tensor k, Tensor v, Tensor slots, int n) {
        CpuKvPool p = (CpuKvPool) pool;
        int[] s = i(slots).data;
        int kvDim = p.kvDim();
        float[] ks = f(k).data;
        float[] vs = f(v).data;
        for (int r = 0; r < n; r++) {
            System.arraycopy(ks, r * kvDim, p.k[layer], s[r] * kvDim, kvDim);
            System.arraycopy(vs, r * kvDim, p.v[layer], s[r] * kvDim, kvDim);
        }
    }

    @Override
    public void kvRead(KvPool pool, int layer, Tensor slots, Tensor k, Tensor v, int n) {
        CpuKvPool p = (CpuKvPool) pool;
        int[] s = i(slots).data;
        int kvDim = p.kvDim();
        for (int r = 0; r < n; r++) {
            System.arraycopy(p.k[layer], s[r] * kvDim, f(k).data, r * kvDim, kvDim);
            System.arraycopy(p.v[layer], s[r] * kvDim, f(v).data, r * kvDim, kvDim);
        }
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, KvPool pool, int layer, AttentionBatch.Prepared prepared,
            int nHeads, int nKvHeads, int headSize) {
        CpuKvPool p = (CpuKvPool) pool;
        AttentionBatch b = prepared.batch();
        float[] o = f(out).data;
        float[] l = f(lse).data;
        float[] qs = f(q).data;
        float[] ks = p.k[layer];
        float[] vs = p.v[layer];
        int kvDim = p.kvDim();
        int bs = p.blockSize();
        int group = nHeads / nKvHeads;
        int rows = b.rows();
        int[] seqOfRow = new int[rows];
        for (int s = 0; s < b.sequences(); s++) {
            for (int j = 0; j < b.qLen()[s]; j++) {
                seqOfRow[b.qStart()[s] + j] = s;
            }
        }
        long work = 0;
        for (int s = 0; s < b.sequences(); s++) {
            work += (long) b.qLen()[s] * b.kvLen()[s] * nHeads * headSize;
        }
        float scale = (float) (1.0 / Math.sqrt(headSize));
        // element offset of each cached token of each sequence, computed once per call
        int[][] keyBase = new int[b.sequences()][];
        for (int s = 0; s < b.sequences(); s++) {
            int[] table = b.blockTables()[s];
            keyBase[s] = new int[b.kvLen()[s]];
            for (int t = 0; t < keyBase[s].length; t++) {
                keyBase[s][t] = (table[t / bs] * bs + t % bs) * kvDim;
            }
        }
        forRange(rows * nHeads, work, unit -> {
            int row = unit / nHeads;
            int h = unit % nHeads;
            int s = seqOfRow[row];
            int j = row - b.qStart()[s];
            int visible = b.kvLen()[s] - b.qLen()[s] + j + 1;
            int g = h / group;
            int qo = row * nHeads * headSize + h * headSize;
            l[row * nHeads + h] = attendOne(qs, qo, ks, vs, keyBase[s], g * headSize, visible, headSize, scale, o, qo);
        });
    }

    /**
     * Softmax attention of one query head over {@code n} keys whose rows start at {@code base[t] + headOffset};
     * writes the output at {@code o[oo..]} and returns the log-sum-exp. Every attention path goes through here,
     * so prefill and decode compute each row identically.
     */
    private static float attendOne(float[] q, int qo, float[] k, float[] v, int[] base, int headOffset, int n, int headSize, float scale,
            float[] o, int oo) {
        float[] scores = scratch(n + headSize);
        float max = Float.NEGATIVE_INFINITY;
        for (int t = 0; t < n; t++) {
            float sc = dot(q, qo, k, base[t] + headOffset, headSize) * scale;
            scores[t] = sc;
            max = Math.max(max, sc);
        }
        // exponentials a vector at a time (the JIT maps EXP to a short-vector math routine)
        int t0 = 0;
        FloatVector vsum = FloatVector.zero(S);
        for (int bound = S.loopBound(n); t0 < bound; t0 += S.length()) {
            FloatVector e = FloatVector.fromArray(S, scores, t0).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(scores, t0);
            vsum = vsum.add(e);
        }
        float sum = vsum.reduceLanes(VectorOperators.ADD);
        for (; t0 < n; t0++) {
            float e = (float) Math.exp(scores[t0] - max);
            scores[t0] = e;
            sum += e;
        }
        int acc = n; // accumulate the output in the scratch tail
        java.util.Arrays.fill(scores, acc, acc + headSize, 0f);
        for (int t = 0; t < n; t++) {
            float e = scores[t];
            int vo = base[t] + headOffset;
            for (int d = 0; d < headSize; d++) {
                scores[acc + d] += e * v[vo + d];
            }
        }
        float inv = 1.0f / sum;
        for (int d = 0; d < headSize; d++) {
            o[oo + d] = scores[acc + d] * inv;
        }
        return max + (float) Math.log(sum);
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, int n, CompactKv kv, int nHeads, int nKvHeads, int headSize) {
        float[] o = f(out).data;
        float[] l = f(lse).data;
        float[] qs = f(q).data;
        float[] ks = f(kv.k()).data;
        float[] vs = f(kv.v()).data;
        int group = nHeads / nKvHeads;
        float scale = (float) (1.0 / Math.sqrt(headSize));
        long work = (long) n * kv.maxLen() * nHeads * headSize;
        int[][] bases = new int[nKvHeads][];
        for (int g = 0; g < nKvHeads; g++) {
            bases[g] = rowOffsets(g * kv.maxLen(), kv.lens()[g], headSize);
        }
        forRange(n * nHeads, work, unit -> {
            int row = unit / nHeads;
            int h = unit % nHeads;
            int g = h / group;
            int len = kv.lens()[g];
            int qo = row * nHeads * headSize + h * headSize;
            if (len == 0) {
                java.util.Arrays.fill(o, qo, qo + headSize, 0f);
                l[row * nHeads + h] = Float.NEGATIVE_INFINITY;
                return;
            }
            l[row * nHeads + h] = attendOne(qs, qo, ks, vs, bases[g], 0, len, headSize, scale, o, qo);
        });
    }

    private static int[] rowOffsets(int firstRow, int n, int width) {
        int[] base = new int[n];
        for (int t = 0; t < n; t++) {
            base[t] = (firstRow + t) * width;
        }
        return base;
    }

    @Override
    public void mergeAttention(Tensor out, Tensor lse, Tensor out2, Tensor lse2, int n, int nHeads, int headSize) {
        float[] o = f(out).data;
        float[] l = f(lse).data;
        float[] o2 = f(out2).data;
        float[] l2 = f(lse2).data;
        for (int r = 0; r < n; r++) {
            for (int h = 0; h < nHeads; h++) {
                int li = r * nHeads + h;
                float a = l[li];
                float b = l2[li];
                if (b == Float.NEGATIVE_INFINITY) {
                    continue;
                }
                int oo = r * nHeads * headSize + h * headSize;
                if (a == Float.NEGATIVE_INFINITY) {
                    System.arraycopy(o2, oo, o, oo, headSize);
                    l[li] = b;
                    continue;
                }
                float m = Math.max(a, b);
                float wa = (float) Math.exp(a - m);
                float wb = (float) Math.exp(b - m);
                float inv = 1.0f / (wa + wb);
                for (int d = 0; d < headSize; d++) {
                    o[oo + d] = (o[oo + d] * wa + o2[oo + d] * wb) * inv;
                }
                l[li] = m + (float) Math.log(wa + wb);
            }
        }
    }

    @Override
    public void sync() {
        // every call completes before it returns
    }

    @Override
    public void close() {
        pool.shutdown();
    }

    // ---- helpers ----

    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[][] {new float[1024]});

    private static float[] scratch(int n) {
        float[][] holder = SCRATCH.get();
        if (holder[0].length < n) {
            holder[0] = new float[Math.max(n, holder[0].length * 2)];
        }
        return holder[0];
    }

    /** Runs body(0..units-1), split over the pool when the total work is large enough to pay for it. */
    private void forRange(int units, long work, IntConsumer body) {
        if (threads == 1 || work < PARALLEL_THRESHOLD || units == 1) {
            for (int u = 0; u < units; u++) {
                body.accept(u);
            }
            return;
        }
        int chunks = Math.min(units, threads * 4);
        pool.invoke(new Range(body, 0, units, Math.max(1, units / chunks)));
    }

    private static final class Range extends RecursiveAction {
        private final IntConsumer body;
        private final int from;
        private final int to;
        private final int grain;

        Range(IntConsumer body, int from, int to, int grain) {
            this.body = body;
            this.from = from;
            this.to = to;
            this.grain = grain;
        }

        @Override
        protected void compute() {
            if (to - from <= grain) {
                for (int u = from; u < to; u++) {
                    body.accept(u);
                }
                return;
            }
            int mid = (from + to) >>> 1;
            invokeAll(new Range(body, from, mid, grain), new Range(body, mid, to, grain));
        }
    }

    private static CpuTensor f(Tensor t) {
        if (t instanceof CpuTensor c) {
            return c;
        }
        throw new IllegalArgumentException("The CPU backend was given a tensor of another backend or an integer tensor: " + t);
    }

    private static CpuIntTensor i(Tensor t) {
        if (t instanceof CpuIntTensor c) {
            return c;
        }
        throw new IllegalArgumentException("The CPU backend expected an integer tensor, got " + t);
    }
}
