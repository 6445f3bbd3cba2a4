package sps2.operators.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sps2.operators.scheduler.SchedulerFixtures.BLOCK_SIZE;
import static sps2.operators.scheduler.SchedulerFixtures.request;
import static sps2.operators.scheduler.SchedulerFixtures.waiting;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

import sps2.operators.messages.Admitted;
import sps2.operators.messages.StepSeq;
import sps2.operators.scheduler.SchedulerFixtures.FakeIterations;
import sps2.operators.scheduler.SchedulerFixtures.ManualClock;

/** Sarathi-Serve's stall-free batching: per worker and iteration, decodes, then the partial prefill, then new prefills. */
class SarathiPolicyTest {
    private static final int CHUNK = 8;
    private final FakeIterations iterations = new FakeIterations();
    private final ManualClock clock = new ManualClock();

    @Test
    void nothingStartsWhileAnIterationIsInFlight() throws Exception {
        iterations.decodeInFlight = true;
        new SarathiPolicy(new KvSpace(1, 20, BLOCK_SIZE), CHUNK, clock).schedule(List.of(Map.entry("w", waiting(request("w", 5, 2), 0))),
                iterations);
        assertTrue(iterations.started.isEmpty());
    }

    @Test
    void aWorkerTakesItsDecodesThenItsPartialPrefillThenNewPrefillsUpToTheChunkBudget() throws Exception {
        KvSpace kv = new KvSpace(2, 20, BLOCK_SIZE);
        RequestState decoding = onWorker0(kv, waiting(request("decoding", 9, 8), 0), new int[] {1, 2, 3});
        decoding.append(11, " eleven");
        decoding.phase = RequestState.DECODE;
        decoding.kvTokens = new int[] {10};
        Admitted partialRequest = request("partial", 20, 4);
        RequestState partial = onWorker0(kv, waiting(partialRequest, 1), new int[] {4, 5, 6, 7, 8, 9});
        partial.phase = RequestState.PREFILL;
        partial.prefilled = 3;
        partial.kvTokens = new int[] {3};
        Admitted freshRequest = request("new", 12, 4);
        RequestState fresh = waiting(freshRequest, 2);

        new SarathiPolicy(kv, CHUNK, clock).schedule(List.of(Map.entry("new", fresh), Map.entry("partial", partial),
                Map.entry("decoding", decoding)), iterations);
        FakeIterations.Started it = iterations.only();
        assertFalse(it.prefill(), "Sarathi iterations mix prefill and decode");

        List<StepSeq> worker0 = it.perShard().get(0);
        assertEquals(List.of("decoding", "partial"), worker0.stream().map(w -> w.requestId).toList());
        StepSeq decode = worker0.get(0);
        assertArrayEquals(new int[] {11}, decode.tokens);
        assertEquals(10, decode.startPos);
        assertEquals(10, decode.kvBefore);
        assertTrue(decode.appendKv && decode.sample);
        StepSeq chunk = worker0.get(1);
        assertArrayEquals(Arrays.copyOfRange(partialRequest.promptTokens, 3, 3 + CHUNK - 1), chunk.tokens, "the budget left after the decode");
        assertEquals(3, chunk.startPos);
        assertFalse(chunk.sample, "more of the prompt is to come");
        assertEquals(3 + CHUNK - 1, partial.prefilled);

        StepSeq first = it.perShard().get(1).get(0);
        assertEquals("new", first.requestId, "the new request goes to the worker with the most free KV");
        assertArrayEquals(Arrays.copyOf(freshRequest.promptTokens, CHUNK), first.tokens);
        assertArrayEquals(new int[] {1}, fresh.peers);
        assertEquals((freshRequest.promptTokens.length + freshRequest.generation.maxTokens + BLOCK_SIZE - 1) / BLOCK_SIZE, fresh.blockTables[0].length,
                "KV for the whole prompt and output from the first chunk on");
        assertEquals(RequestState.PREFILL, fresh.phase);
        assertEquals(clock.millis(), fresh.prefillStartMs);
    }

    @Test
    void theLastChunkOfAPromptSamples() throws Exception {
        KvSpace kv = new KvSpace(1, 20, BLOCK_SIZE);
        Admitted a = request("r", 20, 4);
        RequestState r = onWorker0(kv, waiting(a, 0), new int[] {1, 2, 3, 4, 5, 6});
        r.phase = RequestState.PREFILL;
        r.prefilled = 16;
        r.kvTokens = new int[] {16};
        new SarathiPolicy(kv, CHUNK, clock).schedule(List.of(Map.entry("r", r)), iterations);
        StepSeq w = iterations.only().perShard().get(0).get(0);
        assertArrayEquals(Arrays.copyOfRange(a.promptTokens, 16, 20), w.tokens);
        assertTrue(w.sample);
        assertEquals(20, r.kvTokens[0]);
    }

    @Test
    void aNewRequestWaitsWhileNoWorkerHasRoomForItsWholeOutput() throws Exception {
        KvSpace kv = new KvSpace(1, 3, BLOCK_SIZE);
        kv.allocate(0, 1);
        RequestState r = waiting(request("r", 2, 3), 0);
        new SarathiPolicy(kv, CHUNK, clock).schedule(List.of(Map.entry("r", r)), iterations);
        assertTrue(iterations.only().perShard().isEmpty(), "an empty iteration, which the scheduler does not issue");
        assertEquals(RequestState.WAITING, r.phase);
    }

    @Test
    void aRequestMayNeedAsMuchKvAsOneWorkerHolds() {
        KvSpace kv = new KvSpace(3, 10, BLOCK_SIZE);
        assertEquals(9L * BLOCK_SIZE, new SarathiPolicy(kv, CHUNK, clock).maxRequestTokens());
        assertEquals(3 * 9L * BLOCK_SIZE, new Sps2Policy(kv, SchedulerFixtures.SEGMENTER, sps2.operators.JobSettings.AppendPolicy.TAIL, clock)
                .maxRequestTokens(), "sps2 spreads a request over every shard");
    }

    private static RequestState onWorker0(KvSpace kv, RequestState r, int[] table) {
        kv.claim(0, table);
        r.peers = new int[] {0};
        r.blockTables = new int[][] {table};
        return r;
    }
}
