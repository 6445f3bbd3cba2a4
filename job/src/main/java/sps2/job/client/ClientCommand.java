package sps2.job.client;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.common.KafkaException;

import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import sps2.operators.io.KafkaTopics;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * {@code sps2 client}: sends one generation request to a running sps2 job through Kafka and
 * streams the answer to stdout as it arrives; timings go to stderr at the end.
 *
 * <p>Exit code 0 on a complete answer; 1 when the request was rejected, failed, timed out or Kafka
 * could not be reached, with one sentence on stderr saying which.
 */
@Command(name = "client", mixinStandardHelpOptions = true,
        description = "Send one prompt to a running sps2 job over Kafka and stream the generated text.")
public final class ClientCommand implements Callable<Integer> {

    @Option(names = "--bootstrap-servers", defaultValue = "localhost:9092", description = "Kafka bootstrap servers (default: ${DEFAULT-VALUE}).")
    String bootstrapServers;

    @Option(names = "--requests-topic", defaultValue = KafkaTopics.DEFAULT_REQUESTS, description = "Requests topic (default: ${DEFAULT-VALUE}).")
    String requestsTopic;

    @Option(names = "--tokens-topic", defaultValue = KafkaTopics.DEFAULT_TOKENS, description = "Tokens topic (default: ${DEFAULT-VALUE}).")
    String tokensTopic;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Prompt prompt;

    static final class Prompt {
        @Option(names = "--prompt", description = "Prompt text.")
        String text;

        @Option(names = "--prompt-file", description = "File with the prompt text (UTF-8).")
        Path file;

        @Option(names = "--prompt-ids", split = ",", description = "Prompt as comma-separated token ids (used as given, no BOS added).")
        List<Integer> ids;
    }

