package sps2.gpu.cpu;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

import jdk.incubator.vector.FloatVector;
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
 * tier. (Attention's sums over keys are blocked by the machine's vector width, {@link #LANES}; products are not.)
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
            for (int j = 0; j < b.qLen()[s]; j += ROW_BLOCK) {
                for (int h = 0; h < nHeads; h++) {
                    units.add(new int[] {s, j, Math.min(ROW_BLOCK, b.qLen()[s] - j), h});
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
            attendBlock(vectors, qs, qo, vis, m, ks, vs, keyBase[s], (h / group) * headSize, headSize, scale, o, l, lseAt, nHeads);
        });
    }

    /** Query rows attended together: each block of keys is transposed once for all of them. */
    private static final int ROW_BLOCK = 16;
    /** Keys per block. */
    private static final int KEY_BLOCK = 64;

    /**
     * Softmax attention of {@code m} query rows (offsets {@code qo}) of one head; row i sees keys
     * {@code 0..vis[i]-1}, whose rows start at {@code base[t] + headOffset}. Writes each row's output at its
     * query offset in {@code o} and its log-sum-exp at {@code l[lseAt + i * lseStride]}. Every sum has one fixed
     * order that depends only on the row, so a row gives the same bits alone (decode) or in a block (prefill),
     * with or without {@code vectors}:
     *
     * <pre>
     *   s[t] = (q . k_t) * scale       t < vis, an fma chain over the dimensions (keys transposed a block at a time,
     *                                  a vector is LANES keys)
     *   p[t] = e^(s[t] - max s)        (Exp)
     *   sum  = keySum(p)               LANES partial sums over the keys t = j mod LANES below the last full vector,
     *                                  added in lane order, then the remaining keys in order
     *   out  = (sum_t p[t] v_t) / sum  heads of LANES dimensions or more: one fma chain over the keys per dimension
     *                                  (a vector is LANES dimensions); smaller heads: keySum's order per dimension
     *                                  (V transposed like K, a vector is LANES keys)
     *   lse  = max s + ln sum
     * </pre>
     */
    private static void attendBlock(boolean vectors, float[] q, int[] qo, int[] vis, int m, float[] k, float[] v, int[] base, int headOffset,
            int hs, float scale, float[] o, float[] l, int lseAt, int lseStride) {
        int maxVis = 0;
        for (int i = 0; i < m; i++) {
            maxVis = Math.max(maxVis, vis[i]);
        }
        boolean smallHead = hs < LANES;
        int scoresAt = 0;
        int tAt = m * maxVis;                       // transposed K or V block [hs][KEY_BLOCK]
        int accAt = tAt + hs * KEY_BLOCK;           // small heads: lane sums [m][hs][LANES]; else one row's [hs]
        int statAt = accAt + (smallHead ? m * hs * LANES : hs);  // 1 / sum [m]
        float[] w = scratch(statAt + m);
        for (int kb = 0; kb < maxVis; kb += KEY_BLOCK) {
            int cnt = Math.min(KEY_BLOCK, maxVis - kb);
            transpose(k, base, kb, cnt, headOffset, hs, w, tAt);
            for (int i = 0; i < m; i++) {
                int n = Math.min(cnt, vis[i] - kb);
                int row = scoresAt + i * maxVis + kb;
                int j = vectors ? scoreVectors(w, tAt, q, qo[i], hs, scale, row, n) : 0;
                for (; j < n; j++) {
                    float acc = 0f;
                    for (int d = 0; d < hs; d++) {
                        acc = Math.fma(w[tAt + d * KEY_BLOCK + j], q[qo[i] + d], acc);
                    }
                    w[row + j] = acc * scale;
                }
            }
        }
        for (int i = 0; i < m; i++) {
            int row = scoresAt + i * maxVis;
            int n = vis[i];
            float max = Float.NEGATIVE_INFINITY;
            for (int t = 0; t < n; t++) {
                max = Math.max(max, w[row + t]);
            }
            float sum;
            if (vectors) {
                Exp.expShifted(w, row, n, max);
                sum = keySumVectors(w, row, n, w, accAt);
            } else {
                Exp.expShiftedScalar(w, row, n, max);
                sum = keySumScalar(w, row, n, w, accAt);
            }
            w[statAt + i] = 1.0f / sum;
            l[lseAt + i * lseStride] = max + (float) Math.log(sum);
            if (!smallHead) {
                int d0 = vectors ? weighVectors(w, row, n, v, base, headOffset, hs, w[statAt + i], o, qo[i]) : 0;
                weighScalar(w, row, n, v, base, headOffset, d0, hs, w[statAt + i], o, qo[i], accAt);
            }
        }
        if (smallHead) {
            java.util.Arrays.fill(w, accAt, accAt + m * hs * LANES, 0f);
            for (int kb = 0; kb < maxVis; kb += KEY_BLOCK) {
                int cnt = Math.min(KEY_BLOCK, maxVis - kb);
                transpose(v, base, kb, cnt, headOffset, hs, w, tAt);
                if (vectors) {
                    weighSmallHeadVectors(w, scoresAt, maxVis, vis, m, hs, kb, cnt, tAt, accAt);
                } else {
                    weighSmallHeadScalar(w, scoresAt, maxVis, vis, m, hs, kb, cnt, tAt, accAt);
                }
            }
            finishSmallHead(w, scoresAt, maxVis, vis, m, v, base, headOffset, hs, accAt, statAt, o, qo);
        }
    }

    /** Lanes of the CPU's preferred float vector, from its shape: no FloatVector class is initialised for it. */
    static final int LANES = VectorShape.preferredShape().vectorBitSize() / Float.SIZE;

    /**
     * The sum of a[from .. from+n): LANES partial sums over the elements below the last full vector (lane j takes
     * t = j mod LANES, in order of t), added in lane order, then the remaining elements in order. {@code lanes} at
     * {@code at} is LANES floats of scratch.
     */
    static float keySumScalar(float[] a, int from, int n, float[] lanes, int at) {
        int full = n - n % LANES;
        java.util.Arrays.fill(lanes, at, at + LANES, 0f);
        for (int t = 0; t < full; t++) {
            lanes[at + t % LANES] += a[from + t];
        }
        return finishKeySum(a, from, full, n, lanes, at);
    }

    /** {@link #keySumScalar} in vectors. */
    static float keySumVectors(float[] a, int from, int n, float[] lanes, int at) {
        int full = n - n % LANES;
        FloatVector s = FloatVector.zero(Matmul.S);
        for (int t = 0; t < full; t += Matmul.L) {
            s = s.add(FloatVector.fromArray(Matmul.S, a, from + t));
        }
        s.intoArray(lanes, at);
        return finishKeySum(a, from, full, n, lanes, at);
    }

    private static float finishKeySum(float[] a, int from, int full, int n, float[] lanes, int at) {
        float sum = 0f;
        for (int j = 0; j < LANES; j++) {
            sum += lanes[at + j];
        }
        for (int t = full; t < n; t++) {
            sum += a[from + t];
        }
        return sum;
    }

    /**
     * out[d] = inv * sum_t p[t] v_t[d] for dimensions [0, loopBound(hs)) of a head of LANES dimensions or more: one
     * fma chain over the keys per dimension, LANES dimensions a vector; returns how many dimensions it did.
     */
    private static int weighVectors(float[] w, int row, int n, float[] v, int[] base, int headOffset, int hs, float inv, float[] o, int at) {
        int d = 0;
        for (int bound = Matmul.S.loopBound(hs); d < bound; d += Matmul.L) {
            FloatVector acc = FloatVector.zero(Matmul.S);
            for (int t = 0; t < n; t++) {
                acc = FloatVector.fromArray(Matmul.S, v, base[t] + headOffset + d).fma(FloatVector.broadcast(Matmul.S, w[row + t]), acc);
            }
            acc.mul(inv).intoArray(o, at + d);
        }
        return d;
    }

    /** The same for dimensions [d0, hs), key by key: independent chains, one per dimension. */
    private static void weighScalar(float[] w, int row, int n, float[] v, int[] base, int headOffset, int d0, int hs, float inv, float[] o,
            int at, int accAt) {
        java.util.Arrays.fill(w, accAt, accAt + hs, 0f);
        for (int t = 0; t < n; t++) {
            float p = w[row + t];
            int vt = base[t] + headOffset;
            for (int d = d0; d < hs; d++) {
                w[accAt + d] = Math.fma(p, v[vt + d], w[accAt + d]);
            }
        }
        for (int d = d0; d < hs; d++) {
            o[at + d] = w[accAt + d] * inv;
        }
    }

    /**
     * Heads smaller than a vector, one block of keys (V transposed at tAt like K): each row's lane sums
     * [m][hs][LANES] at accAt take its keys below its last full vector, lane j the keys t = j mod LANES, by fma.
     */
    private static void weighSmallHeadScalar(float[] w, int scoresAt, int maxVis, int[] vis, int m, int hs, int kb, int cnt, int tAt, int accAt) {
        for (int i = 0; i < m; i++) {
            int full = Math.min(cnt, vis[i] - vis[i] % LANES - kb);
            int row = scoresAt + i * maxVis + kb;
            for (int d = 0; d < hs; d++) {
                int lanes = accAt + (i * hs + d) * LANES;
                for (int j = 0; j < full; j++) {
                    w[lanes + j % LANES] = Math.fma(w[tAt + d * KEY_BLOCK + j], w[row + j], w[lanes + j % LANES]);
                }
            }
        }
    }

    /** {@link #weighSmallHeadScalar} in vectors, a vector of LANES keys of one dimension at a time. */
    private static void weighSmallHeadVectors(float[] w, int scoresAt, int maxVis, int[] vis, int m, int hs, int kb, int cnt, int tAt, int accAt) {
        for (int i = 0; i < m; i++) {
            int full = Math.min(cnt, vis[i] - vis[i] % LANES - kb);
            int row = scoresAt + i * maxVis + kb;
            for (int d = 0; d < hs; d++) {
                int lanes = accAt + (i * hs + d) * LANES;
                FloatVector acc = FloatVector.fromArray(Matmul.S, w, lanes);
                for (int j = 0; j < full; j += Matmul.L) {
                    acc = FloatVector.fromArray(Matmul.S, w, tAt + d * KEY_BLOCK + j).fma(FloatVector.fromArray(Matmul.S, w, row + j), acc);
                }
                acc.intoArray(w, lanes);
            }
        }
    }

    /** out[d] = inv * (lane sums in lane order, then the keys past the last full vector by fma), for small heads. */
    private static void finishSmallHead(float[] w, int scoresAt, int maxVis, int[] vis, int m, float[] v, int[] base, int headOffset, int hs,
            int accAt, int statAt, float[] o, int[] qo) {
        for (int i = 0; i < m; i++) {
            int row = scoresAt + i * maxVis;
            int full = vis[i] - vis[i] % LANES;
            for (int d = 0; d < hs; d++) {
                int lanes = accAt + (i * hs + d) * LANES;
                float sum = 0f;
                for (int j = 0; j < LANES; j++) {
                    sum += w[lanes + j];
                }
                for (int t = full; t < vis[i]; t++) {
                    sum = Math.fma(w[row + t], v[base[t] + headOffset + d], sum);
                }
                o[qo[i] + d] = sum * w[statAt + i];
            }
        }
    }

    /** The scores of keys [0, loopBound(n)) of a transposed block, LANES keys a vector; returns how many. */
    private static int scoreVectors(float[] w, int tAt, float[] q, int qo, int hs, float scale, int row, int n) {
        int j = 0;
        for (int bound = Matmul.S.loopBound(n); j < bound; j += Matmul.L) {
            FloatVector acc = FloatVector.zero(Matmul.S);
            for (int d = 0; d < hs; d++) {
                acc = FloatVector.fromArray(Matmul.S, w, tAt + d * KEY_BLOCK + j).fma(FloatVector.broadcast(Matmul.S, q[qo + d]), acc);
            }
            acc.mul(scale).intoArray(w, row + j);
        }
        return j;
    }

    /** dst[d * KEY_BLOCK + j] = src[base[kb + j] + headOffset + d] for j < cnt, d < hs. */
    private static void transpose(float[] src, int[] base, int kb, int cnt, int headOffset, int hs, float[] dst, int at) {
        for (int j = 0; j < cnt; j++) {
            int from = base[kb + j] + headOffset;
            for (int d = 0; d < hs; d++) {
                dst[at + d * KEY_BLOCK + j] = src[from + d];
            }
        }
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
            bases[g] = rowOffsets(g * kv.maxLen(), kv.lens()[g], headSize);
        }
        int blocks = (n + ROW_BLOCK - 1) / ROW_BLOCK;
        forRange(blocks * nHeads, work, unit -> {
            int r0 = (unit / nHeads) * ROW_BLOCK;
            int h = unit % nHeads;
            int g = h / group;
            int len = kv.lens()[g];
            int m = Math.min(ROW_BLOCK, n - r0);
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
            attendBlock(vectors, qs, qo, vis, m, ks, vs, bases[g], 0, headSize, scale, o, l, r0 * nHeads + h, nHeads);
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
        synchronized (this) {
            if (team != null) {
                team.close();
            }
        }
    }

    // ---- helpers ----

    private static final ThreadLocal<float[][]> SCRATCH = new ThreadLocal<>() {
        @Override
        protected float[][] initialValue() {
            return new float[][] {new float[1024]};
        }
    };

    private static float[] scratch(int n) {
        float[][] holder = SCRATCH.get();
        if (holder[0].length < n) {
            holder[0] = new float[Math.max(n, holder[0].length * 2)];
        }
        return holder[0];
    }

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
