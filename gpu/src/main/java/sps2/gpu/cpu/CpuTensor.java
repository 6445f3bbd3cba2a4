package sps2.gpu.cpu;

/** A float32 tensor on the Java heap, row-major [rows, cols]. */
final class CpuTensor extends HeapMatrix {
    final float[] data;

    CpuTensor(float[] data, int rows, int cols) {
        super(rows, cols);
        if ((long) rows * cols > data.length) {
            throw new IllegalArgumentException("A " + rows + "x" + cols + " tensor does not fit " + data.length + " floats");
        }
        this.data = data;
    }
}
