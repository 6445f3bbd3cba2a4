package sps2.operators.stage;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.gpu.Backend;
import sps2.gpu.LlamaModel;
import sps2.gpu.PendingRead;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.ModelConfig;
import sps2.model.generation.StopRule;
import sps2.model.sampler.SamplingParams;
import sps2.model.tokenizer.Tokenizer;
import sps2.operators.JobSettings;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.csa.KvExchange;
import sps2.operators.messages.SeqWork;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StageMsg;
import sps2.operators.messages.StepResult;
import sps2.operators.runtime.IterationContext;
import sps2.operators.runtime.Readiness;
import sps2.operators.runtime.ShardRuntime;
import sps2.operators.state.KvEntry;
import sps2.operators.state.KvEntrySerializer;
import sps2.operators.testing.FaultInjector;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/**
 * Stage {@code s} of the transformer unrolled into operators, one subtask per shard. Stage 0 embeds the
 * step's tokens; stage s (1 &le; s &le; L) completes the attention of layer s-1 with what other shards sent
 * (remote prefill K/V, or decode partials), merged in peer order with the exact log-sum-exp rule, and runs
 * the rest of layer s-1 (o_proj, MLP). Stage s &lt; L then projects layer s, stores its KV, sends what
 * other shards need, computes the local attention while that is in flight, and hands the iteration to
 * stage s+1 of the same shard as a handle. Stage L samples on the owner shard.
 *
 * <p>Keyed by shard ({@link sps2.operators.ShardKeys}); its keyed state holds, per request, this layer's
 * {@link KvEntry}.
 */
public final class LayerStage extends KeyedProcessFunction<Integer, StageMsg, StageMsg> {
    private static final Logger LOG = LoggerFactory.getLogger(LayerStage.class);
    public static final OutputTag<TokenEvent> TOKENS = new OutputTag<>("tokens") { };
    public static final OutputTag<StepResult> RESULTS = new OutputTag<>("step-results") { };

    private final JobSettings settings;
    private final int stage;
    private final int layers;
    private final int[] shardKeys;
    private final boolean latencyCritical;

    private transient ShardRuntime runtime;
    private transient int shard;
    private transient CsaPolicy csa;
    private transient Map<Long, Pending> pending;
    /** Requests whose KV for this layer is on the device in this process (snapshot recovery puts it back on first use). */
    private transient java.util.Set<String> onDevice;
    private transient MapState<String, KvEntry> kvState;
    private transient Counter bytesSent;
    private transient StageMetrics metrics;

    /** Remote contributions to one iteration that have arrived at this stage. */
    private static final class Pending {
        boolean own;
        long ownArrivedNanos;
        final Map<Integer, StageMsg> fromShard = new HashMap<>();
        int nextPeer;
    }

    /**
     * @param latencyCritical whether this operator runs decode iterations beside a separate prefill pipeline on
     *     the same devices (sps2 mode): its device work is then preferred ({@link Backend#preferLatency})
     */
    public LayerStage(JobSettings settings, int stage, int layers, int[] shardKeys, boolean latencyCritical) {
        this.settings = settings;
        this.stage = stage;
        this.layers = layers;
        this.shardKeys = shardKeys;
        this.latencyCritical = latencyCritical;
    }

    @Override
    public void open(OpenContext ctx) {
        shard = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        runtime = ShardRuntime.acquire(settings, shard, getRuntimeContext().getTaskInfo().getAttemptNumber());
        if (latencyCritical) {
            runtime.backend().preferLatency();
        }
        csa = CsaPolicy.parse(settings.csa());
        pending = new HashMap<>();
        onDevice = new HashSet<>();
        if (stage < layers) {
            kvState = getRuntimeContext().getMapState(new MapStateDescriptor<>("kv-layer-" + stage, StringSerializer.INSTANCE, KvEntrySerializer.INSTANCE));
        }
        bytesSent = getRuntimeContext().getMetricGroup().counter("bytesExchanged");
        metrics = new StageMetrics(getRuntimeContext().getMetricGroup());
        Readiness.opened(settings.runtimeId());
    }

