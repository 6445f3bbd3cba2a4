package sps2.gpu.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * out[n, outs] = x[n, in] · Wᵀ for a {@link CpuWeight}, in register tiles of 4 token rows x 4 panels (16
 * vector accumulators, no reduction across lanes: lane j of a panel's accumulator is output j of the panel).
 *
 * <p>Every output element is one fused multiply-add chain over the input in order,
 * {@code out[r][c] = fma(x[r][in-1], W[c][in-1], ... fma(x[r][1], W[c][1], fma(x[r][0], W[c][0], 0)))},
 * exactly {@link Scalar#dot}, whatever kernel, tile, batch or thread computed it: a token's row is bit-identical
 * whether it is multiplied alone (decode) or among many (prefill), and on machines of any vector width.
 */
final class Matmul {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();

    /** Token rows per work unit in prefill: a unit's rows of x and its panels of W stay in L2 together. */
    static final int ROW_BLOCK = 64;
    /** Panels per work unit (and per register tile). */
    static final int PANEL_GROUP = 4;

    private Matmul() {
    }

    /** Work units of a product of n rows: row blocks x panel groups. */
    static int units(int n, CpuWeight w) {
        return rowBlocks(n) * panelGroups(w);
    }

    private static int rowBlocks(int n) {
        return (n + ROW_BLOCK - 1) / ROW_BLOCK;
    }

    private static int panelGroups(CpuWeight w) {
        return (panelCount(w) + PANEL_GROUP - 1) / PANEL_GROUP;
    }

    /** Panels of L output rows, the last one possibly partial. */
    private static int panelCount(CpuWeight w) {
        return (w.rows() + L - 1) / L;
    }

    /** Computes work unit {@code u} of {@link #units}: up to ROW_BLOCK rows times up to PANEL_GROUP panels. */
    static void unit(float[] o, float[] x, CpuWeight w, int n, int u) {
        int blocks = rowBlocks(n);
        int r0 = (u % blocks) * ROW_BLOCK;
        int p0 = (u / blocks) * PANEL_GROUP;
        block(o, x, w, r0, Math.min(n, r0 + ROW_BLOCK), p0, Math.min(panelCount(w), p0 + PANEL_GROUP));
    }

    /** Rows [r0, r1) times panels [p0, p1) of the product. */
    static void block(float[] o, float[] x, CpuWeight w, int r0, int r1, int p0, int p1) {
        int in = w.cols();
        int outs = w.rows();
        float[] ws = w.panels(L);
        int full = outs / L; // panels with L valid rows
        int p = p0;
        for (; p + 4 <= Math.min(p1, full); p += 4) {
            int r = r0;
            for (; r + 4 <= r1; r += 4) {
                tile4x4(o, outs, x, in, r, ws, p);
            }
            for (; r < r1; r++) {
                row1x4(o, outs, x, in, r, ws, p);
            }
        }
        for (; p < p1; p++) {
            int valid = Math.min(L, outs - p * L);
            int r = r0;
            for (; r + 4 <= r1; r += 4) {
                tile4x1(o, outs, x, in, r, ws, p, valid);
            }
            for (; r < r1; r++) {
                row1x1(o, outs, x, in, r, ws, p, valid);
            }
        }
    }

    // ---- kernels: rows r.., panels p.. ; x is [.., in] row-major, w packed [panel][in][L], o is [.., outs] ----

    private static void tile4x4(float[] o, int outs, float[] x, int in, int r, float[] w, int p) {
        int x0 = r * in, x1 = x0 + in, x2 = x1 + in, x3 = x2 + in;
        int stride = in * L;
        int w0 = p * stride, w1 = w0 + stride, w2 = w1 + stride, w3 = w2 + stride;
        FloatVector c00 = FloatVector.zero(S), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int i = 0, k = 0; i < in; i++, k += L) {
            FloatVector v0 = FloatVector.fromArray(S, w, w0 + k);
            FloatVector v1 = FloatVector.fromArray(S, w, w1 + k);
            FloatVector v2 = FloatVector.fromArray(S, w, w2 + k);
            FloatVector v3 = FloatVector.fromArray(S, w, w3 + k);
            FloatVector b = FloatVector.broadcast(S, x[x0 + i]);
            c00 = v0.fma(b, c00);
            c01 = v1.fma(b, c01);
            c02 = v2.fma(b, c02);
            c03 = v3.fma(b, c03);
            b = FloatVector.broadcast(S, x[x1 + i]);
            c10 = v0.fma(b, c10);
            c11 = v1.fma(b, c11);
            c12 = v2.fma(b, c12);
            c13 = v3.fma(b, c13);
            b = FloatVector.broadcast(S, x[x2 + i]);
            c20 = v0.fma(b, c20);
            c21 = v1.fma(b, c21);
            c22 = v2.fma(b, c22);
            c23 = v3.fma(b, c23);
            b = FloatVector.broadcast(S, x[x3 + i]);
            c30 = v0.fma(b, c30);
            c31 = v1.fma(b, c31);
            c32 = v2.fma(b, c32);
            c33 = v3.fma(b, c33);
        }
        int at = r * outs + p * L;
        c00.intoArray(o, at);
        c01.intoArray(o, at + L);
        c02.intoArray(o, at + 2 * L);
        c03.intoArray(o, at + 3 * L);
        at += outs;
        c10.intoArray(o, at);
        c11.intoArray(o, at + L);
        c12.intoArray(o, at + 2 * L);
        c13.intoArray(o, at + 3 * L);
        at += outs;
        c20.intoArray(o, at);
        c21.intoArray(o, at + L);
        c22.intoArray(o, at + 2 * L);
        c23.intoArray(o, at + 3 * L);
        at += outs;
        c30.intoArray(o, at);
        c31.intoArray(o, at + L);
        c32.intoArray(o, at + 2 * L);
        c33.intoArray(o, at + 3 * L);
    }

    private static void row1x4(float[] o, int outs, float[] x, int in, int r, float[] w, int p) {
        int x0 = r * in;
        int stride = in * L;
        int w0 = p * stride, w1 = w0 + stride, w2 = w1 + stride, w3 = w2 + stride;
        FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
        for (int i = 0, k = 0; i < in; i++, k += L) {
            FloatVector b = FloatVector.broadcast(S, x[x0 + i]);
            c0 = FloatVector.fromArray(S, w, w0 + k).fma(b, c0);
            c1 = FloatVector.fromArray(S, w, w1 + k).fma(b, c1);
            c2 = FloatVector.fromArray(S, w, w2 + k).fma(b, c2);
            c3 = FloatVector.fromArray(S, w, w3 + k).fma(b, c3);
        }
        int at = r * outs + p * L;
        c0.intoArray(o, at);
        c1.intoArray(o, at + L);
        c2.intoArray(o, at + 2 * L);
        c3.intoArray(o, at + 3 * L);
    }

    /** Four rows of one panel, of which the first {@code valid} outputs exist. */
    private static void tile4x1(float[] o, int outs, float[] x, int in, int r, float[] w, int p, int valid) {
        int x0 = r * in, x1 = x0 + in, x2 = x1 + in, x3 = x2 + in;
        int w0 = p * in * L;
        FloatVector c0 = FloatVector.zero(S), c1 = c0, c2 = c0, c3 = c0;
        for (int i = 0, k = w0; i < in; i++, k += L) {
            FloatVector v = FloatVector.fromArray(S, w, k);
            c0 = v.fma(FloatVector.broadcast(S, x[x0 + i]), c0);
            c1 = v.fma(FloatVector.broadcast(S, x[x1 + i]), c1);
            c2 = v.fma(FloatVector.broadcast(S, x[x2 + i]), c2);
            c3 = v.fma(FloatVector.broadcast(S, x[x3 + i]), c3);
        }
        int at = r * outs + p * L;
        store(c0, o, at, valid);
        store(c1, o, at + outs, valid);
        store(c2, o, at + 2 * outs, valid);
        store(c3, o, at + 3 * outs, valid);
    }

    private static void row1x1(float[] o, int outs, float[] x, int in, int r, float[] w, int p, int valid) {
        int x0 = r * in;
        FloatVector c = FloatVector.zero(S);
        for (int i = 0, k = p * in * L; i < in; i++, k += L) {
            c = FloatVector.fromArray(S, w, k).fma(FloatVector.broadcast(S, x[x0 + i]), c);
        }
        store(c, o, r * outs + p * L, valid);
    }

    /** Stores the first {@code valid} lanes (a partial last panel must not spill into the next row). */
    private static void store(FloatVector v, float[] o, int at, int valid) {
        if (valid == L) {
            v.intoArray(o, at);
        } else {
            float[] lanes = v.toArray();
            System.arraycopy(lanes, 0, o, at, valid);
        }
    }
}