    @Option(names = "--max-tokens", defaultValue = "128", description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0.0", description = "Sampling temperature; 0 is greedy (default: ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = "--top-p", defaultValue = "1.0", description = "Nucleus mass in (0, 1]; 1 disables it (default: ${DEFAULT-VALUE}).")
    float topP;

    @Option(names = "--top-k", defaultValue = "0", description = "Top-k; 0 disables it (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--min-p", defaultValue = "0.0", description = "Min-p; 0 disables it (default: ${DEFAULT-VALUE}).")
    float minP;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--ignore-eos", description = "Generate exactly --max-tokens tokens.")
    boolean ignoreEos;

    @Option(names = "--request-id", description = "Request id (default: a random UUID).")
    String requestId;

    @Option(names = "--model", description = "Model name (default: the job's model).")
    String model;

    @Option(names = "--timeout", defaultValue = "300", description = "Seconds to wait for the complete answer (default: ${DEFAULT-VALUE}).")
    double timeoutSeconds;

    private final PrintStream out;
    private final PrintStream err;

    public ClientCommand() {
        this(System.out, System.err);
    }

    /** For tests: where the text and the report go. */
    public ClientCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() {
        try {
            return run();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            err.println("Interrupted while waiting for the answer.");
            return 1;
        } catch (UserError e) {
            err.println(e.getMessage());
            return 1;
        } catch (KafkaException e) {
            err.println("Talking to Kafka at " + bootstrapServers + " failed: " + e.getMessage());
            return 1;
        }
    }

    private int run() throws InterruptedException {
        GenerateRequest request = buildRequest();
        Duration timeout = Duration.ofMillis((long) (timeoutSeconds * 1000));
        long deadline = System.nanoTime() + timeout.toNanos();
        AtomicInteger printed = new AtomicInteger();
        long sentNanos;
        TokenStreamConsumer.Result result;
        try (TokenStreamConsumer tokens = open(timeout);
             RequestProducer producer = new RequestProducer(bootstrapServers, requestsTopic)) {
            CompletableFuture<TokenStreamConsumer.Result> answer = tokens.track(request.getRequestId(), new TokenStreamConsumer.Listener() {
                @Override
                public void onToken(TokenEvent event, long arrivalNanos) {
                    out.print(event.getText());
                    out.flush();
                    printed.incrementAndGet();
                }

                @Override
                public void onConflict(TokenEvent notice) {
                    err.println("Warning: " + notice.getError());
                }
            });
            String id = request.getRequestId();
            sentNanos = System.nanoTime();
            await(producer.send(request), deadline,
                    "Kafka at " + bootstrapServers + " did not acknowledge request " + id + " within " + timeoutSeconds + " s",
                    "Sending request " + id + " to Kafka at " + bootstrapServers + " failed");
            result = await(answer, deadline,
                    "No complete answer to request " + id + " within " + timeoutSeconds + " s",
                    "Following the answer to request " + id + " failed");
        } catch (TimeoutException e) {
            if (printed.get() > 0) {
                out.println();
            }
            err.println(e.getMessage() + (printed.get() > 0 ? " (" + printed.get() + " tokens arrived)." : "."));
            return 1;
        }
        if (!result.tokens().isEmpty()) {
            out.println();
        }
        if (result.failed()) {
            String verb = result.finishReason() == FinishReason.REJECTED ? "rejected" : "failed";
            err.println("Request " + result.requestId() + " was " + verb + ": " + (result.error() == null ? "no reason given." : result.error()));
            return 1;
        }
        err.println(report(result, sentNanos));
        return 0;
    }

    /** TTFT, mean TBT and throughput of a complete answer, one line. */
    static String report(TokenStreamConsumer.Result result, long sentNanos) {
        long[] arrivals = result.arrivalNanos();
        int n = arrivals.length;
        if (n == 0) {
            return "No tokens generated (finish: " + result.finishReason() + ").";
        }
        double ttftMs = (arrivals[0] - sentNanos) / 1e6;
        double totalS = (arrivals[n - 1] - sentNanos) / 1e9;
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%d tokens (finish: %s), TTFT %.1f ms", n,
                result.finishReason(), ttftMs));
        if (n > 1) {
            double decodeS = (arrivals[n - 1] - arrivals[0]) / 1e9;
            line.append(String.format(Locale.ROOT, ", mean TBT %.2f ms, %.1f tokens/s after the first",
                    decodeS * 1e3 / (n - 1), (n - 1) / decodeS));
        }
        line.append(String.format(Locale.ROOT, ", %.1f tokens/s overall", n / totalS));
        if (result.duplicates() > 0) {
            line.append(String.format(Locale.ROOT, "; %d duplicate events (%d differing)", result.duplicates(), result.mismatches()));
        }
        return line.append('.').toString();
    }

    private TokenStreamConsumer open(Duration timeout) throws TimeoutException {
        return TokenStreamConsumer.open(bootstrapServers, tokensTopic, timeout);
    }

    GenerateRequest buildRequest() {
        GenerateRequest.Builder builder = GenerateRequest.newBuilder()
                .setRequestId(requestId != null ? requestId : UUID.randomUUID().toString())
                .setModel(model)
                .setMaxTokens(maxTokens)
                .setTemperature(temperature)
                .setTopP(topP)
                .setTopK(topK)
                .setMinP(minP)
                .setSeed(seed)
                .setIgnoreEos(ignoreEos)
                .setClientTimestampMs(System.currentTimeMillis());
        if (prompt.text != null) {
            builder.setPrompt(prompt.text);
        } else if (prompt.file != null) {
            builder.setPrompt(readPrompt(prompt.file));
        } else {
            builder.setPromptTokens(prompt.ids);
        }
        return builder.build();
    }

    private static String readPrompt(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new UserError("The prompt file " + file + " does not exist.");
        } catch (IOException e) {
            throw new UserError("The prompt file " + file + " cannot be read: " + e.getMessage());
        }
    }

    private static <T> T await(CompletableFuture<T> future, long deadline, String timeoutMessage, String failureMessage)
            throws TimeoutException, InterruptedException {
        try {
            return future.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new TimeoutException(timeoutMessage);
        } catch (ExecutionException e) {
            throw new UserError(failureMessage + ": " + e.getCause().getMessage());
        }
    }

    /** A problem to report to the user as one sentence, exit code 1. */
    private static final class UserError extends RuntimeException {
        UserError(String message) {
            super(message);
        }
    }
}
