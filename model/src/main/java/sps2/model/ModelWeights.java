package sps2.model;

import java.util.Map;
import java.util.TreeMap;

/**
 * A loaded checkpoint: its configuration and its tensors under canonical names, whatever the file
 * format. Matrices are [out, in]. Query/key projections use the interleaved RoPE layout of Meta's
 * and llama2.c's checkpoints (rotation pairs are adjacent elements 2i, 2i+1); loaders of Hugging Face
 * checkpoints undo that format's rotate-half permutation.
 *
 * <pre>
 * tok_embeddings            [vocab, dim]
 * layers.L.attention_norm   [dim]
 * layers.L.wq               [nHeads*headSize, dim]
 * layers.L.wk, layers.L.wv  [nKvHeads*headSize, dim]
 * layers.L.wo               [dim, nHeads*headSize]
 * layers.L.ffn_norm         [dim]
 * layers.L.w1 (gate), w3 (up) [hidden, dim]
 * layers.L.w2 (down)        [dim, hidden]
 * norm                      [dim]
 * output                    [vocab, dim]   (absent when embeddings are tied)
 * </pre>
 */
public record ModelWeights(ModelConfig config, Map<String, HostTensor> tensors, String source) {

    public ModelWeights {
        tensors = new TreeMap<>(tensors);
    }

    public HostTensor get(String name) {
        HostTensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("The model " + source + " has no tensor named " + name);
        }
        return t;
    }

    public HostTensor layer(int layer, String name) {
        return get("layers." + layer + "." + name);
    }

    /** The shape in one line, for a caller that reports what it loaded. */
    public String summary() {
        ModelConfig c = config;
        return c.nLayers() + " layers, dim " + c.dim() + ", " + c.nHeads() + " heads (" + c.nKvHeads() + " KV), vocabulary " + c.vocabSize()
                + ", context " + c.contextLength();
    }

    /** The output head: its own tensor, or the embedding table when tied. */
    public HostTensor output() {
        HostTensor out = tensors.get("output");
        return out != null ? out : get("tok_embeddings");
    }
}
