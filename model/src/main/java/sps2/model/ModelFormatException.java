package sps2.model;

/**
 * A model or tokenizer file that cannot be used: missing, truncated, of an unknown format, or holding
 * something this system does not support. The message is one sentence meant for the user.
 */
public class ModelFormatException extends RuntimeException {

    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
