package sps2.operators.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sps2.operators.scheduler.SchedulerFixtures.BLOCK_SIZE;
import static sps2.operators.scheduler.SchedulerFixtures.SEGMENTER;
import static sps2.operators.scheduler.SchedulerFixtures.request;
import static sps2.operators.scheduler.SchedulerFixtures.waiting;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

import sps2.operators.JobSettings.AppendPolicy;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.StepSeq;
import sps2.operators.scheduler.SchedulerFixtures.FakeIterations;
import sps2.operators.scheduler.SchedulerFixtures.ManualClock;

/** sps2 mode's batching: segmented prefill, one request at a time; every decoding request in one iteration. */
class Sps2PolicyTest {
    private final FakeIterations iterations = new FakeIterations();
    private final ManualClock clock = new ManualClock();

    private Sps2Policy policy(KvSpace kv, AppendPolicy append) {
        return new Sps2Policy(kv, SEGMENTER, append, clock);
    }

    @Test
    void aPromptIsCutIntoSegmentsOnTheShardsWithTheMostFreeKv() throws Exception {
        KvSpace kv = new KvSpace(3, 20, BLOCK_SIZE);
        kv.allocate(0, 5); // shard 0 has the least room
        Admitted a = request("r", 2 * SchedulerFixtures.MIN_SEGMENT, 6);
        RequestState r = waiting(a, 0);
        policy(kv, AppendPolicy.TAIL).schedule(List.of(Map.entry("r", r)), iterations);

        int[] bounds = SEGMENTER.split(a.promptTokens.length, 3);
        assertEquals(3, bounds.length, "a prompt of two minimum segments takes two shards");
        FakeIterations.Started prefill = iterations.only();
        assertTrue(prefill.prefill());
        assertArrayEquals(new int[] {1, 2}, r.peers, "the two shards with the most free blocks, ascending");
        assertEquals(RequestState.PREFILL, r.phase);
        assertEquals(clock.millis(), r.prefillStartMs);
        for (int i = 0; i < 2; i++) {
            StepSeq w = prefill.perShard().get(r.peers[i]).get(0);
            assertArrayEquals(Arrays.copyOfRange(a.promptTokens, bounds[i], bounds[i + 1]), w.tokens);
            assertEquals(bounds[i], w.startPos);
            assertArrayEquals(Arrays.copyOf(bounds, 2), w.segmentStarts);
            assertArrayEquals(r.peers, w.peers);
            assertEquals(i, w.peerIndex);
            assertTrue(w.appendKv);
            assertEquals(i == 1, w.sample, "the last segment samples");
            assertEquals(bounds[i + 1] - bounds[i], r.kvTokens[i]);
        }
        assertEquals(List.of("r"), iterations.updated);
    }

    @Test
    void withTailAppendTheLastSegmentReservesRoomForTheWholeOutput() throws Exception {
        for (AppendPolicy append : AppendPolicy.values()) {
            KvSpace kv = new KvSpace(2, 40, BLOCK_SIZE);
            Admitted a = request("r", 30, 17);
            RequestState r = waiting(a, 0);
            policy(kv, append).schedule(List.of(Map.entry("r", r)), new FakeIterations());
            int[] bounds = SEGMENTER.split(30, 2);
            int last = bounds[2] - bounds[1] + (append == AppendPolicy.TAIL ? a.generation.maxTokens : 0);
            assertEquals(blocksFor(bounds[1]), r.blockTables[0].length, append.toString());
            assertEquals(blocksFor(last), r.blockTables[1].length, append.toString());
        }
    }

    @Test
    void oneRequestIsPrefilledAtATimeTheHighestPriorityFirst() throws Exception {
        KvSpace kv = new KvSpace(2, 40, BLOCK_SIZE);
        RequestState early = waiting(request("early", 10, 4), 0);
        Admitted urgent = request("urgent", 10, 4);
        urgent.priority = 3;
        RequestState late = waiting(urgent, 1);
        List<Map.Entry<String, RequestState>> requests = List.of(Map.entry("early", early), Map.entry("urgent", late));

        iterations.prefillInFlight = true;
        policy(kv, AppendPolicy.TAIL).schedule(requests, iterations);
        assertTrue(iterations.started.isEmpty(), "no second prefill while one is in flight");

        iterations.prefillInFlight = false;
        policy(kv, AppendPolicy.TAIL).schedule(requests, iterations);
        assertEquals("urgent", iterations.only().perShard().values().iterator().next().get(0).requestId);
        assertEquals(RequestState.WAITING, early.phase);
    }

    @Test
    void aPrefillThatDoesNotFitWaitsAndTakesNoBlocks() throws Exception {
        KvSpace kv = new KvSpace(2, 4, BLOCK_SIZE); // 3 blocks of 4 tokens each for requests
        kv.allocate(1, 2);
        RequestState r = waiting(request("r", 16, 4), 0);
        assertTrue(blocksFor(SEGMENTER.split(16, 2)[1]) <= 3, "the first segment fits on shard 0, the last does not fit on shard 1");
        policy(kv, AppendPolicy.TAIL).schedule(List.of(Map.entry("r", r)), iterations);
        assertTrue(iterations.started.isEmpty());
        assertEquals(RequestState.WAITING, r.phase);
        assertNotNull(kv.allocate(0, 3), "the blocks taken for the first segment are given back");
    }

