package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Set;

import org.junit.jupiter.api.Test;

import sps2.schemas.GenerateRequest;

class RequestValidatorTest {

    private final RequestValidator validator = new RequestValidator(new ModelLimits(512, 256, 100, Set.of("stories260K", "tiny")));

    private void assertRejected(GenerateRequest request, String expectedFragment) {
        String message = validator.validate(request);
        assertNotNull(message, "expected a rejection mentioning '" + expectedFragment + "'");
        assertTrue(message.contains(expectedFragment), message);
        assertTrue(message.endsWith("."), "one sentence: " + message);
    }

    @Test
    void acceptsReasonableRequests() {
        assertNull(validator.validate(Requests.text("a", "Once upon a time").build()));
        assertNull(validator.validate(Requests.text("b", "x").setModel("tiny").setTemperature(0f).setTopP(1f).setMinP(0.05f).build()));
        assertNull(validator.validate(Requests.tokens("c", List.of(1, 2, 99)).setStopTokens(List.of(2)).build()));
    }

    @Test
    void rejectsMissingOrDoublePrompts() {
        assertRejected(GenerateRequest.newBuilder().setRequestId("a").setMaxTokens(4).build(), "no prompt");
        assertRejected(Requests.text("a", "").build(), "prompt text is empty");
        assertRejected(Requests.tokens("a", List.of()).build(), "token list is empty");
        assertRejected(Requests.text("a", "hi").setPromptTokens(List.of(1)).build(), "both prompt and promptTokens");
        assertRejected(Requests.text(" ", "hi").build(), "request id is empty");
    }

    @Test
    void rejectsBadSamplingParameters() {
        assertRejected(Requests.text("a", "hi").setMaxTokens(0).build(), "maxTokens is 0");
        assertRejected(Requests.text("a", "hi").setMaxTokens(-3).build(), "maxTokens is -3");
        assertRejected(Requests.text("a", "hi").setMaxTokens(257).build(), "at most 256");
        assertRejected(Requests.text("a", "hi").setTemperature(Float.NaN).build(), "temperature is NaN");
        assertRejected(Requests.text("a", "hi").setTemperature(-0.1f).build(), "temperature");
        assertRejected(Requests.text("a", "hi").setTemperature(Float.POSITIVE_INFINITY).build(), "temperature is Infinity");
        assertRejected(Requests.text("a", "hi").setTopP(0f).build(), "topP is 0.0");
        assertRejected(Requests.text("a", "hi").setTopP(1.01f).build(), "topP");
        assertRejected(Requests.text("a", "hi").setTopP(Float.NaN).build(), "topP");
        assertRejected(Requests.text("a", "hi").setTopK(-1).build(), "topK is -1");
        assertRejected(Requests.text("a", "hi").setMinP(1f).build(), "minP is 1.0");
        assertRejected(Requests.text("a", "hi").setMinP(-0.5f).build(), "minP");
        assertRejected(Requests.text("a", "hi").setMinP(Float.NaN).build(), "minP");
    }

    @Test
    void rejectsUnknownModelsAndTokensOutsideTheVocabulary() {
        assertRejected(Requests.text("a", "hi").setModel("gpt-9").build(), "'gpt-9' is not served here; known models: stories260K, tiny");
        assertRejected(Requests.tokens("a", List.of(1, 100)).build(), "prompt token at position 1 is 100");
        assertRejected(Requests.tokens("a", List.of(-1)).build(), "prompt token at position 0 is -1");
        assertRejected(Requests.text("a", "hi").setStopTokens(List.of(5, 1000)).build(), "stop token at position 1 is 1000");
    }

    @Test
    void checksPromptLengthAgainstTheContext() {
        assertNull(validator.validatePromptLength(500, 12));
        assertNotNull(validator.validatePromptLength(0, 1));
        String tooLong = validator.validatePromptLength(513, 1);
        assertTrue(tooLong.contains("513 tokens, longer than the model's context of 512"), tooLong);
        String withOutput = validator.validatePromptLength(500, 13);
        assertTrue(withOutput.contains("plus maxTokens (13) needs 513") && withOutput.contains("at most 12"), withOutput);
        // Token-id prompts are checked at once by validate().
        assertRejected(Requests.tokens("a", java.util.Collections.nCopies(510, 1)).setMaxTokens(3).build(), "plus maxTokens (3)");
    }

    @Test
    void rejectsIdsModelNamesAndStopsBeyondTheRecordLimitsWithoutQuotingThemWhole() {
        String longId = "x".repeat(600_000);
        String message = validator.validate(Requests.text(longId, "hi").build());
        assertNotNull(message);
        assertTrue(message.contains("600000 bytes"), message);
        assertTrue(message.length() < 300, "the message must not echo the id: " + message.length() + " characters");
        assertNull(validator.validate(Requests.text("x".repeat(RecordLimits.MAX_REQUEST_ID_BYTES), "hi").build()), "an id at the limit is fine");
        assertRejected(Requests.text("é".repeat(RecordLimits.MAX_REQUEST_ID_BYTES / 2 + 1), "hi").build(), "258 bytes");
        assertRejected(Requests.text("a\nb", "hi").build(), "control character (U+000A) at position 1");

        String longModel = "m".repeat(100_000);
        String modelMessage = validator.validate(Requests.text("a", "hi").setModel(longModel).build());
        assertTrue(modelMessage.contains("100000 bytes") && modelMessage.length() < 300, modelMessage);
        String unknown = validator.validate(Requests.text("a", "hi").setModel("n".repeat(200)).build());
        assertTrue(unknown.contains("is not served here") && unknown.length() < 300, unknown);

        List<String> many = new java.util.ArrayList<>();
        for (int i = 0; i <= RecordLimits.MAX_STOP_STRINGS; i++) {
            many.add("stop" + i);
        }
        assertRejected(Requests.text("a", "hi").setStopStrings(many).build(), "at most " + RecordLimits.MAX_STOP_STRINGS);
        assertNull(validator.validate(Requests.text("a", "hi").setStopStrings(many.subList(0, RecordLimits.MAX_STOP_STRINGS)).build()));
        assertRejected(Requests.text("a", "hi").setStopStrings(List.of("ok", "s".repeat(RecordLimits.MAX_STOP_STRING_BYTES + 1))).build(),
                "Stop string 1 is 257 bytes");
        assertRejected(Requests.text("a", "hi").setStopStrings(List.of("")).build(), "Stop string 0 is empty");
        List<Integer> stopTokens = java.util.Collections.nCopies(RecordLimits.MAX_STOP_TOKENS + 1, 3);
        assertRejected(Requests.text("a", "hi").setStopTokens(stopTokens).build(), "stop tokens; at most");
    }

    @Test
    void aTextThatCannotFitTheContextIsRejectedBeforeTokenizing() {
        // context 512 tokens, at most 8 bytes per token: 4096 bytes might fit, 4097 cannot
        assertNull(validator.validatePromptText(4096, 8));
        String message = validator.validatePromptText(4097, 8);
        assertNotNull(message);
        assertTrue(message.contains("4097 bytes") && message.contains("512 tokens"), message);
    }
}
