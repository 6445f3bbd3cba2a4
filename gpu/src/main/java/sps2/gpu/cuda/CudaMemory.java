package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static sps2.gpu.cuda.CudaChecks.need;
import static sps2.gpu.cuda.CudaChecks.t;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import sps2.gpu.StepGraph;
import sps2.gpu.Tensor;
import sps2.model.DType;
import sps2.model.HostTensor;

/**
 * Device memory of a {@link CudaBackend}: scratch tensors from a pool by size class ({@link DevicePool}),
 * weights and KV pools in exact allocations freed one by one, the memory of a graph being recorded, and the
 * synchronous copies between host arrays and tensors.
 */
final class CudaMemory {
    private final CudaBackend owner;
    private final CudaDevice device;
    private final DevicePool pool = new DevicePool();
    private final Set<CUdeviceptr> exact = Collections.newSetFromMap(new IdentityHashMap<>());
    /** While the calling thread records a graph ({@link #capture}): the scratch memory allocated for it. */
    private final ThreadLocal<List<CUdeviceptr>> capturing = new ThreadLocal<>();

    CudaMemory(CudaBackend owner, CudaDevice device) {
        this.owner = owner;
        this.device = device;
    }

    CudaTensor allocate(int rows, int cols, CudaTensor.DType dtype) {
        long bytes = Math.max((long) rows * cols * dtype.bytes, 1);
        List<CUdeviceptr> arena = capturing.get();
        if (arena != null) {
            // Recording a graph: the memory belongs to the graph, whose replays write it (CudaStepGraph frees it).
            CUdeviceptr p = new CUdeviceptr();
            cuMemAlloc(p, bytes);
            arena.add(p);
            return new CudaTensor(owner, p, rows, cols, dtype, bytes, CudaTensor.GRAPH_OWNED);
        }
        CUdeviceptr p = pool.alloc(bytes, device.stream());
        return new CudaTensor(owner, p, rows, cols, dtype, bytes, true);
    }

    /** Records the work {@code work} issues on the calling thread's stream as a graph, with the scratch memory it allocates. */
    StepGraph capture(Runnable work) {
        CUstream s = device.stream();
        List<CUdeviceptr> arena = new ArrayList<>();
        CUgraph graph = new CUgraph();
        capturing.set(arena);
        cuStreamBeginCapture(s, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED);
        boolean ended = false;
        try {
            work.run();
            cuStreamEndCapture(s, graph);
            ended = true;
            CUgraphExec exec = new CUgraphExec();
            cuGraphInstantiate(exec, graph, 0);
            return new CudaStepGraph(owner, graph, exec, arena);
        } catch (RuntimeException e) {
            if (!ended) {
                try {
                    cuStreamEndCapture(s, graph);
                } catch (RuntimeException ignored) {
                    // the capture was already invalidated; the error that did it is the one to report
                }
            }
            for (CUdeviceptr p : arena) {
                cuMemFree(p);
            }
            throw e;
        } finally {
            capturing.remove();
        }
    }

    /** Device memory reserved by the scratch pool. */
    long pooledBytes() {
        return pool.reservedBytes();
    }

    void free(CUdeviceptr p, long capacity, boolean pooled) {
        if (device.closed() || p == null) {
            return;
        }
        if (pooled) {
            pool.release(p, capacity, device.stream());
        } else {
            freeExact(p);
        }
    }

    void freeExact(CUdeviceptr p) {
        if (device.closed()) {
            return;
        }
        device.stream();
        synchronized (exact) {
            if (exact.remove(p)) {
                device.sync();
                cuMemFree(p);
            }
        }
    }

