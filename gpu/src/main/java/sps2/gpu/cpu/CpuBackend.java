package sps2.gpu.cpu;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

import jdk.incubator.vector.VectorShape;
import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.KvPool;
import sps2.gpu.PendingRead;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.HostTensor;

/**
 * The reference backend: float32 on the Java heap, the Vector API, and a {@link Team} of threads that
 * share out each operation. Every output element of a product, every attention score, sum and output is one
 * chain of operations in a fixed order ({@link Scalar}, {@link Exp}) that depends only on its own row: a
 * prefill of N tokens and N single-token steps give bit-identical results, whatever the thread count or the JIT
 * tier. (Attention's sums over keys are blocked by the machine's vector width, {@link Attention#LANES}; products are not.)
 *
 * <p>Cold start: the Vector API costs about 0.1 s to initialise and runs a hundred times slower than scalar
 * code until C2 has compiled its caller, so the first {@link #COLD_WORK} multiply-adds of a backend run in the
 * scalar forms, on one thread (the same bits again); the first product that does not fit what is left ends it.
 * A one-token {@code generate} of a small model never touches a vector; a long prompt goes to the vectors at once.
 */
public final class CpuBackend implements Backend {
    /** Below this many multiply-adds a call runs on the calling thread: forking costs more. */
    private static final long PARALLEL_THRESHOLD = 1 << 16;
    /** Multiply-adds of products run in scalar code before the vector kernels take over. */
    public static final long COLD_WORK = 1 << 24;

