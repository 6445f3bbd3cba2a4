package sps2.operators.shard;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.model.ModelConfig;
import sps2.model.sampler.SamplingParams;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.csa.KvExchange;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepSeq;
import sps2.operators.runtime.ShardRuntime;
import sps2.operators.runtime.StepContext;

/**
 * One shard's step of an iteration ({@link ShardStep}), through every layer, on its {@link ShardRuntime}'s device — with no Flink in
 * it. The Flink shard operator and the in-process sequence-parallel runner both drive it, so the algorithm exists
 * once:
 *
 * <pre>
 *   embed the step's tokens                                             x [n, dim]
 *   for each layer l:
 *     project(l), store K/V in the paged pool
 *     prefill of segment j of k:  gather the K/V each later segment may see (sparse policy), post it to them;
 *                                 attend own segment while they take it; fold in segments 0..j-1 in order
 *     decode with m &gt; 1 members: attend own KV; post the partial (out, lse); merge the members' partials in
 *                                 member order (every member runs every row, so all end up with the same x)
 *     otherwise:                  attend own KV
 *     finishLayer(l)              o_proj, residual, MLP
 *   logits and sampling of the rows that sample on this shard
 * </pre>
 *
 * A decode step that exchanges nothing (one member) runs as a recorded device graph where the backend records
 * them ({@link DecodeGraphs}). One engine is used from one thread.
 */
public final class ShardEngine implements AutoCloseable {

    /**
     * What the shard did: the tokens sampled on it (for step rows {@code sampledSeqs}), the bytes it received
     * from other shards by tier, and where its time went.
     *
     * @param phases with phase timing on: seconds on the own segment, on packing and posting K/V, on taking and
     *               folding in remote K/V (null otherwise)
     */
    public record Outcome(int[] sampledSeqs, int[] tokens, long bytesSameDevice, long bytesPeerCopy, double computeSeconds,
            double waitSeconds, double[] phases, boolean graph) {
        public long bytesReceived() {
            return bytesSameDevice + bytesPeerCopy;
        }
    }

    /** Hooks into the forward pass for callers that need more than the tokens. */
    public interface Observer {
        Observer NONE = new Observer() {
        };

        /** Layer {@code layer}'s K/V of the step's rows are in sc.ws.k / sc.ws.v (and in the pool). */
        default void kvStored(int layer, StepContext sc) {
        }

        /** After the last layer, before sampling: sc.ws.x holds the final hidden state of every row. */
        default void hidden(StepContext sc) {
        }

        /** Whether this observer needs {@link #kvStored} (then the step is not replayed from a recorded graph). */
        default boolean watchesLayers() {
            return false;
        }
    }

    private final ShardRuntime runtime;
    private final int shard;
    private final PeerExchange exchange;
    private final CsaPolicy csa;
    private final Duration timeout;
    private final boolean timePhases;
    private final DecodeGraphs graphs;

    /**
     * @param exchange   the shard's group (null when it never exchanges: one shard, or Sarathi workers)
     * @param timeout    longest wait for a peer's data before the iteration fails
     * @param timePhases synchronise the device around each phase so {@link Outcome#phases} are exact (benchmarks)
     * @param useGraphs  replay exchange-free decode steps from recorded device graphs where the backend can
     */
    public ShardEngine(ShardRuntime runtime, int shard, PeerExchange exchange, CsaPolicy csa, Duration timeout, boolean timePhases,
            boolean useGraphs) {
        this.runtime = runtime;
        this.shard = shard;
        this.exchange = exchange;
        this.csa = csa;
        this.timeout = timeout;
        this.timePhases = timePhases;
        this.graphs = useGraphs && !timePhases ? DecodeGraphs.create(runtime) : null;
    }

    /** Runs this shard's part of {@code step}. */
    public Outcome run(ShardStep step, Observer observer) throws InterruptedException {
        if (graphs != null && !observer.watchesLayers() && DecodeGraphs.suits(step)) {
            Outcome o = graphs.run(step);
            if (o != null) {
                return o;
            }
        }
        return new Pass(step, observer).run();
    }

    /**
     * After a decode step replayed from a graph: starts the step that will most likely follow on the device now,
     * while its result travels to the scheduler and the scheduler's next step travels back ({@link DecodeGraphs#runAhead}).
     *
     * @param tokens    the tokens the step sampled, one per row
     * @param continues per row, whether its request goes on (not finished by this token)
     */
    public void runAhead(ShardStep step, int[] tokens, boolean[] continues) {
        if (graphs != null && DecodeGraphs.suits(step)) {
            graphs.runAhead(step, tokens, continues);
        }
    }

