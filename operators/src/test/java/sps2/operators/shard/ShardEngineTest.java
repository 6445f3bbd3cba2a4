package sps2.operators.shard;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.junit.jupiter.api.Test;

import sps2.gpu.Backend;
import sps2.gpu.Backends;
import sps2.gpu.KvPool;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.sampler.SamplingParams;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomWeights;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.messages.Generation;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepSeq;
import sps2.operators.runtime.ShardRuntime;

/**
 * The shard engine on its own: two shards that decode together through a {@link PeerExchange} (each on its own
 * thread, every row on both, partials merged in member order) give the tokens of single-sequence generation; a
 * shard whose peer never sends fails with a message naming the peer; on a GPU, decode steps replayed from
 * recorded graphs, most of them started ahead of the scheduler's asking, give the tokens of eager steps.
 */
class ShardEngineTest {
    private static final int BS = 16;
    private final ModelConfig c = ModelShapes.get("tiny").withContextLength(512);
    private final ModelWeights w = RandomWeights.generate(c, DType.F32, 21);
    private final int[] prompt = new SplittableRandom(4).ints(120, 3, c.vocabSize()).toArray();

    private static int[] table(int from, int blocks) {
        int[] t = new int[blocks];
        for (int i = 0; i < blocks; i++) {
            t[i] = from + i;
        }
        return t;
    }

    private static StepSeq work(int[] tokens, int startPos, int[] table, int kvBefore, boolean append, int[] peers, int peerIndex,
            boolean sample) {
        StepSeq s = new StepSeq();
        s.requestId = "r";
        s.mode = tokens.length > 1 ? StepSeq.PREFILL : StepSeq.DECODE;
        s.tokens = tokens;
        s.startPos = startPos;
        s.blockTable = table;
        s.kvBefore = kvBefore;
        s.appendKv = append;
        s.peers = peers;
        s.peerIndex = peerIndex;
        s.sample = sample;
        s.generation = new Generation();
        s.generation.temperature = 0f;
        s.generation.topP = 1f;
        return s;
    }

    private static ShardStep step(long iteration, int shard, boolean prefill, int[] members, StepSeq... seqs) {
        ShardStep s = new ShardStep();
        s.iteration = iteration;
        s.shard = shard;
        s.prefill = prefill;
        s.seqs = seqs;
        s.members = members;
        return s;
    }

    private int[] reference(LlamaModel m, int steps) {
        int[] out = new int[steps];
        try (Sequence s = new Sequence(m, 400, 512)) {
            int next = s.next(prompt, new SamplingParams(0f, 0, 1f, 0f, 0));
            for (int i = 0; i < steps; i++) {
                out[i] = next;
                next = s.next(new int[] {next}, new SamplingParams(0f, 0, 1f, 0f, 0));
            }
        }
        return out;
    }

    @Test
    void twoShardsDecodingTogetherGiveTheTokensOfOneSequence() throws Exception {
        int steps = 24;
        int split = 70;
        int[] peers = {0, 1};
        try (CpuBackend b = new CpuBackend(1); LlamaModel m = new LlamaModel(b, w, null); KvPool p0 = m.kvPool(512, BS);
                KvPool p1 = m.kvPool(512, BS)) {
            int[] want = reference(m, steps);
            ShardRuntime r0 = ShardRuntime.standalone(m, p0);
            ShardRuntime r1 = ShardRuntime.standalone(m, p1);
            PeerExchange ex = PeerExchange.local(2);
            int[] t0 = table(1, 8);
            int[] t1 = table(1, 8);
            ExecutorService threads = Executors.newFixedThreadPool(2);
            try (ShardEngine e0 = new ShardEngine(r0, 0, ex, new CsaPolicy.Dense(), Duration.ofSeconds(30), false, true);
                    ShardEngine e1 = new ShardEngine(r1, 1, ex, new CsaPolicy.Dense(), Duration.ofSeconds(30), false, true)) {
                int[] segStarts = {0, split};
                StepSeq a = work(java.util.Arrays.copyOfRange(prompt, 0, split), 0, t0, 0, true, peers, 0, false);
                a.segmentStarts = segStarts;
                StepSeq bb = work(java.util.Arrays.copyOfRange(prompt, split, prompt.length), split, t1, 0, true, peers, 1, true);
                bb.segmentStarts = segStarts;
                e0.run(step(1, 0, true, peers, a), ShardEngine.Observer.NONE);
                int token = e1.run(step(1, 1, true, peers, bb), ShardEngine.Observer.NONE).tokens()[0];
                int[] got = new int[steps];
                int kv1 = prompt.length - split;
                for (int i = 0; i < steps; i++) {
                    got[i] = token;
                    int pos = prompt.length + i;
                    ShardStep s0 = step(2 + i, 0, false, peers, work(new int[] {token}, pos, t0, split, false, peers, 0, false));
                    ShardStep s1 = step(2 + i, 1, false, peers, work(new int[] {token}, pos, t1, kv1, true, peers, 1, true));
                    Future<ShardEngine.Outcome> f0 = threads.submit(() -> e0.run(s0, ShardEngine.Observer.NONE));
                    Future<ShardEngine.Outcome> f1 = threads.submit(() -> e1.run(s1, ShardEngine.Observer.NONE));
                    assertEquals(0, f0.get().tokens().length);
                    ShardEngine.Outcome o1 = f1.get();
                    assertTrue(o1.bytesSameDevice() > 0, "the partials crossed on the device");
                    token = o1.tokens()[0];
                    kv1++;
                }
                assertArrayEquals(want, got);
                assertEquals(0, ex.waiting(), "every handoff was taken");
            } finally {
                threads.shutdownNow();
            }
        }
    }

