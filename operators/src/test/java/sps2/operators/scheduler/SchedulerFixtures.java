package sps2.operators.scheduler;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import sps2.model.shapes.ModelShapes;
import sps2.operators.JobSettings;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.Generation;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.messages.StepSeq;
import sps2.operators.placement.Segmenter;
import sps2.schemas.TokenEvent;

/** Requests, settings, a store, outputs and stand-in shards for the scheduler's tests. */
final class SchedulerFixtures {
    static final int BLOCK_SIZE = 4;
    static final int MIN_SEGMENT = 4;
    static final Segmenter SEGMENTER = new Segmenter(ModelShapes.get("stories260k"), MIN_SEGMENT);

    private SchedulerFixtures() {
    }

    static JobSettings settings(String modelPath, JobSettings.Mode mode, int shards, int kvBlocks, JobSettings.AppendPolicy append,
            JobSettings.KvRecovery recovery) {
        return new JobSettings(modelPath, null, "default", JobSettings.BackendKind.CPU, mode, shards, CsaPolicy.parse("dense"), append, 8,
                MIN_SEGMENT, kvBlocks, BLOCK_SIZE, 4096, 1 << 20, "scheduler-test-" + java.util.UUID.randomUUID(), 1, recovery);
    }

    static JobSettings settings(JobSettings.Mode mode, int shards, int kvBlocks) {
        return settings("unused", mode, shards, kvBlocks, JobSettings.AppendPolicy.TAIL, JobSettings.KvRecovery.RECOMPUTE);
    }

    /** A request with a prompt of {@code promptTokens} distinct-looking tokens. */
    static Admitted request(String id, int promptTokens, int maxTokens) {
        Admitted a = new Admitted();
        a.requestId = id;
        a.promptTokens = new int[promptTokens];
        for (int i = 0; i < promptTokens; i++) {
            a.promptTokens[i] = Math.floorMod(id.hashCode() + 13 * i, 500);
        }
        a.generation = new Generation();
        a.generation.maxTokens = maxTokens;
        a.generation.temperature = 0.7f;
        a.generation.topK = 40;
        a.generation.topP = 0.9f;
        a.generation.seed = 42;
        a.generation.stopTokens = new int[0];
        a.generation.stopStrings = new String[0];
        return a;
    }

    /** A waiting request's state. */
    static RequestState waiting(Admitted a, long arrival) {
        RequestState r = new RequestState();
        r.request = a;
        r.arrival = arrival;
        return r;
    }

    static Scheduler scheduler(JobSettings settings, RequestStore store, Recorder recorder, Scheduler.Clock clock) {
        return Scheduler.create(settings, SEGMENTER, store, recorder, recorder, clock);
    }

    /** The request states in a map, in insertion order. */
    static final class InMemoryRequests implements RequestStore {
        final Map<String, RequestState> states = new LinkedHashMap<>();

        @Override
        public RequestState get(String id) {
            return states.get(id);
        }

        @Override
        public void put(String id, RequestState state) {
            states.put(id, state);
        }

        @Override
        public void remove(String id) {
            states.remove(id);
        }

        @Override
        public Iterable<Map.Entry<String, RequestState>> entries() {
            return states.entrySet();
        }
    }

    /** Everything a scheduler emits and reports, in order. */
    static final class Recorder implements Scheduler.Output, Scheduler.Listener {
        final Deque<ShardStep> steps = new ArrayDeque<>();
        final List<ShardStep> allSteps = new ArrayList<>();
        final List<TokenEvent> notices = new ArrayList<>();
        final List<StepTimings.Step> iterations = new ArrayList<>();
        final List<int[]> recoveries = new ArrayList<>();
        int wakeUps;
        int duplicates;
        int conflicts;

        @Override
        public void step(ShardStep step) {
            steps.add(step);
            allSteps.add(step);
        }

        @Override
        public void notice(TokenEvent event) {
            notices.add(event);
        }

        @Override
        public void wakeUpLater() {
            wakeUps++;
        }

        @Override
        public void duplicateIgnored() {
            duplicates++;
        }

        @Override
        public void idConflict() {
            conflicts++;
        }

        @Override
        public void recovered(int resumedFromSnapshot, int prefilledAgain) {
            recoveries.add(new int[] {resumedFromSnapshot, prefilledAgain});
        }

        @Override
        public void iterationDone(StepTimings.Step step) {
            iterations.add(step);
        }

        List<ShardStep> drainSteps() {
            List<ShardStep> out = new ArrayList<>(steps);
            steps.clear();
            return out;
        }
    }

    /** A clock the test moves. */
    static final class ManualClock implements Scheduler.Clock {
        long millis = 1_000;
        long nanos = 5_000_000_000L;

