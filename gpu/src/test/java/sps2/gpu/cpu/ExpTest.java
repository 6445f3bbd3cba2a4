package sps2.gpu.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

class ExpTest {
    private static float[] inputs() {
        SplittableRandom r = new SplittableRandom(9);
        float[] x = new float[1 << 14];
        float[] edges = {0f, -0f, 1f, -1f, -87.3f, -87.31f, 88f, 88.01f, -100f, 100f, Float.NaN, Float.NEGATIVE_INFINITY,
                Float.POSITIVE_INFINITY, 1e-30f, -1e-30f, 0.34657359f, -0.34657359f};
        System.arraycopy(edges, 0, x, 0, edges.length);
        for (int i = edges.length; i < x.length; i++) {
            x[i] = (float) (r.nextDouble() * 180 - 90);
        }
        return x;
    }

    /** The vector loop gives the scalar form's bits, in the interpreter and again once the loop is compiled. */
    @Test
    void vectorAndScalarFormsAgreeBitForBitInEveryTier() {
        float[] x = inputs();
        for (int round = 0; round < 300; round++) {
            float[] v = x.clone();
            Exp.expShifted(v, 0, v.length, 0f);
            if (round == 0 || round == 299) {
                for (int i = 0; i < x.length; i++) {
                    assertEquals(Float.floatToIntBits(Exp.exp(x[i])), Float.floatToIntBits(v[i]), "e^" + x[i] + " in round " + round);
                }
            }
        }
    }

    /** The array kernels repeat the vector body: their elements equal the scalar form's at any offset and length. */
    @Test
    void arrayKernelsAgreeWithTheScalarForm() {
        float[] x = inputs();
        float[] u = inputs();
        for (int round = 0; round < 200; round++) {
            int from = round % 7;
            int n = x.length - 13 - round % 5;
            float[] a = x.clone();
            float shift = 3.5f;
            Exp.expShifted(a, from, n, shift);
            float[] o = new float[x.length];
            Exp.swiglu(o, x, u, from, from + n);
            if (round == 0 || round == 199) {
                for (int i = from; i < from + n; i++) {
                    assertEquals(Float.floatToIntBits(Exp.exp(x[i] - shift)), Float.floatToIntBits(a[i]), "e^(" + x[i] + " - shift)");
                    float silu = x[i] / (1f + Exp.exp(-x[i])) * u[i];
                    assertEquals(Float.floatToIntBits(silu), Float.floatToIntBits(o[i]), "swiglu at " + x[i]);
                }
            }
        }
    }

    @Test
    void withinTwoUlpOfTheExactValue() {
        for (float x : inputs()) {
            float got = Exp.exp(x);
            if (Float.isNaN(x)) {
                assertTrue(Float.isNaN(got));
            } else if (x < -87.3f) {
                assertEquals(0f, got, "e^" + x);
            } else if (x > 88f) {
                assertEquals(Float.POSITIVE_INFINITY, got, "e^" + x);
            } else {
                double want = Math.exp(x);
                assertTrue(Math.abs(got - want) <= 2 * Math.ulp((float) want), "e^" + x + " = " + want + ", got " + got);
            }
        }
    }
}
