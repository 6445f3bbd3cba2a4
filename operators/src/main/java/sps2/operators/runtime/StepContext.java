package sps2.operators.runtime;

import java.util.HashMap;
import java.util.Map;

import sps2.gpu.AttentionBatch;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepSeq;

/**
 * The device-side state of one {@link ShardStep} while the shard engine runs it: the workspace holding the
 * residual stream and attention results, and the step's uploaded index tensors.
 */
public final class StepContext implements AutoCloseable {
    public final ShardStep step;
    public final LlamaModel.Workspace ws;
    public final Tensor positions;
    public final Tensor slots;
    public final Tensor tokens;
    public final AttentionBatch.Prepared batch;
    /** First row of each sequence of the step. */
    public final int[] rowStart;
    public final Map<String, Integer> seqIndex = new HashMap<>();
    public final long startedNanos = System.nanoTime();
    private final ShardRuntime runtime;

    StepContext(ShardRuntime runtime, ShardStep step, LlamaModel.Workspace ws, Tensor positions, Tensor slots, Tensor tokens,
            AttentionBatch.Prepared batch) {
        this.runtime = runtime;
        this.step = step;
        this.ws = ws;
        this.positions = positions;
        this.slots = slots;
        this.tokens = tokens;
        this.batch = batch;
        this.rowStart = new int[step.seqs.length];
        int r = 0;
        for (int s = 0; s < step.seqs.length; s++) {
            rowStart[s] = r;
            r += step.seqs[s].rows();
            seqIndex.put(step.seqs[s].requestId, s);
        }
    }

    public int rows() {
        return step.rows();
    }

    public StepSeq seq(String requestId) {
        Integer i = seqIndex.get(requestId);
        return i == null ? null : step.seqs[i];
    }

    @Override
    public void close() {
        positions.close();
        slots.close();
        tokens.close();
        batch.close();
        runtime.returnWorkspace(ws);
    }
}
