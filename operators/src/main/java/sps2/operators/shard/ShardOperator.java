package sps2.operators.shard;

import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.runtime.execution.SuppressRestartsException;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.gpu.Backend;
import sps2.gpu.BlockAllocator;
import sps2.gpu.Tensor;
import sps2.model.ModelConfig;
import sps2.model.generation.StopRule;
import sps2.model.tokenizer.Tokenizer;
import sps2.operators.JobSettings;
import sps2.operators.feedback.FeedbackChannel;
import sps2.operators.messages.Generation;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.messages.StepSeq;
import sps2.operators.runtime.ShardRuntime;
import sps2.operators.runtime.StepContext;
import sps2.operators.state.KvEntry;
import sps2.operators.state.KvEntrySerializer;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/**
 * One shard of the job: keyed by shard ({@link sps2.operators.ShardKeys}), one subtask per shard, it runs the
 * scheduler's step for this shard through every layer with a {@link ShardEngine}, emits the token events of the
 * rows it samples, and reports the step to the scheduler. The exchange between the shards of one
 * sequence-parallel group stays on the devices ({@link PeerExchange}); nothing but the step and its result
 * crosses Flink, so a decode step costs two hops (scheduler to shard, shard to the feedback tail) at any SP degree
 * and model depth, and one where the scheduler runs in the shard's JVM (the result then goes to it in-JVM).
 *
 * <p>The shards of a group must share one TaskManager: at start each waits for all of them to join its group in
 * this JVM and fails the job, without restarts, naming what to change when they do not.
 *
 * <p>Keyed state (with snapshot KV recovery only): per layer and request, the {@link KvEntry} with the K/V values
 * this shard holds, put back on the device when a restored request is first touched. With recompute recovery the
 * scheduler's token histories are all that is kept.
 */
public final class ShardOperator extends KeyedProcessFunction<Integer, ShardStep, StepResult> {
    private static final Logger LOG = LoggerFactory.getLogger(ShardOperator.class);
    public static final OutputTag<TokenEvent> TOKENS = new OutputTag<>("tokens") { };
    /** Longest wait for a peer's data within an iteration (a backstop: a failed peer fails the job, which cancels the wait). */
    private static final Duration EXCHANGE_TIMEOUT = Duration.ofMinutes(10);
    /** How long a shard waits at start for the rest of its group to open in this TaskManager. */
    private static final Duration PLACEMENT_TIMEOUT = Duration.ofMinutes(2);

    private final JobSettings settings;
    private final String pipeline;
    private final boolean latencyCritical;

    private transient int shard;
    private transient ShardRuntime runtime;
    private transient PeerExchange exchange;
    private transient ShardEngine engine;
    private transient MapState<String, KvEntry>[] kvState;
    /** Requests whose KV (snapshot recovery) is on the device in this process. */
    private transient Set<String> onDevice;
    private transient ShardMetrics metrics;

