package sps2.gpu.cpu;

import sps2.gpu.Tensor;

/** Integers (token ids, positions, KV slots) on the Java heap, shape [1, n]. */
final class CpuIntTensor implements Tensor {
    final int[] data;

    CpuIntTensor(int[] data) {
        this.data = data;
    }

    @Override
    public int rows() {
        return 1;
    }

    @Override
    public int cols() {
        return data.length;
    }

    @Override
    public boolean isInt() {
        return true;
    }

    @Override
    public void close() {
    }
}
