package sps2.operators.io;

/**
 * Bounds on what one request may hold and on every record the job writes to Kafka, so that no input can
 * make the job write a record its producers or the broker refuse (a sink that fails restarts the job, and
 * the same input would fail it again, forever).
 *
 * <p>Requests (checked before anything about the request is emitted):
 * <ul>
 *   <li>a request record's value is at most {@code maxRequestBytes} (default {@link #DEFAULT_MAX_REQUEST_BYTES},
 *       set per job in {@link KafkaIo}); a larger record is not parsed at all: it becomes a dead letter, and
 *       when its request id can be read from the first bytes, the client also gets a rejection;</li>
 *   <li>a request id is 1 to {@link #MAX_REQUEST_ID_BYTES} bytes of UTF-8 without control characters
 *       ({@link RequestIds});</li>
 *   <li>the model name is at most {@link #MAX_MODEL_NAME_BYTES} bytes;</li>
 *   <li>at most {@link #MAX_STOP_STRINGS} stop strings of 1 to {@link #MAX_STOP_STRING_BYTES} bytes each, and
 *       at most {@link #MAX_STOP_TOKENS} stop tokens;</li>
 *   <li>a text prompt that could not fit the model's context whatever it tokenizes to is rejected before it is
 *       tokenized (see {@link RequestValidator#validatePromptText}).</li>
 * </ul>
 *
 * <p>Records the job writes: a token event holds a bounded id, one token's text and a message of at most
 * {@link #MAX_MESSAGE_CHARS} characters; a dead letter holds at most {@link #DEAD_LETTER_KEY_BYTES} and
 * {@link #DEAD_LETTER_VALUE_BYTES} bytes of the raw record plus lengths and a hash. The serializers check
 * {@link #MAX_EVENT_BYTES} once more before a record leaves, far below the producers'
 * {@link #PRODUCER_MAX_REQUEST_BYTES} (Kafka's default {@code max.request.size} and, near enough, the
 * broker's default {@code message.max.bytes}).
 */
public final class RecordLimits {

    /** Largest request record value the job parses: Kafka's default record size limit. */
    public static final int DEFAULT_MAX_REQUEST_BYTES = 1 << 20;
    /** Longest request id, in UTF-8 bytes. */
    public static final int MAX_REQUEST_ID_BYTES = 256;
    /** Longest model name, in UTF-8 bytes. */
    public static final int MAX_MODEL_NAME_BYTES = 256;
    /** Most stop strings per request. */
    public static final int MAX_STOP_STRINGS = 16;
    /** Longest stop string, in UTF-8 bytes. */
    public static final int MAX_STOP_STRING_BYTES = 256;
    /** Most stop token ids per request. */
    public static final int MAX_STOP_TOKENS = 256;
    /** Longest error, rejection or dead-letter message, in characters. */
    public static final int MAX_MESSAGE_CHARS = 2048;
    /** Bytes of the raw key a dead letter keeps. */
    public static final int DEAD_LETTER_KEY_BYTES = 1024;
    /** Bytes of the raw value a dead letter keeps. */
    public static final int DEAD_LETTER_VALUE_BYTES = 4096;
    /** Largest encoded token event or dead letter the job's serializers let through. */
    public static final int MAX_EVENT_BYTES = 64 * 1024;
    /** The producers' {@code max.request.size}: a batch of records of at most {@link #MAX_EVENT_BYTES} each. */
    public static final int PRODUCER_MAX_REQUEST_BYTES = 1 << 20;
    /** How much of a user-given value a message quotes, in characters. */
    public static final int QUOTE_CHARS = 64;

    private RecordLimits() {
    }

    /**
     * {@code text} cut to at most {@code maxChars} characters (never inside a surrogate pair), with an
     * ellipsis and the full length when it was cut.
     */
    public static String truncate(String text, int maxChars) {
        if (text == null || text.length() <= maxChars) {
            return text;
        }
        String suffix = "... (" + text.length() + " characters)";
        int keep = Math.max(0, maxChars - suffix.length());
        if (keep > 0 && Character.isHighSurrogate(text.charAt(keep - 1))) {
            keep--;
        }
        return text.substring(0, keep) + suffix;
    }

    /** A user-given value for a message: quoted and cut to {@link #QUOTE_CHARS} characters. */
    public static String quote(String value) {
        return value == null ? "null" : "'" + truncate(value, QUOTE_CHARS) + "'";
    }

    /** A message cut to {@link #MAX_MESSAGE_CHARS} characters. */
    public static String message(String text) {
        return truncate(text, MAX_MESSAGE_CHARS);
    }
}
