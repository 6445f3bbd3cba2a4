package sps2.operators.sp;

/** Comparisons of logit vectors shared by the sequence-parallel test and the GPU dry run. */
final class LogitChecks {
    private LogitChecks() {
    }

    /** ||a - ref|| / ||ref||, or NaN when a holds a non-finite value. */
    static double relErr(float[] a, float[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            if (!Float.isFinite(a[i])) {
                return Double.NaN;
            }
            num += (a[i] - ref[i]) * (double) (a[i] - ref[i]);
            den += ref[i] * (double) ref[i];
        }
        return Math.sqrt(num / den);
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
