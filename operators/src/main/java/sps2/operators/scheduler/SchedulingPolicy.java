package sps2.operators.scheduler;

import java.util.List;
import java.util.Map;

import sps2.operators.JobSettings;
import sps2.operators.messages.StepSeq;
import sps2.operators.placement.Segmenter;

/**
 * How a mode batches requests into iterations and places their KV: {@link Sps2Policy} (sequence-parallel prefill
 * and decode) or {@link SarathiPolicy} (chunked prefill, one worker per request). The {@link Scheduler} around it
 * admits requests, tracks the iterations in flight and recovers after a restore.
 */
interface SchedulingPolicy {

    static SchedulingPolicy of(JobSettings settings, Segmenter segmenter, KvSpace kv, Scheduler.Clock clock) {
        return switch (settings.mode()) {
            case SPS2 -> new Sps2Policy(kv, segmenter, settings.appendPolicy(), clock);
            case SARATHI -> new SarathiPolicy(kv, settings.chunkSize(), clock);
        };
    }

    /** The most KV, in tokens, that one request may need (prompt and output); admission rejects larger requests. */
    long maxRequestTokens();

    /**
     * Starts the iterations that the requests and the iterations in flight allow now.
     *
     * @param requests every request the scheduler holds, waiting or running, in the store's order
     */
    void schedule(List<Map.Entry<String, RequestState>> requests, Iterations iterations) throws Exception;

    /** What a policy may see of the scheduler's iterations, and how it starts one or ends a request. */
    interface Iterations {
        /** Whether an iteration of this kind (prefill, or decode and mixed) is in flight. */
        boolean inFlight(boolean prefill);

        /** Whether any iteration is in flight. */
        boolean anyInFlight();

        /** Whether the restore step after a snapshot recovery is in flight (decoding waits for it). */
        boolean restoring();

        /** Writes back a request's state after the policy changed it. */
        void update(String id, RequestState state) throws Exception;

        /**
         * Issues an iteration: each shard's step of it, in issue order.
         *
         * @param members decode with sequence parallelism: the shards that exchange partial attention, ascending; else empty
         */
        void start(boolean prefill, Map<Integer, List<StepSeq>> perShard, int[] members);

        /** Ends a request that cannot go on, with an error event for its stream. */
        void fail(String id, RequestState state, String message) throws Exception;
    }
}