    /**
     * @param pipeline        "decode" or "prefill" (sps2 mode runs both over the same shards), or "mixed" (Sarathi)
     * @param latencyCritical this operator runs decode iterations beside a prefill pipeline on the same devices:
     *                        its device work is preferred ({@link Backend#preferLatency})
     */
    public ShardOperator(JobSettings settings, String pipeline, boolean latencyCritical) {
        this.settings = settings;
        this.pipeline = pipeline;
        this.latencyCritical = latencyCritical;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void open(OpenContext ctx) throws Exception {
        shard = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        int attempt = getRuntimeContext().getTaskInfo().getAttemptNumber();
        runtime = ShardRuntime.acquire(settings, shard, attempt);
        if (latencyCritical) {
            runtime.backend().preferLatency();
        }
        boolean grouped = !settings.sarathi() && settings.shards() > 1;
        if (grouped) {
            exchange = PeerExchange.join(settings.runtimeId() + "#" + pipeline + "#" + attempt, settings.shards(), shard);
            if (!exchange.awaitMembers(PLACEMENT_TIMEOUT)) {
                throw new SuppressRestartsException(new IllegalStateException("Shards " + exchange.missing() + " of the " + settings.shards()
                        + "-shard sequence-parallel group did not start in the TaskManager of shard " + shard + " within "
                        + PLACEMENT_TIMEOUT.toSeconds() + " s. sps2 runs the shards of one group in one TaskManager (they exchange through "
                        + "device memory): give the TaskManagers at least " + settings.shards() + " task slots each "
                        + "(taskmanager.numberOfTaskSlots) and one TaskManager per sequence-parallel group, or lower --sp-degree."));
            }
        }
        engine = new ShardEngine(runtime, shard, exchange, settings.csa(), EXCHANGE_TIMEOUT, false, !settings.snapshotKv());
        onDevice = new HashSet<>();
        if (settings.snapshotKv()) {
            int layers = runtime.model().config().nLayers();
            kvState = new MapState[layers];
            for (int l = 0; l < layers; l++) {
                kvState[l] = getRuntimeContext().getMapState(new MapStateDescriptor<>("kv-layer-" + l, StringSerializer.INSTANCE,
                        KvEntrySerializer.INSTANCE));
            }
        }
        metrics = new ShardMetrics(getRuntimeContext().getMetricGroup());
        ShardEngine e = engine;
        getRuntimeContext().getMetricGroup().gauge("decodeStepsRunAhead", (org.apache.flink.metrics.Gauge<Long>) e::stepsAhead);
        settings.hooks().shardOpened();
        LOG.info("Shard {} of the {} pipeline is open on {}{}.", shard, pipeline, runtime.backend().name(),
                grouped ? ", with its " + settings.shards() + "-shard group in this TaskManager" : "");
    }

    @Override
    public void close() {
        if (engine != null) {
            engine.close();
        }
        if (exchange != null) {
            exchange.leave(shard);
        }
        if (runtime != null) {
            runtime.release();
            settings.hooks().shardClosed();
        }
    }

    @Override
    public void processElement(ShardStep step, Context ctx, Collector<StepResult> out) throws Exception {
        long started = System.nanoTime();
        dropReleased(step);
        for (StepSeq w : step.seqs) {
            putBackKv(w.requestId);
        }
        if (step.restoreOnly) {
            deliver(result(step, 0, started), out);
            return;
        }
        ShardEngine.Outcome o = engine.run(step, settings.snapshotKv() ? recorder(step) : ShardEngine.Observer.NONE);
        StepResult result = result(step, o.tokens().length, started);
        emitTokens(step, o, result, ctx);
        settings.hooks().sampled(o.tokens().length);
        result.computeSeconds = o.computeSeconds();
        result.waitSeconds = o.waitSeconds();
        result.bytesSent = o.bytesReceived();
        metrics.iterationDone(o, step.prefill);
        deliver(result, out);
        if (o.graph()) {
            // the next step most likely repeats this one a token further: start it while the result makes the round trip
            boolean[] continues = new boolean[result.finished.length];
            for (int i = 0; i < continues.length; i++) {
                continues[i] = !result.finished[i];
            }
            engine.runAhead(step, result.tokens, continues);
        }
    }

    /**
     * Hands the result to the scheduler: in-JVM when the scheduler runs in this process (embedded mode, or a
     * TaskManager that holds it: one Flink hop fewer per step), otherwise down the edge to the feedback tail.
     */
    private void deliver(StepResult result, Collector<StepResult> out) {
        result.endedNanos = System.nanoTime();
        if (FeedbackChannel.deliver(settings.runtimeId(), result)) {
            metrics.resultInJvm();
        } else {
            out.collect(result);
        }
    }

    private StepResult result(ShardStep step, int sampled, long started) {
        StepResult r = new StepResult();
        r.startedNanos = started;
        r.iteration = step.iteration;
        r.shard = shard;
        r.prefill = step.prefill;
        r.requests = new String[sampled];
        r.tokens = new int[sampled];
        r.finished = new boolean[sampled];
        r.pieces = new String[sampled];
        return r;
    }

    /** Token events of the sampled rows, with their stop decisions, into the result for the scheduler. */
    private void emitTokens(ShardStep step, ShardEngine.Outcome o, StepResult result, Context ctx) {
        Tokenizer tok = runtime.loaded().tokenizer().orElse(null); // none: token ids only, no end-of-sequence token
        long now = System.currentTimeMillis();
        for (int i = 0; i < o.tokens().length; i++) {
            StepSeq w = step.seqs[o.sampledSeqs()[i]];
            int token = o.tokens()[i];
            int position = w.startPos + w.rows();
            String piece = tok == null ? "" : tok.decode(w.tokens[w.rows() - 1], token);
            String text = (w.textSoFar == null ? "" : w.textSoFar) + piece;
            Generation g = w.generation;
            StopRule rule = new StopRule(g.maxTokens, g.ignoreEos || tok == null ? -1 : tok.eos(), g.ignoreEos, toSet(g.stopTokens),
                    g.stopStrings == null ? List.of() : Arrays.asList(g.stopStrings), settings.contextLength());
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
            result.requests[i] = w.requestId;
            result.tokens[i] = token;
            result.finished[i] = reason != StopRule.Reason.NONE;
            result.pieces[i] = piece;
        }
    }

    private static Set<Integer> toSet(int[] v) {
        Set<Integer> s = new HashSet<>();
        if (v != null) {
            for (int x : v) {
                s.add(x);
            }
        }
        return s;
    }

    private void dropReleased(ShardStep step) throws Exception {
        if (step.released == null) {
            return;
        }
        for (String r : step.released) {
            onDevice.remove(r);
            if (kvState != null) {
                for (MapState<String, KvEntry> s : kvState) {
                    s.remove(r);
                }
            }
        }
    }

    /** Snapshot recovery: records, per layer, the tokens whose KV the step stored, with their K/V values read back from the device. */
    private ShardEngine.Observer recorder(ShardStep step) {
        return new ShardEngine.Observer() {
            @Override
            public void kvStored(int layer, StepContext sc) {
                try {
                    recordKv(layer, sc);
                } catch (Exception e) {
                    throw new IllegalStateException("Recording the KV of layer " + layer + " in keyed state failed", e);
                }
            }

            @Override
            public boolean watchesLayers() {
                return true;
            }
        };
    }

    private void recordKv(int layer, StepContext sc) throws Exception {
        ModelConfig c = runtime.model().config();
        int kvDim = c.kvDim();
        int bs = runtime.pool().blockSize();
        float[] k = new float[sc.rows() * kvDim];
        float[] v = new float[sc.rows() * kvDim];
        runtime.backend().read(sc.ws.k, 0, k, 0, sc.rows());
        runtime.backend().read(sc.ws.v, 0, v, 0, sc.rows());
        for (int s = 0; s < sc.step.seqs.length; s++) {
            StepSeq w = sc.step.seqs[s];
            if (!w.appendKv) {
                continue;
            }
            int n = w.rows();
            int[] slots = new int[n];
            for (int i = 0; i < n; i++) {
                slots[i] = BlockAllocator.slot(w.blockTable, bs, w.kvBefore + i);
            }
            int from = sc.rowStart[s] * kvDim;
            float[] rowsK = Arrays.copyOfRange(k, from, from + n * kvDim);
            float[] rowsV = Arrays.copyOfRange(v, from, from + n * kvDim);
            KvEntry e = kvState[layer].get(w.requestId);
            kvState[layer].put(w.requestId, (e == null ? KvEntry.empty() : e).append(w.blockTable, w.tokens, w.startPos, slots, rowsK, rowsV));
            onDevice.add(w.requestId);
        }
    }

    /**
     * Snapshot recovery: the first time this process touches a request whose K/V values are in keyed state
     * (restored from a checkpoint), writes them back into the device pool at their slots, every layer.
     */
    private void putBackKv(String requestId) throws Exception {
        if (kvState == null || !onDevice.add(requestId)) {
            return;
        }
        Backend b = runtime.backend();
        int kvDim = runtime.model().config().kvDim();
        int layers = 0;
        int tokens = 0;
        for (int l = 0; l < kvState.length; l++) {
            KvEntry e = kvState[l].get(requestId);
            if (e == null || !e.hasValues()) {
                continue;
            }
            int n = e.tokenCount();
            try (Tensor k = b.allocate(n, kvDim); Tensor v = b.allocate(n, kvDim); Tensor slots = b.upload(e.slots())) {
                b.write(k, 0, e.k(), 0, n);
                b.write(v, 0, e.v(), 0, n);
                b.kvWrite(runtime.pool(), l, k, v, slots, n);
                b.sync();
            }
            layers++;
            tokens = n;
        }
        if (layers > 0) {
            LOG.debug("Put back the KV of {} tokens of request {} in {} layers from keyed state.", tokens, requestId, layers);
        }
    }
}