    @Test
    void aPeerThatNeverSendsFailsTheStepNamingIt() {
        int[] peers = {0, 1};
        try (CpuBackend b = new CpuBackend(1); LlamaModel m = new LlamaModel(b, w, null); KvPool p = m.kvPool(512, BS)) {
            PeerExchange ex = PeerExchange.local(2);
            try (ShardEngine e1 = new ShardEngine(ShardRuntime.standalone(m, p), 1, ex, new CsaPolicy.Dense(), Duration.ofMillis(200), false,
                    false)) {
                StepSeq s = work(new int[] {5, 6, 7}, 3, table(1, 2), 0, true, peers, 1, true);
                s.segmentStarts = new int[] {0, 3};
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> e1.run(step(9, 1, true, peers, s),
                        ShardEngine.Observer.NONE));
                assertTrue(e.getMessage().contains("from shard 0"), e.getMessage());
            }
        }
    }

    @Test
    void aGroupWithAMemberElsewhereIsReported() throws Exception {
        PeerExchange ex = PeerExchange.join("test-group-" + System.nanoTime(), 3, 0);
        try {
            assertFalse(ex.awaitMembers(Duration.ofMillis(100)));
            assertEquals(java.util.Set.of(1, 2), ex.missing());
        } finally {
            ex.leave(0);
        }
    }

    /** On a GPU: the same greedy decode with recorded graphs and eagerly gives the same tokens, and graphs were recorded. */
    @Test
    void graphReplayedDecodeStepsGiveTheTokensOfEagerSteps() throws Exception {
        assumeTrue(Backends.cudaUnavailableReason() == null, () -> "No CUDA GPU here, skipping: " + Backends.cudaUnavailableReason());
        try (Backend b = Backends.cuda(0, false); LlamaModel m = new LlamaModel(b, w, null)) {
            int[][] tokens = new int[2][];
            int graphs = 0;
            long ahead = 0;
            for (int mode = 0; mode < 2; mode++) {
                try (KvPool p = m.kvPool(1024, BS);
                        ShardEngine e = new ShardEngine(ShardRuntime.standalone(m, p), 0, null, new CsaPolicy.Dense(), Duration.ofSeconds(30), false,
                                mode == 0)) {
                    int[] t = table(1, 30);
                    int[] one = {0};
                    int token = e.run(step(1, 0, true, one, work(prompt, 0, t, 0, true, one, 0, true)), ShardEngine.Observer.NONE).tokens()[0];
                    tokens[mode] = new int[40];
                    for (int i = 0; i < 40; i++) {
                        tokens[mode][i] = token;
                        int pos = prompt.length + i;
                        ShardStep s = step(2 + i, 0, false, new int[0], work(new int[] {token}, pos, t, pos, true, one, 0, true));
                        ShardEngine.Outcome o = e.run(s, ShardEngine.Observer.NONE);
                        assertEquals(mode == 0 && i > 0, o.graph() && i > 0);
                        token = o.tokens()[0];
                        if (mode == 0 && i % 10 != 7) { // as the shard operator does; now and then the scheduler's step comes unannounced
                            e.runAhead(s, o.tokens(), new boolean[] {true});
                        }
                    }
                    if (mode == 0) {
                        graphs = e.recordedGraphs();
                        ahead = e.stepsAhead();
                    }
                }
            }
            assertTrue(graphs > 0);
            assertTrue(ahead > 20, ahead + " steps were taken from runs ahead");
            assertArrayEquals(tokens[1], tokens[0]);
        }
    }
}
