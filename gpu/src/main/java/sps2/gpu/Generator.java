package sps2.gpu;

import java.util.function.IntPredicate;

import sps2.model.sampler.SamplingParams;

/**
 * Single-process generation, the reference of every distributed mode: prefill the prompt, then sample
 * and feed one token at a time. The token at absolute position p is drawn with randomness that depends
 * only on (seed, p), so every mode that computes the same logits draws the same tokens.
 */
public final class Generator {
    private final LlamaModel model;
    private final int chunk;

    public Generator(LlamaModel model, int chunk) {
        this.model = model;
        this.chunk = chunk;
    }

    /**
     * Generates up to {@code maxTokens} tokens after {@code prompt}.
     *
     * @param onToken called with each new token (already counted); returns true to stop after it
     * @return the generated tokens
     */
    public int[] generate(int[] prompt, int maxTokens, SamplingParams params, IntPredicate onToken) {
        int total = Math.min(model.config().contextLength(), prompt.length + maxTokens);
        int[] out = new int[Math.max(0, total - prompt.length)];
        int n = 0;
        try (Sequence seq = new Sequence(model, total, chunk)) {
            if (out.length == 0) {
                seq.forward(prompt);
            } else {
                // The logits stay on the device: the backend samples there (Backend.sample) and returns the id.
                int token = seq.next(prompt, params);
                while (true) {
                    out[n++] = token;
                    if (onToken.test(token) || n == out.length) {
                        break;
                    }
                    token = seq.next(new int[] {token}, params);
                }
            }
        }
        return java.util.Arrays.copyOf(out, n);
    }
}
