package sps2.job.cli;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.StringJoiner;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import sps2.job.UserException;
import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.job.embedded.EmbeddedKafka;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.tokenizer.TextStream;
import sps2.model.tokenizer.Tokenizer;
import sps2.model.tokenizer.Tokenizers;
import sps2.operators.JobSettings;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Everything in one process: a real Kafka broker (KRaft, in this JVM), a Flink MiniCluster running the
 * sps2 job, and a client that sends one request through Kafka and prints the tokens as they come back.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Run the sps2 job on an embedded Kafka broker and Flink cluster and stream one request through it.")
public final class DemoCommand implements Callable<Integer> {
    @Parameters(index = "0", arity = "0..1", description = "Prompt text (default: \"${DEFAULT-VALUE}\").", defaultValue = "Once upon a time")
    String prompt;

    @Option(names = "--prompt-file", description = "Read the prompt from a file instead.")
    Path promptFile;

    @Option(names = "--model", description = "Model checkpoint; default: a small random-weight model that sps2 writes itself.")
    Path model;

    @Mixin
    JobOptions jobOptions;

    @Option(names = "--max-tokens", defaultValue = "128", description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "1.0", description = "0 = greedy (default: ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = "--top-p", defaultValue = "0.9", description = "Nucleus mass (default: ${DEFAULT-VALUE}).")
    float topP;

    @Option(names = "--top-k", defaultValue = "0", description = "Top-k; 0 disables it.")
    int topK;

    @Option(names = "--seed", defaultValue = "42", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--ids", description = "Print the whole token id sequence (BOS and prompt included) like generate --ids.")
    boolean ids;

    @Option(names = "--metrics-port", defaultValue = "0",
            description = "Serve the job's metrics for Prometheus on this port while the demo runs; 0: no endpoint (default: ${DEFAULT-VALUE}).")
    int metricsPort;

    @Override
    public Integer call() throws Exception {
        jobOptions.configureLogging();
        String text = promptFile != null ? GenerateCommand.promptText(null, promptFile) : prompt;
        Path modelPath = model;
        if (modelPath == null && DefaultModel.find().isPresent()) {
            modelPath = DefaultModel.find().get();
            System.err.println("No --model given: using the pretrained " + modelPath + " (give --model to choose another).");
        } else if (modelPath == null) {
            Path dir = Path.of(System.getProperty("sps2.root", "."), "job", "target", "demo-model");
            modelPath = DemoModel.ensure(dir);
            System.err.println("No --model given and no shared " + DefaultModel.RELATIVE + " beside the checkout: using a random-weight "
                    + DemoModel.SHAPE + "-shaped model that sps2 wrote to " + dir + " (its text is gibberish; every part of the serving path is real).");
        }
        ModelWeights weights = ModelLoader.load(modelPath);
        Tokenizer tokenizer = Tokenizers.forModel(modelPath, jobOptions.tokenizer, weights);
        int[] promptIds = tokenizer.encode(text, true);
        if (promptIds.length + maxTokens > weights.config().contextLength()) {
            throw new UserException("The prompt has " + promptIds.length + " tokens; with --max-tokens " + maxTokens + " it exceeds the model's context of "
                    + weights.config().contextLength() + ".");
        }
        JobSettings settings = jobOptions.settings(modelPath);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            KafkaTopics topics = KafkaTopics.defaults();
            kafka.createTopics(1, topics.all());
            System.err.println("Kafka broker is up at " + kafka.bootstrapServers() + ".");
            KafkaIo io = new KafkaIo(kafka.bootstrapServers(), "sps2-demo", topics);
            try (EmbeddedJob job = EmbeddedJob.start(settings, io, jobOptions.checkpointIntervalMs(0), Duration.ofMinutes(5), metricsPort);
                    TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), topics.tokens(), Duration.ofSeconds(30));
                    RequestProducer producer = new RequestProducer(kafka.bootstrapServers(), topics.requests())) {
                System.err.println("The sps2 job is running (" + settings.mode() + " mode, " + settings.shards() + " shard(s), " + settings.backend()
                        + " backend); sending the request.");
                String id = "demo-" + UUID.randomUUID();
                TextStream stream = new TextStream(tokenizer, promptIds[promptIds.length - 1]);
                StringJoiner idLine = new StringJoiner(" ");
                for (int t : promptIds) {
                    idLine.add(Integer.toString(t));
                }
                if (!ids) {
                    out.print(text);
                }
                var done = consumer.track(id, new TokenStreamConsumer.Listener() {
                    @Override
                    public void onToken(TokenEvent event, long arrivalNanos) {
                        idLine.add(Integer.toString(event.getTokenId()));
                        if (!ids) {
                            out.print(stream.append(event.getTokenId()));
                        }
                    }
                });
                long sent = System.nanoTime();
                producer.send(GenerateRequest.newBuilder().setRequestId(id).setPrompt(text).setMaxTokens(maxTokens).setTemperature(temperature)
                        .setTopP(topP).setTopK(topK).setSeed(seed).setClientTimestampMs(System.currentTimeMillis()).build());
                producer.flush();
                TokenStreamConsumer.Result result = done.get(10, TimeUnit.MINUTES);
                out.println(ids ? idLine.toString() : "");
                if (result.failed()) {
                    System.err.println("The request failed: " + result.error());
                    return 1;
                }
                printTimings(result, sent);
            }
        }
        System.err.println("Stopped the job, the Flink cluster and the broker.");
        return 0;
    }

    private static void printTimings(TokenStreamConsumer.Result r, long sentNanos) {
        long[] t = r.arrivalNanos();
        if (t.length == 0) {
            return;
        }
        double ttft = (t[0] - sentNanos) / 1e6;
        double meanTbt = t.length > 1 ? (t[t.length - 1] - t[0]) / 1e6 / (t.length - 1) : 0;
        double tokensPerSecond = t.length > 1 ? (t.length - 1) / ((t[t.length - 1] - t[0]) / 1e9) : 0;
        org.HdrHistogram.Histogram tbt = new org.HdrHistogram.Histogram(3);
        for (int i = 1; i < t.length; i++) {
            tbt.recordValue(Math.max(1, (t[i] - t[i - 1]) / 1000));
        }
        System.err.printf("%d tokens (%s): TTFT %.1f ms, TBT mean %.2f / p50 %.2f / p99 %.2f ms, %.1f tokens/s, %d replayed duplicates%n", t.length,
                r.finishReason().toString().toLowerCase(), ttft, meanTbt, tbt.getValueAtPercentile(50) / 1e3, tbt.getValueAtPercentile(99) / 1e3,
                tokensPerSecond, r.duplicates());
    }
}
