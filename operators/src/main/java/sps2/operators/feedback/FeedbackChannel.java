package sps2.operators.feedback;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

import sps2.operators.messages.StepResult;

/**
 * The in-JVM feedback edge that closes the decode loop (Flink 2.x has no stream iterations): the
 * scheduler registers a consumer under the job's runtime id, and the feedback tail operator, pinned to
 * the scheduler's slot by a co-location group, hands it each step result. The consumer puts the result
 * into the scheduler task's mailbox, so the scheduler stays single-threaded. Results are not
 * checkpointed: the scheduler's keyed state is the source of truth and re-issues lost steps on restore.
 */
public final class FeedbackChannel {
    private static final Map<String, Consumer<StepResult>> CONSUMERS = new ConcurrentHashMap<>();

    private FeedbackChannel() {
    }

    public static void register(String runtimeId, Consumer<StepResult> consumer) {
        CONSUMERS.put(runtimeId, consumer);
    }

    public static void unregister(String runtimeId) {
        CONSUMERS.remove(runtimeId);
    }

    /** Delivers a result; returns false when no scheduler of that job runs in this JVM (it is restarting). */
    public static boolean deliver(String runtimeId, StepResult result) {
        Consumer<StepResult> c = CONSUMERS.get(runtimeId);
        if (c == null) {
            return false;
        }
        c.accept(result);
        return true;
    }
}
