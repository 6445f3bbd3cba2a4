package sps2.operators.io;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/**
 * Names of the Kafka topics the job uses.
 *
 * @param requests requests written by clients ({@code GenerateRequest}, keyed by request id)
 * @param tokens token events written by the job ({@code TokenEvent}, keyed by request id)
 * @param deadLetters records of the requests topic that could not be read ({@code DeadLetter})
 * @param feedback the decode-step feedback edge, when it runs over Kafka
 */
public record KafkaTopics(String requests, String tokens, String deadLetters, String feedback) implements Serializable {

    public static final String DEFAULT_REQUESTS = "sps2-requests";
    public static final String DEFAULT_TOKENS = "sps2-tokens";
    public static final String DEFAULT_DEAD_LETTERS = "sps2-dead-letters";
    public static final String DEFAULT_FEEDBACK = "sps2-feedback";

    public KafkaTopics {
        Objects.requireNonNull(requests, "requests");
        Objects.requireNonNull(tokens, "tokens");
        Objects.requireNonNull(deadLetters, "deadLetters");
        Objects.requireNonNull(feedback, "feedback");
    }

    public static KafkaTopics defaults() {
        return new KafkaTopics(DEFAULT_REQUESTS, DEFAULT_TOKENS, DEFAULT_DEAD_LETTERS, DEFAULT_FEEDBACK);
    }

    /** The default names with a prefix, e.g. to keep runs of tests apart on one broker. */
    public static KafkaTopics withPrefix(String prefix) {
        return new KafkaTopics(prefix + DEFAULT_REQUESTS, prefix + DEFAULT_TOKENS, prefix + DEFAULT_DEAD_LETTERS,
                prefix + DEFAULT_FEEDBACK);
    }

    public List<String> all() {
        return List.of(requests, tokens, deadLetters, feedback);
    }
}
