package sps2.model.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import sps2.model.HostTensor;

class HfLlamaLayoutTest {
    static final int HEADS = 3;
    static final int HS = 8;
    static final int IN = 5;
    static final int ROWS = HEADS * HS;

    /** HF's convert script: w.view(heads, hs/2, 2, in).transpose(1, 2).reshape(heads*hs, in). */
    static float[] hfPermute(float[] meta) {
        float[] hf = new float[meta.length];
        for (int h = 0; h < HEADS; h++) {
            for (int a = 0; a < 2; a++) {          // transposed axis 1 (size 2)
                for (int b = 0; b < HS / 2; b++) {  // transposed axis 2 (size hs/2)
                    int hfRow = (h * 2 + a) * (HS / 2) + b;
                    int metaRow = (h * (HS / 2) + b) * 2 + a;
                    System.arraycopy(meta, metaRow * IN, hf, hfRow * IN, IN);
                }
            }
        }
        return hf;
    }

    static float[] random(SplittableRandom r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    static double[] matVec(float[] w, float[] x) {
        double[] y = new double[ROWS];
        for (int r = 0; r < ROWS; r++) {
            for (int c = 0; c < IN; c++) {
                y[r] += w[r * IN + c] * (double) x[c];
            }
        }
        return y;
    }

    static double angle(int pos, int i) {
        return pos * Math.pow(10000, -2.0 * i / HS);
    }

    /** Rotate-half RoPE as HF's Llama applies it: element i pairs with i + hs/2. */
    static double[] ropeRotateHalf(double[] v, int pos) {
        double[] o = v.clone();
        for (int h = 0; h < HEADS; h++) {
            for (int i = 0; i < HS / 2; i++) {
                int a = h * HS + i;
                int b = a + HS / 2;
                double c = Math.cos(angle(pos, i));
                double s = Math.sin(angle(pos, i));
                o[a] = v[a] * c - v[b] * s;
                o[b] = v[b] * c + v[a] * s;
            }
        }
        return o;
    }

    /** Interleaved RoPE (Meta, llama2.c): elements 2i and 2i+1 pair. */
    static double[] ropeInterleaved(double[] v, int pos) {
        double[] o = v.clone();
        for (int h = 0; h < HEADS; h++) {
            for (int i = 0; i < HS / 2; i++) {
                int a = h * HS + 2 * i;
                double c = Math.cos(angle(pos, i));
                double s = Math.sin(angle(pos, i));
                o[a] = v[a] * c - v[a + 1] * s;
                o[a + 1] = v[a + 1] * c + v[a] * s;
            }
        }
        return o;
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    static float[] unpermute(float[] hf) {
        return HfLlamaLayout.toInterleaved(HostTensor.ofFloats("q", hf, ROWS, IN), "layers.0.wq", HS).toFloats();
    }

    @Test
    void unpermutingUndoesHfConversion() {
        float[] meta = random(new SplittableRandom(1), ROWS * IN);
        assertArrayEquals(meta, unpermute(hfPermute(meta)));
    }

    @Test
    void attentionScoresMatchBetweenRotateHalfAndInterleavedRope() {
        SplittableRandom rnd = new SplittableRandom(2);
        float[] wqHf = random(rnd, ROWS * IN);
        float[] wkHf = random(rnd, ROWS * IN);
        float[] wq = unpermute(wqHf);
        float[] wk = unpermute(wkHf);
        float[] xq = random(rnd, IN);
        float[] xk = random(rnd, IN);
        for (int[] pos : new int[][] {{0, 0}, {3, 1}, {7, 7}, {100, 42}}) {
            double hfScore = dot(ropeRotateHalf(matVec(wqHf, xq), pos[0]), ropeRotateHalf(matVec(wkHf, xk), pos[1]));
            double ourScore = dot(ropeInterleaved(matVec(wq, xq), pos[0]), ropeInterleaved(matVec(wk, xk), pos[1]));
            assertEquals(hfScore, ourScore, 1e-9 * Math.max(1, Math.abs(hfScore)), "positions " + pos[0] + ", " + pos[1]);
            // Per element too: the rotated interleaved vector is the rotated HF vector, rows un-permuted.
            double[] hfRot = ropeRotateHalf(matVec(wqHf, xq), pos[0]);
            double[] ourRot = ropeInterleaved(matVec(wq, xq), pos[0]);
            for (int r = 0; r < ROWS; r++) {
                assertEquals(hfRot[HfLlamaLayout.hfRow(r, HS)], ourRot[r], 1e-9);
            }
        }
    }

    @Test
    void bf16TensorsKeepTheirTypeWhenUnpermuted() {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(ROWS * IN * 2).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        float[] meta = random(new SplittableRandom(3), ROWS * IN);
        float[] hf = hfPermute(meta);
        for (float v : hf) {
            b.putShort(HostTensor.toBf16(v));
        }
        b.flip();
        HostTensor t = HfLlamaLayout.toInterleaved(new HostTensor("q", sps2.model.DType.BF16, new long[] {ROWS, IN}, b), "layers.0.wk", HS);
        assertEquals(sps2.model.DType.BF16, t.dtype());
        float[] got = t.toFloats();
        for (int i = 0; i < meta.length; i++) {
            assertEquals(Float.intBitsToFloat((HostTensor.toBf16(meta[i]) & 0xffff) << 16), got[i]);
        }
    }

    @Test
    void namesMapBothWays() {
        assertEquals("layers.12.wq", HfLlamaLayout.canonicalName("model.layers.12.self_attn.q_proj.weight"));
        assertEquals("layers.3.w2", HfLlamaLayout.canonicalName("model.layers.3.mlp.down_proj.weight"));
        assertEquals("tok_embeddings", HfLlamaLayout.canonicalName("model.embed_tokens.weight"));
        assertEquals(null, HfLlamaLayout.canonicalName("model.layers.0.self_attn.rotary_emb.inv_freq"));
        for (String c : new String[] {"tok_embeddings", "norm", "output", "layers.0.attention_norm", "layers.1.wq", "layers.1.wk", "layers.1.wv",
                "layers.1.wo", "layers.2.ffn_norm", "layers.2.w1", "layers.2.w2", "layers.2.w3"}) {
            assertEquals(c, HfLlamaLayout.canonicalName(HfLlamaLayout.hfName(c)));
        }
    }
}
