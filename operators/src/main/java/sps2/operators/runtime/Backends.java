package sps2.operators.runtime;

import sps2.gpu.Backend;
import sps2.gpu.cpu.CpuBackend;

/** Creates the backend a job asks for. */
public final class Backends {
    private Backends() {
    }

    /**
     * Which device a shard computes on: on the CPU every shard gets its own backend (its own threads), on
     * CUDA shard i uses GPU i mod the GPU count, and shards on one GPU share its backend and weights.
     */
    public static int deviceOf(String kind, int shard) {
        return kind.equals("cuda") ? CudaBackends.deviceOf(shard) : shard;
    }

    public static Backend create(String kind, int device, int cpuThreads) {
        switch (kind) {
            case "cpu":
                return new CpuBackend(cpuThreads > 0 ? cpuThreads : Runtime.getRuntime().availableProcessors());
            case "cuda":
                return CudaBackends.create(device);
            default:
                throw new IllegalArgumentException("Unknown backend '" + kind + "': use cpu or cuda");
        }
    }
}
