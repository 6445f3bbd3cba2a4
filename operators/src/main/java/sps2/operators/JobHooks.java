package sps2.operators;

import java.io.Serializable;

import sps2.operators.scheduler.StepTimings;

/**
 * Observers of a running job, installed by whoever launches it ({@link JobSettings#withHooks}): the embedded launcher
 * waits for the shards to open and collects iteration timings; tests inject failures and count recoveries. Every
 * method does nothing unless overridden, and a job started from the command line runs with {@link #NONE}. Hooks
 * travel with the job graph into every operator, so an implementation that must reach its launcher's objects holds
 * {@link SharedRef}s to them. Methods may be called from several operator threads at once.
 */
public interface JobHooks extends Serializable {
    /** No hooks: what production jobs run with. */
    JobHooks NONE = None.INSTANCE;

    /** A shard operator subtask has opened (its model is loaded and it can serve). */
    default void shardOpened() {
    }

    /** A shard operator subtask that had opened closes. */
    default void shardClosed() {
    }

    /** A shard has sampled {@code tokens} tokens in a step; a hook may throw here to fail the job (recovery tests). */
    default void sampled(int tokens) {
    }

    /** After a restore: how many running requests resumed with the KV kept in keyed state, and how many are prefilled again. */
    default void recovered(int resumedFromSnapshot, int prefilledAgain) {
    }

    /** A checkpoint completed; when the scheduler took its part, {@code decodingRequests} requests were decoding. */
    default void checkpointCompleted(long checkpointId, int decodingRequests) {
    }

    /** An iteration's last shard result reached the scheduler. */
    default void iterationDone(StepTimings.Step step) {
    }

    /** These hooks, then {@code next}. */
    default JobHooks andThen(JobHooks next) {
        return this == NONE ? next : next == NONE ? this : new Both(this, next);
    }

    /** The hooks that do nothing (an enum: one instance, also after deserialization). */
    enum None implements JobHooks {
        INSTANCE
    }

    /** Two sets of hooks, one after the other. */
    record Both(JobHooks first, JobHooks second) implements JobHooks {
        @Override
        public void shardOpened() {
            first.shardOpened();
            second.shardOpened();
        }

        @Override
        public void shardClosed() {
            first.shardClosed();
            second.shardClosed();
        }

        @Override
        public void sampled(int tokens) {
            first.sampled(tokens);
            second.sampled(tokens);
        }

        @Override
        public void recovered(int resumedFromSnapshot, int prefilledAgain) {
            first.recovered(resumedFromSnapshot, prefilledAgain);
            second.recovered(resumedFromSnapshot, prefilledAgain);
        }

        @Override
        public void checkpointCompleted(long checkpointId, int decodingRequests) {
            first.checkpointCompleted(checkpointId, decodingRequests);
            second.checkpointCompleted(checkpointId, decodingRequests);
        }

        @Override
        public void iterationDone(StepTimings.Step step) {
            first.iterationDone(step);
            second.iterationDone(step);
        }
    }
}
