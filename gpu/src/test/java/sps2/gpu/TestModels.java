package sps2.gpu;

import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;

/** Random in-memory models for tests. */
public final class TestModels {
    private TestModels() {
    }

    public static ModelConfig tinyConfig() {
        return new ModelConfig(32, 48, 2, 4, 2, 61, 256, 10000f, 1e-5f, false, null);
    }

    public static ModelWeights random(ModelConfig c, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, HostTensor> t = new HashMap<>();
        int hs = c.headSize();
        put(t, rnd, "tok_embeddings", 1.0f, false, c.vocabSize(), c.dim());
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "layers." + l + ".";
            put(t, rnd, p + "attention_norm", 0.1f, true, c.dim());
            put(t, rnd, p + "wq", 0.3f, false, c.nHeads() * hs, c.dim());
            put(t, rnd, p + "wk", 0.3f, false, c.nKvHeads() * hs, c.dim());
            put(t, rnd, p + "wv", 0.3f, false, c.nKvHeads() * hs, c.dim());
            put(t, rnd, p + "wo", 0.3f, false, c.dim(), c.nHeads() * hs);
            put(t, rnd, p + "ffn_norm", 0.1f, true, c.dim());
            put(t, rnd, p + "w1", 0.3f, false, c.hiddenDim(), c.dim());
            put(t, rnd, p + "w2", 0.3f, false, c.dim(), c.hiddenDim());
            put(t, rnd, p + "w3", 0.3f, false, c.hiddenDim(), c.dim());
        }
        put(t, rnd, "norm", 0.1f, true, c.dim());
        if (!c.tiedEmbeddings()) {
            put(t, rnd, "output", 0.3f, false, c.vocabSize(), c.dim());
        }
        return new ModelWeights(c, t, "random(seed=" + seed + ")");
    }

    private static void put(Map<String, HostTensor> t, SplittableRandom rnd, String name, float scale, boolean aroundOne, long... shape) {
        float[] v = new float[(int) HostTensor.elementCount(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((aroundOne ? 1 : 0) + scale * rnd.nextGaussian());
        }
        t.put(name, HostTensor.ofFloats(name, v, shape));
    }
}
