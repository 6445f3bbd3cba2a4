package sps2.gpu;

/**
 * A 2-D row-major tensor that lives on a {@link Backend}'s device. Rows are tokens for activations
 * and output features for weights ([out, in]). Integer tensors hold token ids, positions and KV slots.
 * Handles are owned by the backend that made them; {@link #close()} returns the memory.
 */
public interface Tensor extends AutoCloseable {
    int rows();

    int cols();

    /** Whether this tensor holds 32-bit integers rather than floating-point values. */
    boolean isInt();

    @Override
    void close();
}
