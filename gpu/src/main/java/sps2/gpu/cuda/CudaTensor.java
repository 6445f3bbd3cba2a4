package sps2.gpu.cuda;

import jcuda.driver.CUdeviceptr;
import sps2.gpu.Tensor;

/**
 * A tensor in device memory of a {@link CudaBackend}: activations in bfloat16 (or float32 where asked for),
 * weight matrices in bfloat16, vectors (norm weights, RoPE frequencies) in float32, integers in int32.
 */
public final class CudaTensor implements Tensor {

    /** Element types; {@code code} is what the kernels receive. */
    public enum DType {
        BF16(2, 0), F32(4, 1), I32(4, -1);

        final int bytes;
        final int code;

        DType(int bytes, int code) {
            this.bytes = bytes;
            this.code = code;
        }
    }

    private final CudaBackend owner;
    private final CUdeviceptr ptr;
    private final int rows;
    private final int cols;
    private final DType dtype;
    private final long capacity;
    private final boolean pooled;
    private final boolean graphOwned;
    /** {@link #CudaTensor(CudaBackend, CUdeviceptr, int, int, DType, long, Object)}'s mark for memory a recorded graph owns. */
    static final Object GRAPH_OWNED = new Object();
    private boolean closed;

    /** A tensor in memory that a recorded graph owns ({@link CudaBackend#capture}): closing it frees nothing. */
    CudaTensor(CudaBackend owner, CUdeviceptr ptr, int rows, int cols, DType dtype, long capacity, Object graphOwned) {
        this(owner, ptr, rows, cols, dtype, capacity, false, true);
        if (graphOwned != GRAPH_OWNED) {
            throw new IllegalArgumentException("Not a graph-owned mark");
        }
    }

    CudaTensor(CudaBackend owner, CUdeviceptr ptr, int rows, int cols, DType dtype, long capacity, boolean pooled) {
        this(owner, ptr, rows, cols, dtype, capacity, pooled, false);
    }

    private CudaTensor(CudaBackend owner, CUdeviceptr ptr, int rows, int cols, DType dtype, long capacity, boolean pooled, boolean graphOwned) {
        this.owner = owner;
        this.ptr = ptr;
        this.rows = rows;
        this.cols = cols;
        this.dtype = dtype;
        this.capacity = capacity;
        this.pooled = pooled;
        this.graphOwned = graphOwned;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    @Override
    public boolean isInt() {
        return dtype == DType.I32;
    }

    public DType dtype() {
        return dtype;
    }

    CudaBackend owner() {
        return owner;
    }

    /** Device address of element (row, 0). */
    CUdeviceptr at(long row) {
        checkOpen();
        return row == 0 ? ptr : ptr.withByteOffset(row * cols * dtype.bytes);
    }

    CUdeviceptr ptr() {
        checkOpen();
        return ptr;
    }

    long bytes() {
        return (long) rows * cols * dtype.bytes;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("The CUDA tensor [" + rows + ", " + cols + "] was used after close()");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (!graphOwned) {
                owner.free(ptr, capacity, pooled);
            }
        }
    }

    @Override
    public String toString() {
        return "CudaTensor[" + rows + ", " + cols + ", " + dtype + "]";
    }
}