        @Override
        public long millis() {
            return millis;
        }

        @Override
        public long nanos() {
            return nanos;
        }

        void advanceMs(long ms) {
            millis += ms;
            nanos += ms * 1_000_000;
        }
    }

    /**
     * What a shard answers to a step without running a model: every row that samples here gets the token
     * {@link #token} of its request and output index, and a request ends at its max tokens.
     */
    static final class FakeShards {
        /** Every token sampled, per request, by output index. */
        final Map<String, Map<Integer, Integer>> sampled = new LinkedHashMap<>();

        static int token(String requestId, int outputIndex) {
            return 3 + Math.floorMod(requestId.hashCode() * 31 + 7 * outputIndex, 400);
        }

        StepResult answer(ShardStep step) {
            List<StepSeq> sampling = new ArrayList<>();
            if (!step.restoreOnly) {
                for (StepSeq w : step.seqs) {
                    if (w.sample) {
                        sampling.add(w);
                    }
                }
            }
            StepResult r = new StepResult();
            r.iteration = step.iteration;
            r.shard = step.shard;
            r.prefill = step.prefill;
            int n = sampling.size();
            r.requests = new String[n];
            r.tokens = new int[n];
            r.finished = new boolean[n];
            r.pieces = new String[n];
            for (int i = 0; i < n; i++) {
                StepSeq w = sampling.get(i);
                r.requests[i] = w.requestId;
                r.tokens[i] = token(w.requestId, w.outputIndex);
                r.finished[i] = w.outputIndex + 1 >= w.generation.maxTokens;
                r.pieces[i] = " t" + r.tokens[i];
                Integer before = sampled.computeIfAbsent(w.requestId, k -> new LinkedHashMap<>()).put(w.outputIndex, r.tokens[i]);
                if (before != null && before != r.tokens[i]) {
                    throw new AssertionError("Request " + w.requestId + " got two tokens at index " + w.outputIndex);
                }
            }
            return r;
        }

        /** Answers steps in the order they were issued, handing each result on, until no step is left. */
        void runAll(Deque<ShardStep> steps, ResultSink sink) throws Exception {
            for (int i = 0; !steps.isEmpty(); i++) {
                if (i > 10_000) {
                    throw new AssertionError("The scheduler keeps issuing steps");
                }
                sink.accept(answer(steps.poll()));
            }
        }

        /** The tokens of a request in output order; fails on a gap. */
        int[] tokens(String requestId) {
            Map<Integer, Integer> byIndex = sampled.getOrDefault(requestId, Map.of());
            int[] out = new int[byIndex.size()];
            for (int i = 0; i < out.length; i++) {
                Integer t = byIndex.get(i);
                if (t == null) {
                    throw new AssertionError("Request " + requestId + " has no token at index " + i);
                }
                out[i] = t;
            }
            return out;
        }
    }

    /** A scheduler as a policy sees it, with the iterations in flight set by the test and what the policy does recorded. */
    static final class FakeIterations implements SchedulingPolicy.Iterations {
        boolean prefillInFlight;
        boolean decodeInFlight;
        boolean restoring;
        final List<Started> started = new ArrayList<>();
        final Map<String, String> failed = new LinkedHashMap<>();
        final List<String> updated = new ArrayList<>();

        /** One iteration a policy started. */
        record Started(boolean prefill, Map<Integer, List<StepSeq>> perShard, int[] members) {
        }

        @Override
        public boolean inFlight(boolean prefill) {
            return prefill ? prefillInFlight : decodeInFlight;
        }

        @Override
        public boolean anyInFlight() {
            return prefillInFlight || decodeInFlight;
        }

        @Override
        public boolean restoring() {
            return restoring;
        }

        @Override
        public void update(String id, RequestState state) {
            updated.add(id);
        }

        @Override
        public void start(boolean prefill, Map<Integer, List<StepSeq>> perShard, int[] members) {
            started.add(new Started(prefill, perShard, members));
        }

        @Override
        public void fail(String id, RequestState state, String message) {
            failed.put(id, message);
        }

        Started only() {
            if (started.size() != 1) {
                throw new AssertionError("Expected one iteration started, got " + started.size());
            }
            return started.get(0);
        }
    }

    /** Where stand-in shards hand a result (the scheduler, or the feedback edge of an operator under test). */
    interface ResultSink {
        void accept(StepResult result) throws Exception;
    }

    /** The expected tokens of a request that ran to its max tokens. */
    static int[] expectedTokens(Admitted a) {
        int[] t = new int[a.generation.maxTokens];
        for (int i = 0; i < t.length; i++) {
            t[i] = FakeShards.token(a.requestId, i);
        }
        return t;
    }
}
