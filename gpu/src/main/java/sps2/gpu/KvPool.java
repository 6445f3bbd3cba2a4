package sps2.gpu;

/**
 * The paged key/value cache of one device: for every layer, {@code blocks * blockSize} token slots of
 * K and V, each slot {@code nKvHeads * headSize} wide. A sequence owns a list of blocks (its block
 * table); token t of the sequence lives in slot {@code table[t / blockSize] * blockSize + t % blockSize}.
 * Which blocks are free is host-side bookkeeping ({@link BlockAllocator}); the pool only stores.
 */
public interface KvPool extends AutoCloseable {
    int blocks();

    int blockSize();

    int layers();

    /** Width of one K (or V) slot: nKvHeads * headSize. */
    int kvDim();

    /** Device bytes this pool holds. */
    long bytes();

    @Override
    void close();
}
