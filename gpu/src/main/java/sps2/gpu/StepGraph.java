package sps2.gpu;

/**
 * Device work recorded once and replayed many times with one launch ({@link Backend#capture}): a CUDA graph on
 * the CUDA backend. A replay reads and writes the same device addresses the recording did, so its inputs live in
 * tensors that are updated in place before each replay ({@link Backend#writeInts}, {@link Backend#prepare(AttentionBatch,
 * AttentionBatch.Prepared)}).
 */
public interface StepGraph extends AutoCloseable {

    /** Issues the recorded work on the calling thread's stream, ordered after the work issued before. */
    void replay();

    /** Frees the graph and the scratch memory its recording allocated. */
    @Override
    void close();
}
