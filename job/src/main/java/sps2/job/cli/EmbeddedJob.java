package sps2.job.cli;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.flink.api.common.JobID;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.runtime.execution.ExecutionState;
import org.apache.flink.runtime.executiongraph.AccessExecutionGraph;
import org.apache.flink.runtime.executiongraph.AccessExecutionVertex;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.job.Sps2Job;
import sps2.job.embedded.EmbeddedFlink;
import sps2.operators.JobHooks;
import sps2.operators.JobSettings;
import sps2.operators.SharedRef;
import sps2.operators.io.KafkaIo;
import sps2.operators.scheduler.StepTimings;

/**
 * The sps2 job running on an embedded Flink cluster, for the demo, the benchmarks and local serving. Its operators
 * run in this JVM, so the job's hooks count the shards that have opened (the job can serve once all have) and
 * collect its iteration timings ({@link StepTimings}).
 */
public final class EmbeddedJob implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedJob.class);

    private final EmbeddedFlink flink;
    private final JobClient client;
    private final SharedRef<AtomicInteger> openedShards;
    private final SharedRef<List<StepTimings.Step>> steps;

    private EmbeddedJob(EmbeddedFlink flink, JobClient client, SharedRef<AtomicInteger> openedShards, SharedRef<List<StepTimings.Step>> steps) {
        this.flink = flink;
        this.client = client;
        this.openedShards = openedShards;
        this.steps = steps;
    }

    /** Starts a cluster with one slot per shard, submits the job, and waits until every task runs (models loaded). */
    public static EmbeddedJob start(JobSettings settings, KafkaIo io, long checkpointMs, Duration timeout) throws Exception {
        return start(settings, io, checkpointMs, timeout, 0);
    }

    /** The same, with the job's metrics served for Prometheus on {@code metricsPort} unless it is 0. */
    public static EmbeddedJob start(JobSettings settings, KafkaIo io, long checkpointMs, Duration timeout, int metricsPort) throws Exception {
        Configuration cluster = new Configuration();
        if (metricsPort > 0) {
            ServeCommand.prometheus(cluster, metricsPort);
        }
        EmbeddedFlink flink = EmbeddedFlink.start(EmbeddedFlink.Options.of(1, Math.max(1, settings.shards())).withExtra(cluster));
        SharedRef<AtomicInteger> opened = SharedRef.of(new AtomicInteger(), "count of the open shards of job " + settings.runtimeId());
        SharedRef<List<StepTimings.Step>> steps = SharedRef.of(Collections.synchronizedList(new ArrayList<>()),
                "iteration timings of job " + settings.runtimeId());
        try {
            Configuration conf = new Configuration();
            conf.set(PipelineOptions.GENERIC_TYPES, false);
            FaultTolerance.restartStrategy(conf);
            StreamExecutionEnvironment env = flink.createEnvironment(conf);
            configure(env, checkpointMs);
            Sps2Job.build(env, settings.withHooks(new OpenShards(opened)).withHooks(new Timings(steps)), io);
            JobClient client = env.executeAsync("sps2 (" + settings.mode() + ", " + settings.shards() + " shard(s))");
            waitUntilRunning(flink, client.getJobID(), settings, opened.get(), timeout);
            LOG.info("The sps2 job is running in {} mode with {} shard(s); the model is loaded.", settings.mode(), settings.shards());
            return new EmbeddedJob(flink, client, opened, steps);
        } catch (Exception e) {
            flink.close();
            opened.close();
            steps.close();
            throw e;
        }
    }

    /** Settings every sps2 job runs with: records leave a task at once, checkpoints if asked. */
    public static void configure(StreamExecutionEnvironment env, long checkpointMs) {
        env.setBufferTimeout(0);
        if (checkpointMs > 0) {
            env.enableCheckpointing(checkpointMs);
        }
    }

    /** The innermost "Caused by" of a stack trace text (Flink's own wrapper says only that recovery is suppressed). */
    static String rootCause(String trace) {
        String first = trace.lines().findFirst().orElse("");
        return trace.lines().filter(l -> l.startsWith("Caused by: ")).reduce((a, b) -> b).map(l -> l.substring("Caused by: ".length())).orElse(first);
    }

    private static void waitUntilRunning(EmbeddedFlink flink, JobID id, JobSettings settings, AtomicInteger openedShards, Duration timeout)
            throws Exception {
        int expected = settings.shards() * (settings.sarathi() ? 1 : 2); // sps2: a prefill and a decode shard operator
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            AccessExecutionGraph graph = flink.miniCluster().getExecutionGraph(id).get();
            if (graph.getState().isGloballyTerminalState()) {
                throw new IllegalStateException("The sps2 job ended while starting: " + (graph.getFailureInfo() == null ? graph.getState()
                        : rootCause(graph.getFailureInfo().getExceptionAsString())));
            }
            boolean all = true;
            for (AccessExecutionVertex v : graph.getAllExecutionVertices()) {
                all &= v.getExecutionState() == ExecutionState.RUNNING;
            }
            if (all && openedShards.get() >= expected) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("The sps2 job did not start within " + timeout.toSeconds() + " s.");
            }
            Thread.sleep(50); // polling the cluster's job status; there is no push notification for task states
        }
    }

    public JobClient client() {
        return client;
    }

    @Override
    public void close() throws Exception {
        try {
            EmbeddedFlink.cancel(client, Duration.ofSeconds(30));
        } finally {
            try {
                flink.close();
            } finally {
                openedShards.close();
                steps.close();
            }
        }
    }

    /**
     * Counts the shard operator subtasks that have finished opening (models loaded): a task reports RUNNING before
     * its operators are open, so the task states alone do not tell when the job can serve.
     */
    /** The iterations the scheduler completed so far, in order (what bench-decode reads). */
    public List<StepTimings.Step> steps() {
        synchronized (steps.get()) {
            return List.copyOf(steps.get());
        }
    }

    private record Timings(SharedRef<List<StepTimings.Step>> steps) implements JobHooks {
        @Override
        public void iterationDone(StepTimings.Step step) {
            steps.get().add(step);
        }
    }

    private record OpenShards(SharedRef<AtomicInteger> count) implements JobHooks {
        @Override
        public void shardOpened() {
            count.get().incrementAndGet();
        }

        @Override
        public void shardClosed() {
            count.get().decrementAndGet();
        }
    }
}
