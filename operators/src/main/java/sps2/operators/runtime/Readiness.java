package sps2.operators.runtime;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Counts, per job, the operator subtasks in this JVM that have finished opening (models loaded), so an
 * embedded launcher can wait until the job can serve before it starts its clock. A task reports RUNNING
 * before its operators are open, so the task state alone does not tell.
 */
public final class Readiness {
    private static final Map<String, AtomicInteger> OPENED = new ConcurrentHashMap<>();

    private Readiness() {
    }

    public static void opened(String runtimeId) {
        OPENED.computeIfAbsent(runtimeId, k -> new AtomicInteger()).incrementAndGet();
    }

    public static void closed(String runtimeId) {
        AtomicInteger n = OPENED.get(runtimeId);
        if (n != null) {
            n.decrementAndGet();
        }
    }

    public static int openedCount(String runtimeId) {
        AtomicInteger n = OPENED.get(runtimeId);
        return n == null ? 0 : n.get();
    }
}
