package sps2.gpu;

/**
 * Describes one attention call over the paged cache for a batch of sequences. Sequence s owns query rows
 * {@code [qStart[s], qStart[s] + qLen[s])} and attends to its first {@code kvLen[s]} cached tokens, found
 * through {@code blockTables[s]}. Masking is causal and bottom-right aligned: query j of a sequence sees
 * keys {@code 0 .. kvLen - qLen + j}, so a prefill chunk sees the cached prefix plus itself, and a decode
 * query (qLen 1) sees everything.
 *
 * <p>Backends turn it into device arrays once ({@link Backend#prepare(AttentionBatch)}) and reuse the
 * handle for every layer of a step.
 */
public record AttentionBatch(int[] qStart, int[] qLen, int[] kvLen, int[][] blockTables) {

    public AttentionBatch {
        if (qStart.length != qLen.length || qLen.length != kvLen.length || kvLen.length != blockTables.length) {
            throw new IllegalArgumentException("Attention batch arrays differ in length");
        }
        for (int s = 0; s < qLen.length; s++) {
            if (qLen[s] > kvLen[s]) {
                throw new IllegalArgumentException("Sequence " + s + " has " + qLen[s] + " queries but only " + kvLen[s] + " keys");
            }
        }
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
