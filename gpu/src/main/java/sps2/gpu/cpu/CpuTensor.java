package sps2.gpu.cpu;

import sps2.gpu.Tensor;

/** A float32 tensor on the Java heap, row-major [rows, cols]. */
final class CpuTensor implements Tensor {
    final float[] data;
    private final int rows;
    private final int cols;

    CpuTensor(float[] data, int rows, int cols) {
        if ((long) rows * cols > data.length) {
            throw new IllegalArgumentException("A " + rows + "x" + cols + " tensor does not fit " + data.length + " floats");
        }
        this.data = data;
        this.rows = rows;
        this.cols = cols;
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
        return false;
    }

    @Override
    public void close() {
        // heap memory: the garbage collector frees it
    }
}
