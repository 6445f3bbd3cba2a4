package sps2.operators.io;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;
import java.util.TreeSet;

import sps2.schemas.GenerateRequest;

/**
 * Checks a request against the served model's {@link ModelLimits}. Every check returns null when
 * the request is acceptable, or one sentence saying what is wrong, for the client's rejection event.
 *
 * <p>The prompt length of a text prompt is only known after tokenizing, so it is checked separately
 * by {@link #validatePromptLength(int, int)}; {@link #validate(GenerateRequest)} checks it at once
 * for a prompt given as token ids, and {@link #validatePromptText} turns away a text too long for any
 * tokenization to fit before it is tokenized. Duplicate request ids in flight are the scheduler's concern.
 *
 * <p>Besides the model's limits every request is held to {@link RecordLimits} (id, model name, stop
 * strings and tokens), and messages quote user-given values only in part, so that a rejection is always
 * a small record.
 */
public final class RequestValidator implements Serializable {

    private static final long serialVersionUID = 1L;

    private final ModelLimits limits;

    public RequestValidator(ModelLimits limits) {
        this.limits = Objects.requireNonNull(limits, "limits");
    }

    public ModelLimits limits() {
        return limits;
    }

    /** Checks the request's fields; returns null if they are acceptable, otherwise the reason. */
    public String validate(GenerateRequest request) {
        String badId = RequestIds.problem(request.getRequestId());
        if (badId != null) {
            return badId;
        }
        String model = request.getModel();
        if (model != null && RequestIds.utf8Length(model) > RecordLimits.MAX_MODEL_NAME_BYTES) {
            return "The model name is " + RequestIds.utf8Length(model) + " bytes long; names have at most "
                    + RecordLimits.MAX_MODEL_NAME_BYTES + " bytes.";
        }
        if (model != null && !limits.modelNames().contains(model)) {
            return "The model " + RecordLimits.quote(model) + " is not served here; known models: "
                    + String.join(", ", new TreeSet<>(limits.modelNames())) + ".";
        }
        String stops = checkStops(request);
        if (stops != null) {
            return stops;
        }
        String text = request.getPrompt();
        List<Integer> ids = request.getPromptTokens();
        if (text != null && ids != null) {
            return "The request sets both prompt and promptTokens; set exactly one.";
        }
        if (text == null && ids == null) {
            return "The request has no prompt: set prompt or promptTokens.";
        }
        if (text != null && text.isEmpty()) {
            return "The prompt text is empty.";
        }
        if (ids != null && ids.isEmpty()) {
            return "The prompt token list is empty.";
        }
        int maxTokens = request.getMaxTokens();
        if (maxTokens <= 0) {
            return "maxTokens is " + maxTokens + " but must be at least 1.";
        }
        if (maxTokens > limits.maxTokensCap()) {
            return "maxTokens is " + maxTokens + " but this server generates at most " + limits.maxTokensCap()
                    + " tokens per request.";
        }
        float temperature = request.getTemperature();
        if (!(temperature >= 0f && temperature < Float.POSITIVE_INFINITY)) {
            return "temperature is " + temperature + " but must be a finite number of at least 0.";
        }
        float topP = request.getTopP();
        if (!(topP > 0f && topP <= 1f)) {
            return "topP is " + topP + " but must lie in (0, 1].";
        }
        if (request.getTopK() < 0) {
            return "topK is " + request.getTopK() + " but must be at least 0 (0 disables it).";
        }
        float minP = request.getMinP();
        if (!(minP >= 0f && minP < 1f)) {
            return "minP is " + minP + " but must lie in [0, 1).";
        }
        if (ids != null) {
            String bad = checkTokenIds(ids, "prompt");
            if (bad != null) {
                return bad;
            }
            String length = validatePromptLength(ids.size(), maxTokens);
            if (length != null) {
                return length;
            }
        }
        return checkTokenIds(request.getStopTokens(), "stop");
    }

    /**
     * Checks a prompt of {@code promptTokens} tokens (after tokenizing) that asks for
     * {@code maxTokens} more against the context length; null if it fits, otherwise the reason.
     */
    public String validatePromptLength(int promptTokens, int maxTokens) {
        int context = limits.contextLength();
        if (promptTokens <= 0) {
            return "The prompt is empty after tokenizing.";
        }
        if (promptTokens > context) {
            return "The prompt has " + promptTokens + " tokens, longer than the model's context of " + context + " tokens.";
        }
        long total = (long) promptTokens + maxTokens;
        if (total > context) {
            return "The prompt (" + promptTokens + " tokens) plus maxTokens (" + maxTokens + ") needs " + total
                    + " tokens, more than the model's context of " + context + "; ask for at most "
                    + (context - promptTokens) + " tokens.";
        }
        return null;
    }

    /**
     * Checks a text prompt of {@code utf8Bytes} bytes before tokenizing: no token covers more than
     * {@code maxBytesPerToken} bytes of text, so a longer text than context x that many bytes cannot fit the
     * context; null if it might fit, otherwise the reason.
     */
    public String validatePromptText(long utf8Bytes, int maxBytesPerToken) {
        long most = (long) limits.contextLength() * Math.max(1, maxBytesPerToken);
        if (utf8Bytes > most) {
            return "The prompt text is " + utf8Bytes + " bytes; with this model's tokenizer (at most " + maxBytesPerToken
                    + " bytes per token) that is more than the context of " + limits.contextLength() + " tokens.";
        }
        return null;
    }

    private static String checkStops(GenerateRequest request) {
        List<String> strings = request.getStopStrings();
        if (strings != null) {
            if (strings.size() > RecordLimits.MAX_STOP_STRINGS) {
                return "The request has " + strings.size() + " stop strings; at most " + RecordLimits.MAX_STOP_STRINGS + " are allowed.";
            }
            for (int i = 0; i < strings.size(); i++) {
                String stop = strings.get(i);
                if (stop == null || stop.isEmpty()) {
                    return "Stop string " + i + " is empty; an empty stop string would end every generation at once.";
                }
                int bytes = RequestIds.utf8Length(stop);
                if (bytes > RecordLimits.MAX_STOP_STRING_BYTES) {
                    return "Stop string " + i + " is " + bytes + " bytes long; stop strings have at most "
                            + RecordLimits.MAX_STOP_STRING_BYTES + " bytes.";
                }
            }
        }
        List<Integer> tokens = request.getStopTokens();
        if (tokens != null && tokens.size() > RecordLimits.MAX_STOP_TOKENS) {
            return "The request has " + tokens.size() + " stop tokens; at most " + RecordLimits.MAX_STOP_TOKENS + " are allowed.";
        }
        return null;
    }

    private String checkTokenIds(List<Integer> ids, String what) {
        int vocab = limits.vocabSize();
        for (int i = 0; i < ids.size(); i++) {
            Integer id = ids.get(i);
            if (id == null || id < 0 || id >= vocab) {
                return "The " + what + " token at position " + i + " is " + id + ", outside the vocabulary [0, " + vocab + ").";
            }
        }
        return null;
    }
}
