package sps2.gpu;

import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.Rope;

/** A plain float64 Llama forward pass over the whole sequence, written independently of any backend. */
public final class ReferenceLlama {
    private final ModelConfig c;
    private final ModelWeights w;

    public ReferenceLlama(ModelWeights w) {
        this.c = w.config();
        this.w = w;
    }

    /** Logits [tokens.length][vocab] for every position. */
    public double[][] logits(int[] tokens) {
        int n = tokens.length;
        int dim = c.dim();
        int hs = c.headSize();
        double[][] x = new double[n][];
        float[] emb = w.get("tok_embeddings").toFloats();
        for (int i = 0; i < n; i++) {
            x[i] = new double[dim];
            for (int j = 0; j < dim; j++) {
                x[i][j] = emb[tokens[i] * dim + j];
            }
        }
        float[] inv = Rope.inverseFrequencies(c);
        for (int l = 0; l < c.nLayers(); l++) {
            double[][] xb = norm(x, w.layer(l, "attention_norm").toFloats());
            double[][] q = mat(xb, w.layer(l, "wq").toFloats(), c.nHeads() * hs);
            double[][] k = mat(xb, w.layer(l, "wk").toFloats(), c.kvDim());
            double[][] v = mat(xb, w.layer(l, "wv").toFloats(), c.kvDim());
            for (int i = 0; i < n; i++) {
                rope(q[i], i, inv, hs);
                rope(k[i], i, inv, hs);
            }
            double[][] att = new double[n][c.nHeads() * hs];
            for (int i = 0; i < n; i++) {
                for (int h = 0; h < c.nHeads(); h++) {
                    int g = h / c.groupSize();
                    double[] s = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int t = 0; t <= i; t++) {
                        double d = 0;
                        for (int e = 0; e < hs; e++) {
                            d += q[i][h * hs + e] * k[t][g * hs + e];
                        }
                        s[t] = d / Math.sqrt(hs);
                        max = Math.max(max, s[t]);
                    }
                    double sum = 0;
                    for (int t = 0; t <= i; t++) {
                        s[t] = Math.exp(s[t] - max);
                        sum += s[t];
                    }
                    for (int t = 0; t <= i; t++) {
                        for (int e = 0; e < hs; e++) {
                            att[i][h * hs + e] += s[t] / sum * v[t][g * hs + e];
                        }
                    }
                }
            }
            addInto(x, mat(att, w.layer(l, "wo").toFloats(), dim));
            double[][] hb = norm(x, w.layer(l, "ffn_norm").toFloats());
            double[][] g1 = mat(hb, w.layer(l, "w1").toFloats(), c.hiddenDim());
            double[][] g3 = mat(hb, w.layer(l, "w3").toFloats(), c.hiddenDim());
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < c.hiddenDim(); j++) {
                    double a = g1[i][j];
                    g1[i][j] = a / (1 + Math.exp(-a)) * g3[i][j];
                }
            }
            addInto(x, mat(g1, w.layer(l, "w2").toFloats(), dim));
        }
        return mat(norm(x, w.get("norm").toFloats()), w.output().toFloats(), c.vocabSize());
    }

    private double[][] norm(double[][] x, float[] weight) {
        double[][] out = new double[x.length][];
        for (int i = 0; i < x.length; i++) {
            double ss = 0;
            for (double v : x[i]) {
                ss += v * v;
            }
            double scale = 1 / Math.sqrt(ss / x[i].length + c.rmsEps());
            out[i] = new double[x[i].length];
            for (int j = 0; j < x[i].length; j++) {
                out[i][j] = weight[j] * x[i][j] * scale;
            }
        }
        return out;
    }

    private static double[][] mat(double[][] x, float[] w, int outs) {
        int in = x[0].length;
        double[][] out = new double[x.length][outs];
        for (int i = 0; i < x.length; i++) {
            for (int o = 0; o < outs; o++) {
                double s = 0;
                for (int j = 0; j < in; j++) {
                    s += x[i][j] * w[o * in + j];
                }
                out[i][o] = s;
            }
        }
        return out;
    }

    private static void rope(double[] v, int pos, float[] inv, int hs) {
        for (int h = 0; h < v.length / hs; h++) {
            for (int j = 0; j < hs / 2; j++) {
                double a = pos * (double) inv[j];
                double x0 = v[h * hs + 2 * j];
                double x1 = v[h * hs + 2 * j + 1];
                v[h * hs + 2 * j] = x0 * Math.cos(a) - x1 * Math.sin(a);
                v[h * hs + 2 * j + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
            }
        }
    }

    private static void addInto(double[][] x, double[][] y) {
        for (int i = 0; i < x.length; i++) {
            for (int j = 0; j < x[i].length; j++) {
                x[i][j] += y[i][j];
            }
        }
    }

    public static double relativeError(float[] out, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            if (Float.isNaN(out[i])) {
                return Double.NaN;
            }
            num += (out[i] - ref[i]) * (out[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }
}
