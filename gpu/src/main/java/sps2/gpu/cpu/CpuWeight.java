package sps2.gpu.cpu;

import sps2.gpu.Tensor;

/**
 * A weight matrix [rows = out, cols = in] packed for {@link Matmul}: panels of {@code lanes} consecutive
 * output rows, each panel stored input column by input column,
 *
 * <pre>
 *   panels[(p * cols + i) * lanes + j] = W[p * lanes + j][i]      p < ceil(rows / lanes), i < cols, j < lanes
 * </pre>
 *
 * so that one vector load gives input column i of {@code lanes} output rows. Rows past the end of the last
 * panel are zero. This is the only copy of the weight: {@link #row} reads a row back (embedding lookups of a
 * tied table).
 */
final class CpuWeight implements Tensor {
    final float[] panels;
    final int lanes;
    private final int rows;
    private final int cols;

    private CpuWeight(float[] panels, int rows, int cols, int lanes) {
        this.panels = panels;
        this.rows = rows;
        this.cols = cols;
        this.lanes = lanes;
    }

    /** Packs a row-major [rows, cols] matrix. */
    static CpuWeight pack(float[] w, int rows, int cols, int lanes) {
        int count = (rows + lanes - 1) / lanes;
        float[] panels = new float[Math.multiplyExact(Math.multiplyExact(count, cols), lanes)];
        for (int r = 0; r < rows; r++) {
            int base = (r / lanes) * cols * lanes + r % lanes;
            for (int i = 0; i < cols; i++) {
                panels[base + i * lanes] = w[r * cols + i];
            }
        }
        return new CpuWeight(panels, rows, cols, lanes);
    }

    /** Number of panels, the last one possibly partial. */
    int panelCount() {
        return (rows + lanes - 1) / lanes;
    }

    /** Copies row r into dst[at .. at + cols). */
    void row(int r, float[] dst, int at) {
        int base = (r / lanes) * cols * lanes + r % lanes;
        for (int i = 0; i < cols; i++) {
            dst[at + i] = panels[base + i * lanes];
        }
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

    @Override
    public String toString() {
        return "CpuWeight[" + rows + ", " + cols + "]";
    }
}
