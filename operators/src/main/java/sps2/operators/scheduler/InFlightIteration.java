package sps2.operators.scheduler;

import java.util.HashSet;
import java.util.Set;

import sps2.operators.messages.StepResult;

/**
 * One iteration the scheduler has issued and not yet heard back from every shard about: which shards it waits
 * for, and what the shards' results say about where its time went.
 */
final class InFlightIteration {
    final long id;
    final boolean prefill;
    final long issuedNanos;
    private final Set<Integer> waitingFor;
    private final int rows;
    private final double gapMs;
    private double computeMs;
    private double waitMs;
    private long bytes;
    private double hopInMs;
    private double hopOutMs;
    private double shardMs;

    /**
     * @param shards the shards it was issued to
     * @param gapMs  decode: the time since the previous decode iteration's last result (0 for the first, prefill and restore steps)
     */
    InFlightIteration(long id, boolean prefill, Set<Integer> shards, int rows, long issuedNanos, double gapMs) {
        this.id = id;
        this.prefill = prefill;
        this.waitingFor = new HashSet<>(shards);
        this.rows = rows;
        this.issuedNanos = issuedNanos;
        this.gapMs = gapMs;
    }

    /** Takes one shard's result, received at {@code nowNanos}; returns whether every shard has now reported. */
    boolean report(StepResult r, long nowNanos) {
        waitingFor.remove(r.shard);
        computeMs = Math.max(computeMs, r.computeSeconds * 1e3);
        waitMs = Math.max(waitMs, r.waitSeconds * 1e3);
        bytes += r.bytesSent;
        hopInMs = Math.max(hopInMs, (r.startedNanos - issuedNanos) / 1e6);
        hopOutMs = Math.max(hopOutMs, (nowNanos - r.endedNanos) / 1e6);
        shardMs = Math.max(shardMs, (r.endedNanos - r.startedNanos) / 1e6);
        return waitingFor.isEmpty();
    }

    /** The timings of the iteration, done at {@code nowNanos}. */
    StepTimings.Step timing(long nowNanos) {
        return new StepTimings.Step(prefill, rows, (nowNanos - issuedNanos) / 1e6, computeMs, waitMs, bytes, shardMs, hopInMs, hopOutMs, gapMs);
    }
}
