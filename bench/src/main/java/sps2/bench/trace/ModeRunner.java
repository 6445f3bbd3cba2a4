package sps2.bench.trace;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import org.apache.flink.api.common.JobStatus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.job.cli.EmbeddedJob;
import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.job.embedded.EmbeddedKafka;
import sps2.operators.JobSettings;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Runs one mode of a benchmark: starts the sps2 job on an embedded Flink cluster against the broker, with topics
 * of its own, and waits until it has loaded the model; sends warm-up requests all at once and waits for them (this
 * also warms the JIT); then replays the workload open-loop (a sender thread sleeps until each request's arrival time
 * and sends it, whatever is still in flight) while a {@link TokenStreamConsumer} notes when each token arrives.
 * Finally it stops the job and the cluster.
 */
public final class ModeRunner {
    private static final Logger LOG = LoggerFactory.getLogger(ModeRunner.class);
    private static final long STATUS_CHECK_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final long PROGRESS_MILLIS = 100;

    /** Told about progress of the replay, from the thread that called {@link #run}. */
    public interface Listener {
        void update(int finished, int requests, long tokens, long expectedTokens);
    }

    /**
     * The result of one mode.
     *
     * @param settings  the job's settings
     * @param outcomes  per request, in workload order
     * @param warmupMs  how long the warm-up requests took, from sending them to the last token
     */
    public record ModeRun(JobSettings settings, List<RequestOutcome> outcomes, double warmupMs) {
    }

    private final EmbeddedKafka kafka;
    private final Duration timeout;

    /**
     * @param kafka   the broker
     * @param timeout bound on the job's start, on the warm-up and, separately, on the replay
     */
    public ModeRunner(EmbeddedKafka kafka, Duration timeout) {
        this.kafka = kafka;
        this.timeout = timeout;
    }