    CUdeviceptr allocExact(long bytes) {
        device.stream();
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, Math.max(bytes, 1));
        synchronized (exact) {
            exact.add(p);
        }
        return p;
    }

    Tensor upload(HostTensor weight) {
        int rows = weight.rows();
        int cols = weight.cols();
        boolean vector = weight.shape().length == 1 || rows == 1;
        if (weight.dtype() == DType.I32) {
            throw new IllegalArgumentException("Tensor " + weight.name() + " holds integers; upload them with upload(int[])");
        }
        CudaTensor.DType dt = vector ? CudaTensor.DType.F32 : CudaTensor.DType.BF16;
        long bytes = (long) rows * cols * dt.bytes;
        CudaTensor t = new CudaTensor(owner, allocExact(bytes), rows, cols, dt, bytes, false);
        if (dt == CudaTensor.DType.BF16 && weight.dtype() == DType.BF16) {
            ByteBuffer src = weight.data().duplicate();
            src.limit(src.position() + (int) bytes);
            copyIn(t.ptr(), src);
        } else if (dt == CudaTensor.DType.BF16 && weight.dtype() == DType.F32) {
            // Row chunks straight from the (often memory-mapped) F32 data, without a full float[] copy.
            int chunkRows = Math.max(1, (32 << 20) / (cols * 2));
            ByteBuffer src = weight.data();
            for (int r0 = 0; r0 < rows; r0 += chunkRows) {
                int nr = Math.min(chunkRows, rows - r0);
                ByteBuffer buf = ByteBuffer.allocateDirect(nr * cols * 2).order(ByteOrder.LITTLE_ENDIAN);
                int base = src.position() + r0 * cols * 4;
                for (int i = 0; i < nr * cols; i++) {
                    buf.putShort(HostTensor.toBf16(src.getFloat(base + 4 * i)));
                }
                buf.flip();
                copyIn(t.at(r0), buf);
            }
        } else {
            float[] f = weight.toFloats();
            write(t, 0, f, 0, rows);
        }
        return t;
    }

    Tensor upload(int[] values) {
        CudaTensor t = allocate(1, Math.max(values.length, 1), CudaTensor.DType.I32);
        if (values.length > 0) {
            ByteBuffer buf = ByteBuffer.allocateDirect(values.length * 4).order(ByteOrder.nativeOrder());
            buf.asIntBuffer().put(values);
            copyIn(t.ptr(), buf);
        }
        return t;
    }

    private void copyIn(CUdeviceptr dst, ByteBuffer direct) {
        ByteBuffer b = direct.isDirect() ? direct : ByteBuffer.allocateDirect(direct.remaining()).put(direct.duplicate()).flip();
        CUstream s = device.stream();
        cuMemcpyHtoDAsync(dst, Pointer.to(b.slice()), b.remaining(), s);
        cuStreamSynchronize(s);
    }

    private ByteBuffer copyOut(CUdeviceptr src, long bytes) {
        ByteBuffer b = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        CUstream s = device.stream();
        cuMemcpyDtoHAsync(Pointer.to(b), src, bytes, s);
        cuStreamSynchronize(s);
        return b;
    }

    void write(Tensor dst, int dstRow, float[] src, int srcOffset, int rows) {
        CudaTensor d = t(dst);
        need(!d.isInt(), "write() takes float tensors; upload integers with upload(int[])");
        need(dstRow + rows <= d.rows(), () -> "Writing rows " + dstRow + ".." + (dstRow + rows) + " into a tensor of " + d.rows() + " rows");
        int n = rows * d.cols();
        ByteBuffer b = ByteBuffer.allocateDirect(n * d.dtype().bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (d.dtype() == CudaTensor.DType.F32) {
            b.asFloatBuffer().put(src, srcOffset, n);
        } else {
            for (int i = 0; i < n; i++) {
                b.putShort(HostTensor.toBf16(src[srcOffset + i]));
            }
            b.flip();
        }
        copyIn(d.at(dstRow), b);
    }

    void read(Tensor src, int srcRow, float[] dst, int dstOffset, int rows) {
        CudaTensor s = t(src);
        need(!s.isInt(), "read() takes float tensors; use readInts()");
        need(srcRow + rows <= s.rows(), () -> "Reading rows " + srcRow + ".." + (srcRow + rows) + " of a tensor of " + s.rows() + " rows");
        int n = rows * s.cols();
        ByteBuffer b = copyOut(s.at(srcRow), (long) n * s.dtype().bytes);
        if (s.dtype() == CudaTensor.DType.F32) {
            b.asFloatBuffer().get(dst, dstOffset, n);
        } else {
            for (int i = 0; i < n; i++) {
                dst[dstOffset + i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xffff) << 16);
            }
        }
    }

    int[] readInts(Tensor src, int n) {
        CudaTensor s = t(src);
        need(s.isInt(), "readInts() takes an integer tensor");
        ByteBuffer b = copyOut(s.ptr(), 4L * n);
        int[] out = new int[n];
        b.order(ByteOrder.nativeOrder()).asIntBuffer().get(out);
        return out;
    }

    /** close(), after every stream has been synchronised: the pool's memory. */
    void closePool() {
        pool.close();
    }

    /** close(), after {@link #closePool} and the exchange: every exact allocation still held. */
    void freeAllExact() {
        synchronized (exact) {
            for (CUdeviceptr p : exact) {
                cuMemFree(p);
            }
            exact.clear();
        }
    }
}
