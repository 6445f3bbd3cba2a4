package sps2.bench.trace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;

class WorkloadTest {
    private static final int VOCAB = 512;

    private static Workload.Options options(double timeScale, double lengthScale, int maxInput, int context) {
        return new Workload.Options(timeScale, lengthScale, maxInput, context, VOCAB, 7);
    }

    private static TraceEntry entry(long ts, int input, int output, int... hashes) {
        return new TraceEntry(ts, input, output, hashes);
    }

    @Test
    void lengthsAndArrivalsAreScaled() {
        Workload w = Workload.build(List.of(entry(1000, 1000, 100, 0, 1), entry(3000, 4000, 3, 0, 2, 3, 4, 5, 6, 7, 8),
                entry(6000, 10, 0)), options(0.5, 0.1, 0, 4096));
        List<BenchRequest> r = w.requests();
        assertEquals(List.of(0.0, 1000.0, 2500.0), r.stream().map(BenchRequest::arrivalMs).toList());
        assertEquals(100, r.get(0).promptLength());
        assertEquals(10, r.get(0).maxTokens());
        assertEquals(400, r.get(1).promptLength());
        assertEquals(1, r.get(1).maxTokens(), "0.3 tokens round to at least 1");
        assertEquals(1, r.get(2).promptLength(), "1 token rounds to at least 1");
        assertEquals(1, r.get(2).maxTokens(), "an output of 0 still asks for 1 token");
        assertEquals(51.2, w.blockTokens(), 1e-9);
        assertEquals(0, w.clipped());
        assertEquals(501, w.promptTokens());
        assertEquals(12, w.outputTokens());
        assertEquals(2500.0, w.spanMs());
    }

    @Test
    void equalHashIdsGiveEqualPrefixesAndDifferentOnesDiffer() {
        // 3 blocks of 10.24 tokens at scale 0.02: positions [0,10) [10,20) [20,31).
        TraceEntry a = entry(0, 1536, 100, 0, 1, 2);
        TraceEntry b = entry(0, 1536, 100, 0, 1, 5);
        TraceEntry c = entry(0, 1536, 100, 9, 1, 2);
        Workload w = Workload.build(List.of(a, b, c), options(1, 0.02, 0, 2048));
        int[] ta = w.requests().get(0).promptTokens();
        int[] tb = w.requests().get(1).promptTokens();
        int[] tc = w.requests().get(2).promptTokens();
        assertEquals(31, ta.length);
        assertArrayEquals(Arrays.copyOfRange(ta, 0, 20), Arrays.copyOfRange(tb, 0, 20), "blocks 0 and 1 are shared");
        assertFalse(Arrays.equals(Arrays.copyOfRange(ta, 20, 31), Arrays.copyOfRange(tb, 20, 31)), "block 2 differs");
        assertFalse(Arrays.equals(Arrays.copyOfRange(ta, 0, 10), Arrays.copyOfRange(tc, 0, 10)), "block 0 differs");
        // b shares blocks 0 and 1 with a; c's blocks 1 and 2 have ids a used at the same index.
        assertEquals(20 + 21, w.sharedPrefixTokens());
    }

    @Test
    void aShorterPromptWithTheSameLastHashGetsAPrefixOfTheBlock() {
        Workload w = Workload.build(List.of(entry(0, 1536, 1, 4, 8), entry(0, 700, 1, 4, 8)), options(1, 0.02, 0, 2048));
        int[] longer = w.requests().get(0).promptTokens();
        int[] shorter = w.requests().get(1).promptTokens();
        assertEquals(14, shorter.length, "block 1 of the shorter prompt is cut after 4 of its 10 tokens");
        assertArrayEquals(Arrays.copyOf(longer, 14), shorter);
    }

    @Test
    void positionsPastTheHashIdsAreUniquePerRequest() {
        Workload w = Workload.build(List.of(entry(0, 2048, 1, 3), entry(0, 2048, 1, 3)), options(1, 0.02, 0, 2048));
        int[] x = w.requests().get(0).promptTokens();
        int[] y = w.requests().get(1).promptTokens();
        assertArrayEquals(Arrays.copyOf(x, 10), Arrays.copyOf(y, 10));
        assertFalse(Arrays.equals(Arrays.copyOfRange(x, 10, x.length), Arrays.copyOfRange(y, 10, y.length)));
    }

    @Test
    void tokensAvoidSpecialIdsAndDependOnlyOnTheSeed() {
        List<TraceEntry> trace = List.of(entry(0, 20000, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
                25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39));
        int[] t = Workload.build(trace, options(1, 0.5, 0, 1 << 20)).requests().get(0).promptTokens();
        assertEquals(10000, t.length);
        assertTrue(Arrays.stream(t).allMatch(id -> id >= Workload.FIRST_TOKEN_ID && id < VOCAB));
        assertTrue(Arrays.stream(t).distinct().count() > 400, "ids are spread over the vocabulary");
        assertArrayEquals(t, Workload.build(trace, options(1, 0.5, 0, 1 << 20)).requests().get(0).promptTokens());
        int[] other = Workload.build(trace, new Workload.Options(1, 0.5, 0, 1 << 20, VOCAB, 8)).requests().get(0).promptTokens();
        assertFalse(Arrays.equals(t, other));
    }

    @Test
    void promptsAreClippedToFitTheContextAndTheInputLimit() {
        List<TraceEntry> trace = List.of(entry(0, 5000, 500, 0), entry(0, 1000, 100, 1), entry(0, 100, 100000, 2));
        Workload w = Workload.build(trace, options(1, 0.02, 0, 100));
        assertEquals(90, w.requests().get(0).promptLength(), "100 tokens + 10 output cut to the context of 100");
        assertEquals(10, w.requests().get(0).maxTokens());
        assertTrue(w.requests().get(0).clipped());
        assertEquals(20, w.requests().get(1).promptLength());
        assertFalse(w.requests().get(1).clipped());
        assertEquals(99, w.requests().get(2).maxTokens(), "2000 output tokens cut to context - 1");
        assertEquals(1, w.requests().get(2).promptLength());
        assertEquals(2, w.clipped());

        Workload limited = Workload.build(trace, options(1, 0.02, 15, 100));
        assertEquals(15, limited.requests().get(0).promptLength());
        assertEquals(15, limited.requests().get(1).promptLength());
        assertEquals(3, limited.clipped());
    }

    @Test
    void warmUpRequestsFitTheContext() {
        BenchRequest r = Workload.warmup("w", 5000, 8, options(1, 1, 0, 100));
        assertEquals(92, r.promptLength());
        assertEquals(8, r.maxTokens());
        assertTrue(Arrays.stream(r.promptTokens()).allMatch(id -> id >= Workload.FIRST_TOKEN_ID && id < VOCAB));
    }

    @Test
    void badOptionsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> options(1, 0, 0, 100));
        assertThrows(IllegalArgumentException.class, () -> options(-1, 1, 0, 100));
        assertThrows(IllegalArgumentException.class, () -> options(1, Double.NaN, 0, 100));
        assertThrows(IllegalArgumentException.class, () -> options(1, 1, -1, 100));
        assertThrows(IllegalArgumentException.class, () -> new Workload.Options(1, 1, 0, 100, 3, 1));
    }
}
