package sps2.operators.scheduler;

/**
 * Per-iteration timings the scheduler observes: wall time from issuing an iteration to its last shard's
 * result, against the compute the shards report. The difference is what the dataflow costs (hops,
 * serialization, waiting). Exported as Flink metrics, and handed to {@code JobHooks#iterationDone} (the embedded
 * launcher keeps them for bench-decode).
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

    private StepTimings() {
    }
}
