package sps2.operators.runtime;

import sps2.gpu.Backend;
import sps2.gpu.cpu.CpuBackend;
import sps2.operators.JobSettings;

/** Creates the backend a job asks for. */
public final class Backends {
    private Backends() {
    }

    /**
     * Which device a shard computes on: on the CPU every shard gets its own backend (its own threads), on
     * CUDA shard i uses GPU i mod the GPU count, and shards on one GPU share its backend and weights.
     */
    public static int deviceOf(JobSettings.BackendKind kind, int shard) {
        return kind == JobSettings.BackendKind.CUDA ? CudaBackends.deviceOf(shard) : shard;
    }

    public static Backend create(JobSettings.BackendKind kind, int device, int cpuThreads, JobSettings.Kernels kernels) {
        return switch (kind) {
            case CPU -> new CpuBackend(cpuThreads > 0 ? cpuThreads : Runtime.getRuntime().availableProcessors());
            case CUDA -> CudaBackends.create(device, kernels == JobSettings.Kernels.INVARIANT);
        };
    }
}
