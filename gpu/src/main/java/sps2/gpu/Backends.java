package sps2.gpu;

import jcuda.driver.JCudaDriver;
import sps2.gpu.cpu.CpuBackend;
import sps2.gpu.cuda.CudaBackend;

/**
 * Opens the backends of this module, so that the code above it (the operators, the command line) sees only the
 * {@link Backend} interface and never a backend's own classes.
 */
public final class Backends {
    private Backends() {
    }

    /** The CPU backend with its own {@code threads} threads; 0 or less: one per processor. */
    public static Backend cpu(int threads) {
        return new CpuBackend(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
    }

    /**
     * The CUDA backend on the GPU with ordinal {@code device}; {@code batchInvariant}: a row's bits independent of the
     * rest of its batch and of its chunking (see the CudaBackend constructor).
     */
    public static Backend cuda(int device, boolean batchInvariant) {
        return new CudaBackend(device, batchInvariant);
    }

    /** Why this machine has no usable CUDA GPU (no driver, no device, no kernels), or null when it has one. */
    public static String cudaUnavailableReason() {
        return CudaBackend.unavailableReason();
    }

    /**
     * The GPU that shard {@code shard} computes on: shard i uses GPU i mod the GPU count, so one task slot per GPU
     * gives every shard its own GPU, and more shards than GPUs (a dry run of 4 shards on one GPU) share them.
     *
     * @throws IllegalArgumentException when this machine has no usable CUDA GPU, saying why
     */
    public static int cudaDeviceOf(int shard) {
        String why = cudaUnavailableReason();
        if (why != null) {
            throw new IllegalArgumentException("The CUDA backend is unavailable: " + why);
        }
        int[] count = {0};
        JCudaDriver.cuDeviceGetCount(count);
        return shard % Math.max(1, count[0]);
    }
}
