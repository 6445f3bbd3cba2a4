package sps2.gpu.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * e^x in float32 from additions, multiplications and fused multiply-adds only (Cody-Waite reduction by ln 2,
 * Cephes' degree-5 polynomial, the power of two written into the exponent bits), within 2 ulp of the exact value.
 *
 * <p>Why not {@code lanewise(VectorOperators.EXP)}: compiled by C2 it calls the SVML library, interpreted it
 * calls Math.exp lane by lane, and the two differ in the last bit for about 1% of inputs, so a row's attention
 * would depend on how warm the JIT was when it ran. Every step here is one correctly rounded IEEE operation,
 * so the vector loops in any JIT tier and {@link #exp(float)} give the same bits for the same input.
 */
final class Exp {
    private Exp() {
    }

    /** Below this e^x is taken as 0 (e^-87.3 is 1.2e-38, the smallest normal float). */
    private static final float LO = -87.3f;
    /** Above this e^x is taken as +infinity (e^88 is 1.7e38). */
    private static final float HI = 88f;
    private static final float LOG2E = 1.44269504088896341f;
    /** 1.5 * 2^23: adding it rounds to an integer, kept in the low mantissa bits. */
    private static final float ROUND = 12582912f;
    /** ln 2 = LN2_HI - LN2_LO, LN2_HI with few significant bits so that k * LN2_HI is exact. */
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = 2.12194440e-4f;
    private static final float C5 = 1.9875691500e-4f;
    private static final float C4 = 1.3981999507e-3f;
    private static final float C3 = 8.3334519073e-3f;
    private static final float C2 = 4.1665795894e-2f;
    private static final float C1 = 1.6666665459e-1f;
    private static final float C0 = 5.0000001201e-1f;

    static float exp(float x) {
        float c = Math.max(Math.min(x, HI), LO);
        float t = Math.fma(c, LOG2E, ROUND);                      // 1.5 * 2^23 + k, k = round(c / ln 2)
        float k = t - ROUND;
        float r = Math.fma(k, LN2_LO, Math.fma(k, -LN2_HI, c));  // c - k ln 2, |r| <= ln 2 / 2
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(C5, r, C4), r, C3), r, C2), r, C1), r, C0);
        float y = Math.fma(p, r * r, r) + 1f;                     // e^r
        // 2^k from the exponent field: t's low mantissa bits hold k, and (bits + 127) << 23 keeps only k + 127
        float e = y * Float.intBitsToFloat(Float.floatToRawIntBits(t) + 127 << 23);
        return x < LO ? 0f : x > HI ? Float.POSITIVE_INFINITY : e;
    }

    // The vector form of exp(float) is written out inside each loop below rather than called: C2 does not inline a
    // callee that it has already compiled into a large method, and a vector passed through a call that is not
    // inlined is a heap object (hundreds of bytes a token on the decode path).

    // Each kernel comes twice, in vectors and in plain Java: the same bits, but separate methods, so that the JIT
    // never compiles a vector loop from a profile in which it did not run (the cold start runs the plain ones).

    /** a[from .. from+n) = e^(a - shift) in place. */
    static void expShiftedScalar(float[] a, int from, int n, float shift) {
        for (int i = 0; i < n; i++) {
            a[from + i] = exp(a[from + i] - shift);
        }
    }

    /** a[from .. from+n) = e^(a - shift) in place, in vectors. */
    static void expShifted(float[] a, int from, int n, float shift) {
        int i = 0;
        for (int bound = Matmul.S.loopBound(n); i < bound; i += Matmul.L) {
            FloatVector x = FloatVector.fromArray(Matmul.S, a, from + i).sub(shift);
            FloatVector c = x.min(HI).max(LO);
            FloatVector t = c.fma(LOG2E, ROUND);
            FloatVector k = t.sub(ROUND);
            FloatVector r = k.fma(x.broadcast(LN2_LO), k.fma(x.broadcast(-LN2_HI), c));
            FloatVector p = r.fma(C5, C4).fma(r, x.broadcast(C3)).fma(r, x.broadcast(C2)).fma(r, x.broadcast(C1)).fma(r, x.broadcast(C0));
            FloatVector y = p.fma(r.mul(r), r).add(1f);
            IntVector bits = t.reinterpretAsInts().add(127).lanewise(VectorOperators.LSHL, 23);
            FloatVector e = y.mul(bits.reinterpretAsFloats())
                    .blend(0f, x.compare(VectorOperators.LT, LO)).blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, HI));
            e.intoArray(a, from + i);
        }
        for (; i < n; i++) {
            a[from + i] = exp(a[from + i] - shift);
        }
    }

    /** o = silu(g) * u = g / (1 + e^-g) * u over [from, to). */
    static void swigluScalar(float[] o, float[] g, float[] u, int from, int to) {
        for (int j = from; j < to; j++) {
            float v = g[j];
            o[j] = v / (1f + exp(-v)) * u[j];
        }
    }

    /** o = silu(g) * u = g / (1 + e^-g) * u over [from, to), in vectors. */
    static void swiglu(float[] o, float[] g, float[] u, int from, int to) {
        int j = from;
        for (int bound = from + Matmul.S.loopBound(to - from); j < bound; j += Matmul.L) {
            FloatVector v = FloatVector.fromArray(Matmul.S, g, j);
            FloatVector x = v.neg();
            FloatVector c = x.min(HI).max(LO);
            FloatVector t = c.fma(LOG2E, ROUND);
            FloatVector k = t.sub(ROUND);
            FloatVector r = k.fma(x.broadcast(LN2_LO), k.fma(x.broadcast(-LN2_HI), c));
            FloatVector p = r.fma(C5, C4).fma(r, x.broadcast(C3)).fma(r, x.broadcast(C2)).fma(r, x.broadcast(C1)).fma(r, x.broadcast(C0));
            FloatVector y = p.fma(r.mul(r), r).add(1f);
            IntVector bits = t.reinterpretAsInts().add(127).lanewise(VectorOperators.LSHL, 23);
            FloatVector e = y.mul(bits.reinterpretAsFloats())
                    .blend(0f, x.compare(VectorOperators.LT, LO)).blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, HI));
            v.div(e.add(1f)).mul(FloatVector.fromArray(Matmul.S, u, j)).intoArray(o, j);
        }
        for (; j < to; j++) {
            float v = g[j];
            o[j] = v / (1f + exp(-v)) * u[j];
        }
    }
}
