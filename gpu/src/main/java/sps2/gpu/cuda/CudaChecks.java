package sps2.gpu.cuda;

import java.util.function.Supplier;
import sps2.gpu.Tensor;

/**
 * Argument checks of the CUDA backend. They run on every kernel launch, so a message that is built from values
 * is passed as a Supplier and formatted only when the check fails.
 */
final class CudaChecks {
    private CudaChecks() {
    }

    /** Raises IllegalArgumentException with a constant message unless {@code ok}. */
    static void need(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    /** Raises IllegalArgumentException unless {@code ok}, with the message built only then. */
    static void need(boolean ok, Supplier<String> message) {
        if (!ok) {
            throw new IllegalArgumentException(message.get());
        }
    }

    /** The tensor as a CUDA tensor, or IllegalArgumentException for another backend's tensor. */
    static CudaTensor t(Tensor t) {
        if (!(t instanceof CudaTensor c)) {
            throw new IllegalArgumentException("The CUDA backend was given a tensor of another backend: " + t);
        }
        return c;
    }
}
