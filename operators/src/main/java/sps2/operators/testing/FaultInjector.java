package sps2.operators.testing;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Failure injection for recovery tests: a job whose runtime id is armed throws from its last stage once
 * the given number of tokens has been sampled, exactly once. Unarmed jobs (every production job) only
 * pay a map lookup per iteration.
 */
public final class FaultInjector {
    private static final Map<String, AtomicInteger> ARMED = new ConcurrentHashMap<>();

    private FaultInjector() {
    }

    /** The next job with this runtime id fails after sampling {@code tokens} tokens. */
    public static void armOnce(String runtimeId, int tokens) {
        ARMED.put(runtimeId, new AtomicInteger(tokens));
    }

    /** Called by the last stage after sampling {@code tokens} tokens; throws when an armed counter runs out. */
    public static void sampled(String runtimeId, int tokens) {
        AtomicInteger left = ARMED.get(runtimeId);
        if (left != null && left.addAndGet(-tokens) <= 0 && ARMED.remove(runtimeId, left)) {
            throw new InjectedFailure("Injected failure in job " + runtimeId + " to test recovery");
        }
    }

    /** The exception thrown by an injected failure. */
    public static final class InjectedFailure extends RuntimeException {
        InjectedFailure(String message) {
            super(message);
        }
    }
}
