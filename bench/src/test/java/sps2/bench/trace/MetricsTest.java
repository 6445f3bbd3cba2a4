package sps2.bench.trace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

/** The metric definitions on hand-built arrival timelines with answers worked out by hand. */
class MetricsTest {
    private static final RequestOutcome.Slo SLO = new RequestOutcome.Slo(500, 50);

    static BenchRequest request(String id, int prompt, int maxTokens) {
        return new BenchRequest(id, 0, 0, new int[prompt], maxTokens, prompt, maxTokens, false);
    }

    static RequestOutcome outcome(BenchRequest r, double sent, double... tokens) {
        return new RequestOutcome(r, sent, tokens, new int[tokens.length], true, null, Double.NaN);
    }

    @Test
    void perRequestLatencies() {
        RequestOutcome o = outcome(request("a", 10, 4), 10, 110, 120, 140, 170);
        assertTrue(o.completed());
        assertEquals(100, o.ttftMs(), 1e-9);
        assertEquals(160, o.e2eMs(), 1e-9);
        assertEquals(20, o.tpotMs(), 1e-9, "(160 - 100) / 3");
        assertArrayEquals(new double[] {10, 20, 30}, o.itlMs(), 1e-9);
    }

    @Test
    void oneTokenHasNoTpotAndNoGaps() {
        RequestOutcome o = outcome(request("a", 10, 1), 0, 42);
        assertEquals(42, o.ttftMs(), 1e-9);
        assertEquals(42, o.e2eMs(), 1e-9);
        assertTrue(Double.isNaN(o.tpotMs()));
        assertEquals(0, o.itlMs().length);
        assertTrue(o.meets(SLO), "only TTFT can be judged");
    }

    @Test
    void incompleteAndRejectedRequestsAreNotCompleted() {
        RequestOutcome partial = new RequestOutcome(request("p", 5, 3), 0, new double[] {5}, new int[] {7}, false, null, Double.NaN);
        RequestOutcome rejected = new RequestOutcome(request("r", 5, 3), 0, new double[0], new int[0], true, "too long", Double.NaN);
        assertFalse(partial.completed());
        assertFalse(rejected.completed());
        assertFalse(rejected.meets(SLO));
        assertTrue(Double.isNaN(rejected.ttftMs()));
    }

    @Test
    void percentilesOfOneToAHundred() {
        double[] v = new double[100];
        for (int i = 0; i < 100; i++) {
            v[i] = i + 1;
        }
        LatencyStats s = LatencyStats.of(v);
        assertEquals(100, s.count());
        assertEquals(50.5, s.mean(), 1e-9);
        assertEquals(50, s.p50(), 50 * 1e-3);
        assertEquals(90, s.p90(), 90 * 1e-3);
        assertEquals(99, s.p99(), 99 * 1e-3);
        assertEquals(100, s.max(), 1e-9);
    }

    @Test
    void smallValuesKeepMicrosecondResolutionAndEmptyIsNaN() {
        LatencyStats s = LatencyStats.of(new double[] {0.25, 0.5, 0.75, Double.NaN});
        assertEquals(3, s.count(), "NaN is left out");
        assertEquals(0.5, s.p50(), 1e-3);
        assertEquals(0.75, s.p99(), 1e-3);
        LatencyStats empty = LatencyStats.of(new double[0]);
        assertEquals(0, empty.count());
        assertTrue(Double.isNaN(empty.mean()) && Double.isNaN(empty.p99()));
    }

    @Test
    void modeSummaryOfThreeRequests() {
        // a: 100-token prompt, tokens at 100, 110, 120 after a send at 0: TTFT 100, TPOT 10, meets the SLOs.
        // b: 50-token prompt sent at 500, tokens at 1500, 1600: TTFT 1000 misses the 500 ms SLO.
        // c: rejected without tokens.
        RequestOutcome a = outcome(request("a", 100, 3), 0, 100, 110, 120);
        RequestOutcome b = outcome(request("b", 50, 2), 500, 1500, 1600);
        RequestOutcome c = new RequestOutcome(request("c", 10, 2), 700, new double[0], new int[0], true, "too long", Double.NaN);
        ModeSummary s = ModeSummary.of("sps2", 2, List.of(a, b, c), SLO);
        assertEquals(3, s.requests());
        assertEquals(2, s.completed());
        assertEquals(1, s.failed());
        assertEquals("too long", s.firstError());
        assertEquals(1.6, s.durationS(), 1e-9, "the replay starts at 0 and the last token arrives at 1600 ms");
        assertEquals(150, s.promptTokens());
        assertEquals(5, s.outputTokens());
        assertEquals(2 / 1.6, s.requestThroughput(), 1e-9);
        assertEquals(150 / 1.6, s.prefillTokensPerS(), 1e-9);
        assertEquals(5 / 1.6, s.decodeTokensPerS(), 1e-9);
        assertEquals(1 / 1.6, s.goodput(), 1e-9);
        assertEquals(1 / 3.0, s.sloAttainment(), 1e-9);
        assertEquals(2, s.ttftMs().count());
        assertEquals(550, s.ttftMs().mean(), 1e-9);
        assertEquals(1000, s.ttftMs().max(), 1e-9);
        assertEquals(3, s.tbtMs().count(), "gaps 10, 10 and 100 pooled");
        assertEquals(40, s.tbtMs().mean(), 1e-9);
        assertEquals(10, s.tbtMs().p50(), 1e-2);
        assertEquals(100, s.tbtMs().p99(), 0.1);
        assertEquals(55, s.tpotMs().mean(), 1e-9);
        assertEquals(610, s.e2eMs().mean(), 1e-9, "(120 + 1100) / 2");
    }

    @Test
    void anIncompleteRequestIsExplained() {
        RequestOutcome partial = new RequestOutcome(request("p", 5, 3), 0, new double[] {5}, new int[] {7}, false, null, Double.NaN);
        ModeSummary s = ModeSummary.of("sarathi", 1, List.of(partial), SLO);
        assertEquals(0, s.completed());
        assertEquals("request p got 1 of 3 tokens", s.firstError());
        assertEquals(0, s.ttftMs().count());
        assertEquals(0.0, s.requestThroughput(), 1e-12);
        assertNull(ModeSummary.of("sarathi", 1, List.of(outcome(request("a", 1, 1), 0, 3)), SLO).firstError());
    }
}