    /** Started by the first parallel section: a cold one-token run never needs it. */
    private Team team;
    private final int threads;
    /** Product work left to the scalar forms; racy on purpose: either form gives the same bits. */
    private long coldWork;

    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        this(threads, COLD_WORK);
    }

    /**
     * @param scalarWork multiply-adds of products to run in the scalar forms before the vector kernels take over
     *                   (0: vectors from the first call; Long.MAX_VALUE: never)
     */
    public CpuBackend(int threads, long scalarWork) {
        this.threads = Math.max(1, threads);
        this.coldWork = scalarWork;
    }

    @Override
    public String name() {
        // the shape, not FloatVector's species: naming the backend must not start the Vector API
        return "cpu (" + threads + " threads, " + VectorShape.preferredShape().vectorBitSize() / Float.SIZE + "-lane float vectors)";
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
        if (weight.rows() > 1) {
            return new CpuWeight(values, weight.rows(), weight.cols());
        }
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

    // ---- exchange between shards: float32 on the wire, copied at once ----

    @Override
    public WireType wireType(Tensor t) {
        f(t);
        return WireType.F32;
    }

    @Override
    public PendingRead readAsync(Tensor[] sources, int width, int[] pieces) {
        long total = 4L * sources.length * pieces.length * width;
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("A read of " + total + " bytes does not fit one host array");
        }
        byte[] out = new byte[(int) total];
        FloatBuffer dst = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        for (Tensor t : sources) {
            CpuTensor s = f(t);
            long count = (long) s.rows() * s.cols() / width;
            for (int p : pieces) {
                if (p < 0 || p >= count) {
                    throw new IllegalArgumentException("Piece " + p + " of width " + width + " is outside a [" + s.rows() + ", " + s.cols() + "] tensor");
                }
                dst.put(s.data, p * width, width);
            }
        }
        return PendingRead.completed(WireType.F32, out);
    }

    @Override
    public void write(Tensor dst, int dstRow, WireType type, byte[] src, int srcOffset, int rows) {
        CpuTensor d = f(dst);
        int n = rows * d.cols();
        int at = dstRow * d.cols();
        if (type == WireType.F32) {
            ByteBuffer.wrap(src, srcOffset, 4 * n).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(d.data, at, n);
        } else {
            for (int i = 0; i < n; i++) {
                d.data[at + i] = type.get(src, srcOffset, i);
            }
        }
    }

    // ---- hand-off between shards: host memory that every CPU backend reads in place ----

    @Override
    public Tensor gather(Tensor src, int width, int[] pieces) {
        CpuTensor s = f(src);
        long count = (long) s.rows() * s.cols() / width;
        float[] out = new float[Math.multiplyExact(pieces.length, width)];
        for (int i = 0; i < pieces.length; i++) {
            int p = pieces[i];
            if (p < 0 || p >= count) {
                throw new IllegalArgumentException("Piece " + p + " of width " + width + " is outside a [" + s.rows() + ", " + s.cols() + "] tensor");
            }
            System.arraycopy(s.data, p * width, out, i * width, width);
        }
        return new CpuTensor(out, pieces.length, width);
    }

    @Override
    public void fill(Tensor dst, float value) {
        java.util.Arrays.fill(f(dst).data, value);
    }

    @Override
    public void writeInts(Tensor dst, int[] values) {
        if (!(dst instanceof CpuIntTensor t) || t.data.length < values.length) {
            throw new IllegalArgumentException("writeInts needs an integer tensor of this backend with room for " + values.length + " values");
        }
        System.arraycopy(values, 0, t.data, 0, values.length);
    }

    @Override
    public boolean holds(Tensor t) {
        return t instanceof CpuTensor || t instanceof CpuIntTensor;
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
        int[] ids = i(tokens).data;
        int dim = table.cols();
        for (int r = 0; r < n; r++) {
            int id = ids[r];
            if (id < 0 || id >= table.rows()) {
                throw new IllegalArgumentException("Token id " + id + " is outside the vocabulary of " + table.rows());
            }
            if (table instanceof CpuWeight w) {
                w.row(id, o.data, r * dim);
            } else {
                System.arraycopy(f(table).data, id * dim, o.data, r * dim, dim);
            }
        }
    }

    @Override
    public void rmsnorm(Tensor out, Tensor x, Tensor weight, int n, float eps) {
        float[] o = f(out).data;
        float[] xs = f(x).data;
        float[] w = f(weight).data;
        int dim = f(x).cols();
        rows(n, 4L * dim, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int base = r * dim;
                float ss = Scalar.dot(xs, base, xs, base, dim) / dim + eps;
                float scale = (float) (1.0 / Math.sqrt(ss));
                for (int j = 0; j < dim; j++) {
                    o[base + j] = w[j] * (scale * xs[base + j]);
                }
            }
        });
    }

    @Override
    public void matmul(Tensor out, Tensor x, Tensor w, int n) {
        matmul(new Tensor[] {out}, x, new Tensor[] {w}, n);
    }

    /** The products of one input as one parallel section: their work units one after the other. */
    @Override
    public void matmul(Tensor[] outs, Tensor x, Tensor[] ws, int n) {
        float[] xs = f(x).data;
        int count = outs.length;
        float[][] o = new float[count][];
        CpuWeight[] wt = new CpuWeight[count];
        int[] firstUnit = new int[count + 1];
        long work = 0;
        for (int i = 0; i < count; i++) {
            o[i] = f(outs[i]).data;
            // a weight uploaded by upload(HostTensor) is a CpuWeight already; any other matrix is wrapped for this call
            wt[i] = ws[i] instanceof CpuWeight cw ? cw : new CpuWeight(f(ws[i]).data, ws[i].rows(), ws[i].cols());
            if (x.cols() != wt[i].cols() || outs[i].cols() != wt[i].rows()) {
                throw new IllegalArgumentException("matmul shapes: x is [" + n + ", " + x.cols() + "], w is [" + wt[i].rows() + ", "
                        + wt[i].cols() + "], out is [" + n + ", " + outs[i].cols() + "]");
            }
            work += (long) n * wt[i].rows() * wt[i].cols();
        }
        if (work <= coldWork) {
            coldWork -= work;
            for (int i = 0; i < count; i++) {
                float[] rowMajor = wt[i].rowMajor();
                if (rowMajor != null) {
                    Scalar.matmul(o[i], xs, rowMajor, n, wt[i].cols(), wt[i].rows());
                } else {
                    Matmul.block(o[i], xs, wt[i], 0, n, 0, (wt[i].rows() + Matmul.L - 1) / Matmul.L);
                }
            }
            return;
        }
        coldWork = 0; // a product too big for the scalar forms ends the cold start
        for (int i = 0; i < count; i++) {
            wt[i].panels(Matmul.L); // packed once, before the threads share the work
            firstUnit[i + 1] = firstUnit[i] + Matmul.units(n, wt[i]);
        }
        forRange(firstUnit[count], work, u -> {
            int i = 0;
            while (u >= firstUnit[i + 1]) {
                i++;
            }
            Matmul.unit(o[i], xs, wt[i], n, u - firstUnit[i]);
        });
    }

    /** Whether the vector forms run: past the cold start (see the class comment). */
    private boolean vectors() {
        return coldWork <= 0;
    }

    @Override
    public void rope(Tensor x, int heads, int headSize, Tensor positions, Tensor invFreq, int n) {
        float[] xs = f(x).data;
        int[] pos = i(positions).data;
        float[] inv = f(invFreq).data;
        int width = f(x).cols();
        rows(n, 16L * width, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
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
        });
    }

    @Override
    public void swiglu(Tensor out, Tensor gate, Tensor up, int n) {
        float[] o = f(out).data;
        float[] g = f(gate).data;
        float[] u = f(up).data;
        int cols = f(gate).cols();
        boolean vectors = vectors();
        if (vectors) {
            rows(n, 16L * cols, (r0, r1) -> Exp.swiglu(o, g, u, r0 * cols, r1 * cols));
        } else {
            Exp.swigluScalar(o, g, u, 0, n * cols);
        }
    }

    @Override
    public void add(Tensor x, Tensor y, int n) {
        float[] a = f(x).data;
        float[] b = f(y).data;
        int cols = f(x).cols();
        rows(n, cols, (r0, r1) -> {
            for (int j = r0 * cols; j < r1 * cols; j++) {
                a[j] += b[j];
            }
        });
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
        long work = 0;
        for (int s = 0; s < b.sequences(); s++) {
            work += (long) b.qLen()[s] * b.kvLen()[s] * nHeads * headSize;
        }
        float scale = (float) (1.0 / Math.sqrt(headSize));
        boolean vectors = vectors();
        // element offset of each cached token of each sequence, computed once per call
        int[][] keyBase = new int[b.sequences()][];
        for (int s = 0; s < b.sequences(); s++) {
            int[] table = b.blockTables()[s];
            keyBase[s] = new int[b.kvLen()[s]];
            for (int t = 0; t < keyBase[s].length; t++) {
                keyBase[s][t] = (table[t / bs] * bs + t % bs) * kvDim;
            }
        }
        // work units: up to ROW_BLOCK consecutive rows of one sequence, for one head
        List<int[]> units = new ArrayList<>();
        for (int s = 0; s < b.sequences(); s++) {
            for (int j = 0; j < b.qLen()[s]; j += Attention.ROW_BLOCK) {
                for (int h = 0; h < nHeads; h++) {
                    units.add(new int[] {s, j, Math.min(Attention.ROW_BLOCK, b.qLen()[s] - j), h});
                }
            }
        }
        forRange(units.size(), work, u -> {
            int[] unit = units.get(u);
            int s = unit[0];
            int m = unit[2];
            int h = unit[3];
            int[] qo = new int[m];
            int[] vis = new int[m];
            for (int i = 0; i < m; i++) {
                int row = b.qStart()[s] + unit[1] + i;
                qo[i] = row * nHeads * headSize + h * headSize;
                vis[i] = b.kvLen()[s] - b.qLen()[s] + unit[1] + i + 1;
            }
            int lseAt = (b.qStart()[s] + unit[1]) * nHeads + h;
            if (b.kvLen()[s] == 0) { // a decode row whose request keeps no KV on this shard
                java.util.Arrays.fill(o, qo[0], qo[0] + headSize, 0f);
                l[lseAt] = Float.NEGATIVE_INFINITY;
                return;
            }
            Attention.attendBlock(vectors, qs, qo, vis, m, ks, vs, keyBase[s], (h / group) * headSize, headSize, scale, o, l, lseAt, nHeads);
        });
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
        boolean vectors = vectors();
        long work = (long) n * kv.maxLen() * nHeads * headSize;
        int[][] bases = new int[nKvHeads][];
        for (int g = 0; g < nKvHeads; g++) {
            bases[g] = Attention.rowOffsets(g * kv.maxLen(), kv.lens()[g], headSize);
        }
        int blocks = (n + Attention.ROW_BLOCK - 1) / Attention.ROW_BLOCK;
        forRange(blocks * nHeads, work, unit -> {
            int r0 = (unit / nHeads) * Attention.ROW_BLOCK;
            int h = unit % nHeads;
            int g = h / group;
            int len = kv.lens()[g];
            int m = Math.min(Attention.ROW_BLOCK, n - r0);
            int[] qo = new int[m];
            int[] vis = new int[m];
            for (int i = 0; i < m; i++) {
                qo[i] = (r0 + i) * nHeads * headSize + h * headSize;
                vis[i] = len;
            }
            if (len == 0) {
                for (int i = 0; i < m; i++) {
                    java.util.Arrays.fill(o, qo[i], qo[i] + headSize, 0f);
                    l[(r0 + i) * nHeads + h] = Float.NEGATIVE_INFINITY;
                }
                return;
            }
            Attention.attendBlock(vectors, qs, qo, vis, m, ks, vs, bases[g], 0, headSize, scale, o, l, r0 * nHeads + h, nHeads);
        });
    }

    @Override
    public void mergeAttention(Tensor out, Tensor lse, Tensor out2, Tensor lse2, int n, int nHeads, int headSize) {
        Attention.merge(f(out).data, f(lse).data, f(out2).data, f(lse2).data, n, nHeads, headSize);
    }

    @Override
    public void sync() {
        // every call completes before it returns
    }

    @Override
    public void close() {
        synchronized (this) {
            if (team != null) {
                team.close();
            }
        }
    }

    // ---- helpers ----

    /** A range of rows [r0, r1). */
    @FunctionalInterface
    private interface RowRange {
        void run(int r0, int r1);
    }

    /** body over rows [0, n) in blocks, shared out over the team when n * rowWork is large enough. */
    private void rows(int n, long rowWork, RowRange body) {
        int block = Math.max(1, (n + 4 * threads - 1) / (4 * threads));
        forRange((n + block - 1) / block, n * rowWork, u -> body.run(u * block, Math.min(n, u * block + block)));
    }

    private synchronized Team team() {
        if (team == null) {
            team = new Team(threads, "sps2-cpu");
        }
        return team;
    }

    /** Runs body(0..units-1), shared out over the team when the total work is large enough to pay for it. */
    private void forRange(int units, long work, IntConsumer body) {
        if (threads == 1 || work < PARALLEL_THRESHOLD || units == 1) {
            for (int u = 0; u < units; u++) {
                body.accept(u);
            }
            return;
        }
        team().run(units, body);
    }

    private static CpuTensor f(Tensor t) {
        if (t instanceof CpuTensor c) {
            return c;
        }
        if (t instanceof CpuWeight) {
            throw new IllegalArgumentException("The CPU backend keeps weight matrices packed for matmul; " + t + " can only be multiplied with or looked up in");
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
