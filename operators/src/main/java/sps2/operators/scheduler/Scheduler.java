package sps2.operators.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.operators.JobSettings;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.messages.StepSeq;
import sps2.operators.placement.Segmenter;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/**
 * The scheduler, without Flink: admission (KV capacity, retries and id conflicts), the iterations in flight, the
 * shards' results, and recovery after a restore. How requests are batched into iterations and where their KV goes
 * is the {@link SchedulingPolicy} of the job's mode. {@link SchedulerOperator} runs it in the job; it is used from
 * one thread.
 *
 * <p>Recovery: the request states (token histories) are kept in the {@link RequestStore}; KV is device memory and
 * is not. After a restore every active request is prefilled again from its history, which reproduces the same next
 * tokens because sampling depends only on (seed, position) — unless the shards keep K/V in their keyed state
 * (snapshot KV recovery), in which case decoding requests resume where they were.
 */
public final class Scheduler {
    private static final Logger LOG = LoggerFactory.getLogger(Scheduler.class);
    /**
     * Order of waiting requests: higher priority first (every int, Integer.MIN_VALUE too: no negation, which
     * overflows for it), then earlier arrival.
     */
    static final Comparator<Map.Entry<String, RequestState>> SCHEDULING_ORDER =
            Comparator.<Map.Entry<String, RequestState>, Integer>comparing(e -> e.getValue().request.priority, Comparator.reverseOrder())
                    .thenComparingLong(e -> e.getValue().arrival);

    /** Where the scheduler's decisions go. */
    public interface Output {
        /** A shard's step of an iteration; prefill steps (sps2 mode) go to the prefill pipeline's shards. */
        void step(ShardStep step);

        /** An event for a request's token stream that no shard sends: a rejection, an error, an id conflict. */
        void notice(TokenEvent event);

        /** The scheduler holds requests: it wants {@link Scheduler#onTimer} called in a while, as a watchdog. */
        void wakeUpLater();
    }

    /** What the scheduler observes, for metrics and tests. */
    public interface Listener {
        default void duplicateIgnored() {
        }

        default void idConflict() {
        }

        /** After a restore: how many running requests resumed with their KV, and how many are prefilled again. */
        default void recovered(int resumedFromSnapshot, int prefilledAgain) {
        }

        /** An iteration's last result came in. */
        default void iterationDone(StepTimings.Step step) {
        }
    }

    /** The scheduler's time: wall clock for timestamps in events, a monotonic clock for durations. */
    public interface Clock {
        Clock SYSTEM = new Clock() {
            @Override
            public long millis() {
                return System.currentTimeMillis();
            }

            @Override
            public long nanos() {
                return System.nanoTime();
            }
        };

        long millis();

        long nanos();
    }

    private final boolean snapshotKv;
    private final KvSpace kv;
    private final SchedulingPolicy policy;
    private final RequestStore requests;
    private final Output output;
    private final Listener listener;
    private final Clock clock;
    private final Map<Long, InFlightIteration> inFlight = new HashMap<>();
    /** Finished requests not yet told to each shard, per pipeline: 0 decode (or mixed), 1 prefill. */
    private final List<Map<Integer, List<String>>> released = List.of(new HashMap<>(), new HashMap<>());
    private final Iterations iterations = new Iterations();
    /** When the last decode iteration's last result came in (for the scheduler's gap between decode steps). */
    private long lastDecodeDoneNanos;
    private long nextIteration;
    private long arrivals;
    private boolean recoveryPending = true;
    /** The restore step after a snapshot recovery while it is in flight; decoding waits for it. */
    private long restoreIteration = -1;

    /**
     * @param recovery how the shards bring KV back after a restore
     * @param requests the request states, as restored (empty on a fresh start)
     */
    Scheduler(JobSettings.KvRecovery recovery, KvSpace kv, SchedulingPolicy policy, RequestStore requests, Output output, Listener listener,
            Clock clock) {
        this.snapshotKv = recovery == JobSettings.KvRecovery.SNAPSHOT;
        this.kv = kv;
        this.policy = policy;
        this.requests = requests;
        this.output = output;
        this.listener = listener;
        this.clock = clock;
        // iteration ids of this incarnation differ from those of results still on their way from before a restart
        this.nextIteration = (clock.nanos() & 0x7fffffffL) << 24;
    }

    /** The scheduler of a job with these settings, over the KV blocks its shards hold. */
    public static Scheduler create(JobSettings settings, Segmenter segmenter, RequestStore requests, Output output, Listener listener,
            Clock clock) {
        KvSpace kv = new KvSpace(settings.shards(), settings.kvBlocks(), settings.blockSize());
        return new Scheduler(settings.kvRecovery(), kv, SchedulingPolicy.of(settings, segmenter, kv, clock), requests, output, listener, clock);
    }

