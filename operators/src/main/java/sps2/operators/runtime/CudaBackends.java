package sps2.operators.runtime;

import sps2.gpu.Backend;

/** Opens the CUDA backend, which lives in the gpu module and may be unavailable on this machine. */
final class CudaBackends {
    private CudaBackends() {
    }

    static Backend create(int device) {
        try {
            Class<?> c = Class.forName("sps2.gpu.cuda.CudaBackend");
            return (Backend) c.getMethod("create", int.class).invoke(null, device);
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("This build has no CUDA backend");
        } catch (ReflectiveOperationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            throw new IllegalStateException("The CUDA backend could not start on device " + device + ": " + cause.getMessage(), cause);
        }
    }
}