    @Override
    public void close() {
        if (runtime != null) {
            runtime.release();
            Readiness.closed(settings.runtimeId());
        }
    }

    @Override
    public void processElement(StageMsg msg, Context ctx, Collector<StageMsg> out) throws Exception {
        switch (msg.kind) {
            case StageMsg.STEP -> {
                if (msg.step.restoreOnly) {
                    restore(msg.step, ctx, out);
                    return;
                }
                if (stage != 0) {
                    throw new IllegalStateException("Stage " + stage + " received a scheduler step");
                }
                long t0 = System.nanoTime();
                IterationContext ic = runtime.begin(msg.step);
                runtime.model().embed(ic.ws, ic.tokens, ic.rows());
                ic.computeSeconds += (System.nanoTime() - t0) / 1e9;
                tail(ic, ctx, out);
            }
            case StageMsg.OWN -> {
                Pending p = pending.computeIfAbsent(msg.iteration, k -> new Pending());
                p.own = true;
                p.ownArrivedNanos = System.nanoTime();
                advance(msg.iteration, p, ctx, out);
            }
            case StageMsg.KV, StageMsg.PARTIAL -> {
                Pending p = pending.computeIfAbsent(msg.iteration, k -> new Pending());
                p.fromShard.put(msg.fromShard, msg);
                if (p.own) {
                    advance(msg.iteration, p, ctx, out);
                }
            }
            default -> throw new IllegalStateException("Unknown stage message kind " + msg.kind);
        }
    }

    /** Folds in whatever remote data is ready, in peer order; when all is there, finishes layer stage-1. */
    private void advance(long iteration, Pending p, Context ctx, Collector<StageMsg> out) throws Exception {
        IterationContext ic = runtime.context(iteration);
        LlamaModel model = runtime.model();
        ShardStep step = ic.step;
        long t0 = System.nanoTime();
        if (step.prefill) {
            // One request per prefill iteration in sps2 mode: attend to each earlier segment as it arrives.
            SeqWork w = step.seqs[0];
            while (p.nextPeer < w.peerIndex) {
                StageMsg kv = p.fromShard.get(w.peers[p.nextPeer]);
                if (kv == null) {
                    ic.computeSeconds += (System.nanoTime() - t0) / 1e9;
                    return;
                }
                attendRemote(ic, kv);
                p.nextPeer++;
            }
        } else if (needsPartials(step)) {
            int expected = expectedPartials(step);
            if (p.fromShard.size() < expected) {
                return;
            }
            mergePartials(ic, p);
        }
        long waited = Math.max(0, t0 - p.ownArrivedNanos);
        ic.waitSeconds += waited / 1e9;
        pending.remove(iteration);
        model.finishLayer(stage - 1, ic.ws, ic.rows());
        runtime.backend().sync();
        ic.computeSeconds += (System.nanoTime() - t0) / 1e9;
        metrics.waitNanos(waited);
        if (stage < layers) {
            tail(ic, ctx, out);
        } else {
            finish(ic, ctx);
        }
    }

    private static boolean needsPartials(ShardStep step) {
        for (SeqWork w : step.seqs) {
            if (w.peers.length > 1) {
                return true;
            }
        }
        return false;
    }

    /** Number of other shards that send this shard a PARTIAL message for the step. */
    private int expectedPartials(ShardStep step) {
        HashSet<Integer> others = new HashSet<>();
        for (SeqWork w : step.seqs) {
            for (int peer : w.peers) {
                if (peer != shard) {
                    others.add(peer);
                }
            }
        }
        return others.size();
    }

    /** Project layer {@code stage}, store its KV, send remote data, attend locally, hand on the iteration. */
    private void tail(IterationContext ic, Context ctx, Collector<StageMsg> out) throws Exception {
        long t0 = System.nanoTime();
        int layer = stage;
        LlamaModel model = runtime.model();
        Backend b = runtime.backend();
        int n = ic.rows();
        ShardStep step = ic.step;
        dropReleased(step);
        for (SeqWork w : step.seqs) {
            putBackKv(w.requestId);
        }
        model.project(layer, ic.ws, ic.positions, n);
        b.kvWrite(runtime.pool(), layer, ic.ws.k, ic.ws.v, ic.slots, n);
        recordKv(ic);
        // Prefill: the K/V copies to the host start now and run while the own attention computes.
        KvExchange.Outgoing sending = step.prefill ? startPrefillKv(ic) : null;
        model.attend(layer, ic.ws, runtime.pool(), ic.batch);
        if (sending != null) {
            emitPrefillKv(ic, sending, out);
        }
        if (!step.prefill && needsPartials(step)) {
            sendPartials(ic, out);
        }
        b.sync();
        ic.computeSeconds += (System.nanoTime() - t0) / 1e9;
        out.collect(StageMsg.own(shard, step.iteration, layer + 1));
    }