    public ModeRun run(JobSettings settings, Workload workload, List<BenchRequest> warmups, Listener listener) throws Exception {
        KafkaTopics topics = KafkaTopics.withPrefix("bench-" + settings.mode() + "-" + UUID.randomUUID().toString().substring(0, 8) + "-");
        kafka.createTopics(1, topics.all());
        KafkaIo io = new KafkaIo(kafka.bootstrapServers(), "sps2-" + settings.runtimeId(), topics);
        try (EmbeddedJob job = EmbeddedJob.start(settings, io, 0, timeout);
                TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), topics.tokens(), Duration.ofSeconds(60));
                RequestProducer producer = new RequestProducer(kafka.bootstrapServers(), topics.requests())) {
            Replay warm = new Replay(warmups, consumer);
            for (int i = 0; i < warmups.size(); i++) {
                warm.send(producer, i);
            }
            warm.await(job, null, (f, r, t, e) -> { });
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
            Replay replay = new Replay(requests, consumer);
            AtomicReference<Throwable> senderFailure = new AtomicReference<>();
            Thread sender = new Thread(() -> {
                try {
                    for (int i = 0; i < requests.size(); i++) {
                        long due = replay.startNanos + Math.round(requests.get(i).arrivalMs() * 1e6);
                        for (long wait = due - System.nanoTime(); wait > 0; wait = due - System.nanoTime()) {
                            LockSupport.parkNanos(wait); // open loop: the next request is due at its trace time
                            if (Thread.currentThread().isInterrupted()) {
                                return;
                            }
                        }
                        replay.send(producer, i);
                    }
                    producer.flush();
                } catch (RuntimeException e) {
                    senderFailure.set(e);
                }
            }, "bench-sender-" + settings.mode());
            sender.setDaemon(true);
            sender.start();
            try {
                replay.await(job, senderFailure, listener);
            } finally {
                sender.interrupt();
                sender.join(TimeUnit.SECONDS.toMillis(10));
            }
            List<RequestOutcome> outcomes = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                outcomes.add(replay.outcome(i));
            }
            LOG.info("Stopping the {} job.", settings.mode());
            return new ModeRun(settings, outcomes, warmupMs);
        }
    }

    /** One set of requests sent to the job: when each was sent and what the consumer saw of it. */
    private final class Replay {
        final long startNanos = System.nanoTime();
        final List<BenchRequest> requests;
        final List<CompletableFuture<TokenStreamConsumer.Result>> results = new ArrayList<>();
        final AtomicLongArray sentNanos;
        final AtomicLongArray sentWallMs;
        final AtomicInteger finished = new AtomicInteger();
        final AtomicLong tokens = new AtomicLong();
        final long expectedTokens;

        /** Tracks every request with the consumer before any is sent. */
        Replay(List<BenchRequest> requests, TokenStreamConsumer consumer) {
            this.requests = requests;
            this.sentNanos = new AtomicLongArray(requests.size());
            this.sentWallMs = new AtomicLongArray(requests.size());
            TokenStreamConsumer.Listener counter = new TokenStreamConsumer.Listener() {
                @Override
                public void onToken(TokenEvent event, long arrivalNanos) {
                    tokens.incrementAndGet();
                }

                @Override
                public void onComplete(TokenStreamConsumer.Result result) {
                    finished.incrementAndGet();
                }
            };
            long expected = 0;
            for (BenchRequest r : requests) {
                results.add(consumer.track(r.id(), counter));
                expected += r.maxTokens();
            }
            this.expectedTokens = expected;
        }

        void send(RequestProducer producer, int i) {
            BenchRequest r = requests.get(i);
            long wall = System.currentTimeMillis();
            GenerateRequest g = GenerateRequest.newBuilder()
                    .setRequestId(r.id())
                    .setPromptTokens(Arrays.stream(r.promptTokens()).boxed().toList())
                    .setMaxTokens(r.maxTokens())
                    .setIgnoreEos(true)
                    .setTemperature(0f)
                    .setSeed(r.traceIndex() + 1L)
                    .setClientTimestampMs(wall)
                    .build();
            sentWallMs.set(i, wall);
            sentNanos.set(i, System.nanoTime());
            producer.send(g);
        }

        /** Waits until every request has completed, reporting progress; fails on a timeout or when the job stops. */
        void await(EmbeddedJob job, AtomicReference<Throwable> senderFailure, Listener listener) throws Exception {
            CompletableFuture<Void> all = CompletableFuture.allOf(results.toArray(new CompletableFuture<?>[0]));
            long deadline = System.nanoTime() + timeout.toNanos();
            long nextStatusCheck = System.nanoTime() + STATUS_CHECK_NANOS;
            while (true) {
                listener.update(finished.get(), requests.size(), tokens.get(), expectedTokens);
                try {
                    all.get(PROGRESS_MILLIS, TimeUnit.MILLISECONDS);
                    listener.update(finished.get(), requests.size(), tokens.get(), expectedTokens);
                    return;
                } catch (TimeoutException e) {
                    // not all complete yet
                } catch (ExecutionException e) {
                    throw new IllegalStateException("Reading the token events failed: " + e.getCause().getMessage(), e.getCause());
                }
                long now = System.nanoTime();
                if (senderFailure != null && senderFailure.get() != null) {
                    throw new IllegalStateException("Sending requests to Kafka failed: " + senderFailure.get().getMessage(), senderFailure.get());
                }
                if (now - deadline > 0) {
                    throw new TimeoutException((requests.size() - finished.get()) + " of " + requests.size() + " requests did not finish within "
                            + timeout.toMinutes() + " minutes; raise --timeout or send fewer requests.");
                }
                if (now - nextStatusCheck > 0) {
                    nextStatusCheck = now + STATUS_CHECK_NANOS;
                    JobStatus status = job.client().getJobStatus().get(30, TimeUnit.SECONDS);
                    if (status.isGloballyTerminalState()) {
                        throw new IllegalStateException("The sps2 job stopped (" + status + ") during the benchmark: " + failureOf(job));
                    }
                }
            }
        }

        /** The request as the client saw it; call after {@link #await}. */
        RequestOutcome outcome(int i) {
            TokenStreamConsumer.Result r = results.get(i).join();
            int n = r.tokens().size();
            double[] ms = new double[n];
            int[] ids = new int[n];
            for (int k = 0; k < n; k++) {
                ms[k] = (r.arrivalNanos()[k] - startNanos) / 1e6;
                ids[k] = r.tokens().get(k).getTokenId();
            }
            double sent = (sentNanos.get(i) - startNanos) / 1e6;
            double jobTtft = n > 0 && r.tokens().get(0).getEmitTimestampMs() > 0 ? r.tokens().get(0).getEmitTimestampMs() - sentWallMs.get(i)
                    : Double.NaN;
            return new RequestOutcome(requests.get(i), sent, ms, ids, true, r.failed() ? r.error() : null, jobTtft);
        }
    }

    private static String failureOf(EmbeddedJob job) {
        try {
            job.client().getJobExecutionResult().get(10, TimeUnit.SECONDS);
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
}
