package sps2.operators.scheduler;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Per-iteration timings the scheduler observes: wall time from issuing an iteration to its last shard's
 * result, against the compute the shards report. The difference is what the dataflow costs (hops,
 * serialization, waiting). Kept per job in this JVM for embedded benchmarks; also exported as Flink metrics.
 */
public final class StepTimings {
    /** One completed iteration. */
    public record Step(boolean prefill, int rows, double wallMs, double computeMs, double waitMs, long bytes) {
    }

    private static final Map<String, List<Step>> STEPS = new ConcurrentHashMap<>();

    private StepTimings() {
    }

    static void record(String runtimeId, Step step) {
        STEPS.computeIfAbsent(runtimeId, k -> new CopyOnWriteArrayList<>()).add(step);
    }

    public static List<Step> of(String runtimeId) {
        return STEPS.getOrDefault(runtimeId, List.of());
    }

    public static void clear(String runtimeId) {
        STEPS.remove(runtimeId);
    }
}
