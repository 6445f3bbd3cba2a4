package sps2.bench.cli;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import sps2.job.UserException;
import sps2.job.cli.EmbeddedJob;
import sps2.job.cli.JobOptions;
import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.job.embedded.EmbeddedKafka;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.operators.JobSettings;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Sequence-parallel prefill in the job itself: one long prompt per SP degree, each degree in its own job (embedded
 * Kafka and Flink, the shards of a degree on the devices the backend gives them), timed from the send to the first
 * token at the client, with the greedy tokens of every degree compared against the first degree's.
 */
@Command(name = "bench-sp", mixinStandardHelpOptions = true,
        description = "TTFT of one long prompt at several SP degrees, each in its own job, and whether their greedy tokens agree.")
public final class BenchSpCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model checkpoint.")
    Path model;

    @Option(names = "--degrees", split = ",", defaultValue = "1,2,4", description = "SP degrees to run (default: ${DEFAULT-VALUE}).")
    List<Integer> degrees;

    @Option(names = "--prompt-tokens", split = ",", defaultValue = "32768", description = "Prompt lengths (default: ${DEFAULT-VALUE}).")
    List<Integer> promptTokens;

    @Option(names = "--max-tokens", defaultValue = "4", description = "Greedy tokens generated after each prompt (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--repeat", defaultValue = "2", description = "Prompts sent one after another per length; the first warms up (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Mixin
    JobOptions jobOptions;

    record Row(int degree, int prompt, double ttftMs, double jobTtftMs, int[] tokens) {
    }

    @Override
    public Integer call() throws Exception {
        if (degrees.isEmpty() || promptTokens.isEmpty() || maxTokens < 1 || repeat < 1) {
            throw new UserException("--degrees, --prompt-tokens, --max-tokens and --repeat need positive values.");
        }
        jobOptions.configureLogging();
        ModelConfig config = ModelLoader.load(model).config();
        List<Row> rows = new ArrayList<>();
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            for (int d : degrees) {
                jobOptions.spDegree = d;
                rows.addAll(run(kafka, jobOptions.settings(model), config));
            }
        }
        System.out.printf(Locale.ROOT, "%nOne prompt at a time, %d greedy tokens each (best of %d sends after the first). Model %s, backend %s, csa %s.%n",
                maxTokens, Math.max(1, repeat - 1), model.getFileName(), jobOptions.backend, jobOptions.csa.name());
        System.out.printf(Locale.ROOT, "%6s %8s | %12s %12s %10s | %s%n", "SP", "prompt", "TTFT ms", "job TTFT ms", "vs SP " + degrees.get(0),
                "tokens equal to SP " + degrees.get(0));
        for (Row r : rows) {
            Row base = rows.stream().filter(x -> x.degree() == degrees.get(0) && x.prompt() == r.prompt()).findFirst().orElse(r);
            int same = 0;
            while (same < r.tokens().length && same < base.tokens().length && r.tokens()[same] == base.tokens()[same]) {
                same++;
            }
            System.out.printf(Locale.ROOT, "%6d %8d | %12.1f %12.1f %9.2fx | %d/%d%s%n", r.degree(), r.prompt(), r.ttftMs(), r.jobTtftMs(),
                    r.ttftMs() / base.ttftMs(), same, r.tokens().length, same == 0 ? " (first token differs)" : "");
        }
        return 0;
    }

    private List<Row> run(EmbeddedKafka kafka, JobSettings settings, ModelConfig config) throws Exception {
        KafkaTopics topics = KafkaTopics.withPrefix("sp" + settings.shards() + "-" + System.nanoTime() + "-");
        kafka.createTopics(1, topics.all());
        KafkaIo io = new KafkaIo(kafka.bootstrapServers(), "bench-sp-" + settings.runtimeId(), topics);
        List<Row> out = new ArrayList<>();
        try (EmbeddedJob job = EmbeddedJob.start(settings, io, 0, Duration.ofMinutes(10));
                TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), topics.tokens(), Duration.ofSeconds(30));
                RequestProducer producer = new RequestProducer(kafka.bootstrapServers(), topics.requests())) {
            for (int n : promptTokens) {
                List<Integer> prompt = RandomPrompts.draw(new SplittableRandom(n), n, config);
                double best = Double.MAX_VALUE;
                double bestJob = Double.MAX_VALUE;
                int[] tokens = null;
                for (int i = 0; i < repeat; i++) {
                    String id = "sp" + settings.shards() + "-" + n + "-" + i + "-" + System.nanoTime();
                    var f = consumer.track(id);
                    long sent = System.nanoTime();
                    producer.send(GenerateRequest.newBuilder().setRequestId(id).setPromptTokens(prompt).setMaxTokens(maxTokens)
                            .setIgnoreEos(true).setTemperature(0f).build());
                    producer.flush();
                    TokenStreamConsumer.Result r = f.get(30, TimeUnit.MINUTES);
                    if (r.failed()) {
                        throw new IllegalStateException("The prompt of " + n + " tokens at SP " + settings.shards() + " failed: " + r.finishReason());
                    }
                    double ttft = (r.arrivalNanos()[0] - sent) / 1e6;
                    System.err.printf(Locale.ROOT, "SP %d, %d tokens, send %d: TTFT %.1f ms%n", settings.shards(), n, i, ttft);
                    if (i > 0 || repeat == 1) {
                        best = Math.min(best, ttft);
                        bestJob = Math.min(bestJob, r.tokens().get(0).getFirstTokenMs());
                    }
                    tokens = r.tokens().stream().mapToInt(TokenEvent::getTokenId).toArray();
                }
                out.add(new Row(settings.shards(), n, best, bestJob, tokens));
                System.err.println("SP " + settings.shards() + ", " + n + " tokens: tokens " + Arrays.toString(tokens));
            }
        }
        return out;
    }
}
