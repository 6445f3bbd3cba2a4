package sps2.operators.prepare;

import java.nio.file.Path;
import java.util.List;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.model.ModelLoader;
import sps2.model.tokenizer.Tokenizer;
import sps2.model.tokenizer.Tokenizers;
import sps2.operators.JobSettings;
import sps2.operators.io.ModelLimits;
import sps2.operators.io.ParsedRequest;
import sps2.operators.io.RecordLimits;
import sps2.operators.io.RequestIds;
import sps2.operators.io.RequestValidator;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.Generation;
import sps2.schemas.DeadLetter;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Validates and tokenizes requests. Unreadable records go to the dead-letter output; readable requests
 * with bad fields become one rejection event each. Nothing here can stop the job: any failure on one
 * record turns into that record's error event.
 *
 * <p>Every event it emits is bounded ({@link RecordLimits}): a rejection carries the request id in the form
 * {@link RequestIds#eventId} gives (an over-long id is cut, in a form no valid id has) and a message that
 * quotes user-given values only in part. A record too large to read whose id could still be read gets a
 * rejection under that id besides its dead letter, so its client is not left waiting. A text prompt that
 * cannot fit the context whatever it tokenizes to is rejected before the tokenizer runs.
 */
public final class RequestPreparer extends ProcessFunction<ParsedRequest, Admitted> {
    private static final Logger LOG = LoggerFactory.getLogger(RequestPreparer.class);
    public static final OutputTag<DeadLetter> DEAD_LETTERS = new OutputTag<>("dead-letters", TypeInformation.of(DeadLetter.class));
    public static final OutputTag<TokenEvent> ERRORS = new OutputTag<>("request-errors", TypeInformation.of(TokenEvent.class));

    private final JobSettings settings;
    /** Given, or null: read from the model's header when the operator opens. */
    private final ModelLimits givenLimits;
    private transient RequestValidator validator;
    private transient Tokenizer tokenizer;
    /** The most bytes of text one token of {@link #tokenizer} can stand for, with room to spare. */
    private transient int maxBytesPerToken;
    private transient Counter rejected;
    private transient Counter deadLetters;

    /** Limits from the model, which the operator reads when it opens (not when the job graph is built). */
    public RequestPreparer(JobSettings settings) {
        this(settings, null);
    }

    public RequestPreparer(JobSettings settings, ModelLimits limits) {
        this.settings = settings;
        this.givenLimits = limits;
    }

    @Override
    public void open(OpenContext ctx) {
        Path model = Path.of(settings.modelPath());
        sps2.model.ModelWeights weights = ModelLoader.load(model);
        ModelLimits limits = givenLimits != null ? givenLimits : ModelLimits.of(settings, weights.config());
        validator = new RequestValidator(limits);
        tokenizer = Tokenizers.find(model, settings.tokenizerPath() == null ? null : Path.of(settings.tokenizerPath()), weights)
                .orElse(null);
        if (tokenizer != null) {
            maxBytesPerToken = maxBytesPerToken(tokenizer);
        } else {
            LOG.info("The model {} has no tokenizer: requests must send prompt token ids, and stop strings cannot be used.", model);
        }
        rejected = getRuntimeContext().getMetricGroup().counter("requestsRejected");
        deadLetters = getRuntimeContext().getMetricGroup().counter("deadLetters");
    }

    @Override
    public void processElement(ParsedRequest in, Context ctx, Collector<Admitted> out) {
        if (!in.isRequest()) {
            deadLetters.inc();
            LOG.warn("Sent an unreadable record (offset {} of {}) to the dead-letter topic: {}", in.deadLetter().getOffset(),
                    in.deadLetter().getTopic(), in.deadLetter().getReason());
            ctx.output(DEAD_LETTERS, in.deadLetter());
            if (in.deadLetter().getRequestId() != null) {
                reject(ctx, in.deadLetter().getRequestId(), in.deadLetter().getReason(), FinishReason.REJECTED);
            }
            return;
        }
        GenerateRequest r = in.request();
        String id = RequestIds.eventId(r.getRequestId());
        try {
            String problem = validator.validate(r);
            int[] tokens = null;
            if (problem == null && tokenizer == null) {
                problem = noTokenizerProblem(r);
            }
            if (problem == null && r.getPrompt() != null) {
                problem = validator.validatePromptText(RequestIds.utf8Length(r.getPrompt()), maxBytesPerToken);
            }
            if (problem == null) {
                tokens = r.getPrompt() != null ? tokenizer.encode(r.getPrompt(), true)
                        : r.getPromptTokens().stream().mapToInt(Integer::intValue).toArray();
                problem = validator.validatePromptLength(tokens.length, r.getMaxTokens());
            }
            if (problem != null) {
                reject(ctx, id, problem, FinishReason.REJECTED);
                return;
            }
            Admitted a = new Admitted();
            a.requestId = id;
            a.promptTokens = tokens;
            Generation g = new Generation();
            g.maxTokens = r.getMaxTokens();
            g.temperature = r.getTemperature();
            g.topK = r.getTopK();
            g.topP = r.getTopP();
            g.minP = r.getMinP();
            g.seed = r.getSeed();
            g.ignoreEos = r.getIgnoreEos();
            g.stopTokens = toInts(r.getStopTokens());
            g.stopStrings = r.getStopStrings().toArray(new String[0]);
            a.generation = g;
            a.priority = r.getPriority();
            a.admittedAtMs = in.readTimestampMs();
            out.collect(a);
        } catch (RuntimeException e) {
            LOG.warn("Request {} failed while being prepared.", id, e);
            reject(ctx, id, "The request could not be prepared: " + e, FinishReason.ERROR);
        }
    }

    /**
     * Twice the longest text a token of {@code tokenizer} decodes to (at least 4 bytes, one UTF-8 character
     * for an unknown-character token): no tokenization of a text has fewer tokens than its bytes over this.
     */
    static int maxBytesPerToken(Tokenizer tokenizer) {
        int most = 4;
        for (int t = 0; t < tokenizer.vocabSize(); t++) {
            most = Math.max(most, tokenizer.decodeBytes(t, t).length);
        }
        return 2 * most;
    }

    /** What a model without a tokenizer cannot serve: text prompts and stop strings. */
    private String noTokenizerProblem(GenerateRequest r) {
        if (r.getPrompt() != null) {
            return "The model " + settings.modelName() + " has no tokenizer, so the prompt must be sent as token ids (promptTokens), not as text.";
        }
        if (r.getStopStrings() != null && !r.getStopStrings().isEmpty()) {
            return "The model " + settings.modelName() + " has no tokenizer, so stop strings cannot be matched; use stop token ids.";
        }
        return null;
    }

    /**
     * Emits the request's one event: a rejection or error without a token, with a bounded message; {@code eventId}
     * is the id in the form {@link RequestIds#eventId} gives.
     */
    private void reject(Context ctx, String eventId, String message, FinishReason reason) {
        rejected.inc();
        String bounded = RecordLimits.message(message);
        LOG.info("Rejected request {}: {}", eventId, bounded);
        ctx.output(ERRORS, TokenEvent.newBuilder().setRequestId(eventId).setIndex(-1).setFinished(true)
                .setFinishReason(reason).setError(bounded).setEmitTimestampMs(System.currentTimeMillis()).build());
    }

    private static int[] toInts(List<Integer> v) {
        return v == null ? new int[0] : v.stream().mapToInt(Integer::intValue).toArray();
    }
}
