package sps2.operators.sp;

import java.time.Duration;

import sps2.gpu.Backend;
import sps2.gpu.KvPool;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.WireType;
import sps2.model.ModelConfig;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.csa.KvExchange;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepSeq;
import sps2.operators.runtime.ShardRuntime;
import sps2.operators.runtime.StepContext;
import sps2.operators.shard.PeerExchange;
import sps2.operators.shard.ShardEngine;

/**
 * Sequence-parallel prefill of one prompt with its shards in one process: one {@link ShardEngine} per shard, run
 * one after another in segment order over one {@link PeerExchange} (prefill only waits on earlier segments), so
 * this is the job's own algorithm, with every position's logits at hand. Used to measure what a sparse policy
 * costs in accuracy, and to check dense SP against single-shard prefill.
 */
public final class InProcessSequenceParallel {
    private InProcessSequenceParallel() {
    }

    /**
     * @param logits      [to - from][vocab] logits of positions from..to-1
     * @param bytesSent   K/V bytes that crossed shards under the policy, in the backend's wire type
     * @param denseBytes  what dense attention would have sent
     * @param ownMs       per shard: time on its own segment (projections, own attention, MLP)
     * @param sendMs      per shard: time gathering and posting its K/V for later shards
     * @param remoteMs    per shard: time taking in and attending to the K/V it receives
     */
    public record Result(float[][] logits, long bytesSent, long denseBytes, double[] ownMs, double[] sendMs, double[] remoteMs) {
    }

    /**
     * Prefills {@code tokens} cut at {@code bounds} (b[0] = 0 .. b[S] = tokens.length, one segment per shard).
     *
     * @param from          first position whose logits are wanted
     * @param continueInto  if not null, receives every layer's K/V so that decoding can go on in it
     */
    public static Result prefill(LlamaModel model, int[] tokens, int[] bounds, CsaPolicy policy, int from, Sequence continueInto) {
        return prefill(model, tokens, bounds, policy, from, continueInto, false);
    }

    /**
     * As {@link #prefill(LlamaModel, int[], int[], CsaPolicy, int, Sequence)}; with {@code timePhases} the
     * backend is synchronised around every phase so the per-shard times in the result are exact.
     */
    public static Result prefill(LlamaModel model, int[] tokens, int[] bounds, CsaPolicy policy, int from, Sequence continueInto,
            boolean timePhases) {
        ModelConfig c = model.config();
        Backend b = model.backend();
        int shards = bounds.length - 1;
        int total = bounds[shards];
        float[][] logits = new float[total - from][];
        double[] ownMs = new double[shards];
        double[] sendMs = new double[shards];
        double[] remoteMs = new double[shards];
        long received = 0;
        long dense = 0;
        WireType wire = null;
        PeerExchange exchange = PeerExchange.local(shards);
        int[] peers = new int[shards];
        for (int i = 0; i < shards; i++) {
            peers[i] = i;
        }
        for (int i = 0; i < shards; i++) {
            int start = bounds[i];
            int n = bounds[i + 1] - start;
            try (KvPool pool = model.kvPool(n, 16)) {
                ShardRuntime runtime = ShardRuntime.standalone(model, pool);
                ShardStep step = step(tokens, bounds, peers, i, pool);
                ShardEngine.Observer observer = new ShardEngine.Observer() {
                    @Override
                    public void kvStored(int layer, StepContext sc) {
                        if (continueInto != null) {
                            continueInto.importKv(layer, sc.ws.k, sc.ws.v, start, n);
                        }
                    }

                    @Override
                    public void hidden(StepContext sc) {
                        readLogits(model, sc, start, n, from, logits);
                    }

                    @Override
                    public boolean watchesLayers() {
                        return true;
                    }
                };
                try (ShardEngine engine = new ShardEngine(runtime, i, exchange, policy, Duration.ofMinutes(1), timePhases, false)) {
                    ShardEngine.Outcome o = engine.run(step, observer);
                    received += o.bytesReceived();
                    if (timePhases) {
                        ownMs[i] = o.phases()[0] * 1e3;
                        sendMs[i] = o.phases()[1] * 1e3;
                        remoteMs[i] = o.phases()[2] * 1e3;
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("Interrupted during an in-process prefill", e);
                } finally {
                    runtime.closeWorkspaces();
                }
                if (wire == null) {
                    try (sps2.gpu.Tensor probe = b.allocate(1, 1)) {
                        wire = b.wireType(probe);
                    }
                }
                if (i < shards - 1) {
                    dense += (long) (shards - 1 - i) * c.nLayers() * KvExchange.denseBytes(c, n, wire);
                }
            }
        }
        if (continueInto != null) {
            continueInto.resumeAt(total);
        }
        return new Result(logits, received, dense, ownMs, sendMs, remoteMs);
    }

    /** Shard i's prefill step: its segment, every block of its own pool, nothing sampled. */
    private static ShardStep step(int[] tokens, int[] bounds, int[] peers, int i, KvPool pool) {
        StepSeq w = new StepSeq();
        w.requestId = "in-process";
        w.mode = StepSeq.PREFILL;
        w.tokens = java.util.Arrays.copyOfRange(tokens, bounds[i], bounds[i + 1]);
        w.startPos = bounds[i];
        w.blockTable = new int[pool.blocks()];
        for (int t = 0; t < w.blockTable.length; t++) {
            w.blockTable[t] = t;
        }
        w.kvBefore = 0;
        w.appendKv = true;
        w.peers = peers;
        w.segmentStarts = java.util.Arrays.copyOf(bounds, bounds.length - 1);
        w.peerIndex = i;
        w.sample = false;
        ShardStep s = new ShardStep();
        s.iteration = 1;
        s.shard = i;
        s.prefill = true;
        s.seqs = new StepSeq[] {w};
        return s;
    }

    /** Logits of positions max(from, start) .. start+n-1 from the final hidden rows of a segment. */
    private static void readLogits(LlamaModel model, StepContext sc, int start, int n, int from, float[][] out) {
        Backend b = model.backend();
        int vocab = model.config().vocabSize();
        int lo = Math.max(from, start);
        int cap = sc.ws.logits.rows();
        for (int at = lo; at < start + n; at += cap) {
            int count = Math.min(cap, start + n - at);
            int[] rows = new int[count];
            for (int r = 0; r < count; r++) {
                rows[r] = at + r - start;
            }
            model.logits(sc.ws, rows);
            for (int r = 0; r < count; r++) {
                out[at + r - from] = new float[vocab];
                b.read(sc.ws.logits, r, out[at + r - from], 0, 1);
            }
        }
    }
}
