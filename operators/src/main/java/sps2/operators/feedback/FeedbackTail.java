package sps2.operators.feedback;

import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.operators.messages.StepResult;

/** The tail of the feedback edge: receives the shards' step results and hands them to the scheduler. */
public final class FeedbackTail extends ProcessFunction<StepResult, Void> {
    private static final Logger LOG = LoggerFactory.getLogger(FeedbackTail.class);
    private final String runtimeId;

    public FeedbackTail(String runtimeId) {
        this.runtimeId = runtimeId;
    }

    @Override
    public void processElement(StepResult result, Context ctx, Collector<Void> out) {
        if (!FeedbackChannel.deliver(runtimeId, result)) {
            LOG.warn("Dropped the result of iteration {} from shard {}: no scheduler of job {} runs in this process.",
                    result.iteration, result.shard, runtimeId);
        }
    }
}
