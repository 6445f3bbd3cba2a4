package sps2.bench.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import sps2.model.ModelConfig;

/** Prompts of token ids for the benchmarks that need no text: BOS, then ids drawn past the special tokens 0-2. */
final class RandomPrompts {
    private RandomPrompts() {
    }

    /** {@code n} token ids: BOS (1), then n - 1 uniform draws from [3, vocabulary size). */
    static List<Integer> draw(SplittableRandom rnd, int n, ModelConfig c) {
        List<Integer> p = new ArrayList<>(n);
        p.add(1);
        for (int i = 1; i < n; i++) {
            p.add(3 + rnd.nextInt(c.vocabSize() - 3));
        }
        return p;
    }
}
