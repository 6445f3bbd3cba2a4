package sps2.bench.cli;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

import org.HdrHistogram.Histogram;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import sps2.job.cli.EmbeddedJob;
import sps2.job.cli.JobOptions;
import sps2.job.cli.SettingConverters;
import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.job.embedded.EmbeddedKafka;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.operators.JobSettings;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.operators.scheduler.StepTimings;
import sps2.schemas.GenerateRequest;

/**
 * Decode under interference, per mode: time between tokens of short requests while they decode alone and
 * while long prompts are being prefilled, and what one decode step costs in the dataflow (wall time of the
 * iteration against the compute the shards report, divided over the Flink hops of a step).
 */
@Command(name = "bench-decode", mixinStandardHelpOptions = true,
        description = "TBT of short requests alone and during long prefills, and per-step Flink overhead, for sps2 and sarathi.")
public final class BenchDecodeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "Model checkpoint.")
    Path model;

    @Option(names = "--modes", split = ",", defaultValue = "sps2,sarathi", converter = SettingConverters.Mode.class,
            description = "Modes to run (default: ${DEFAULT-VALUE}).")
    List<JobSettings.Mode> modes;

    @Option(names = "--short", defaultValue = "4", description = "Short requests decoding together (default: ${DEFAULT-VALUE}).")
    int shortRequests;

    @Option(names = "--short-prompt-tokens", defaultValue = "16", description = "Prompt tokens of each short request (default: ${DEFAULT-VALUE}).")
    int shortPromptTokens;

    @Option(names = "--decode-tokens", defaultValue = "150", description = "Tokens each short request generates (default: ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--long", defaultValue = "3", description = "Long prompts sent while the short requests decode (default: ${DEFAULT-VALUE}).")
    int longRequests;

    @Option(names = "--long-tokens", defaultValue = "1500", description = "Tokens of each long prompt (default: ${DEFAULT-VALUE}).")
    int longTokens;

    @Option(names = "--timeline", description = "Print each short request's token arrival times around the long prompts.")
    boolean timeline;

    @Mixin
    JobOptions jobOptions;

    record Row(JobSettings.Mode mode, int shards, Histogram alone, Histogram during, double longTtftMs, double wallMs, double computeMs, int hops,
            double hopInMs, double shardMs, double hopOutMs, double gapMs) {
    }

    @Override
    public Integer call() throws Exception {
        jobOptions.configureLogging();
        ModelConfig config = ModelLoader.load(model).config();
        List<Row> rows = new ArrayList<>();
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            for (JobSettings.Mode mode : modes) {
                jobOptions.mode = mode;
                JobSettings settings = jobOptions.settings(model);
                rows.add(run(kafka, settings, config));
            }
        }
        System.out.printf("%nDecode of %d short requests (%d-token prompts, %d tokens each); %d long prompts of %d tokens sent while they decode. Model %s, %d layers.%n",
                shortRequests, shortPromptTokens, decodeTokens, longRequests, longTokens, model.getFileName(), config.nLayers());
        System.out.printf("%-8s %3s | %18s | %26s | %10s | %28s%n", "mode", "SP", "TBT alone p50/p99", "TBT during prefill p50/p99/max",
                "long TTFT", "decode step wall/compute/hops");
        for (Row r : rows) {
            double perHop = r.hops() == 0 ? 0 : Math.max(0, r.wallMs() - r.computeMs()) / r.hops();
            System.out.printf("%-8s %3d | %7.2f / %7.2f ms | %7.2f / %7.2f / %7.1f ms | %7.0f ms | %6.2f / %5.2f ms, %2d hops (%.3f ms each)%n",
                    r.mode(), r.shards(), ms(r.alone(), 50), ms(r.alone(), 99), ms(r.during(), 50), ms(r.during(), 99), r.during().getMaxValue() / 1e3,
                    r.longTtftMs(), r.wallMs(), r.computeMs(), r.hops(), perHop);
        }
        System.out.printf("%nWhere one decode step's time goes (medians while the short requests decode alone):%n");
        System.out.printf("%-8s %3s | %10s %22s %10s %14s | %10s%n", "mode", "SP", "hop in", "shard (engine)", "hop out", "scheduler gap",
                "step period");
        for (Row r : rows) {
            System.out.printf("%-8s %3d | %7.3f ms %9.3f (%7.3f) ms %7.3f ms %11.3f ms | %7.3f ms%n", r.mode(), r.shards(), r.hopInMs(), r.shardMs(),
                    r.computeMs(), r.hopOutMs(), r.gapMs(), r.wallMs() + r.gapMs());
        }
        System.out.println("hop in: scheduler issues the step -> the last shard takes it (serialisation, Flink's network stack, a thread wake-up);"
                + " hop out: the last shard hands on its result -> the scheduler takes it; scheduler gap: last result -> the next step's issue.");
        System.out.println("Hops per decode step: the Flink network edges from the scheduler through the decode shards to the feedback tail, read off the job graph;"
                + " here the shards share the scheduler's JVM, so their results skip the last one (the per-hop figure divides the overhead over the graph's hops).");
        return 0;
    }

    private static double ms(Histogram h, double percentile) {
        return h.getTotalCount() == 0 ? Double.NaN : h.getValueAtPercentile(percentile) / 1e3;
    }

    private Row run(EmbeddedKafka kafka, JobSettings settings, ModelConfig config) throws Exception {
        KafkaTopics topics = KafkaTopics.withPrefix(settings.mode() + "-" + System.nanoTime() + "-");
        kafka.createTopics(1, topics.all());
        KafkaIo io = new KafkaIo(kafka.bootstrapServers(), "bench-" + settings.runtimeId(), topics);
        SplittableRandom rnd = new SplittableRandom(17);
        try (EmbeddedJob job = EmbeddedJob.start(settings, io, 0, Duration.ofMinutes(5));
                TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), topics.tokens(), Duration.ofSeconds(30));
                RequestProducer producer = new RequestProducer(kafka.bootstrapServers(), topics.requests())) {
            System.err.println("Running " + settings.mode() + " with " + settings.shards() + " shard(s) ...");
            Histogram alone = new Histogram(3);
            Histogram during = new Histogram(3);
            // phase 1: the short requests alone (also warms up)
            List<CompletableFuture<TokenStreamConsumer.Result>> shortOnes = sendShort(consumer, producer, "alone", rnd, config);
            int stepsBefore = job.steps().size();
            for (CompletableFuture<TokenStreamConsumer.Result> f : shortOnes) {
                record(alone, f.get(10, TimeUnit.MINUTES).arrivalNanos(), Long.MIN_VALUE, Long.MAX_VALUE);
            }
            List<StepTimings.Step> all = new ArrayList<>(job.steps());
            List<StepTimings.Step> aloneSteps = all.subList(stepsBefore, all.size());
            // phase 2: the same short load, and long prompts arriving once it decodes
            List<CompletableFuture<TokenStreamConsumer.Result>> shortAgain = sendShort(consumer, producer, "during", rnd, config);
            Thread.sleep(200); // let the short requests reach decode before the long prompts arrive
            long longStart = System.nanoTime();
            List<CompletableFuture<TokenStreamConsumer.Result>> longOnes = new ArrayList<>();
            for (int i = 0; i < longRequests; i++) {
                String id = "long-" + i + "-" + System.nanoTime();
                longOnes.add(consumer.track(id));
                producer.send(request(id, RandomPrompts.draw(rnd, longTokens, config), 1));
            }
            producer.flush();
            long longEnd = 0;
            double ttft = 0;
            for (CompletableFuture<TokenStreamConsumer.Result> f : longOnes) {
                long[] t = f.get(10, TimeUnit.MINUTES).arrivalNanos();
                longEnd = Math.max(longEnd, t[0]);
                ttft += (t[0] - longStart) / 1e6 / longOnes.size();
            }
            for (CompletableFuture<TokenStreamConsumer.Result> f : shortAgain) {
                long[] t = f.get(10, TimeUnit.MINUTES).arrivalNanos();
                record(during, t, longStart, longEnd);
                if (timeline) {
                    StringBuilder b = new StringBuilder();
                    for (long x : t) {
                        b.append(String.format("%.0f ", (x - longStart) / 1e6));
                    }
                    System.err.println("timeline (ms from first long send; long TTFT end " + (longEnd - longStart) / 1e6 + "): " + b);
                }
            }
            double wall = median(aloneSteps.stream().filter(s -> !s.prefill()).mapToDouble(StepTimings.Step::wallMs).toArray());
            double compute = median(aloneSteps.stream().filter(s -> !s.prefill()).mapToDouble(StepTimings.Step::computeMs).toArray());
            int hops = sps2.job.Sps2Job.decodeStepHops(settings);
            double hopIn = median(aloneSteps.stream().filter(s -> !s.prefill()).mapToDouble(StepTimings.Step::hopInMs).toArray());
            double hopOut = median(aloneSteps.stream().filter(s -> !s.prefill()).mapToDouble(StepTimings.Step::hopOutMs).toArray());
            double gap = median(aloneSteps.stream().filter(s -> !s.prefill() && s.gapMs() > 0).mapToDouble(StepTimings.Step::gapMs).toArray());
            double shard = median(aloneSteps.stream().filter(s -> !s.prefill()).mapToDouble(StepTimings.Step::shardMs).toArray());
            return new Row(settings.mode(), settings.shards(), alone, during, ttft, wall, compute, hops, hopIn, shard, hopOut, gap);
        }
    }

    private List<CompletableFuture<TokenStreamConsumer.Result>> sendShort(TokenStreamConsumer consumer, RequestProducer producer, String tag,
            SplittableRandom rnd, ModelConfig config) {
        List<CompletableFuture<TokenStreamConsumer.Result>> out = new ArrayList<>();
        for (int i = 0; i < shortRequests; i++) {
            String id = "short-" + tag + "-" + i + "-" + System.nanoTime();
            out.add(consumer.track(id));
            producer.send(request(id, RandomPrompts.draw(rnd, shortPromptTokens, config), decodeTokens));
        }
        producer.flush();
        return out;
    }

    private static GenerateRequest request(String id, List<Integer> prompt, int maxTokens) {
        return GenerateRequest.newBuilder().setRequestId(id).setPromptTokens(prompt).setMaxTokens(maxTokens).setIgnoreEos(true)
                .setTemperature(0f).build();
    }

    /** Adds the gaps between consecutive tokens (µs) whose later token arrived within [from, to]. */
    private static void record(Histogram h, long[] arrivals, long from, long to) {
        for (int i = 1; i < arrivals.length; i++) {
            if (arrivals[i] >= from && arrivals[i] <= to) {
                h.recordValue(Math.max(1, (arrivals[i] - arrivals[i - 1]) / 1000));
            }
        }
    }

    private static double median(double[] v) {
        if (v.length == 0) {
            return Double.NaN;
        }
        java.util.Arrays.sort(v);
        return v[v.length / 2];
    }
}