    private void dropReleased(ShardStep step) throws Exception {
        if (step.released != null) {
            for (String r : step.released) {
                kvState.remove(r);
                onDevice.remove(r);
            }
        }
    }

    /**
     * Records in keyed state the tokens whose KV this step stored: their positions and pool slots, and with
     * snapshot recovery their K/V values (read back from the device).
     */
    private void recordKv(IterationContext ic) throws Exception {
        int kvDim = runtime.model().config().kvDim();
        int bs = runtime.pool().blockSize();
        float[] k = null;
        float[] v = null;
        if (settings.snapshotKv()) {
            k = new float[ic.rows() * kvDim];
            v = new float[ic.rows() * kvDim];
            runtime.backend().read(ic.ws.k, 0, k, 0, ic.rows());
            runtime.backend().read(ic.ws.v, 0, v, 0, ic.rows());
        }
        for (int s = 0; s < ic.step.seqs.length; s++) {
            SeqWork w = ic.step.seqs[s];
            if (!w.appendKv) {
                continue;
            }
            int n = w.rows();
            int[] slots = new int[n];
            for (int i = 0; i < n; i++) {
                slots[i] = sps2.gpu.BlockAllocator.slot(w.blockTable, bs, w.kvBefore + i);
            }
            int from = ic.rowStart[s] * kvDim;
            float[] rowsK = k == null ? null : java.util.Arrays.copyOfRange(k, from, from + n * kvDim);
            float[] rowsV = v == null ? null : java.util.Arrays.copyOfRange(v, from, from + n * kvDim);
            KvEntry e = kvState.get(w.requestId);
            kvState.put(w.requestId, (e == null ? KvEntry.empty() : e).append(w.blockTable, w.tokens, w.startPos, slots, rowsK, rowsV));
            onDevice.add(w.requestId);
        }
    }

    /**
     * Snapshot recovery: the first time this process touches a request whose K/V values for this layer are in
     * keyed state (restored from a checkpoint), writes them back into the device pool at their slots.
     */
    private void putBackKv(String requestId) throws Exception {
        if (!settings.snapshotKv() || stage >= layers || !onDevice.add(requestId)) {
            return;
        }
        KvEntry e = kvState.get(requestId);
        if (e == null || !e.hasValues()) {
            return;
        }
        Backend b = runtime.backend();
        int n = e.tokenCount();
        int kvDim = runtime.model().config().kvDim();
        try (sps2.gpu.Tensor k = b.allocate(n, kvDim); sps2.gpu.Tensor v = b.allocate(n, kvDim); sps2.gpu.Tensor slots = b.upload(e.slots())) {
            b.write(k, 0, e.k(), 0, n);
            b.write(v, 0, e.v(), 0, n);
            b.kvWrite(runtime.pool(), stage, k, v, slots, n);
            b.sync();
        }
        LOG.debug("Put back the layer {} KV of {} tokens of request {} from keyed state.", stage, n, requestId);
    }

    /** A restore step: put this layer's kept K/V of its requests back on the device, pass the step on, report at the end. */
    private void restore(ShardStep step, Context ctx, Collector<StageMsg> out) throws Exception {
        if (stage < layers) {
            dropReleased(step);
            for (SeqWork w : step.seqs) {
                putBackKv(w.requestId);
            }
            out.collect(StageMsg.step(step));
            return;
        }
        StepResult result = new StepResult();
        result.iteration = step.iteration;
        result.shard = shard;
        result.prefill = true;
        result.requests = new String[0];
        result.tokens = new int[0];
        result.finished = new boolean[0];
        result.pieces = new String[0];
        ctx.output(RESULTS, result);
    }