    @Test
    void aDecodeIterationRunsEveryRowOnEveryShardThatHoldsKvOfAnyRow() throws Exception {
        KvSpace kv = new KvSpace(3, 20, BLOCK_SIZE);
        RequestState a = decoding(kv, "a", new int[] {0, 1}, new int[][] {{1}, {2, 3}}, new int[] {4, 5});
        RequestState b = decoding(kv, "b", new int[] {1, 2}, new int[][] {{4}, {5}}, new int[] {3, 2});
        policy(kv, AppendPolicy.TAIL).schedule(List.of(Map.entry("a", a), Map.entry("b", b)), iterations);

        FakeIterations.Started decode = iterations.only();
        assertFalse(decode.prefill());
        assertArrayEquals(new int[] {0, 1, 2}, decode.members());
        for (int shard = 0; shard < 3; shard++) {
            List<StepSeq> rows = decode.perShard().get(shard);
            assertEquals(List.of("a", "b"), rows.stream().map(w -> w.requestId).toList(), "every member runs every row, in one order");
            for (StepSeq w : rows) {
                RequestState r = w.requestId.equals("a") ? a : b;
                int i = indexOf(r.peers, shard);
                assertArrayEquals(new int[] {r.lastToken()}, w.tokens);
                assertEquals(i, w.peerIndex);
                if (i < 0) {
                    assertEquals(0, w.blockTable.length, "a shard without KV of the row attends to nothing");
                    assertFalse(w.appendKv || w.sample);
                } else {
                    assertArrayEquals(r.blockTables[i], w.blockTable);
                    assertEquals(i == 1, w.appendKv, "tail append: the last segment's shard stores the new KV");
                    assertEquals(i == 1, w.sample, "and samples");
                }
            }
        }
        StepSeq aOnTail = decode.perShard().get(1).get(0);
        assertEquals(9, aOnTail.startPos, "the next position is all KV held");
        assertEquals(5, aOnTail.kvBefore);
        assertArrayEquals(new int[] {4, 6}, a.kvTokens);
        assertTrue(a.stepInFlight);
        assertEquals(1, a.lastAppendPeer);
    }

    @Test
    void leastLoadedAppendsWhereTheLeastKvIsAndGrowsAFullTable() throws Exception {
        KvSpace kv = new KvSpace(2, 20, BLOCK_SIZE);
        RequestState roomy = decoding(kv, "roomy", new int[] {0, 1}, new int[][] {{1}, {2}}, new int[] {4, 2});
        RequestState full = decoding(kv, "full", new int[] {0, 1}, new int[][] {{3}, {4}}, new int[] {4, 4});
        policy(kv, AppendPolicy.LEAST_LOADED).schedule(List.of(Map.entry("roomy", roomy), Map.entry("full", full)), iterations);

        assertEquals(1, roomy.lastAppendPeer, "the shard holding less of the request");
        assertArrayEquals(new int[] {4, 3}, roomy.kvTokens);
        assertEquals(0, full.lastAppendPeer, "between equals the first");
        assertEquals(2, full.blockTables[0].length, "its full block table grows by a block");
        assertFalse(List.of(0, 1, 3).contains(full.blockTables[0][1]), "a block of shard 0 that nothing holds");
        StepSeq fullOn0 = iterations.only().perShard().get(0).get(1);
        assertTrue(fullOn0.appendKv);
        assertArrayEquals(full.blockTables[0], fullOn0.blockTable);
    }

    @Test
    void aDecodingRequestWithoutRoomForItsNextTokenFailsAndTheOthersGoOn() throws Exception {
        KvSpace kv = new KvSpace(1, 3, BLOCK_SIZE);
        RequestState stuck = decoding(kv, "stuck", new int[] {0}, new int[][] {{1}}, new int[] {4});
        RequestState fine = decoding(kv, "fine", new int[] {0}, new int[][] {{2}}, new int[] {1});
        policy(kv, AppendPolicy.TAIL).schedule(List.of(Map.entry("stuck", stuck), Map.entry("fine", fine)), iterations);
        assertEquals(List.of("stuck"), List.copyOf(iterations.failed.keySet()));
        assertTrue(iterations.failed.get("stuck").contains("KV cache is full"));
        assertEquals(List.of("fine"), iterations.only().perShard().get(0).stream().map(w -> w.requestId).toList());
    }

    @Test
    void decodingWaitsForTheDecodeIterationInFlightAndForTheRestoreStep() throws Exception {
        KvSpace kv = new KvSpace(1, 20, BLOCK_SIZE);
        RequestState d = decoding(kv, "d", new int[] {0}, new int[][] {{1}}, new int[] {2});
        RequestState w = waiting(request("w", 6, 2), 1);
        List<Map.Entry<String, RequestState>> requests = List.of(Map.entry("d", d), Map.entry("w", w));

        iterations.decodeInFlight = true;
        policy(kv, AppendPolicy.TAIL).schedule(requests, iterations);
        assertTrue(iterations.only().prefill(), "a prefill starts beside the decode in flight");

        FakeIterations restoring = new FakeIterations();
        restoring.restoring = true;
        restoring.prefillInFlight = true;
        policy(kv, AppendPolicy.TAIL).schedule(requests, restoring);
        assertTrue(restoring.started.isEmpty(), "nothing decodes until the restored KV is back");
        assertFalse(d.stepInFlight);
    }

    /** A decoding request with one generated token, holding these blocks (taken in {@code kv}) and KV token counts. */
    static RequestState decoding(KvSpace kv, String id, int[] peers, int[][] tables, int[] kvTokens) {
        RequestState r = waiting(request(id, Arrays.stream(kvTokens).sum() - 1, 10), 0);
        r.append(7, " seven");
        r.phase = RequestState.DECODE;
        r.peers = peers;
        r.blockTables = tables;
        r.kvTokens = kvTokens;
        for (int i = 0; i < peers.length; i++) {
            kv.claim(peers[i], tables[i]);
        }
        return r;
    }

    private static int blocksFor(int tokens) {
        return (tokens + BLOCK_SIZE - 1) / BLOCK_SIZE;
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }
}
