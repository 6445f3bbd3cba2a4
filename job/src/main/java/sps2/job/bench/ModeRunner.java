package sps2.job.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import org.apache.flink.api.common.JobStatus;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.job.Sps2Job;
import sps2.job.embedded.EmbeddedKafka;
import sps2.operators.JobSettings;
import sps2.operators.io.AvroCodec;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Runs one mode of a benchmark: starts the sps2 job on a local Flink MiniCluster against the broker, with topics
 * of its own, sends warm-up requests all at once and waits for them (this also warms the JIT), then replays the workload open-loop (a sender thread
 * sleeps until each request's arrival time and sends it, whatever is still in flight) while this thread
 * consumes the token events and notes when each arrives. Finally it cancels the job.
 */
public final class ModeRunner {
    private static final Logger LOG = LoggerFactory.getLogger(ModeRunner.class);
    private static final long STATUS_CHECK_NANOS = TimeUnit.SECONDS.toNanos(1);

    /** Told about progress on the consuming thread, at most once per poll. */
    public interface Listener {
        void update(int finished, int requests, long tokens, long expectedTokens);
    }

    /**
     * The result of one mode.
     *
     * @param settings  the job's settings
     * @param outcomes  per request, in workload order
     * @param warmupMs  how long the warm-up requests took, from sending them to the last token (includes job start-up)
     */
    public record ModeRun(JobSettings settings, List<RequestOutcome> outcomes, double warmupMs) {
    }

    private final EmbeddedKafka kafka;
    private final Duration timeout;

    /**
     * @param kafka   the broker
     * @param timeout bound on the warm-up and, separately, on the replay; a run that exceeds it fails
     */
    public ModeRunner(EmbeddedKafka kafka, Duration timeout) {
        this.kafka = kafka;
        this.timeout = timeout;
    }

    public ModeRun run(JobSettings settings, Workload workload, List<BenchRequest> warmups, Listener listener) throws Exception {
        KafkaTopics topics = KafkaTopics.withPrefix("bench-" + settings.mode() + "-" + UUID.randomUUID().toString().substring(0, 8) + "-");
        kafka.createTopics(1, topics.all());
        Configuration conf = new Configuration();
        conf.set(PipelineOptions.GENERIC_TYPES, false);
        conf.set(TaskManagerOptions.NETWORK_MEMORY_MIN, MemorySize.ofMebiBytes(128));
        conf.set(TaskManagerOptions.NETWORK_MEMORY_MAX, MemorySize.ofMebiBytes(128));
        conf.set(TaskManagerOptions.NUM_TASK_SLOTS, settings.shards());
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(settings.shards(), conf);
        env.setBufferTimeout(0);
        Sps2Job.build(env, settings, new KafkaIo(kafka.bootstrapServers(), "sps2-" + settings.runtimeId(), topics));
        JobClient job = env.executeAsync("sps2 bench " + settings.mode());
        LOG.info("Started the job in {} mode with {} shards for the benchmark.", settings.mode(), settings.shards());
        try (KafkaProducer<byte[], byte[]> producer = producer(); KafkaConsumer<byte[], byte[]> consumer = consumer(topics)) {
            Collector warm = new Collector(warmups, System.nanoTime());
            for (int i = 0; i < warmups.size(); i++) {
                sendNow(producer, topics, warmups.get(i), warm, i);
            }
            consume(consumer, warm, job, null, (f, r, t, e) -> { });
            double warmupMs = 0;
            for (int i = 0; i < warmups.size(); i++) {
                RequestOutcome o = warm.outcome(i);
                if (!o.completed()) {
                    throw new IllegalStateException("The warm-up request " + o.request().id() + " of the " + settings.mode()
                            + " run did not complete: " + (o.error() != null ? o.error() : "it got " + o.outputTokens() + " tokens"));
                }
                warmupMs = Math.max(warmupMs, o.e2eMs());
            }
            LOG.info("The {} job answered {} warm-up requests in {} ms; the replay starts.", settings.mode(), warmups.size(), Math.round(warmupMs));

            List<BenchRequest> requests = workload.requests();
            Collector collector = new Collector(requests, System.nanoTime());
            AtomicReference<Throwable> senderFailure = new AtomicReference<>();
            Thread sender = new Thread(() -> {
                try {
                    for (int i = 0; i < requests.size(); i++) {
                        long due = collector.startNanos + Math.round(requests.get(i).arrivalMs() * 1e6);
                        for (long wait = due - System.nanoTime(); wait > 0; wait = due - System.nanoTime()) {
                            LockSupport.parkNanos(wait);
                            if (Thread.currentThread().isInterrupted()) {
                                return;
                            }
                        }
                        sendNow(producer, topics, requests.get(i), collector, i);
                    }
                    producer.flush();
                } catch (RuntimeException e) {
                    senderFailure.set(e);
                }
            }, "bench-sender-" + settings.mode());
            sender.setDaemon(true);
            sender.start();
            try {
                consume(consumer, collector, job, senderFailure, listener);
            } finally {
                sender.interrupt();
                sender.join(TimeUnit.SECONDS.toMillis(10));
            }
            List<RequestOutcome> outcomes = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                outcomes.add(collector.outcome(i));
            }
            return new ModeRun(settings, outcomes, warmupMs);
        } finally {
            stop(job, settings.mode());
        }
    }

    private void sendNow(KafkaProducer<byte[], byte[]> producer, KafkaTopics topics, BenchRequest r, Collector c, int i) {
        GenerateRequest g = GenerateRequest.newBuilder()
                .setRequestId(r.id())
                .setPromptTokens(Arrays.stream(r.promptTokens()).boxed().toList())
                .setMaxTokens(r.maxTokens())
                .setIgnoreEos(true)
                .setTemperature(0f)
                .setSeed(r.traceIndex() + 1L)
                .setClientTimestampMs(System.currentTimeMillis())
                .build();
        byte[] value = AvroCodec.encode(g);
        c.sentNanos.set(i, System.nanoTime());
        producer.send(new ProducerRecord<>(topics.requests(), r.id().getBytes(java.nio.charset.StandardCharsets.UTF_8), value), (md, e) -> {
            if (e == null) {
                c.requestKafkaMs.set(i, md.timestamp());
            }
        });
    }

    /** Polls token events into the collector until every request has finished. */
    private void consume(KafkaConsumer<byte[], byte[]> consumer, Collector c, JobClient job, AtomicReference<Throwable> senderFailure,
            Listener listener) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        long nextStatusCheck = System.nanoTime() + STATUS_CHECK_NANOS;
        while (c.unfinished() > 0) {
            for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(50))) {
                c.accept(AvroCodec.decodeToken(rec.value()), rec.timestamp(), System.nanoTime());
            }
            listener.update(c.finished(), c.size(), c.tokens(), c.expectedTokens());
            long now = System.nanoTime();
            if (senderFailure != null && senderFailure.get() != null) {
                throw new IllegalStateException("Sending requests to Kafka failed: " + senderFailure.get().getMessage(), senderFailure.get());
            }
            if (now - deadline > 0) {
                throw new TimeoutException(c.unfinished() + " of " + c.size() + " requests did not finish within " + timeout.toMinutes()
                        + " minutes; raise --timeout or send fewer requests.");
            }
            if (now - nextStatusCheck > 0) {
                nextStatusCheck = now + STATUS_CHECK_NANOS;
                JobStatus status = job.getJobStatus().get(30, TimeUnit.SECONDS);
                if (status.isGloballyTerminalState()) {
                    throw new IllegalStateException("The sps2 job stopped (" + status + ") during the benchmark: " + failureOf(job));
                }
            }
        }
    }

    private static String failureOf(JobClient job) {
        try {
            job.getJobExecutionResult().get(10, TimeUnit.SECONDS);
            return "it finished without an error";
        } catch (ExecutionException e) {
            Throwable t = e;
            while (t.getCause() != null && t.getCause() != t) {
                t = t.getCause();
            }
            return t.toString();
        } catch (Exception e) {
            return e.toString();
        }
    }

    private static void stop(JobClient job, String mode) {
        try {
            JobStatus status = job.getJobStatus().get(30, TimeUnit.SECONDS);
            if (!status.isGloballyTerminalState()) {
                job.cancel().get(60, TimeUnit.SECONDS);
            }
            job.getJobExecutionResult().handle((r, e) -> null).get(60, TimeUnit.SECONDS);
            LOG.info("Stopped the {} job.", mode);
        } catch (Exception e) {
            LOG.warn("The {} job did not stop cleanly: {}", mode, e.toString());
        }
    }

    private KafkaProducer<byte[], byte[]> producer() {
        Properties p = KafkaIo.latencyProducerProperties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }

    private KafkaConsumer<byte[], byte[]> consumer(KafkaTopics topics) {
        Properties p = KafkaIo.latencyConsumerProperties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        List<TopicPartition> parts = List.of(new TopicPartition(topics.tokens(), 0));
        c.assign(parts);
        c.seekToBeginning(parts);
        return c;
    }

    /** Token events of a set of requests as the client receives them, deduplicated by (request, index). */
    static final class Collector {
        final long startNanos;
        final AtomicLongArray sentNanos;
        final AtomicLongArray requestKafkaMs;
        private final List<BenchRequest> requests;
        private final Map<String, Integer> index = new HashMap<>();
        private final long[][] tokenNanos;
        private final long[][] tokenKafkaMs;
        private final int[][] tokenIds;
        private final int[] received;
        private final boolean[] finished;
        private final String[] errors;
        private int finishedCount;
        private long tokenCount;
        private final long expectedTokens;

        Collector(List<BenchRequest> requests, long startNanos) {
            this.startNanos = startNanos;
            this.requests = requests;
            int n = requests.size();
            sentNanos = new AtomicLongArray(n);
            requestKafkaMs = new AtomicLongArray(n);
            tokenNanos = new long[n][];
            tokenKafkaMs = new long[n][];
            tokenIds = new int[n][];
            received = new int[n];
            finished = new boolean[n];
            errors = new String[n];
            long expected = 0;
            for (int i = 0; i < n; i++) {
                BenchRequest r = requests.get(i);
                index.put(r.id(), i);
                tokenNanos[i] = new long[r.maxTokens()];
                tokenKafkaMs[i] = new long[r.maxTokens()];
                tokenIds[i] = new int[r.maxTokens()];
                Arrays.fill(tokenIds[i], -1);
                requestKafkaMs.set(i, -1);
                expected += r.maxTokens();
            }
            expectedTokens = expected;
        }

        void accept(TokenEvent e, long kafkaMs, long nowNanos) {
            Integer i = index.get(e.getRequestId());
            if (i == null) {
                return; // another run's request or a replayed warm-up
            }
            int k = e.getIndex();
            if (k >= 0 && k < tokenIds[i].length && tokenIds[i][k] < 0) {
                tokenIds[i][k] = e.getTokenId();
                tokenNanos[i][k] = nowNanos;
                tokenKafkaMs[i][k] = kafkaMs;
                received[i]++;
                tokenCount++;
            }
            if (e.getFinished() && !finished[i]) {
                finished[i] = true;
                finishedCount++;
                if (e.getError() != null) {
                    errors[i] = e.getError();
                }
            }
        }

        int size() {
            return requests.size();
        }

        int finished() {
            return finishedCount;
        }

        int unfinished() {
            return requests.size() - finishedCount;
        }

        long tokens() {
            return tokenCount;
        }

        long expectedTokens() {
            return expectedTokens;
        }

        /** The request as the client saw it: the tokens up to the first missing index. */
        RequestOutcome outcome(int i) {
            int n = 0;
            while (n < tokenIds[i].length && tokenIds[i][n] >= 0) {
                n++;
            }
            double[] ms = new double[n];
            for (int k = 0; k < n; k++) {
                ms[k] = (tokenNanos[i][k] - startNanos) / 1e6;
            }
            double sent = (sentNanos.get(i) - startNanos) / 1e6;
            long reqTs = requestKafkaMs.get(i);
            double kafkaTtft = n > 0 && reqTs >= 0 ? tokenKafkaMs[i][0] - reqTs : Double.NaN;
            return new RequestOutcome(requests.get(i), sent, ms, Arrays.copyOf(tokenIds[i], n), finished[i], errors[i], kafkaTtft);
        }
    }
}
