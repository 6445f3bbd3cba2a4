package sps2.model.sampler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

class SamplerTest {

    static float[] randomLogits(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = (float) (3 * r.nextGaussian());
        }
        return l;
    }

    static double[] softmax(float[] logits, double t) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp((logits[i] - max) / t);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    static int[] histogram(float[] logits, SamplingParams p, int draws) {
        Sampler s = new Sampler(logits.length);
        int[] counts = new int[logits.length];
        for (int pos = 0; pos < draws; pos++) {
            counts[s.sample(logits, 0, logits.length, p, pos)]++;
        }
        return counts;
    }

    /** Pearson's chi-square of counts against expected probabilities (cells with p = 0 must be empty). */
    static double chiSquare(int[] counts, double[] p, int draws) {
        double chi = 0;
        for (int i = 0; i < counts.length; i++) {
            if (p[i] == 0) {
                assertEquals(0, counts[i], "token " + i + " has probability 0 but was drawn");
                continue;
            }
            double e = p[i] * draws;
            chi += (counts[i] - e) * (counts[i] - e) / e;
        }
        return chi;
    }

    @Test
    void greedyTakesTheArgmaxAndTheLowestIndexOnTies() {
        Sampler s = new Sampler(8);
        float[] logits = {0, 5, 1, 5, -3, 5};
        assertEquals(1, s.sample(logits, 0, 6, SamplingParams.greedy(), 0));
        assertEquals(1, s.sample(logits, 2, 4, SamplingParams.greedy(), 0), "a token id, counted from the offset");
        assertEquals(0, s.sample(new float[] {Float.NEGATIVE_INFINITY, -1, -2}, 1, 2, SamplingParams.greedy(), 0));
    }

    @Test
    void drawDependsOnlyOnSeedAndPosition() {
        float[] logits = randomLogits(1, 300);
        SamplingParams p = new SamplingParams(1.3f, 40, 0.9f, 0.01f, 1234);
        Sampler a = new Sampler(300);
        int[] inOrder = new int[200];
        for (int pos = 0; pos < inOrder.length; pos++) {
            inOrder[pos] = a.sample(logits, 0, 300, p, pos);
        }
        // Another sampler, shuffled positions, unrelated calls (other seeds, a larger vocabulary) in between.
        List<Integer> positions = new ArrayList<>();
        for (int pos = 0; pos < inOrder.length; pos++) {
            positions.add(pos);
        }
        Collections.shuffle(positions, new Random(9));
        Sampler b = new Sampler(10);
        float[] other = randomLogits(2, 1000);
        for (int pos : positions) {
            b.sample(other, 0, 1000, new SamplingParams(0.8f, 0, 1f, 0f, pos * 31L), pos + 7);
            assertEquals(inOrder[pos], b.sample(logits, 0, 300, p, pos), "position " + pos);
        }
        // And the draws do vary with the position and the seed.
        assertTrue(Arrays.stream(inOrder).distinct().count() > 5);
        int differ = 0;
        SamplingParams otherSeed = new SamplingParams(1.3f, 40, 0.9f, 0.01f, 1235);
        for (int pos = 0; pos < inOrder.length; pos++) {
            differ += a.sample(logits, 0, 300, otherSeed, pos) != inOrder[pos] ? 1 : 0;
        }
        assertTrue(differ > 50, "another seed changed only " + differ + " of 200 draws");
    }

    @Test
    void topKOfOneAndTinyTopPAreGreedy() {
        Sampler s = new Sampler(1000);
        for (int trial = 0; trial < 50; trial++) {
            float[] logits = randomLogits(100 + trial, 1000);
            int greedy = s.sample(logits, 0, 1000, SamplingParams.greedy(), trial);
            assertEquals(greedy, s.sample(logits, 0, 1000, new SamplingParams(2f, 1, 1f, 0f, trial), trial));
            assertEquals(greedy, s.sample(logits, 0, 1000, new SamplingParams(2f, 0, 1e-6f, 0f, trial), trial));
            assertEquals(greedy, s.sample(logits, 0, 1000, new SamplingParams(50f, 0, 1f, 0.999f, trial), trial));
        }
    }

    @Test
    void filtersThatRemoveNothingChangeNothing() {
        Sampler s = new Sampler(64);
        float[] logits = randomLogits(5, 64);
        for (int pos = 0; pos < 200; pos++) {
            int plain = s.sample(logits, 0, 64, SamplingParams.temperature(1f, 77), pos);
            assertEquals(plain, s.sample(logits, 0, 64, new SamplingParams(1f, 64, 1f, 0f, 77), pos));
            assertEquals(plain, s.sample(logits, 0, 64, new SamplingParams(1f, 0, 1f, 1e-30f, 77), pos));
        }
    }

    @Test
    void drawsFollowTheSoftmax() {
        float[] logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, -2.0f, 1.5f, 0.7f};
        int draws = 100_000;
        double chi = chiSquare(histogram(logits, SamplingParams.temperature(0.8f, 3), draws), softmax(logits, 0.8), draws);
        // 7 degrees of freedom: P(chi2 > 29) is about 1e-4.
        assertTrue(chi < 29, "chi-square " + chi);
    }

    @Test
    void truncationKeepsTheRightTokensAndRenormalises() {
        // Probabilities at T = 1: 0.5, 0.3, 0.15, 0.05 (in shuffled index order).
        float[] logits = {(float) Math.log(0.15), (float) Math.log(0.5), (float) Math.log(0.05), (float) Math.log(0.3)};
        int draws = 40_000;
        double[] top2 = {0, 0.5 / 0.8, 0, 0.3 / 0.8};
        for (SamplingParams p : List.of(
                new SamplingParams(1f, 2, 1f, 0f, 11),       // top-k 2
                new SamplingParams(1f, 0, 0.75f, 0f, 12),    // nucleus: 0.5 + 0.3 reaches 0.75
                new SamplingParams(1f, 0, 1f, 0.35f, 13))) { // min-p: p >= 0.175
            double chi = chiSquare(histogram(logits, p, draws), top2, draws);
            assertTrue(chi < 15, p + ": chi-square " + chi); // 1 degree of freedom
        }
        // Combined: top-k 3 keeps {0.5, 0.3, 0.15}; top-p 0.9 of that (0.95) needs all three.
        double[] top3 = {0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95};
        double chi = chiSquare(histogram(logits, new SamplingParams(1f, 3, 0.9f, 0f, 14), draws), top3, draws);
        assertTrue(chi < 20, "chi-square " + chi);
    }

    @Test
    void cutoffSelectionAgreesWithSorting() {
        SplittableRandom r = new SplittableRandom(8);
        for (int trial = 0; trial < 300; trial++) {
            int n = 1 + r.nextInt(200);
            long[] keys = new long[n];
            float[] w = new float[n];
            for (int i = 0; i < n; i++) {
                int kind = r.nextInt(8);
                w[i] = kind == 0 ? 0f : kind < 3 ? 0.25f : (float) r.nextDouble(); // zero and repeated weights too
                keys[i] = ((long) Float.floatToRawIntBits(w[i]) << 32) | (0x7fffffffL - i);
            }
            long[] sorted = keys.clone();
            Arrays.sort(sorted);
            // top-k: the k-th largest key among positive weights
            int k = 1 + r.nextInt(n);
            long[] positive = Arrays.stream(sorted).filter(key -> key >>> 32 != 0).toArray();
            long kth = k <= positive.length ? positive[positive.length - k] : Long.MIN_VALUE;
            assertEquals(kth, Sampler.kthLargestKey(w, n, k, new long[n]), "trial " + trial);
            // nucleus: the first key, in descending order, at which the running weight reaches the target
            double total = 0;
            for (float x : w) {
                total += x;
            }
            double target = r.nextDouble() * total;
            double acc = 0;
            long expected = sorted[0];
            for (int i = n - 1; i >= 0; i--) {
                acc += Float.intBitsToFloat((int) (sorted[i] >>> 32));
                if (acc >= target) {
                    expected = sorted[i];
                    break;
                }
            }
            assertEquals(expected, Sampler.selectCutoff(keys.clone(), n, target), "trial " + trial);
        }
    }

    @Test
    void fastExpIsAccurate() {
        assertEquals(1f, Sampler.expNonPositive(0f));
        assertEquals(0f, Sampler.expNonPositive(Float.NEGATIVE_INFINITY));
        for (float x = 0; x > -90; x -= 0.0137f) {
            double e = Math.exp(x);
            double tol = e < 1e-37 ? 1e-37 : 2.5e-7 * e;
            assertEquals(e, Sampler.expNonPositive(x), tol, "exp(" + x + ")");
        }
    }

    @Test
    void uniformIsInRangeAndSpread() {
        double sum = 0;
        for (int pos = 0; pos < 10_000; pos++) {
            double u = Sampler.uniform(42, pos);
            assertTrue(u >= 0 && u < 1);
            sum += u;
        }
        assertEquals(0.5, sum / 10_000, 0.02);
    }

    @Test
    void invalidParamsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(-0.1f, 0, 1f, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(Float.NaN, 0, 1f, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(Float.POSITIVE_INFINITY, 0, 1f, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, -1, 1f, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 0f, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 1.01f, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, Float.NaN, 0f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 1f, 1f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 1f, -0.01f, 0));
        assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 1f, Float.NaN, 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 2f, 0f, 0));
        assertTrue(e.getMessage().contains("top-p") && e.getMessage().contains("2.0"), e.getMessage());
        new SamplingParams(0f, 0, 1f, 0f, 0); // the boundaries themselves are fine
        new SamplingParams(1f, 5, 0.5f, 0.5f, -1);
    }

    @Test
    void unusableLogitsAreRejected() {
        Sampler s = new Sampler(4);
        SamplingParams p = SamplingParams.temperature(1f, 0);
        assertThrows(IllegalArgumentException.class, () -> s.sample(new float[] {0, Float.NaN}, 0, 2, p, 0));
        assertThrows(IllegalArgumentException.class, () -> s.sample(new float[] {0, Float.POSITIVE_INFINITY}, 0, 2, p, 0));
        assertThrows(IllegalArgumentException.class, () -> s.sample(new float[] {Float.NEGATIVE_INFINITY}, 0, 1, p, 0));
        assertThrows(IndexOutOfBoundsException.class, () -> s.sample(new float[] {1, 2}, 1, 2, p, 0));
        assertThrows(IllegalArgumentException.class, () -> s.sample(new float[] {1, 2}, 0, 2, p, -1));
    }
}