    /**
     * Starts copying this shard's segment K/V of layer {@code stage}, thinned by the CSA policy, for every later
     * peer; null if there is none.
     */
    private KvExchange.Outgoing startPrefillKv(IterationContext ic) {
        SeqWork w = ic.step.seqs[0];
        if (w.peerIndex == w.peers.length - 1) {
            return null;
        }
        ModelConfig c = runtime.model().config();
        List<int[][]> selections = new ArrayList<>();
        for (int j = w.peerIndex + 1; j < w.peers.length; j++) {
            selections.add(csa.select(w.startPos, w.rows(), w.segmentStarts[j], c.nKvHeads()));
        }
        return KvExchange.send(runtime.backend(), ic.ws.k, ic.ws.v, c.nKvHeads(), c.headSize(), selections);
    }

    /** Waits for the copies started by {@link #startPrefillKv} and sends one KV message to each later peer. */
    private void emitPrefillKv(IterationContext ic, KvExchange.Outgoing sending, Collector<StageMsg> out) {
        SeqWork w = ic.step.seqs[0];
        KvExchange.Packed[] packed = sending.await();
        for (int j = w.peerIndex + 1; j < w.peers.length; j++) {
            KvExchange.Packed p = packed[j - w.peerIndex - 1];
            StageMsg m = new StageMsg();
            m.kind = StageMsg.KV;
            m.targetShard = w.peers[j];
            m.fromShard = shard;
            m.iteration = ic.step.iteration;
            m.layer = stage;
            m.requestId = w.requestId;
            m.headLens = p.headLens();
            m.maxLen = p.maxLen();
            m.payload = p.payload();
            m.payloadType = p.type().code();
            m.sentNanos = System.nanoTime();
            ic.bytesSent += m.payloadBytes();
            bytesSent.inc(m.payloadBytes());
            out.collect(m);
        }
    }

    /** Attention of the own queries over one earlier segment's K/V, folded into the running result. */
    private void attendRemote(IterationContext ic, StageMsg kv) {
        KvExchange.attendAndMerge(runtime.model(), ic.ws, ic.rows(), new KvExchange.Packed(kv.wireType(), kv.payload, kv.headLens, kv.maxLen));
    }

    /**
     * Decode: sends this shard's partial attention (output and log-sum-exp) of every shared row to each other
     * peer. The rows come to the host in the device's own element type, through page-locked buffers; nothing is
     * left to overlap with here (the next stage needs the merge), so the copies are awaited at once.
     */
    private void sendPartials(IterationContext ic, Collector<StageMsg> out) {
        ModelConfig c = runtime.model().config();
        Backend b = runtime.backend();
        int n = ic.rows();
        int qDim = c.nHeads() * c.headSize();
        int nh = c.nHeads();
        int[] all = new int[n];
        for (int i = 0; i < n; i++) {
            all[i] = i;
        }
        PendingRead attRead = b.readAsync(new Tensor[] {ic.ws.att}, qDim, all);
        PendingRead lseRead = b.readAsync(new Tensor[] {ic.ws.lse}, nh, all);
        WireType type = attRead.type();
        if (lseRead.type() != WireType.F32) {
            attRead.close();
            lseRead.close();
            throw new IllegalStateException("The backend reads the attention lse as " + lseRead.type() + "; partials need it in float32");
        }
        byte[] att = attRead.await();
        byte[] lse = lseRead.await();
        ic.ownAttHost = att;
        ic.ownLseHost = lse;
        int ab = qDim * type.bytes();
        int lb = nh * Float.BYTES;
        Map<Integer, List<Integer>> rowsFor = new HashMap<>();
        for (int s = 0; s < ic.step.seqs.length; s++) {
            for (int peer : ic.step.seqs[s].peers) {
                if (peer != shard) {
                    rowsFor.computeIfAbsent(peer, k -> new ArrayList<>()).add(s);
                }
            }
        }
        for (Map.Entry<Integer, List<Integer>> e : rowsFor.entrySet()) {
            List<Integer> seqs = e.getValue();
            int rows = seqs.size();
            byte[] payload = new byte[rows * (ab + lb)];
            String[] ids = new String[rows];
            for (int i = 0; i < rows; i++) {
                int row = ic.rowStart[seqs.get(i)];
                ids[i] = ic.step.seqs[seqs.get(i)].requestId;
                System.arraycopy(att, row * ab, payload, i * ab, ab);
                System.arraycopy(lse, row * lb, payload, rows * ab + i * lb, lb);
            }
            StageMsg m = new StageMsg();
            m.kind = StageMsg.PARTIAL;
            m.targetShard = e.getKey();
            m.fromShard = shard;
            m.iteration = ic.step.iteration;
            m.layer = stage;
            m.rowRequests = ids;
            m.payload = payload;
            m.payloadType = type.code();
            m.sentNanos = System.nanoTime();
            ic.bytesSent += m.payloadBytes();
            bytesSent.inc(m.payloadBytes());
            out.collect(m);
        }
    }

