package sps2.model.sampler;

import java.util.Objects;

/**
 * Picks a token from logits. One instance per thread: it keeps scratch arrays of vocabulary size and
 * allocates nothing else per call.
 *
 * <p>The algorithm, for logits l[0 .. V) and parameters (T, k, p, minP, seed) at a position:
 * <ol>
 * <li>Logits must be free of NaN and +inf, with at least one finite value. If T = 0, return the argmax
 *     (the lowest index among equal maxima).</li>
 * <li>Weights w_i = exp((l_i - max l) * (1/T)), in float, with {@link #expNonPositive} (same bits on
 *     every JVM), so the most probable token has weight 1 and w_i / sum(w) is softmax(l / T). (If 1/T
 *     overflows a float, the argmax is returned.) Tokens are ranked by the key (w_i, -i): larger weight
 *     first, then lower index, so the ranking is a strict total order.</li>
 * <li>Each filter keeps a top segment of that ranking and works on what the previous one kept:
 *     top-k (k &gt; 0): the k best-ranked tokens among those with w_i &gt; 0;
 *     min-p (minP &gt; 0): tokens with w_i &ge; minP (that is, p_i &ge; minP * p_max);
 *     top-p (p &lt; 1): the shortest top segment of the kept tokens whose weight sum reaches p times the
 *     kept tokens' weight sum. The best-ranked token always survives.</li>
 * <li>The draw: u = {@link #uniform(long, int)}(seed, position) in [0, 1), which depends on nothing
 *     else; S = the sum of the kept weights in index order; return the first kept token, in index
 *     order, at which the running sum of kept weights exceeds u * S (sums in double).</li>
 * </ol>
 * Replaying a position with the same logits and parameters gives the same token whatever was sampled
 * before; a filter that removes nothing gives the same token as no filter.
 */
public final class Sampler {
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private float[] weights;
    private long[] keys;

    /** A sampler with scratch space for {@code vocabCapacity} tokens (it grows once if a larger vocabulary comes). */
    public Sampler(int vocabCapacity) {
        weights = new float[vocabCapacity];
        keys = new long[vocabCapacity];
    }

    /** The token id (in [0, vocab)) chosen from {@code logits[offset .. offset+vocab)} for the given position. */
    public int sample(float[] logits, int offset, int vocab, SamplingParams p, int position) {
        Objects.requireNonNull(p, "sampling params");
        if (vocab <= 0) {
            throw new IllegalArgumentException("The vocabulary size must be positive, got " + vocab);
        }
        Objects.checkFromIndexSize(offset, vocab, logits.length);
        if (position < 0) {
            throw new IllegalArgumentException("The position must be at least 0, got " + position);
        }
        int best = 0;
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            float l = logits[offset + i];
            if (Float.isNaN(l) || l == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("The logit of token " + i + " at position " + position + " is " + l + ", not a number to sample from");
            }
            if (l > max) {
                max = l;
                best = i;
            }
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw new IllegalArgumentException("All " + vocab + " logits at position " + position + " are -infinity, so no token can be sampled");
        }
        if (p.isGreedy()) {
            return best;
        }
        if (weights.length < vocab) {
            weights = new float[vocab];
            keys = new long[vocab];
        }
        float[] w = weights;
        float invT = 1f / p.temperature();
        if (Float.isInfinite(invT)) {
            return best;
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            float wi = expNonPositive((logits[offset + i] - max) * invT);
            w[i] = wi;
            sum += wi;
        }

        long cutoff = Long.MIN_VALUE; // tokens with key >= cutoff are kept
        if (p.topK() > 0 && p.topK() < vocab) {
            cutoff = kthLargestKey(w, vocab, p.topK(), keys);
        }
        if (p.minP() > 0) {
            cutoff = Math.max(cutoff, (long) Float.floatToRawIntBits(p.minP()) << 32);
        }
        if (p.topP() < 1) {
            int n = 0;
            double mass = 0;
            for (int i = 0; i < vocab; i++) {
                if (w[i] > 0 && key(w[i], i) >= cutoff) {
                    n++;
                    mass += w[i];
                }
            }
            if (n > 1) {
                // Kept tokens below this weight hold less than (1 - topP) of the mass together when at least
                // one token is above it, so the nucleus lies among the others (llama2.c's shortcut): it
                // spares selecting over the whole vocabulary.
                double floor = (1 - p.topP()) * mass / (n - 1);
                int m = collect(w, vocab, cutoff, floor);
                if (m == 0) {
                    m = collect(w, vocab, cutoff, Double.MIN_VALUE);
                }
                cutoff = Math.max(cutoff, selectCutoff(keys, m, p.topP() * mass));
            }
        }

