package sps2.gpu;

/**
 * Describes one attention call over the paged cache for a batch of sequences. Sequence s owns query rows
 * {@code [qStart[s], qStart[s] + qLen[s])} and attends to its first {@code kvLen[s]} cached tokens, found
 * through {@code blockTables[s]}. Masking is causal and bottom-right aligned: query j of a sequence sees
 * keys {@code 0 .. kvLen - qLen + j}, so a prefill chunk sees the cached prefix plus itself, and a decode
 * query (qLen 1) sees everything.
 *
 * A decode row may have no keys at all here ({@code kvLen} 0, {@code qLen} 1): a shard that takes part in a
 * decode iteration without holding any of that request's KV; its output is zero and its log-sum-exp minus
 * infinity, which the exact merge of partial results ignores.
 *
 * <p>Backends turn it into device arrays once ({@link Backend#prepare(AttentionBatch)}) and reuse the
 * handle for every layer of a step. {@code keyBound}, when positive, is a bound on every {@code kvLen} that the
 * backend plans its key splits for instead of the actual longest sequence, so that batches of one shape under
 * one bound run the same launches (what a recorded {@link StepGraph} replays).
 */
public record AttentionBatch(int[] qStart, int[] qLen, int[] kvLen, int[][] blockTables, int keyBound) {

    public AttentionBatch {
        if (qStart.length != qLen.length || qLen.length != kvLen.length || kvLen.length != blockTables.length) {
            throw new IllegalArgumentException("Attention batch arrays differ in length");
        }
        for (int s = 0; s < qLen.length; s++) {
            if (qLen[s] > kvLen[s] && !(kvLen[s] == 0 && qLen[s] == 1)) {
                throw new IllegalArgumentException("Sequence " + s + " has " + qLen[s] + " queries but only " + kvLen[s] + " keys");
            }
            if (keyBound > 0 && kvLen[s] > keyBound) {
                throw new IllegalArgumentException("Sequence " + s + " has " + kvLen[s] + " keys, past the batch's bound of " + keyBound);
            }
        }
    }

    public AttentionBatch(int[] qStart, int[] qLen, int[] kvLen, int[][] blockTables) {
        this(qStart, qLen, kvLen, blockTables, 0);
    }

    public static AttentionBatch single(int qLen, int kvLen, int[] blockTable) {
        return new AttentionBatch(new int[] {0}, new int[] {qLen}, new int[] {kvLen}, new int[][] {blockTable});
    }

    public int sequences() {
        return qLen.length;
    }

    /** Total query rows. */
    public int rows() {
        int n = 0;
        for (int q : qLen) {
            n += q;
        }
        return n;
    }

    /** A backend's device copy of a batch, valid until closed. */
    public interface Prepared extends AutoCloseable {
        AttentionBatch batch();

        @Override
        void close();
    }
}