    /** A request arrives: it is served unless it is a copy of a running one, reuses a running one's id, or can never fit. */
    public void admit(Admitted a) throws Exception {
        recoverIfRestored();
        RequestState running = requests.get(a.requestId);
        if (running != null) {
            // A retry of the same request (a producer retry, a client resending) is the request itself: it
            // runs once. A different request under a running id is not served, and its notice must not end
            // the running one's stream: index -2 and finished false, which consumers of that stream skip.
            if (sameRequest(running.request, a)) {
                listener.duplicateIgnored();
                LOG.info("Request {} arrived again with the same content while it runs; the copy is ignored.", a.requestId);
            } else {
                listener.idConflict();
                output.notice(TokenEvent.newBuilder().setRequestId(a.requestId).setIndex(-2).setFinished(false)
                        .setFinishReason(FinishReason.ID_CONFLICT)
                        .setError("A different request with id " + a.requestId + " arrived while the request with that id runs; it was not served"
                                + " and the running request goes on. Request ids must be unique.")
                        .setEmitTimestampMs(clock.millis()).build());
                LOG.info("Did not serve a different request under the running id {}.", a.requestId);
            }
            return;
        }
        int need = a.promptTokens.length + a.generation.maxTokens;
        if (need > policy.maxRequestTokens()) {
            reject(a.requestId, "The request needs KV for " + need + " tokens but the job holds at most " + policy.maxRequestTokens()
                    + "; send a shorter prompt or fewer max tokens.", FinishReason.REJECTED);
            return;
        }
        RequestState r = new RequestState();
        r.request = a;
        r.arrival = arrivals++;
        requests.put(a.requestId, r);
        schedule();
    }

    /** The watchdog asked for with {@link Output#wakeUpLater}. */
    public void onTimer() throws Exception {
        recoverIfRestored();
        schedule();
    }

    /** One shard's result of its step: the tokens it sampled; when it is the iteration's last, the next iterations start. */
    public void onResult(StepResult r) throws Exception {
        InFlightIteration it = inFlight.get(r.iteration);
        if (it == null) {
            LOG.debug("Ignoring the result of unknown iteration {} (from before a restart).", r.iteration);
            return;
        }
        for (int i = 0; i < r.requests.length; i++) {
            RequestState s = requests.get(r.requests[i]);
            if (s == null) {
                continue;
            }
            s.stepInFlight = false;
            s.append(r.tokens[i], r.pieces[i]);
            if (r.finished[i]) {
                finish(r.requests[i], s);
            } else {
                s.phase = RequestState.DECODE;
                requests.put(r.requests[i], s);
            }
        }
        long now = clock.nanos();
        if (it.report(r, now)) {
            if (r.iteration == restoreIteration) {
                restoreIteration = -1;
            }
            inFlight.remove(r.iteration);
            listener.iterationDone(it.timing(now));
            if (!it.prefill) {
                lastDecodeDoneNanos = now;
            }
        }
        schedule();
    }

    /** Iterations issued and not yet reported by all their shards. */
    public int iterationsInFlight() {
        return inFlight.size();
    }

    /** Requests decoding now: those whose KV a checkpoint taken now holds (with snapshot recovery). */
    public int decodingRequests() throws Exception {
        int n = 0;
        for (Map.Entry<String, RequestState> e : requests.entries()) {
            n += e.getValue().phase == RequestState.DECODE ? 1 : 0;
        }
        return n;
    }

    /** Whether two submissions ask for the same generation (priority and arrival time aside). */
    static boolean sameRequest(Admitted a, Admitted b) {
        return Arrays.equals(a.promptTokens, b.promptTokens) && a.generation.equals(b.generation);
    }

