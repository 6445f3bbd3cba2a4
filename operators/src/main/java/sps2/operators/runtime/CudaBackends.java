package sps2.operators.runtime;

import sps2.gpu.Backend;
import sps2.gpu.cuda.CudaBackend;

/** Opens the CUDA backend on one device, or says clearly why it cannot. */
final class CudaBackends {
    private CudaBackends() {
    }

    static Backend create(int device) {
        if (!CudaBackend.isAvailable()) {
            throw new IllegalArgumentException("The CUDA backend is unavailable: " + CudaBackend.unavailableReason());
        }
        return new CudaBackend(device);
    }
}