    /** Decode steps whose result was computed ahead of the scheduler's asking ({@link #runAhead}). */
    public long stepsAhead() {
        return graphs == null ? 0 : graphs.stepsAhead();
    }

    /** Recorded graphs held for decode batches (tests, logs). */
    public int recordedGraphs() {
        return graphs == null ? 0 : graphs.size();
    }

    @Override
    public void close() {
        if (graphs != null) {
            graphs.close();
        }
    }

    /** One pass of a step through the model: the state of a {@link #run} call. */
    private final class Pass {
        final ShardStep step;
        final Observer observer;
        final LlamaModel model = runtime.model();
        final Backend b = model.backend();
        final ModelConfig c = model.config();
        final long started = System.nanoTime();
        long waitNanos;
        long sameDevice;
        long peerCopy;
        final double[] phases = new double[3];
        StepContext sc;

        Pass(ShardStep step, Observer observer) {
            this.step = step;
            this.observer = observer;
        }

        Outcome run() throws InterruptedException {
            sc = runtime.begin(step);
            try {
                int n = sc.rows();
                long t = mark();
                model.embed(sc.ws, sc.tokens, n);
                phases[0] += since(t);
                boolean segmented = step.prefill && step.seqs.length == 1 && step.seqs[0].peers.length > 1;
                boolean partials = !step.prefill && step.members.length > 1;
                if ((segmented || partials) && exchange == null) {
                    throw new IllegalStateException("Shard " + shard + " got a step that exchanges with peers, but belongs to no shard group");
                }
                for (int l = 0; l < c.nLayers(); l++) {
                    t = mark();
                    model.project(l, sc.ws, sc.positions, n);
                    b.kvWrite(runtime.pool(), l, sc.ws.k, sc.ws.v, sc.slots, n);
                    observer.kvStored(l, sc);
                    phases[0] += since(t);
                    if (segmented) {
                        prefillExchange(l);
                    } else {
                        t = mark();
                        model.attend(l, sc.ws, runtime.pool(), sc.batch);
                        phases[0] += since(t);
                        if (partials) {
                            decodeExchange(l);
                        }
                    }
                    t = mark();
                    model.finishLayer(l, sc.ws, n);
                    phases[0] += since(t);
                }
                observer.hidden(sc);
                return sample();
            } finally {
                runtime.end(step.iteration);
            }
        }

        /** Prefill of segment j: post K/V to the later segments, attend own, fold in the earlier ones in order. */
        private void prefillExchange(int l) throws InterruptedException {
            StepSeq w = step.seqs[0];
            int j = w.peerIndex;
            int n = sc.rows();
            long t = mark();
            // receivers whose selections are equal (every receiver under the dense policy) share one gather
            List<int[][]> distinct = new ArrayList<>();
            List<List<Integer>> receivers = new ArrayList<>();
            for (int p = j + 1; p < w.peers.length; p++) {
                int[][] rows = csa.select(w.startPos, n, w.segmentStarts[p], c.nKvHeads());
                int at = -1;
                for (int d = 0; d < distinct.size() && at < 0; d++) {
                    if (Arrays.deepEquals(distinct.get(d), rows)) {
                        at = d;
                    }
                }
                if (at < 0) {
                    distinct.add(rows);
                    receivers.add(new ArrayList<>());
                    at = distinct.size() - 1;
                }
                receivers.get(at).add(w.peers[p]);
            }
            for (int d = 0; d < distinct.size(); d++) {
                CompactKv kv = KvExchange.gather(b, sc.ws.k, sc.ws.v, c.nKvHeads(), c.headSize(), distinct.get(d));
                long bytes = KvExchange.bytes(kv, c.headSize(), b.wireType(sc.ws.k));
                Handoff h = new Handoff(b, new Tensor[] {kv.k(), kv.v()}, b.fence(), bytes, receivers.get(d).size(), kv.maxLen(), kv.lens(), null);
                for (int to : receivers.get(d)) {
                    exchange.post(step.iteration, l, shard, to, h);
                }
            }
            phases[1] += since(t);
            t = mark();
            model.attend(l, sc.ws, runtime.pool(), sc.batch);
            phases[0] += since(t);
            t = mark();
            for (int i = 0; i < j; i++) {
                Handoff h = take(l, w.peers[i]);
                Tensor[] kv = h.read(b);
                KvExchange.attendAndMerge(model, sc.ws, n, new CompactKv(kv[0], kv[1], h.maxLen(), h.lens()));
                h.done(b, kv);
            }
            phases[2] += since(t);
        }

