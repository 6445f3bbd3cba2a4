package sps2.model;

/**
 * Hyper-parameters of a Llama-architecture model.
 *
 * @param dim            model (residual stream) width
 * @param hiddenDim      SwiGLU inner width
 * @param nLayers        transformer blocks
 * @param nHeads         query heads
 * @param nKvHeads       key/value heads (grouped-query attention when smaller than nHeads)
 * @param vocabSize      rows of the embedding table
 * @param contextLength  longest sequence the model accepts (positions 0 .. contextLength-1)
 * @param ropeTheta      RoPE base frequency
 * @param rmsEps         RMSNorm epsilon
 * @param tiedEmbeddings whether the output head reuses the embedding table
 * @param ropeScaling    Llama-3 style frequency scaling, or null for none
 */
public record ModelConfig(
        int dim,
        int hiddenDim,
        int nLayers,
        int nHeads,
        int nKvHeads,
        int vocabSize,
        int contextLength,
        float ropeTheta,
        float rmsEps,
        boolean tiedEmbeddings,
        RopeScaling ropeScaling) implements java.io.Serializable {

    public ModelConfig {
        if (dim <= 0 || hiddenDim <= 0 || nLayers <= 0 || nHeads <= 0 || nKvHeads <= 0 || vocabSize <= 0 || contextLength <= 0) {
            throw new IllegalArgumentException("Model dimensions must be positive, got " + describe(dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, contextLength));
        }
        if (dim % nHeads != 0) {
            throw new IllegalArgumentException("dim " + dim + " is not a multiple of the head count " + nHeads);
        }
        if (nHeads % nKvHeads != 0) {
            throw new IllegalArgumentException("head count " + nHeads + " is not a multiple of the KV head count " + nKvHeads);
        }
        if ((dim / nHeads) % 2 != 0) {
            throw new IllegalArgumentException("head size " + (dim / nHeads) + " must be even for RoPE");
        }
    }

    private static String describe(int... v) {
        return java.util.Arrays.toString(v);
    }

    /** Width of one attention head. */
    public int headSize() {
        return dim / nHeads;
    }

    /** Width of the K (or V) projection: nKvHeads * headSize. */
    public int kvDim() {
        return nKvHeads * headSize();
    }

    /** Query heads that share one KV head. */
    public int groupSize() {
        return nHeads / nKvHeads;
    }

    public ModelConfig withContextLength(int newContextLength) {
        return new ModelConfig(dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, newContextLength, ropeTheta, rmsEps, tiedEmbeddings, ropeScaling);
    }

    /** Llama-3.1/3.2 RoPE frequency scaling ("rope_type": "llama3"). */
    public record RopeScaling(float factor, float lowFreqFactor, float highFreqFactor, int originalContextLength) implements java.io.Serializable {
    }
}
