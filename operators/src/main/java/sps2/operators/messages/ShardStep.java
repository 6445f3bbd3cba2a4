package sps2.operators.messages;

/**
 * A step: one shard's slice of one iteration of the scheduler. The words used throughout: an <em>iteration</em> is
 * what the scheduler issues at once (a prefill or a decode batch over the shards); its <em>step</em> on one shard is
 * a {@code ShardStep}, made of one {@link StepSeq} per request it runs; the shard runs it in a
 * {@link sps2.operators.runtime.StepContext} and answers with a {@link StepResult}.
 */
public class ShardStep {
    public long iteration;
    public int shard;
    /** Whether this is a prefill iteration (sequence-parallel exchange of K/V) or a decode iteration (exchange of partial attention). */
    public boolean prefill;
    public StepSeq[] seqs;
    /**
     * Decode: every shard taking part in the iteration, ascending. Each of them runs every row of the iteration
     * (rows whose request keeps no KV on a shard attend to nothing there) and merges the members' partial
     * attention results in this order, so that all of them hold the same activations after each layer.
     */
    public int[] members = new int[0];
    /** Requests that have finished since the last step sent to this shard: their KV state is dropped. */
    public String[] released = new String[0];
    /**
     * A restore step after a job restart (snapshot KV recovery): every stage puts the K/V it kept in keyed
     * state for these requests back into the device pool; nothing is computed or sampled.
     */
    public boolean restoreOnly;
    /** The scheduler's System.nanoTime when it issued the step (hop timings within one JVM). */
    public long issuedNanos;
    /** Wall clock when the scheduler issued the iteration. */
    public long issuedAtMs;

    public ShardStep() {
    }

    public int rows() {
        int n = 0;
        for (StepSeq s : seqs) {
            n += s.rows();
        }
        return n;
    }
}