    /** Rebuilds att/lse of every decode row as the merge of its peers' partials, taken in peer order. */
    private void mergePartials(IterationContext ic, Pending p) {
        ModelConfig c = runtime.model().config();
        Backend b = runtime.backend();
        int n = ic.rows();
        int qDim = c.nHeads() * c.headSize();
        int nh = c.nHeads();
        WireType type = b.wireType(ic.ws.att);
        int ab = qDim * type.bytes();
        int lb = nh * Float.BYTES;
        Map<Integer, Map<String, Integer>> rowIndex = new HashMap<>();
        for (StageMsg m : p.fromShard.values()) {
            Map<String, Integer> idx = new HashMap<>();
            for (int i = 0; i < m.rowRequests.length; i++) {
                idx.put(m.rowRequests[i], i);
            }
            rowIndex.put(m.fromShard, idx);
        }
        int maxPeers = 0;
        for (SeqWork w : ic.step.seqs) {
            maxPeers = Math.max(maxPeers, w.peers.length);
        }
        byte[] att2 = new byte[n * ab];
        byte[] lse2 = new byte[n * lb];
        for (int pi = 0; pi < maxPeers; pi++) {
            WireType.F32.fill(lse2, 0, n * nh, Float.NEGATIVE_INFINITY);
            for (int s = 0; s < ic.step.seqs.length; s++) {
                SeqWork w = ic.step.seqs[s];
                int row = ic.rowStart[s];
                if (pi >= w.peers.length) {
                    continue;
                }
                int src = w.peers[pi];
                if (src == shard) {
                    System.arraycopy(ic.ownAttHost, row * ab, att2, row * ab, ab);
                    System.arraycopy(ic.ownLseHost, row * lb, lse2, row * lb, lb);
                } else {
                    StageMsg m = p.fromShard.get(src);
                    int i = rowIndex.get(src).get(w.requestId);
                    WireType mt = m.wireType();
                    int mab = qDim * mt.bytes();
                    WireType.copy(mt, m.payload, i * mab, type, att2, row * ab, qDim);
                    System.arraycopy(m.payload, m.rowRequests.length * mab + i * lb, lse2, row * lb, lb);
                }
            }
            if (pi == 0) {
                b.write(ic.ws.att, 0, type, att2, 0, n);
                b.write(ic.ws.lse, 0, WireType.F32, lse2, 0, n);
            } else {
                b.write(ic.ws.att2, 0, type, att2, 0, n);
                b.write(ic.ws.lse2, 0, WireType.F32, lse2, 0, n);
                b.mergeAttention(ic.ws.att, ic.ws.lse, ic.ws.att2, ic.ws.lse2, n, nh, c.headSize());
            }
        }
    }

