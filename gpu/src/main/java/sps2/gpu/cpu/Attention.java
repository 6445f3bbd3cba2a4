package sps2.gpu.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;

/**
 * The CPU backend's attention arithmetic: softmax attention of a block of query rows of one head over keys that the
 * caller lays out (the pages of a KV pool, or a compact K/V), and the log-sum-exp merge of two partial results.
 * Every sum has one order that depends only on its row ({@link #attendBlock}), so a prefill and single-token steps
 * give the same bits, with or without vectors.
 */
final class Attention {
    private Attention() {
    }

    /** Query rows attended together: each block of keys is transposed once for all of them. */
    static final int ROW_BLOCK = 16;
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
    static void attendBlock(boolean vectors, float[] q, int[] qo, int[] vis, int m, float[] k, float[] v, int[] base, int headOffset,
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

    /** The element offset of each of rows [firstRow, firstRow + n) of a matrix {@code width} wide. */
    static int[] rowOffsets(int firstRow, int n, int width) {
        int[] base = new int[n];
        for (int t = 0; t < n; t++) {
            base[t] = (firstRow + t) * width;
        }
        return base;
    }

    /**
     * Folds a second partial attention result (out2, lse2) into the first (out, lse), row by row and head by head,
     * by their log-sum-exps; an empty side (log-sum-exp minus infinity) leaves the other as it is.
     */
    static void merge(float[] o, float[] l, float[] o2, float[] l2, int n, int nHeads, int headSize) {
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
}
