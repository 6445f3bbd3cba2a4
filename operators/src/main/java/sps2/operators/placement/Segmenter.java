package sps2.operators.placement;

import sps2.model.ModelConfig;

/**
 * Cuts a prompt into contiguous segments of equal prefill cost. A token at position p costs its linear
 * layers (projections and MLP, the same for every token) plus causal attention over p+1 keys, so later
 * tokens cost more and later segments get fewer tokens.
 */
public final class Segmenter {
    private final double attentionPerKey;
    private final int minSegment;

    /**
     * @param config     the model (sets the ratio of attention cost per key to linear cost per token)
     * @param minSegment a prompt is split only into segments of at least this many tokens
     */
    public Segmenter(ModelConfig config, int minSegment) {
        double d = config.dim();
        double linear = 2 * (d * config.dim() * 2 + 2 * d * config.kvDim() + 3 * d * config.hiddenDim());
        this.attentionPerKey = 4.0 * config.nHeads() * config.headSize() / linear;
        this.minSegment = Math.max(1, minSegment);
    }

    /**
     * Segment boundaries for a prompt of {@code tokens} tokens over at most {@code shards} shards:
     * returns b with b[0] = 0, b[k] = tokens, segment i = [b[i], b[i+1]), every segment non-empty.
     */
    public int[] split(int tokens, int shards) {
        int segments = Math.max(1, Math.min(shards, tokens / minSegment));
        int[] b = new int[segments + 1];
        b[segments] = tokens;
        double total = cost(tokens);
        int at = 0;
        for (int s = 1; s < segments; s++) {
            double target = total * s / segments;
            int lo = at + 1;
            int hi = tokens - (segments - s);
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (cost(mid) < target) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            b[s] = lo;
            at = lo;
        }
        return b;
    }

    /** Cost of prefilling positions 0..p-1, in units of one token's linear layers. */
    double cost(int p) {
        return p + attentionPerKey * p * (p + 1.0) / 2.0;
    }
}
