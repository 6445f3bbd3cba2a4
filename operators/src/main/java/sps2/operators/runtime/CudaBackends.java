package sps2.operators.runtime;

import jcuda.driver.JCudaDriver;
import sps2.gpu.Backend;
import sps2.gpu.cuda.CudaBackend;

/**
 * Opens the CUDA backend for a shard, or says clearly why it cannot. Shard i uses device i mod the device
 * count, so one task manager slot per GPU gives every shard its own GPU, and more shards than GPUs (a dry
 * run of 4 shards on one GPU) share them.
 */
final class CudaBackends {
    private CudaBackends() {
    }

    /** The device ordinal of a shard. */
    static int deviceOf(int shard) {
        if (!CudaBackend.isAvailable()) {
            throw new IllegalArgumentException("The CUDA backend is unavailable: " + CudaBackend.unavailableReason());
        }
        int[] count = {0};
        JCudaDriver.cuDeviceGetCount(count);
        return shard % Math.max(1, count[0]);
    }

    static Backend create(int device, boolean batchInvariant) {
        return new CudaBackend(device, batchInvariant);
    }
}
