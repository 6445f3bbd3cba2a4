package sps2.model.sampler;

/**
 * How to pick the next token; see {@link Sampler} for the exact algorithm.
 *
 * @param temperature 0 for greedy (argmax), otherwise the softmax temperature; finite and at least 0
 * @param topK        keep only the k most probable tokens; 0 turns the filter off
 * @param topP        keep the smallest set of most probable tokens whose mass reaches topP; 1 turns it off
 * @param minP        keep tokens at least minP times as probable as the most probable one; 0 turns it off
 * @param seed        with the position, the only input of the random draw
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, long seed) {

    public SamplingParams {
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("The sampling temperature must be a finite number of at least 0, got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top-k must be at least 0 (0 turns it off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1] (1 turns it off), got " + topP);
        }
        if (!(minP >= 0 && minP < 1)) {
            throw new IllegalArgumentException("min-p must be in [0, 1) (0 turns it off), got " + minP);
        }
    }

    /** Always the most probable token. */
    public static SamplingParams greedy() {
        return new SamplingParams(0f, 0, 1f, 0f, 0L);
    }

    /** Plain softmax sampling at a temperature, no truncation. */
    public static SamplingParams temperature(float temperature, long seed) {
        return new SamplingParams(temperature, 0, 1f, 0f, seed);
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }
}
