package sps2.gpu.cpu;

import sps2.gpu.KvPool;

/** K and V of every layer as float32 arrays of {@code blocks * blockSize} slots of {@code kvDim} values. */
final class CpuKvPool implements KvPool {
    final float[][] k;
    final float[][] v;
    private final Shape shape;

    CpuKvPool(int layers, int kvDim, int blocks, int blockSize) {
        long slotsFloats = (long) blocks * blockSize * kvDim;
        if (slotsFloats > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("A CPU KV pool of " + blocks + " blocks of " + blockSize + " tokens x " + kvDim
                    + " values per layer exceeds a Java array; use fewer blocks");
        }
        this.k = new float[layers][(int) slotsFloats];
        this.v = new float[layers][(int) slotsFloats];
        this.shape = new Shape(layers, kvDim, blocks, blockSize);
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public long bytes() {
        return 2L * k.length * k[0].length * Float.BYTES;
    }

    @Override
    public void close() {
    }
}
