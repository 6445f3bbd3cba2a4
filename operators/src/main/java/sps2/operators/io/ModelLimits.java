package sps2.operators.io;

import java.io.Serializable;
import java.util.Set;

/**
 * What the served model allows, for {@link RequestValidator}.
 *
 * @param contextLength tokens the model attends over at most (prompt plus generated tokens)
 * @param maxTokensCap the most tokens one request may ask to generate
 * @param vocabSize token ids must lie in [0, vocabSize)
 * @param modelNames names a request may give in its {@code model} field (null there means the default)
 */
public record ModelLimits(int contextLength, int maxTokensCap, int vocabSize, Set<String> modelNames) implements Serializable {

    public ModelLimits {
        if (contextLength <= 0 || maxTokensCap <= 0 || vocabSize <= 0) {
            throw new IllegalArgumentException("Model limits must be positive: context " + contextLength
                    + ", max tokens cap " + maxTokensCap + ", vocabulary " + vocabSize + ".");
        }
        modelNames = Set.copyOf(modelNames);
    }

    /** The limits a job with these settings serves a model of this configuration with. */
    public static ModelLimits of(sps2.operators.JobSettings settings, sps2.model.ModelConfig config) {
        return new ModelLimits(Math.min(settings.contextLength(), config.contextLength()), settings.maxTokensCap(), config.vocabSize(),
                Set.of(settings.modelName()));
    }
}
