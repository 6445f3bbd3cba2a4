package sps2.operators.scheduler;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import sps2.operators.JobHooks;

/**
 * Per-iteration timings the scheduler observes: wall time from issuing an iteration to its last shard's
 * result, against the compute the shards report. The difference is what the dataflow costs (hops,
 * serialization, waiting). Exported as Flink metrics; collected here, per job in this JVM, only for a job
 * whose launcher installs the {@link #recorder} hooks (the embedded launcher does, for bench-decode).
 */
public final class StepTimings {
    /**
     * One completed iteration.
     *
     * @param shardMs  the longest a shard held the step, from taking it to handing on its result (computeMs of it in the engine)
     * @param hopInMs  from the scheduler issuing the step to the last shard taking it (the hop into the shards)
     * @param hopOutMs from the last shard handing on its result to the scheduler taking it
     * @param gapMs    decode: from the previous decode iteration's last result to this one's issue (the scheduler's
     *                 own work between steps); 0 for the first and for prefill
     */
    public record Step(boolean prefill, int rows, double wallMs, double computeMs, double waitMs, long bytes, double shardMs, double hopInMs,
            double hopOutMs, double gapMs) {
    }

    private static final Map<String, List<Step>> STEPS = new ConcurrentHashMap<>();

    private StepTimings() {
    }

    /** Hooks that collect the iterations of the job with this runtime id here, for {@link #of}; the job must run in this JVM. */
    public static JobHooks recorder(String runtimeId) {
        return new Recorder(runtimeId);
    }

    /** A copy of the iterations recorded so far. */
    public static List<Step> of(String runtimeId) {
        List<Step> steps = STEPS.get(runtimeId);
        if (steps == null) {
            return List.of();
        }
        synchronized (steps) {
            return List.copyOf(steps);
        }
    }

    public static void clear(String runtimeId) {
        STEPS.remove(runtimeId);
    }

    private record Recorder(String runtimeId) implements JobHooks {
        @Override
        public void iterationDone(Step step) {
            STEPS.computeIfAbsent(runtimeId, k -> Collections.synchronizedList(new ArrayList<>())).add(step);
        }
    }
}
