package sps2.gpu.cpu;

import sps2.gpu.Tensor;

/** A float matrix [rows, cols] on the Java heap, in whatever layout its subclass keeps; the garbage collector frees it. */
abstract class HeapMatrix implements Tensor {
    final int rows;
    final int cols;

    HeapMatrix(int rows, int cols) {
        this.rows = rows;
        this.cols = cols;
    }

    @Override
    public final int rows() {
        return rows;
    }

    @Override
    public final int cols() {
        return cols;
    }

    @Override
    public final boolean isInt() {
        return false;
    }

    @Override
    public final void close() {
        // heap memory: the garbage collector frees it
    }
}
