package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.GenerateRequest;

/**
 * {@code serve} as an operator runs it: a process of its own against a real broker, killed with SIGKILL in the
 * middle of generation. The same command resumes from the checkpoint the dead process left; with that checkpoint
 * gone, a fresh start reads the requests that had not finished again from the committed offsets. Either way no
 * request is lost and every token is the reference token (replays repeat identical events, deduplicated by index).
 * The Prometheus endpoint serves the job's metrics meanwhile.
 */
class ServeRestartTest extends JobTestBase {
    private static final int REQUESTS = 12;
    private static final Duration WAIT = Duration.ofMinutes(3);

    @Test
    @Timeout(600)
    void killNineMidLoadLosesNoRequestWhetherItResumesFromTheCheckpointOrStartsFresh(@TempDir Path dir) throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        KafkaTopics topics = KafkaTopics.withPrefix("serve-");
        harness.kafka.createTopics(1, topics.all());
        Path checkpoints = dir.resolve("checkpoints");
        int metricsPort = freePort();
        List<String> command = List.of("serve", "--bootstrap-servers", harness.kafka.bootstrapServers(), "--model", model.toString(),
                "--topic-prefix", "serve-", "--group-id", "serve-test", "--checkpoint-dir", checkpoints.toString(),
                "--checkpoint-interval", "200", "--metrics-port", Integer.toString(metricsPort), "--threads-per-shard", "1");
        String bootstrap = harness.kafka.bootstrapServers();
        try (TokenStreamConsumer tokens = TokenStreamConsumer.open(bootstrap, topics.tokens(), Duration.ofSeconds(30));
             RequestProducer producer = new RequestProducer(bootstrap, topics.requests())) {
            // 1. Run one: killed mid-load, after a checkpoint that holds running requests.
            TrackedBatch first = batch("a", tokens);
            try (ServeProcess one = ServeProcess.start(dir.resolve("serve-1.log"), dir.resolve("tmp-1"), command)) {
                first.send(producer);
                killMidLoad(one, first, checkpoints);
                report("run 1", one);
            }
            int unfinishedAtFirstKill = first.unfinished();

            // 2. The same command: resumes from the newest checkpoint; then run two is killed mid-load too.
            TrackedBatch second = batch("b", tokens);
            try (ServeProcess two = ServeProcess.start(dir.resolve("serve-2.log"), dir.resolve("tmp-2"), command)) {
                two.awaitOutput("Resuming from checkpoint", Duration.ofSeconds(60));
                awaitAll(first, two);
                assertPrometheusServesJobMetrics(metricsPort, two);
                second.send(producer);
                killMidLoad(two, second, checkpoints);
                report("run 2", two);
            }
            int unfinishedAtSecondKill = second.unfinished();

            // 3. State lost: the checkpoints are gone, so the job starts from the committed offsets.
            deleteRecursively(checkpoints);
            try (ServeProcess three = ServeProcess.start(dir.resolve("serve-3.log"), dir.resolve("tmp-3"), command)) {
                three.awaitOutput("No checkpoint to resume from", Duration.ofSeconds(60));
                awaitAll(second, three);
                report("run 3", three);
            }

            first.assertExact(model);
            second.assertExact(model);
            System.out.printf("serve kill -9: %d + %d requests, %d and %d unfinished at the kills, 0 lost, 0 differing tokens%n",
                    REQUESTS, REQUESTS, unfinishedAtFirstKill, unfinishedAtSecondKill);
        }
    }

    /** What a run said about where it started and what it recovered. */
    private static void report(String run, ServeProcess serve) {
        serve.output().lines().filter(l -> l.contains("Resuming") || l.contains("Restored") || l.contains("No checkpoint")
                || l.contains("Following requests")).forEach(l -> System.out.println(run + ": " + l));
    }

    /** Waits for tokens of several requests and a checkpoint taken after them, then sends SIGKILL. */
    private static void killMidLoad(ServeProcess serve, TrackedBatch batch, Path checkpoints) throws Exception {
        await(() -> batch.started() >= 3 && batch.arrived() >= 30, serve, "tokens of three requests");
        long before = newestCheckpoint(checkpoints);
        await(() -> newestCheckpoint(checkpoints) > before, serve, "a checkpoint after the first tokens");
        int unfinished = batch.unfinished();
        serve.kill9();
        assertTrue(unfinished > 0, "the kill must come while requests run; all had finished (make them longer)");
    }

    /** REQUESTS requests of 200 tokens, greedy and sampled. */
    private static TrackedBatch batch(String prefix, TokenStreamConsumer tokens) {
        String[] prompts = {"Once upon a time", "The little dog", "Lily and Tom went to the park", "One day", "The sun was"};
        java.util.List<GenerateRequest> requests = new java.util.ArrayList<>();
        for (int i = 0; i < REQUESTS; i++) {
            requests.add(GenerateRequest.newBuilder(JobEndToEndTest.request(prefix + i, prompts[i % prompts.length], 200, i % 3 == 0 ? 0f : 0.9f,
                    77 + i)).setIgnoreEos(true).build());
        }
        return new TrackedBatch(requests, tokens);
    }

    private static void awaitAll(TrackedBatch batch, ServeProcess serve) throws Exception {
        await(() -> batch.unfinished() == 0, serve, "every request of the batch to finish");
    }

    private static void await(BooleanSupplier condition, ServeProcess serve, String what) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (!serve.alive()) {
                throw new IllegalStateException("serve ended while waiting for " + what + ":\n" + serve.tail());
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("No " + what + " within " + WAIT + ":\n" + serve.tail());
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20)); // token arrivals and files: polled
        }
    }

    /** The highest checkpoint number with metadata under {@code dir}, or -1. */
    private static long newestCheckpoint(Path dir) {
        if (!Files.isDirectory(dir)) {
            return -1;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            return files.filter(p -> p.getFileName().toString().equals("_metadata"))
                    .map(p -> p.getParent().getFileName().toString())
                    .filter(n -> n.matches("chk-\\d+"))
                    .mapToLong(n -> Long.parseLong(n.substring(4)))
                    .max().orElse(-1);
        } catch (IOException | java.io.UncheckedIOException e) {
            return -1; // a checkpoint folder vanished while walking (subsumed): ask again
        }
    }

    private static void assertPrometheusServesJobMetrics(int port, ServeProcess serve) throws Exception {
        HttpClient http = HttpClient.newHttpClient();
        HttpRequest get = HttpRequest.newBuilder(URI.create("http://localhost:" + port + "/metrics")).timeout(Duration.ofSeconds(10)).build();
        String[] body = {""};
        await(() -> {
            try {
                body[0] = http.send(get, HttpResponse.BodyHandlers.ofString()).body();
            } catch (IOException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
            return body[0].contains("requestsUnfinished") && body[0].contains("decodeStepWallMs");
        }, serve, "the job's metrics on the Prometheus endpoint");
        assertTrue(body[0].contains("flink_taskmanager_job_task_operator"), "operator metrics of the job");
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            List<Path> all = new ArrayList<>(paths.toList());
            java.util.Collections.reverse(all);
            for (Path p : all) {
                Files.deleteIfExists(p);
            }
        }
    }
}