        /** Decode with several members: post own partial, then merge every member's in member order. */
        private void decodeExchange(int l) throws InterruptedException {
            int n = sc.rows();
            int qDim = c.nHeads() * c.headSize();
            long t = mark();
            Tensor att = b.allocate(n, qDim);
            Tensor lse = b.allocateFloat(n, c.nHeads());
            b.copyRows(att, 0, sc.ws.att, 0, n);
            b.copyRows(lse, 0, sc.ws.lse, 0, n);
            long bytes = (long) n * (qDim * b.wireType(att).bytes() + c.nHeads() * Float.BYTES);
            String[] order = l == 0 ? rowRequests() : null;
            Handoff own = new Handoff(b, new Tensor[] {att, lse}, b.fence(), bytes, step.members.length, 0, null, order);
            for (int m : step.members) {
                if (m != shard) {
                    exchange.post(step.iteration, l, shard, m, own);
                }
            }
            phases[1] += since(t);
            t = mark();
            boolean first = true;
            for (int m : step.members) {
                Handoff h = m == shard ? own : take(l, m);
                if (l == 0 && m != shard && !Arrays.equals(h.rowRequests(), order)) {
                    throw new IllegalStateException("Shard " + m + " ran the rows of decode iteration " + step.iteration + " in another order than shard "
                            + shard + "; every member must run the same rows");
                }
                Tensor[] p = h.read(b);
                if (first) {
                    b.copyRows(sc.ws.att, 0, p[0], 0, n);
                    b.copyRows(sc.ws.lse, 0, p[1], 0, n);
                } else {
                    b.mergeAttention(sc.ws.att, sc.ws.lse, p[0], p[1], n, c.nHeads(), c.headSize());
                }
                h.done(b, p);
                first = false;
            }
            phases[2] += since(t);
        }

        private String[] rowRequests() {
            String[] ids = new String[step.seqs.length];
            for (int s = 0; s < ids.length; s++) {
                ids[s] = step.seqs[s].requestId;
            }
            return ids;
        }

        private Handoff take(int layer, int from) throws InterruptedException {
            long t0 = System.nanoTime();
            Handoff h = exchange.take(step.iteration, layer, from, shard, timeout);
            waitNanos += System.nanoTime() - t0;
            if (h.tierFor(b) == Handoff.Tier.SAME_DEVICE) {
                sameDevice += h.bytes();
            } else {
                peerCopy += h.bytes();
            }
            return h;
        }

        /** Logits of the last row of every sequence that samples here, and the sampled tokens. */
        private Outcome sample() {
            List<Integer> sampling = new ArrayList<>();
            for (int s = 0; s < step.seqs.length; s++) {
                if (step.seqs[s].sample) {
                    sampling.add(s);
                }
            }
            int[] seqs = sampling.stream().mapToInt(Integer::intValue).toArray();
            int[] tokens = new int[seqs.length];
            long t = mark();
            int chunk = Math.min(256, sc.ws.capacity);
            for (int from = 0; from < seqs.length; from += chunk) {
                int count = Math.min(chunk, seqs.length - from);
                int[] rows = new int[count];
                SamplingParams[] params = new SamplingParams[count];
                int[] positions = new int[count];
                for (int i = 0; i < count; i++) {
                    StepSeq w = step.seqs[seqs[from + i]];
                    rows[i] = sc.rowStart[seqs[from + i]] + w.rows() - 1;
                    params[i] = w.generation.sampling();
                    positions[i] = w.startPos + w.rows();
                }
                model.logits(sc.ws, rows);
                int[] got = b.sample(sc.ws.logits, count, params, positions);
                System.arraycopy(got, 0, tokens, from, count);
            }
            b.sync();
            phases[0] += since(t);
            double total = (System.nanoTime() - started) / 1e9;
            double wait = waitNanos / 1e9;
            return new Outcome(seqs, tokens, sameDevice, peerCopy, total - wait, wait, timePhases ? phases.clone() : null, false);
        }

        private long mark() {
            if (timePhases) {
                b.sync();
            }
            return System.nanoTime();
        }

        private double since(long t0) {
            if (timePhases) {
                b.sync();
            }
            return (System.nanoTime() - t0) / 1e9;
        }
    }
}
