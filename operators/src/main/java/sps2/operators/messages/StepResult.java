package sps2.operators.messages;

/** What one shard reports to the scheduler when it has finished its step of an iteration. */
public class StepResult {
    public long iteration;
    public int shard;
    public boolean prefill;
    /** Requests sampled on this shard in this step (empty when it sampled none). */
    public String[] requests;
    public int[] tokens;
    public boolean[] finished;
    /** Decoded text of each sampled token. */
    public String[] pieces;
    /** Seconds this shard spent computing and waiting for remote data in the step (for the overlap ratio). */
    public double computeSeconds;
    public double waitSeconds;
    public long bytesSent;
    /** The shard's clock (System.nanoTime) when it took the step and when it handed on the result (same-JVM timings only). */
    public long startedNanos;
    public long endedNanos;

    public StepResult() {
    }
}
