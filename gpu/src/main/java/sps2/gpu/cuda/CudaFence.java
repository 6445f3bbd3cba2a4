package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventDestroy;

import jcuda.driver.CUevent;
import sps2.gpu.Fence;

/** A CUDA event recorded on one thread's stream of a {@link CudaBackend}: the point another stream waits for. */
final class CudaFence implements Fence {
    final CUevent event;
    final CudaBackend owner;
    private boolean released;

    CudaFence(CUevent event, CudaBackend owner) {
        this.event = event;
        this.owner = owner;
    }

    /** Destroys the event; waits already issued on it still hold (the driver frees it once they are done). */
    @Override
    public synchronized void release() {
        if (!released) {
            released = true;
            cuEventDestroy(event);
        }
    }
}
