package sps2.tests;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import sps2.operators.JobHooks;
import sps2.operators.SharedRef;

/**
 * Hooks for recovery tests: the job fails once, from the shard whose step reaches the given number of sampled
 * tokens, and the scheduler's recoveries are counted. The counters live in this JVM (the test's MiniCluster), shared
 * with the job's copies of these hooks.
 */
final class RecoveryHooks implements JobHooks, AutoCloseable {
    private final int failAfter;
    private final SharedRef<AtomicInteger> tokensLeft;
    private final SharedRef<AtomicIntegerArray> recoveries;

    /** Hooks that fail the job once its shards have sampled {@code tokens} tokens. */
    RecoveryHooks(int tokens) {
        failAfter = tokens;
        tokensLeft = SharedRef.of(new AtomicInteger(tokens), "tokens left before the injected failure");
        recoveries = SharedRef.of(new AtomicIntegerArray(2), "recovery counts");
    }

    @Override
    public void sampled(int tokens) {
        int before = tokensLeft.get().getAndUpdate(left -> left > 0 ? left - tokens : left);
        if (before > 0 && before <= tokens) {
            throw new InjectedFailure("Injected failure, to test recovery, once the shards have sampled " + failAfter + " tokens");
        }
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
    }

    /** The exception of the injected failure. */
    static final class InjectedFailure extends RuntimeException {
        InjectedFailure(String message) {
            super(message);
        }
    }
}