        double u = uniform(p.seed(), position);
        boolean all = cutoff == Long.MIN_VALUE;
        double total = sum;
        if (!all) {
            total = 0;
            for (int i = 0; i < vocab; i++) {
                if (key(w[i], i) >= cutoff) {
                    total += w[i];
                }
            }
        }
        double r = u * total;
        double acc = 0;
        int last = best;
        for (int i = 0; i < vocab; i++) {
            if (w[i] > 0 && (all || key(w[i], i) >= cutoff)) {
                acc += w[i];
                last = i;
                if (acc > r) {
                    return i;
                }
            }
        }
        return last; // only reachable through rounding when u * S is within an ulp of S
    }

    /** Puts the keys of kept tokens (key &ge; cutoff) of weight &ge; floor into keys[0 ..) and returns their count. */
    private int collect(float[] w, int vocab, long cutoff, double floor) {
        int n = 0;
        for (int i = 0; i < vocab; i++) {
            if (w[i] >= floor && key(w[i], i) >= cutoff) {
                keys[n++] = key(w[i], i);
            }
        }
        return n;
    }

    /** The k-th largest key among tokens of positive weight (the smallest one when fewer): a min-heap of k keys in {@code keys}. */
    static long kthLargestKey(float[] w, int vocab, int k, long[] heap) {
        int size = 0;
        for (int i = 0; i < vocab; i++) {
            if (!(w[i] > 0)) {
                continue;
            }
            long key = key(w[i], i);
            if (size < k) {
                // sift up
                int c = size++;
                while (c > 0 && heap[(c - 1) >>> 1] > key) {
                    heap[c] = heap[(c - 1) >>> 1];
                    c = (c - 1) >>> 1;
                }
                heap[c] = key;
            } else if (key > heap[0]) {
                // replace the root, sift down
                int c = 0;
                while (true) {
                    int child = 2 * c + 1;
                    if (child >= size) {
                        break;
                    }
                    if (child + 1 < size && heap[child + 1] < heap[child]) {
                        child++;
                    }
                    if (heap[child] >= key) {
                        break;
                    }
                    heap[c] = heap[child];
                    c = child;
                }
                heap[c] = key;
            }
        }
        return size < k ? Long.MIN_VALUE : heap[0];
    }

    /**
     * e^x for x &le; 0 (or -infinity) in plain float arithmetic, so it gives the same bits on every JVM:
     * n = round(x log2(e)), y = x - n ln 2 (Cody-Waite, ln 2 split in two so n * LN2_HI is exact),
     * e^x = 2^n * P(y) with P the degree-7 Taylor polynomial of e^y, |y| &le; ln(2)/2 (relative error a
     * few float ulps). Results below 2^-124 are 0.
     */
    static float expNonPositive(float x) {
        if (x < -86f) {
            return 0f;
        }
        // Adding 1.5 * 2^23 rounds to the nearest integer (ties to even), which then sits in the low mantissa bits.
        int n = Float.floatToRawIntBits(x * 1.442695f + 12582912f) - 0x4b400000;
        float y = (x - n * LN2_HI) - n * LN2_LO;
        float p = 1f + y * (1f + y * (0.5f + y * (1f / 6 + y * (1f / 24 + y * (1f / 120 + y * (1f / 720 + y * (1f / 5040)))))));
        return Float.intBitsToFloat((n + 127) << 23) * p;
    }

    private static final float LN2_HI = 0.693145751953125f; // 0x3f317200: 16 significant bits
    private static final float LN2_LO = 1.4286068203e-6f;  // ln 2 - LN2_HI

    /** The uniform draw in [0, 1) for (seed, position): 53 bits of SplitMix64(SplitMix64(seed) + golden * (position + 1)). */
    public static double uniform(long seed, int position) {
        long z = mix64(mix64(seed) + GOLDEN * (position + 1L));
        return (z >>> 11) * 0x1p-53;
    }

    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Rank key: weight bits (non-negative floats order like their bits) above the complemented index. */
    private static long key(float w, int i) {
        return ((long) Float.floatToRawIntBits(w) << 32) | (0x7fffffffL - i);
    }

    private static float weight(long key) {
        return Float.intBitsToFloat((int) (key >>> 32));
    }

    /**
     * The largest key c such that the keys &ge; c among a[0 .. n) weigh at least {@code target} (a key
     * weighs its float weight); the smallest key when none does. A quickselect that reorders {@code a}:
     * expected O(n), no allocation.
     */
    static long selectCutoff(long[] a, int n, double target) {
        int lo = 0;
        int hi = n;
        double above = 0; // weight of keys known to be larger than all of a[lo .. hi)
        while (true) {
            int mid = (lo + hi) >>> 1;
            long x = a[lo];
            long y = a[mid];
            long z = a[hi - 1];
            long pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
            int pi = pivot == x ? lo : pivot == y ? mid : hi - 1;
            swap(a, pi, hi - 1);
            int store = lo;
            double greater = 0;
            for (int j = lo; j < hi - 1; j++) {
                if (a[j] > pivot) {
                    greater += weight(a[j]);
                    swap(a, store++, j);
                }
            }
            swap(a, store, hi - 1); // a[lo .. store) > pivot = a[store] > a[store+1 .. hi)
            if (above + greater >= target) {
                hi = store;
                continue;
            }
            above += greater + weight(pivot);
            if (above >= target || store + 1 == hi) {
                return pivot;
            }
            lo = store + 1;
        }
    }

    private static void swap(long[] a, int i, int j) {
        long t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
