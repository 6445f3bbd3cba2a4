package sps2.gpu.cpu;

/**
 * A weight matrix [rows = out, cols = in]. It starts row-major, as uploaded, and is packed for the vector
 * kernels of {@link Matmul} the first time they use it: panels of {@code lanes} consecutive output rows, each
 * panel stored input column by input column,
 *
 * <pre>
 *   panels[(p * cols + i) * lanes + j] = W[p * lanes + j][i]      p < ceil(rows / lanes), i < cols, j < lanes
 * </pre>
 *
 * so that one vector load gives input column i of {@code lanes} outputs (rows past the end of the last panel are
 * zero). Packing replaces the row-major copy: a weight is held once. Until then (the first milliseconds of a
 * process, see {@link CpuBackend}) products run on the row-major copy with scalar code, to the same bits.
 */
final class CpuWeight extends HeapMatrix {
    /** Row-major values, until packed. */
    private volatile float[] rowMajor;
    /** The packed panels, once packed. */
    private volatile float[] panels;
    private int lanes;

    CpuWeight(float[] rowMajor, int rows, int cols) {
        super(rows, cols);
        this.rowMajor = rowMajor;
    }

    /** The row-major values, or null once packed. */
    float[] rowMajor() {
        return rowMajor;
    }

    /** The packed panels for vectors of {@code lanes} floats, packing them now if needed. */
    float[] panels(int lanes) {
        float[] p = panels;
        if (p == null) {
            synchronized (this) {
                p = panels;
                if (p == null) {
                    p = pack(rowMajor, rows, cols, lanes);
                    this.lanes = lanes;
                    panels = p;
                    rowMajor = null;
                }
            }
        }
        return p;
    }

    private static float[] pack(float[] w, int rows, int cols, int lanes) {
        int count = (rows + lanes - 1) / lanes;
        float[] panels = new float[Math.multiplyExact(Math.multiplyExact(count, cols), lanes)];
        for (int r = 0; r < rows; r++) {
            int base = (r / lanes) * cols * lanes + r % lanes;
            for (int i = 0; i < cols; i++) {
                panels[base + i * lanes] = w[r * cols + i];
            }
        }
        return panels;
    }

    /** Copies row r into dst[at .. at + cols), from whichever layout the weight has. */
    void row(int r, float[] dst, int at) {
        float[] p = panels;
        if (p == null) {
            float[] w = rowMajor;
            if (w != null) {
                System.arraycopy(w, r * cols, dst, at, cols);
                return;
            }
            p = panels; // packed meanwhile
        }
        int base = (r / lanes) * cols * lanes + r % lanes;
        for (int i = 0; i < cols; i++) {
            dst[at + i] = p[base + i * lanes];
        }
    }

    @Override
    public String toString() {
        return "CpuWeight[" + rows + ", " + cols + "]";
    }
}
