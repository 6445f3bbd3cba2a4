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
import sps2.operators.io.RequestValidator;
import sps2.operators.messages.Admitted;
import sps2.schemas.DeadLetter;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Validates and tokenizes requests. Unreadable records go to the dead-letter output; readable requests
 * with bad fields become one rejection event each. Nothing here can stop the job: any failure on one
 * record turns into that record's error event.
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
        if (tokenizer == null) {
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
            return;
        }
        GenerateRequest r = in.request();
        String id = r.getRequestId();
        try {
            String problem = validator.validate(r);
            int[] tokens = null;
            if (problem == null && tokenizer == null) {
                problem = noTokenizerProblem(r);
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
            a.maxTokens = r.getMaxTokens();
            a.temperature = r.getTemperature();
            a.topK = r.getTopK();
            a.topP = r.getTopP();
            a.minP = r.getMinP();
            a.seed = r.getSeed();
            a.ignoreEos = r.getIgnoreEos();
            a.stopTokens = toInts(r.getStopTokens());
            a.stopStrings = r.getStopStrings().toArray(new String[0]);
            a.priority = r.getPriority();
            a.admittedAtMs = in.readTimestampMs();
            out.collect(a);
        } catch (RuntimeException e) {
            LOG.warn("Request {} failed while being prepared.", id, e);
            reject(ctx, id, "The request could not be prepared: " + e.getMessage(), FinishReason.ERROR);
        }
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

    private void reject(Context ctx, String id, String message, FinishReason reason) {
        rejected.inc();
        LOG.info("Rejected request {}: {}", id, message);
        ctx.output(ERRORS, TokenEvent.newBuilder().setRequestId(id == null ? "" : id).setIndex(-1).setFinished(true)
                .setFinishReason(reason).setError(message).setEmitTimestampMs(System.currentTimeMillis()).build());
    }

    private static int[] toInts(List<Integer> v) {
        return v == null ? new int[0] : v.stream().mapToInt(Integer::intValue).toArray();
    }
}
