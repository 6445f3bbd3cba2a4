package sps2.operators.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.operators.MailboxExecutor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.base.StringSerializer;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.Triggerable;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.tasks.mailbox.TaskMailbox;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.gpu.BlockAllocator;
import sps2.model.ModelConfig;
import sps2.operators.JobSettings;
import sps2.operators.feedback.FeedbackChannel;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.messages.StepSeq;
import sps2.operators.placement.Segmenter;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/**
 * The scheduler: one subtask that owns admission (KV capacity), placement (segments on shards, where
 * decode appends) and the iteration batches. It receives admitted requests as its input and the shards'
 * step results through the in-JVM feedback edge ({@link FeedbackChannel}, delivered into this task's
 * mailbox so everything runs on the task thread).
 *
 * <p>sps2 mode: at most one prefill iteration (one request, cut into cost-balanced segments over the
 * shards) and one decode iteration (every decoding request together) are in flight; a decode iteration
 * therefore never waits for a whole prefill to finish. sarathi mode: one iteration at a time per job, each
 * worker's batch filled up to the chunk budget with running decodes first, then the partial prefill,
 * then new prefills (stall-free batching); a request lives on one worker.
 *
 * <p>Recovery: the request states (token histories) are keyed state; KV is device memory and is not
 * restored. After a restore every active request is prefilled again from its history, which reproduces
 * the same next tokens because sampling depends only on (seed, position).
 */