    /**
     * After a restore the device KV is gone. With recompute recovery every running request goes back to
     * prefill its token history. With snapshot recovery a decoding request keeps its placement and blocks:
     * the shards kept its K/V in keyed state and put it back (the prefill pipeline in a restore step sent
     * now, the decode pipeline on first use); a step that was in flight at the checkpoint is rolled back
     * and issued again. A request caught in prefill is prefilled again either way.
     */
    private void recoverIfRestored() throws Exception {
        if (!recoveryPending) {
            return;
        }
        recoveryPending = false;
        int again = 0;
        long maxArrival = -1;
        Map<Integer, List<StepSeq>> restore = new LinkedHashMap<>();
        for (Map.Entry<String, RequestState> e : requests.entries()) {
            RequestState r = e.getValue();
            maxArrival = Math.max(maxArrival, r.arrival);
            if (r.phase == RequestState.WAITING) {
                continue;
            }
            if (snapshotKv && r.phase == RequestState.DECODE) {
                for (int i = 0; i < r.peers.length; i++) {
                    kv.claim(r.peers[i], r.blockTables[i]);
                }
                if (r.stepInFlight) {
                    r.kvTokens[r.lastAppendPeer]--;
                    r.stepInFlight = false;
                }
                for (int i = 0; i < r.peers.length; i++) {
                    StepSeq w = r.newSeq();
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
            restoreIteration = issue(true, restore, true, new int[0]);
            LOG.info("Restored {} decoding requests with the KV kept in keyed state; the shards put it back on the devices.", resumed);
        }
        if (again > 0) {
            LOG.info("Restored {} requests that were running; they are prefilled again from their token history.", again);
        }
        listener.recovered(resumed, again);
    }

    private void schedule() throws Exception {
        recoverIfRestored();
        List<Map.Entry<String, RequestState>> all = new ArrayList<>();
        for (Map.Entry<String, RequestState> e : requests.entries()) {
            all.add(Map.entry(e.getKey(), e.getValue()));
        }
        if (!all.isEmpty()) {
            output.wakeUpLater();
        }
        policy.schedule(all, iterations);
    }

    /**
     * Sends one iteration's steps, one per shard, and tracks it until every shard has reported.
     *
     * @param members decode with sequence parallelism: the shards that exchange partial attention, ascending
     * @return the iteration's id
     */
    private long issue(boolean prefill, Map<Integer, List<StepSeq>> perShard, boolean restoreOnly, int[] members) {
        long iteration = nextIteration++;
        if (perShard.isEmpty()) {
            return iteration;
        }
        int rows = 0;
        long issued = clock.nanos();
        for (Map.Entry<Integer, List<StepSeq>> e : perShard.entrySet()) {
            ShardStep step = new ShardStep();
            step.issuedNanos = issued;
            step.members = members;
            step.restoreOnly = restoreOnly;
            step.iteration = iteration;
            step.shard = e.getKey();
            step.prefill = prefill;
            step.seqs = e.getValue().toArray(new StepSeq[0]);
            step.issuedAtMs = clock.millis();
            List<String> told = released.get(prefill ? 1 : 0).remove(step.shard);
            step.released = told == null ? new String[0] : told.toArray(new String[0]);
            output.step(step);
            rows += step.rows();
        }
        double gap = !prefill && !restoreOnly && lastDecodeDoneNanos > 0 ? (issued - lastDecodeDoneNanos) / 1e6 : 0;
        inFlight.put(iteration, new InFlightIteration(iteration, prefill, perShard.keySet(), rows, issued, gap));
        return iteration;
    }

    /** Frees a request's KV, tells its shards (with their next steps) to drop it, and forgets it. */
    private void finish(String id, RequestState s) throws Exception {
        for (int i = 0; i < s.peers.length; i++) {
            kv.release(s.peers[i], s.blockTables[i]);
            for (Map<Integer, List<String>> pipeline : released) {
                pipeline.computeIfAbsent(s.peers[i], k -> new ArrayList<>()).add(id);
            }
        }
        requests.remove(id);
    }

    private void reject(String id, String message, FinishReason reason) {
        output.notice(TokenEvent.newBuilder().setRequestId(id).setIndex(-1).setFinished(true).setFinishReason(reason)
                .setError(message).setEmitTimestampMs(clock.millis()).build());
        LOG.info("Rejected request {}: {}", id, message);
    }

    /** The scheduler as its policy sees it. */
    private final class Iterations implements SchedulingPolicy.Iterations {
        @Override
        public boolean inFlight(boolean prefill) {
            return inFlight.values().stream().anyMatch(it -> it.prefill == prefill);
        }

        @Override
        public boolean anyInFlight() {
            return !inFlight.isEmpty();
        }

        @Override
        public boolean restoring() {
            return restoreIteration >= 0;
        }

        @Override
        public void update(String id, RequestState state) throws Exception {
            requests.put(id, state);
        }

        @Override
        public void start(boolean prefill, Map<Integer, List<StepSeq>> perShard, int[] members) {
            issue(prefill, perShard, false, members);
        }

        @Override
        public void fail(String id, RequestState state, String message) throws Exception {
            finish(id, state);
            reject(id, message, FinishReason.ERROR);
        }
    }
}
