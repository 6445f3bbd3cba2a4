package sps2.gpu;

/**
 * The paged key/value cache of one device: for every layer, {@code blocks * blockSize} token slots of
 * K and V, each slot {@code nKvHeads * headSize} wide. A sequence owns a list of blocks (its block
 * table); token t of the sequence lives in slot {@code table[t / blockSize] * blockSize + t % blockSize}.
 * Which blocks are free is host-side bookkeeping ({@link BlockAllocator}); the pool only stores.
 */
public interface KvPool extends AutoCloseable {
    /** The dimensions of a pool: layers, slot width (nKvHeads * headSize), blocks and tokens per block. */
    record Shape(int layers, int kvDim, int blocks, int blockSize) {
        /** Token slots per layer. */
        public long slots() {
            return (long) blocks * blockSize;
        }
    }

    Shape shape();

    default int blocks() {
        return shape().blocks();
    }

    default int blockSize() {
        return shape().blockSize();
    }

    default int layers() {
        return shape().layers();
    }

    /** Width of one K (or V) slot: nKvHeads * headSize. */
    default int kvDim() {
        return shape().kvDim();
    }

    /** Device bytes this pool holds. */
    long bytes();

    @Override
    void close();
}
