package sps2.tests;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import sps2.operators.JobHooks;
import sps2.operators.SharedRef;

/**
 * Hooks for recovery tests: the job fails once, from a shard's step, after its shards have sampled the given number
 * of tokens and a checkpoint taken while requests were decoding has completed (so the restore has running requests
 * to recover, however slow the machine), and the scheduler's recoveries are counted. The counters live in this JVM
 * (the test's MiniCluster), shared with the job's copies of these hooks.
 */
final class RecoveryHooks implements JobHooks, AutoCloseable {
    private final int failAfter;
    private final SharedRef<AtomicInteger> tokensLeft;
    private final SharedRef<AtomicIntegerArray> recoveries;
    /** Whether the latest completed checkpoint was taken while requests were decoding. */
    private final SharedRef<AtomicBoolean> decodingCheckpointed;
    private final SharedRef<AtomicBoolean> failed;

    /** Hooks that fail the job once its shards have sampled {@code tokens} tokens. */
    RecoveryHooks(int tokens) {
        failAfter = tokens;
        tokensLeft = SharedRef.of(new AtomicInteger(tokens), "tokens left before the injected failure");
        recoveries = SharedRef.of(new AtomicIntegerArray(2), "recovery counts");
        decodingCheckpointed = SharedRef.of(new AtomicBoolean(), "whether a checkpoint holds decoding requests");
        failed = SharedRef.of(new AtomicBoolean(), "whether the failure was injected");
    }

    @Override
    public void sampled(int tokens) {
        int left = tokensLeft.get().addAndGet(-tokens);
        if (left <= 0 && decodingCheckpointed.get().get() && failed.get().compareAndSet(false, true)) {
            throw new InjectedFailure("Injected failure, to test recovery, once the shards have sampled " + failAfter + " tokens");
        }
    }

    @Override
    public void checkpointCompleted(long checkpointId, int decodingRequests) {
        decodingCheckpointed.get().set(decodingRequests > 0);
    }

    @Override
    public void recovered(int resumedFromSnapshot, int prefilledAgain) {
        recoveries.get().addAndGet(0, resumedFromSnapshot);
        recoveries.get().addAndGet(1, prefilledAgain);
    }

    /** Requests resumed from KV kept in keyed state, over every restore so far. */
    int resumedFromSnapshot() {
        return recoveries.get().get(0);
    }

    /** Requests prefilled again from their token history, over every restore so far. */
    int prefilledAgain() {
        return recoveries.get().get(1);
    }

    @Override
    public void close() {
        tokensLeft.close();
        recoveries.close();
        decodingCheckpointed.close();
        failed.close();
    }

    /** The exception of the injected failure. */
    static final class InjectedFailure extends RuntimeException {
        InjectedFailure(String message) {
            super(message);
        }
    }
}
