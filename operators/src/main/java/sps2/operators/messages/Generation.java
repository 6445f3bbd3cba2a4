package sps2.operators.messages;

import java.util.Arrays;
import java.util.Objects;

import sps2.model.sampler.SamplingParams;

/**
 * How a request is to be generated: how long at most, how each token is drawn and what ends it early. Set once
 * when the request is admitted and never changed afterwards, so that the request's state and every step of it
 * share one instance. A Flink POJO (public fields, no-arg constructor) so that it is serialized without Kryo.
 */
public class Generation {
    /** Tokens to generate at most. */
    public int maxTokens;
    /** Softmax temperature; 0 means greedy. */
    public float temperature;
    /** Keep only the k most probable tokens; 0 turns the filter off. */
    public int topK;
    /** Nucleus mass in (0, 1]; 1 turns top-p off. */
    public float topP;
    /** Keep tokens at least this times as probable as the most probable one; 0 turns min-p off. */
    public float minP;
    /** Sampling seed; the draw at a position depends only on the seed and the position. */
    public long seed;
    /** Go on past the end-of-sequence token: exactly {@link #maxTokens} tokens (benchmarks). */
    public boolean ignoreEos;
    /** Generation ends after any of these tokens (the token itself is emitted). */
    public int[] stopTokens;
    /** Generation ends once the generated text ends with one of these. */
    public String[] stopStrings;

    public Generation() {
    }

    /** How each token is drawn. */
    public SamplingParams sampling() {
        return new SamplingParams(temperature, topK, topP, minP, seed);
    }

    /** The same generation: the same limit, sampling and stop conditions. */
    @Override
    public boolean equals(Object o) {
        return o instanceof Generation g && maxTokens == g.maxTokens && Float.compare(temperature, g.temperature) == 0 && topK == g.topK
                && Float.compare(topP, g.topP) == 0 && Float.compare(minP, g.minP) == 0 && seed == g.seed && ignoreEos == g.ignoreEos
                && Arrays.equals(stopTokens, g.stopTokens) && Arrays.equals(stopStrings, g.stopStrings);
    }

    @Override
    public int hashCode() {
        return Objects.hash(maxTokens, temperature, topK, topP, minP, seed, ignoreEos, Arrays.hashCode(stopTokens), Arrays.hashCode(stopStrings));
    }
}
