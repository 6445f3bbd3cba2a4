package sps2.operators.scheduler;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * How the scheduler brought running requests back after each restore of a job in this JVM: resumed
 * from KV kept in keyed state, or prefilled again from their token history. For tests and logs.
 */
public final class Recoveries {
    private static final Map<String, AtomicIntegerArray> COUNTS = new ConcurrentHashMap<>();

    private Recoveries() {
    }

    static void record(String runtimeId, int resumedFromSnapshot, int prefilledAgain) {
        AtomicIntegerArray c = COUNTS.computeIfAbsent(runtimeId, k -> new AtomicIntegerArray(2));
        c.addAndGet(0, resumedFromSnapshot);
        c.addAndGet(1, prefilledAgain);
    }

    /** Requests resumed from KV kept in keyed state. */
    public static int resumedFromSnapshot(String runtimeId) {
        AtomicIntegerArray c = COUNTS.get(runtimeId);
        return c == null ? 0 : c.get(0);
    }

    /** Requests prefilled again from their token history. */
    public static int prefilledAgain(String runtimeId) {
        AtomicIntegerArray c = COUNTS.get(runtimeId);
        return c == null ? 0 : c.get(1);
    }
}
