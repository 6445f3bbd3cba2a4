package sps2.model.gguf;

import java.util.LinkedHashMap;
import java.util.Map;
import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelFormatException;
import sps2.model.ModelWeights;
import sps2.model.Rope;

/**
 * Reads a Llama model out of a GGUF file: the config from the {@code llama.*} metadata and the tensors
 * under canonical names. GGUF llama checkpoints keep Meta's interleaved RoPE layout for Q and K (llama.cpp's
 * converters undo Hugging Face's permutation), which is already the canonical layout.
 */
public final class GgufLlama {

    /** GGUF per-layer tensor suffix and canonical per-layer name, in file order. */
    private static final String[][] LAYER_NAMES = {
            {"attn_norm.weight", "attention_norm"},
            {"attn_q.weight", "wq"},
            {"attn_k.weight", "wk"},
            {"attn_v.weight", "wv"},
            {"attn_output.weight", "wo"},
            {"ffn_norm.weight", "ffn_norm"},
            {"ffn_gate.weight", "w1"},
            {"ffn_down.weight", "w2"},
            {"ffn_up.weight", "w3"}};

    private GgufLlama() {
    }

    public static ModelWeights load(GgufFile gguf) {
        ModelConfig config = config(gguf);
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        tensors.put("tok_embeddings", gguf.tensor("token_embd.weight", "tok_embeddings"));
        for (int l = 0; l < config.nLayers(); l++) {
            for (String[] names : LAYER_NAMES) {
                String name = "blk." + l + "." + names[0];
                if (!gguf.hasTensor(name)) {
                    throw new ModelFormatException("The GGUF file " + gguf.path() + " lacks the tensor " + name + ".");
                }
                tensors.put("layers." + l + "." + names[1], gguf.tensor(name, "layers." + l + "." + names[1]));
            }
        }
        if (!gguf.hasTensor("output_norm.weight")) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " lacks the tensor output_norm.weight.");
        }
        tensors.put("norm", gguf.tensor("output_norm.weight", "norm"));
        if (!config.tiedEmbeddings()) {
            tensors.put("output", gguf.tensor("output.weight", "output"));
        }
        return new ModelWeights(config, tensors, gguf.path().toString());
    }

    public static ModelConfig config(GgufFile gguf) {
        String arch = gguf.getString("general.architecture", "(none)");
        if (!arch.equals("llama")) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " holds a model of architecture '" + arch + "'; only 'llama' is supported.");
        }
        GgufFile.TensorInfo embd = gguf.tensorInfos().get("token_embd.weight");
        if (embd == null || embd.shape().length != 2) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " lacks a 2-D token_embd.weight tensor.");
        }
        int dim = gguf.getInt("llama.embedding_length");
        int nHeads = gguf.getInt("llama.attention.head_count");
        // The embedding table defines the vocabulary size; a token list of another size is reported when the
        // tokenizer is paired with the model (Tokenizers.forModel).
        int vocab = Math.toIntExact(embd.shape()[0]);
        int rotary = gguf.getInt("llama.rope.dimension_count", dim / Math.max(nHeads, 1));
        if (nHeads > 0 && rotary != dim / nHeads) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " rotates " + rotary + " of " + (dim / nHeads)
                    + " dimensions per head; only full-head RoPE is supported.");
        }
        boolean tied = !gguf.hasTensor("output.weight");
        try {
            ModelConfig base = new ModelConfig(
                    dim,
                    gguf.getInt("llama.feed_forward_length"),
                    gguf.getInt("llama.block_count"),
                    nHeads,
                    gguf.getInt("llama.attention.head_count_kv", nHeads),
                    vocab,
                    gguf.getInt("llama.context_length"),
                    gguf.getFloat("llama.rope.freq_base", 10000f),
                    gguf.getFloat("llama.attention.layer_norm_rms_epsilon", 1e-5f),
                    tied,
                    null);
            ModelConfig.RopeScaling scaling = ropeScaling(gguf, base);
            return scaling == null ? base : new ModelConfig(base.dim(), base.hiddenDim(), base.nLayers(), base.nHeads(), base.nKvHeads(),
                    base.vocabSize(), base.contextLength(), base.ropeTheta(), base.rmsEps(), base.tiedEmbeddings(), scaling);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " has an invalid model configuration: " + e.getMessage() + ".", e);
        }
    }

    /**
     * Llama-3 RoPE scaling, from {@code llama.rope.scaling.*} keys when they are all there, else fitted to the
     * {@code rope_freqs.weight} tensor that llama.cpp's converter writes (one divisor per frequency). Other
     * scaling types are refused.
     */
    static ModelConfig.RopeScaling ropeScaling(GgufFile gguf, ModelConfig base) {
        String type = gguf.getString("llama.rope.scaling.type", null);
        if (type != null && !type.equals("none") && !type.equals("llama3")) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " uses RoPE scaling of type '" + type + "'; only Llama-3 scaling is supported.");
        }
        int original = gguf.getInt("llama.rope.scaling.original_context_length", 8192);
        if (gguf.has("llama.rope.scaling.factor") && gguf.has("llama.rope.scaling.low_freq_factor") && gguf.has("llama.rope.scaling.high_freq_factor")) {
            float factor = gguf.getFloat("llama.rope.scaling.factor");
            return factor == 1f ? null : new ModelConfig.RopeScaling(factor, gguf.getFloat("llama.rope.scaling.low_freq_factor"),
                    gguf.getFloat("llama.rope.scaling.high_freq_factor"), original);
        }
        if (!gguf.hasTensor("rope_freqs.weight")) {
            return null;
        }
        float[] divisors = gguf.tensor("rope_freqs.weight").toFloats();
        ModelConfig.RopeScaling fitted = fitRopeScaling(base, divisors, original);
        if (fitted == null) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " has a rope_freqs.weight tensor that does not match Llama-3 RoPE scaling.");
        }
        return fitted;
    }

    /**
     * Finds Llama-3 scaling parameters that reproduce the given per-frequency divisors (unscaled / scaled
     * frequency), or null when none do. In the smooth band the scaled frequency is f*((1-s)/factor + s) with
     * s linear in 1/wavelength, so two band points fix low and high; the result is verified on all points.
     */
    static ModelConfig.RopeScaling fitRopeScaling(ModelConfig base, float[] divisors, int original) {
        int half = base.headSize() / 2;
        if (divisors.length != half) {
            return null;
        }
        float factor = 1f;
        for (float d : divisors) {
            factor = Math.max(factor, d);
        }
        if (factor == 1f) {
            return null; // no scaling at all
        }
        float[] plain = Rope.inverseFrequencies(base);
        double[] x = new double[2];
        double[] s = new double[2];
        int found = 0;
        for (int j = 0; j < half && found < 2; j++) {
            double r = 1.0 / divisors[j];
            if (Math.abs(divisors[j] - 1f) > 1e-4 && Math.abs(divisors[j] - factor) > 1e-4 * factor) {
                x[found] = original / (2 * Math.PI / plain[j]);
                s[found] = (r - 1.0 / factor) / (1.0 - 1.0 / factor);
                found++;
            }
        }
        if (found < 2 || s[0] == s[1]) {
            return null;
        }
        double width = (x[0] - x[1]) / (s[0] - s[1]); // high - low
        double low = x[0] - s[0] * width;
        ModelConfig.RopeScaling scaling = new ModelConfig.RopeScaling(factor, (float) low, (float) (low + width), original);
        ModelConfig scaled = new ModelConfig(base.dim(), base.hiddenDim(), base.nLayers(), base.nHeads(), base.nKvHeads(), base.vocabSize(),
                base.contextLength(), base.ropeTheta(), base.rmsEps(), base.tiedEmbeddings(), scaling);
        float[] got = Rope.inverseFrequencies(scaled);
        for (int j = 0; j < half; j++) {
            if (Math.abs(got[j] * divisors[j] / plain[j] - 1) > 1e-3) {
                return null;
            }
        }
        return scaling;
    }
}