    /** Last stage: logits and sampling on the owner shard, token events, and the step result for the scheduler. */
    private void finish(IterationContext ic, Context ctx) {
        ShardStep step = ic.step;
        LlamaModel model = runtime.model();
        ModelConfig c = model.config();
        Tokenizer tok = runtime.loaded().tokenizer().orElse(null); // none: token ids only, no end-of-sequence token
        List<Integer> sampleSeqs = new ArrayList<>();
        for (int s = 0; s < step.seqs.length; s++) {
            if (step.seqs[s].sample) {
                sampleSeqs.add(s);
            }
        }
        StepResult result = new StepResult();
        result.iteration = step.iteration;
        result.shard = shard;
        result.prefill = step.prefill;
        result.requests = new String[sampleSeqs.size()];
        result.tokens = new int[sampleSeqs.size()];
        result.finished = new boolean[sampleSeqs.size()];
        result.pieces = new String[sampleSeqs.size()];
        long now = System.currentTimeMillis();
        int chunk = Math.min(256, ic.ws.capacity);
        for (int from = 0; from < sampleSeqs.size(); from += chunk) {
            int count = Math.min(chunk, sampleSeqs.size() - from);
            int[] rows = new int[count];
            for (int i = 0; i < count; i++) {
                int s = sampleSeqs.get(from + i);
                rows[i] = ic.rowStart[s] + step.seqs[s].rows() - 1;
            }
            model.logits(ic.ws, rows);
            // Sampling where the logits are (on a GPU only the token ids come back), the same draw as Sampler's.
            SamplingParams[] params = new SamplingParams[count];
            int[] positions = new int[count];
            for (int i = 0; i < count; i++) {
                SeqWork w = step.seqs[sampleSeqs.get(from + i)];
                params[i] = new SamplingParams(w.temperature, w.topK, w.topP, w.minP, w.seed);
                positions[i] = w.startPos + w.rows();
            }
            int[] tokens = runtime.backend().sample(ic.ws.logits, count, params, positions);
            for (int i = 0; i < count; i++) {
                SeqWork w = step.seqs[sampleSeqs.get(from + i)];
                int position = positions[i];
                int token = tokens[i];
                int prev = w.tokens[w.rows() - 1];
                String piece = tok == null ? "" : tok.decode(prev, token);
                String text = (w.textSoFar == null ? "" : w.textSoFar) + piece;
                StopRule rule = new StopRule(w.maxTokens, w.ignoreEos || tok == null ? -1 : tok.eos(), w.ignoreEos, toSet(w.stopTokens),
                        w.stopStrings == null ? List.of() : Arrays.asList(w.stopStrings), settings.contextLength());
                StopRule.Reason reason = rule.after(token, w.outputIndex, position, text);
                TokenEvent ev = TokenEvent.newBuilder()
                        .setRequestId(w.requestId)
                        .setIndex(w.outputIndex)
                        .setTokenId(token)
                        .setText(piece)
                        .setFinished(reason != StopRule.Reason.NONE)
                        .setFinishReason(reason == StopRule.Reason.LENGTH ? FinishReason.LENGTH
                                : reason == StopRule.Reason.STOP ? FinishReason.STOP : FinishReason.NONE)
                        .setPromptTokens(w.promptTokens)
                        .setQueueMs(Math.max(0, w.prefillStartMs - w.admittedAtMs))
                        .setPrefillMs(w.outputIndex == 0 ? now - w.prefillStartMs : 0)
                        .setFirstTokenMs(w.outputIndex == 0 ? now - w.admittedAtMs : 0)
                        .setEmitTimestampMs(now)
                        .build();
                ctx.output(TOKENS, ev);
                metrics.token(w.requestId, w.outputIndex, ev.getFinished(), now, w.admittedAtMs);
                int k = from + i;
                result.requests[k] = w.requestId;
                result.tokens[k] = token;
                result.finished[k] = reason != StopRule.Reason.NONE;
                result.pieces[k] = piece;
            }
        }
        FaultInjector.sampled(settings.runtimeId(), sampleSeqs.size());
        result.computeSeconds = ic.computeSeconds;
        result.waitSeconds = ic.waitSeconds;
        result.bytesSent = ic.bytesSent;
        metrics.iterationDone(ic, step.prefill);
        runtime.end(step.iteration);
        ctx.output(RESULTS, result);
    }

    private static java.util.Set<Integer> toSet(int[] v) {
        java.util.Set<Integer> s = new HashSet<>();
        if (v != null) {
            for (int x : v) {
                s.add(x);
            }
        }
        return s;
    }
}
