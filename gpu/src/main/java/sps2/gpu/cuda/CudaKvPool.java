package sps2.gpu.cuda;

import jcuda.driver.CUdeviceptr;
import sps2.gpu.KvPool;

/**
 * The paged KV cache in one device allocation of bfloat16: for layer l, the K slots at
 * {@code (2l) * slots * kvDim} elements and the V slots right after them, each slot kvDim wide.
 */
final class CudaKvPool implements KvPool {
    private final CudaBackend owner;
    private final CUdeviceptr base;
    private final Shape shape;
    private boolean closed;

    CudaKvPool(CudaBackend owner, CUdeviceptr base, int layers, int kvDim, int blocks, int blockSize) {
        this.owner = owner;
        this.base = base;
        this.shape = new Shape(layers, kvDim, blocks, blockSize);
    }

    private long layerBytes() {
        return shape.slots() * shape.kvDim() * 2;
    }

    CUdeviceptr k(int layer) {
        check(layer);
        return base.withByteOffset(2L * layer * layerBytes());
    }

    CUdeviceptr v(int layer) {
        check(layer);
        return base.withByteOffset((2L * layer + 1) * layerBytes());
    }

    CudaBackend owner() {
        return owner;
    }

    private void check(int layer) {
        if (closed) {
            throw new IllegalStateException("The KV pool was used after close()");
        }
        if (layer < 0 || layer >= shape.layers()) {
            throw new IllegalArgumentException("Layer " + layer + " is outside the KV pool's " + shape.layers() + " layers");
        }
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public long bytes() {
        return 2L * shape.layers() * layerBytes();
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            owner.freeExact(base);
        }
    }
}
