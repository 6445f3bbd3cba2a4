package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuMemFree;

import java.util.ArrayList;
import java.util.List;

import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import sps2.gpu.StepGraph;

/**
 * A CUDA graph recorded from one thread's stream ({@link CudaBackend#capture}), with the scratch memory that the
 * recorded work allocated while it was being recorded: that memory belongs to the graph (its replays write
 * there) and is freed with it, never handed back to the backend's pool.
 */
final class CudaStepGraph implements StepGraph {
    private final CudaBackend owner;
    private final CUgraph graph;
    private final CUgraphExec exec;
    private final List<CUdeviceptr> scratch;
    private boolean closed;

    CudaStepGraph(CudaBackend owner, CUgraph graph, CUgraphExec exec, List<CUdeviceptr> scratch) {
        this.owner = owner;
        this.graph = graph;
        this.exec = exec;
        this.scratch = new ArrayList<>(scratch);
    }

    @Override
    public void replay() {
        if (closed) {
            throw new IllegalStateException("A CUDA graph was replayed after close()");
        }
        cuGraphLaunch(exec, owner.stream());
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        owner.sync();
        cuGraphExecDestroy(exec);
        cuGraphDestroy(graph);
        for (CUdeviceptr p : scratch) {
            cuMemFree(p);
        }
        scratch.clear();
    }
}