@SuppressWarnings("unchecked")
public final class SchedulerOperator extends AbstractStreamOperator<ShardStep>
        implements OneInputStreamOperator<Admitted, ShardStep>, Triggerable<Integer, VoidNamespace> {
    private static final Logger LOG = LoggerFactory.getLogger(SchedulerOperator.class);
    public static final OutputTag<TokenEvent> REJECTIONS = new OutputTag<>("rejections", TypeInformation.of(TokenEvent.class));
    /** sps2 mode: prefill iterations go to their own pipeline of shard operators, so decode never queues behind them. */
    public static final OutputTag<ShardStep> PREFILL_STEPS = new OutputTag<>("prefill-steps", TypeInformation.of(ShardStep.class));
    private static final long WATCHDOG_MS = 100;
    /**
     * Order of waiting requests: higher priority first (every int, Integer.MIN_VALUE too: no negation, which
     * overflows for it), then earlier arrival.
     */
    static final Comparator<Map.Entry<String, RequestState>> SCHEDULING_ORDER =
            Comparator.<Map.Entry<String, RequestState>, Integer>comparing(e -> e.getValue().request.priority, Comparator.reverseOrder())
                    .thenComparingLong(e -> e.getValue().arrival);

    private final JobSettings settings;

    private transient MapState<String, RequestState> requests;
    private transient InternalTimerService<VoidNamespace> timers;
    private transient BlockAllocator[] allocators;
    private transient Map<Long, Set<Integer>> inFlight;
    private transient Map<Long, Boolean> inFlightIsPrefill;
    /** Per iteration in flight: issue time, rows, and the sums of what its shards reported. */
    private transient Map<Long, double[]> inFlightStats;
    /** When the last decode iteration's last result came in (for the scheduler's gap between decode steps). */
    private transient long lastDecodeDoneNanos;
    private transient org.apache.flink.metrics.Histogram decodeWallMs;
    private transient org.apache.flink.metrics.Histogram decodeOverheadMs;
    /** Finished requests not yet told to each shard, per stage pipeline (0: decode or mixed, 1: prefill). */
    private transient Map<Integer, List<String>>[] released;
    private transient Segmenter segmenter;
    private transient long nextIteration;
    private transient long arrivals;
    private transient boolean restoredStatePending;
    private transient boolean timerSet;
    /** The restore step after a snapshot recovery while it is in flight; decoding waits for it. */
    private transient long restoreIteration;
    private transient MailboxExecutor mailbox;
    private transient org.apache.flink.metrics.Counter duplicatesIgnored;
    private transient org.apache.flink.metrics.Counter idConflicts;

    public SchedulerOperator(JobSettings settings) {
        this.settings = settings;
    }

    @Override
    public void open() throws Exception {
        super.open();
        requests = getKeyedStateStore().getMapState(new MapStateDescriptor<>("requests", org.apache.flink.api.common.typeinfo.Types.STRING, TypeInformation.of(RequestState.class)));
        timers = getInternalTimerService("scheduler-watchdog", VoidNamespaceSerializer.INSTANCE, this);
        allocators = new BlockAllocator[settings.shards()];
        for (int s = 0; s < allocators.length; s++) {
            allocators[s] = new BlockAllocator(settings.kvBlocks(), settings.blockSize());
            allocators[s].claim(new int[] {0}); // block 0 is every shard's scratch block
        }
        inFlight = new HashMap<>();
        inFlightIsPrefill = new HashMap<>();
        inFlightStats = new HashMap<>();
        decodeWallMs = getMetricGroup().histogram("decodeStepWallMs", new org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram(1000));
        decodeOverheadMs = getMetricGroup().histogram("decodeStepOverheadMs", new org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram(1000));
        getMetricGroup().gauge("iterationsInFlight", () -> inFlightStats.size());
        duplicatesIgnored = getMetricGroup().counter("duplicateRequestsIgnored");
        idConflicts = getMetricGroup().counter("requestIdConflicts");
        released = new Map[] {new HashMap<>(), new HashMap<>()};
        // the segment cost model needs the model's shape, read from its header here rather than when the graph is built
        ModelConfig config = sps2.model.ModelLoader.load(java.nio.file.Path.of(settings.modelPath())).config();
        segmenter = new Segmenter(config, settings.minSegment());
        nextIteration = (System.nanoTime() & 0x7fffffffL) << 24;
        restoredStatePending = true;
        restoreIteration = -1;
        mailbox = getContainingTask().getMailboxExecutorFactory().createExecutor(TaskMailbox.MIN_PRIORITY);
        MailboxExecutor mb = mailbox;
        FeedbackChannel.register(settings.runtimeId(), r -> mb.execute(() -> onResult(r), "step result"));
        LOG.info("The scheduler runs in {} mode over {} shards with {} KV blocks of {} tokens each.", settings.mode(), settings.shards(),
                settings.kvBlocks(), settings.blockSize());
    }

    @Override
    public void close() throws Exception {
        FeedbackChannel.unregister(settings.runtimeId());
        super.close();
    }

    @Override
    public void processElement(StreamRecord<Admitted> element) throws Exception {
        Admitted a = element.getValue();
        recoverIfRestored();
        RequestState running = requests.get(a.requestId);
        if (running != null) {
            // A retry of the same request (a producer retry, a client resending) is the request itself: it
            // runs once. A different request under a running id is not served, and its notice must not end
            // the running one's stream: index -2 and finished false, which consumers of that stream skip.
            if (sameRequest(running.request, a)) {
                duplicatesIgnored.inc();
                LOG.info("Request {} arrived again with the same content while it runs; the copy is ignored.", a.requestId);
            } else {
                idConflicts.inc();
                TokenEvent notice = TokenEvent.newBuilder().setRequestId(a.requestId).setIndex(-2).setFinished(false)
                        .setFinishReason(FinishReason.ID_CONFLICT)
                        .setError("A different request with id " + a.requestId + " arrived while the request with that id runs; it was not served"
                                + " and the running request goes on. Request ids must be unique.")
                        .setEmitTimestampMs(System.currentTimeMillis()).build();
                output.collect(REJECTIONS, new StreamRecord<>(notice));
                LOG.info("Did not serve a different request under the running id {}.", a.requestId);
            }
            return;
        }
        int need = a.promptTokens.length + a.maxTokens;
        long capacity = (long) settings.shards() * (settings.kvBlocks() - 1) * settings.blockSize();
        long perWorker = (long) (settings.kvBlocks() - 1) * settings.blockSize();
        if (need > (settings.sarathi() ? perWorker : capacity)) {
            reject(a.requestId, "The request needs KV for " + need + " tokens but the job holds at most "
                    + (settings.sarathi() ? perWorker : capacity) + "; send a shorter prompt or fewer max tokens.", FinishReason.REJECTED);
            return;
        }
        RequestState r = new RequestState();
        r.request = a;
        r.arrival = arrivals++;
        requests.put(a.requestId, r);
        schedule();
    }

    @Override
    public void onProcessingTime(InternalTimer<Integer, VoidNamespace> timer) throws Exception {
        timerSet = false;
        recoverIfRestored();
        schedule();
    }

    @Override
    public void onEventTime(InternalTimer<Integer, VoidNamespace> timer) {
    }

    /**
     * After a restore the device KV is gone. With recompute recovery every running request goes back to
     * prefill its token history. With snapshot recovery a decoding request keeps its placement and blocks:
     * the stages kept its K/V in keyed state and put it back (the prefill pipeline in a restore step sent
     * now, the decode pipeline on first use); a step that was in flight at the checkpoint is rolled back
     * and issued again. A request caught in prefill is prefilled again either way.
     */
    private void recoverIfRestored() throws Exception {
        if (!restoredStatePending) {
            return;
        }
        restoredStatePending = false;
        int again = 0;
        long maxArrival = -1;
        Map<Integer, List<StepSeq>> restore = new LinkedHashMap<>();
        for (Map.Entry<String, RequestState> e : requests.entries()) {
            RequestState r = e.getValue();
            maxArrival = Math.max(maxArrival, r.arrival);
            if (r.phase == RequestState.WAITING) {
                continue;
            }
            if (settings.snapshotKv() && r.phase == RequestState.DECODE) {
                for (int i = 0; i < r.peers.length; i++) {
                    allocators[r.peers[i]].claim(r.blockTables[i]);
                }
                if (r.stepInFlight) {
                    r.kvTokens[r.lastAppendPeer]--;
                    r.stepInFlight = false;
                }
                for (int i = 0; i < r.peers.length; i++) {
                    StepSeq w = baseWork(e.getKey(), r);
                    w.tokens = new int[0];
                    w.blockTable = r.blockTables[i];
                    w.kvBefore = r.kvTokens[i];
                    w.peers = r.peers;
                    w.peerIndex = i;
                    restore.computeIfAbsent(r.peers[i], k -> new ArrayList<>()).add(w);
                }
            } else {
                r.phase = RequestState.WAITING;
                r.peers = new int[0];
                r.blockTables = new int[0][];
                r.kvTokens = new int[0];
                r.prefilled = 0;
                r.stepInFlight = false;
                again++;
            }
            requests.put(e.getKey(), r);
        }
        arrivals = maxArrival + 1;
        int resumed = (int) restore.values().stream().flatMap(List::stream).map(w -> w.requestId).distinct().count();
        if (resumed > 0) {
            restoreIteration = nextIteration++;
            issue(restoreIteration, true, restore, true);
            LOG.info("Restored {} decoding requests with the KV kept in keyed state; the stages put it back on the devices.", resumed);
        }
        if (again > 0) {
            LOG.info("Restored {} requests that were running; they are prefilled again from their token history.", again);
        }
        Recoveries.record(settings.runtimeId(), resumed, again);
    }

    private void onResult(StepResult r) throws Exception {
        setCurrentKey(0);
        Set<Integer> waiting = inFlight.get(r.iteration);
        if (waiting == null) {
            LOG.debug("Ignoring the result of unknown iteration {} (from before a restart).", r.iteration);
            return;
        }
        for (int i = 0; i < r.requests.length; i++) {
            RequestState s = requests.get(r.requests[i]);
            if (s == null) {
                continue;
            }
            s.stepInFlight = false;
            s.generated = Arrays.copyOf(s.generated, s.generated.length + 1);
            s.generated[s.generated.length - 1] = r.tokens[i];
            s.text = s.text + r.pieces[i];
            if (r.finished[i]) {
                finish(r.requests[i], s);
            } else {
                s.phase = RequestState.DECODE;
                requests.put(r.requests[i], s);
            }
        }
        waiting.remove(r.shard);
        double[] st = inFlightStats.get(r.iteration);
        long now = System.nanoTime();
        if (st != null) {
            st[2] = Math.max(st[2], r.computeSeconds * 1e3);
            st[3] = Math.max(st[3], r.waitSeconds * 1e3);
            st[4] += r.bytesSent;
            st[5] = Math.max(st[5], (r.startedNanos - (long) st[0]) / 1e6);
            st[6] = Math.max(st[6], (now - r.endedNanos) / 1e6);
            st[8] = Math.max(st[8], (r.endedNanos - r.startedNanos) / 1e6);
        }
        if (waiting.isEmpty()) {
            if (r.iteration == restoreIteration) {
                restoreIteration = -1;
            }
            inFlight.remove(r.iteration);
            boolean prefill = inFlightIsPrefill.remove(r.iteration);
            if (st != null) {
                inFlightStats.remove(r.iteration);
                double wall = (now - st[0]) / 1e6;
                StepTimings.record(settings.runtimeId(), new StepTimings.Step(prefill, (int) st[1], wall, st[2], st[3], (long) st[4], st[8], st[5],
                        st[6], st[7]));
                if (!prefill) {
                    lastDecodeDoneNanos = now;
                }
                if (!prefill) {
                    decodeWallMs.update(Math.round(wall * 1000));
                    decodeOverheadMs.update(Math.round(Math.max(0, wall - st[2]) * 1000));
                }
            }
        }
        schedule();
    }

    /** Whether two submissions ask for the same generation (priority and arrival time aside). */
    static boolean sameRequest(Admitted a, Admitted b) {
        return Arrays.equals(a.promptTokens, b.promptTokens) && a.maxTokens == b.maxTokens
                && Float.compare(a.temperature, b.temperature) == 0 && a.topK == b.topK && Float.compare(a.topP, b.topP) == 0
                && Float.compare(a.minP, b.minP) == 0 && a.seed == b.seed && a.ignoreEos == b.ignoreEos
                && Arrays.equals(a.stopTokens, b.stopTokens) && Arrays.equals(a.stopStrings, b.stopStrings);
    }

    private void finish(String id, RequestState s) throws Exception {
        for (int i = 0; i < s.peers.length; i++) {
            allocators[s.peers[i]].release(s.blockTables[i]);
            for (Map<Integer, List<String>> pipeline : released) {
                pipeline.computeIfAbsent(s.peers[i], k -> new ArrayList<>()).add(id);
            }
        }
        requests.remove(id);
    }

    private void reject(String id, String message, FinishReason reason) {
        TokenEvent ev = TokenEvent.newBuilder().setRequestId(id).setIndex(-1).setFinished(true).setFinishReason(reason)
                .setError(message).setEmitTimestampMs(System.currentTimeMillis()).build();
        output.collect(REJECTIONS, new StreamRecord<>(ev));
        LOG.info("Rejected request {}: {}", id, message);
    }

    private boolean anyInFlight(boolean prefill) {
        return inFlightIsPrefill.containsValue(prefill);
    }

    private void schedule() throws Exception {
        recoverIfRestored();
        List<Map.Entry<String, RequestState>> all = new ArrayList<>();
        for (Map.Entry<String, RequestState> e : requests.entries()) {
            all.add(Map.entry(e.getKey(), e.getValue()));
        }
        if (!all.isEmpty() && !timerSet) {
            timers.registerProcessingTimeTimer(VoidNamespace.INSTANCE, getProcessingTimeService().getCurrentProcessingTime() + WATCHDOG_MS);
            timerSet = true;
        }
        if (settings.sarathi()) {
            if (inFlight.isEmpty()) {
                scheduleSarathi(all);
            }
            return;
        }
        if (!anyInFlight(true)) {
            all.stream()
                    .filter(e -> e.getValue().phase == RequestState.WAITING)
                    .min(SCHEDULING_ORDER)
                    .ifPresent(e -> startPrefill(e.getKey(), e.getValue()));
        }
        if (!anyInFlight(false) && restoreIteration < 0) {
            List<Map.Entry<String, RequestState>> decoding = all.stream().filter(e -> e.getValue().phase == RequestState.DECODE).toList();
            if (!decoding.isEmpty()) {
                startDecode(decoding);
            }
        }
    }

    /** sps2: cut the history into segments over the shards with the most free KV and prefill them in parallel. */
    private void startPrefill(String id, RequestState r) {
        try {
            int[] history = r.history();
            int n = history.length;
            int[] bounds = segmenter.split(n, settings.shards());
            int k = bounds.length - 1;
            Integer[] order = new Integer[settings.shards()];
            for (int s = 0; s < order.length; s++) {
                order[s] = s;
            }
            Arrays.sort(order, Comparator.comparingInt((Integer s) -> -allocators[s].freeBlocks()).thenComparingInt(s -> s));
            int[] peers = new int[k];
            for (int i = 0; i < k; i++) {
                peers[i] = order[i];
            }
            Arrays.sort(peers);
            int remainingDecode = r.request.maxTokens - r.generated.length;
            int[][] tables = new int[k][];
            for (int i = 0; i < k; i++) {
                int tokens = bounds[i + 1] - bounds[i];
                if (i == k - 1 && settings.appendPolicy() == JobSettings.AppendPolicy.TAIL) {
                    tokens += remainingDecode;
                }
                tables[i] = allocators[peers[i]].allocate(allocators[peers[i]].blocksFor(tokens));
                if (tables[i] == null) {
                    for (int j = 0; j < i; j++) {
                        allocators[peers[j]].release(tables[j]);
                    }
                    LOG.debug("Request {} waits for KV space.", id);
                    return;
                }
            }
            r.peers = peers;
            r.blockTables = tables;
            r.kvTokens = new int[k];
            r.phase = RequestState.PREFILL;
            r.prefillStartMs = System.currentTimeMillis();
            Map<Integer, List<StepSeq>> perShard = new LinkedHashMap<>();
            for (int i = 0; i < k; i++) {
                StepSeq w = baseWork(id, r);
                w.mode = StepSeq.PREFILL;
                w.tokens = Arrays.copyOfRange(history, bounds[i], bounds[i + 1]);
                w.startPos = bounds[i];
                w.blockTable = tables[i];
                w.kvBefore = 0;
                w.appendKv = true;
                w.peers = peers;
                w.segmentStarts = Arrays.copyOf(bounds, k);
                w.peerIndex = i;
                w.sample = i == k - 1;
                r.kvTokens[i] = w.tokens.length;
                perShard.put(peers[i], List.of(w));
            }
            requests.put(id, r);
            issue(nextIteration++, true, perShard);
        } catch (Exception e) {
            throw new IllegalStateException("Scheduling the prefill of " + id + " failed", e);
        }
    }

    /**
     * sps2: one decode iteration with every decoding request. Every shard that holds KV of any of them (the
     * members) runs every row, in the same order: a row whose request keeps no KV on a shard attends to nothing
     * there. Each member merges all members' partial attention in member order, so all hold the same activations
     * after each layer and the request's last segment samples.
     */
    private void startDecode(List<Map.Entry<String, RequestState>> decoding) throws Exception {
        long iteration = nextIteration++;
        java.util.TreeSet<Integer> memberSet = new java.util.TreeSet<>();
        List<Map.Entry<String, RequestState>> rows = new ArrayList<>();
        List<Integer> appendAt = new ArrayList<>();
        for (Map.Entry<String, RequestState> e : decoding) {
            RequestState r = e.getValue();
            int at = appendPeer(r);
            if (at < 0) {
                finishWithError(e.getKey(), r, "The KV cache is full: no shard of this request has room for another token.");
                continue;
            }
            rows.add(e);
            appendAt.add(at);
            for (int p : r.peers) {
                memberSet.add(p);
            }
        }
        int[] members = memberSet.stream().mapToInt(Integer::intValue).toArray();
        Map<Integer, List<StepSeq>> perShard = new LinkedHashMap<>();
        for (int m : members) {
            perShard.put(m, new ArrayList<>());
        }
        for (int k = 0; k < rows.size(); k++) {
            Map.Entry<String, RequestState> e = rows.get(k);
            RequestState r = e.getValue();
            int at = appendAt.get(k);
            int pos = r.kvTotal();
            int last = r.generated[r.generated.length - 1];
            for (int m : members) {
                int i = indexOf(r.peers, m);
                StepSeq w = baseWork(e.getKey(), r);
                w.mode = StepSeq.DECODE;
                w.tokens = new int[] {last};
                w.startPos = pos;
                w.peers = r.peers;
                w.peerIndex = i;
                if (i >= 0) {
                    w.kvBefore = r.kvTokens[i];
                    w.appendKv = i == at;
                    w.blockTable = r.blockTables[i];
                    w.sample = i == r.peers.length - 1;
                } else {
                    w.kvBefore = 0;
                    w.appendKv = false;
                    w.blockTable = new int[0];
                    w.sample = false;
                }
                perShard.get(m).add(w);
            }
            r.kvTokens[at]++;
            r.stepInFlight = true;
            r.lastAppendPeer = at;
            requests.put(e.getKey(), r);
        }
        issue(iteration, false, perShard, false, members);
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }

    /** Index (into peers) of the shard that stores the next token's KV, growing its block table if needed; -1 if none can. */
    private int appendPeer(RequestState r) {
        int[] candidates;
        if (settings.appendPolicy() == JobSettings.AppendPolicy.TAIL) {
            candidates = new int[] {r.peers.length - 1};
        } else {
            Integer[] order = new Integer[r.peers.length];
            for (int i = 0; i < order.length; i++) {
                order[i] = i;
            }
            Arrays.sort(order, Comparator.comparingInt((Integer i) -> r.kvTokens[i]).thenComparingInt(i -> i));
            candidates = Arrays.stream(order).mapToInt(Integer::intValue).toArray();
        }
        for (int i : candidates) {
            int capacity = r.blockTables[i].length * settings.blockSize();
            if (r.kvTokens[i] < capacity) {
                return i;
            }
            int[] more = allocators[r.peers[i]].allocate(1);
            if (more != null) {
                r.blockTables[i] = Arrays.copyOf(r.blockTables[i], r.blockTables[i].length + 1);
                r.blockTables[i][r.blockTables[i].length - 1] = more[0];
                return i;
            }
        }
        return -1;
    }

    private void finishWithError(String id, RequestState r, String message) throws Exception {
        finish(id, r);
        reject(id, message, FinishReason.ERROR);
    }

    /** sarathi: per worker, decodes first, then the partial prefill, then new prefills, up to the chunk budget. */
    private void scheduleSarathi(List<Map.Entry<String, RequestState>> all) throws Exception {
        long iteration = nextIteration++;
        Map<Integer, List<StepSeq>> perShard = new LinkedHashMap<>();
        int[] budget = new int[settings.shards()];
        Arrays.fill(budget, settings.chunkSize());
        List<Map.Entry<String, RequestState>> byArrival = new ArrayList<>(all);
        byArrival.sort(SCHEDULING_ORDER);
        // 1. running decodes
        for (Map.Entry<String, RequestState> e : byArrival) {
            RequestState r = e.getValue();
            if (r.phase == RequestState.DECODE && budget[r.peers[0]] > 0) {
                int worker = r.peers[0];
                StepSeq w = baseWork(e.getKey(), r);
                w.mode = StepSeq.DECODE;
                w.tokens = new int[] {r.generated[r.generated.length - 1]};
                w.startPos = r.kvTokens[0];
                w.kvBefore = r.kvTokens[0];
                w.appendKv = true;
                fillSingleWorker(w, r);
                r.kvTokens[0]++;
                budget[worker]--;
                perShard.computeIfAbsent(worker, k -> new ArrayList<>()).add(w);
                requests.put(e.getKey(), r);
            }
        }
        // 2. partial prefills, then 3. new prefills (placed on the worker with the most free KV)
        for (int pass = 0; pass < 2; pass++) {
            for (Map.Entry<String, RequestState> e : byArrival) {
                RequestState r = e.getValue();
                boolean partial = r.phase == RequestState.PREFILL;
                if (pass == 0 ? !partial : r.phase != RequestState.WAITING) {
                    continue;
                }
                if (pass == 1) {
                    int target = mostFreeWorker();
                    if (budget[target] <= 0 || !placeOnWorker(target, r)) {
                        continue;
                    }
                }
                int worker = r.peers[0];
                if (budget[worker] <= 0) {
                    continue;
                }
                int[] history = r.history();
                int take = Math.min(budget[worker], history.length - r.prefilled);
                StepSeq w = baseWork(e.getKey(), r);
                w.mode = StepSeq.PREFILL;
                w.tokens = Arrays.copyOfRange(history, r.prefilled, r.prefilled + take);
                w.startPos = r.prefilled;
                w.kvBefore = r.prefilled;
                w.appendKv = true;
                fillSingleWorker(w, r);
                w.sample = r.prefilled + take == history.length;
                r.prefilled += take;
                r.kvTokens[0] = r.prefilled;
                budget[worker] -= take;
                perShard.computeIfAbsent(worker, k -> new ArrayList<>()).add(w);
                requests.put(e.getKey(), r);
            }
        }
        issue(iteration, false, perShard);
    }

    /** Sends one iteration's steps, one record per shard, and tracks it until every shard has reported. */
    private void issue(long iteration, boolean prefill, Map<Integer, List<StepSeq>> perShard) {
        issue(iteration, prefill, perShard, false, new int[0]);
    }

    private void issue(long iteration, boolean prefill, Map<Integer, List<StepSeq>> perShard, boolean restoreOnly) {
        issue(iteration, prefill, perShard, restoreOnly, new int[0]);
    }

    /** @param members decode with sequence parallelism: the shards that exchange partial attention, ascending */
    private void issue(long iteration, boolean prefill, Map<Integer, List<StepSeq>> perShard, boolean restoreOnly, int[] members) {
        if (perShard.isEmpty()) {
            return;
        }
        int rows = 0;
        long issued = System.nanoTime();
        for (Map.Entry<Integer, List<StepSeq>> e : perShard.entrySet()) {
            emit(iteration, e.getKey(), prefill, e.getValue().toArray(new StepSeq[0]), restoreOnly, members, issued);
            for (StepSeq w : e.getValue()) {
                rows += w.rows();
            }
        }
        inFlight.put(iteration, new HashSet<>(perShard.keySet()));
        inFlightIsPrefill.put(iteration, prefill);
        double gap = !prefill && !restoreOnly && lastDecodeDoneNanos > 0 ? (issued - lastDecodeDoneNanos) / 1e6 : 0;
        inFlightStats.put(iteration, new double[] {issued, rows, 0, 0, 0, 0, 0, gap, 0});
    }

    private int mostFreeWorker() {
        int best = 0;
        for (int s = 1; s < allocators.length; s++) {
            if (allocators[s].freeBlocks() > allocators[best].freeBlocks()) {
                best = s;
            }
        }
        return best;
    }

    private boolean placeOnWorker(int best, RequestState r) {
        int need = r.history().length + r.request.maxTokens - r.generated.length;
        int[] table = allocators[best].allocate(allocators[best].blocksFor(need));
        if (table == null) {
            return false;
        }
        r.peers = new int[] {best};
        r.blockTables = new int[][] {table};
        r.kvTokens = new int[] {0};
        r.prefilled = 0;
        r.phase = RequestState.PREFILL;
        r.prefillStartMs = System.currentTimeMillis();
        return true;
    }

    private static void fillSingleWorker(StepSeq w, RequestState r) {
        w.blockTable = r.blockTables[0];
        w.peers = r.peers;
        w.peerIndex = 0;
        w.sample = true;
    }

    private StepSeq baseWork(String id, RequestState r) {
        Admitted a = r.request;
        StepSeq w = new StepSeq();
        w.requestId = id;
        w.promptTokens = a.promptTokens.length;
        w.maxTokens = a.maxTokens;
        w.temperature = a.temperature;
        w.topK = a.topK;
        w.topP = a.topP;
        w.minP = a.minP;
        w.seed = a.seed;
        w.ignoreEos = a.ignoreEos;
        w.stopTokens = a.stopTokens;
        w.stopStrings = a.stopStrings;
        w.outputIndex = r.generated.length;
        w.textSoFar = r.text;
        w.admittedAtMs = a.admittedAtMs;
        w.prefillStartMs = r.prefillStartMs;
        return w;
    }

    private void emit(long iteration, int shard, boolean prefill, StepSeq[] seqs, boolean restoreOnly, int[] members, long issued) {
        ShardStep step = new ShardStep();
        step.issuedNanos = issued;
        step.members = members;
        step.restoreOnly = restoreOnly;
        step.iteration = iteration;
        step.shard = shard;
        step.prefill = prefill;
        step.seqs = seqs;
        step.issuedAtMs = System.currentTimeMillis();
        boolean prefillPipeline = prefill && !settings.sarathi();
        List<String> rel = released[prefillPipeline ? 1 : 0].remove(shard);
        step.released = rel == null ? new String[0] : rel.toArray(new String[0]);
        if (prefillPipeline) {
            output.collect(PREFILL_STEPS, new StreamRecord<>(step));
        } else {
            output.collect(new StreamRecord<>(step));
        }
    }
}
