package sps2.job.embedded;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;

import org.apache.flink.api.dag.Pipeline;
import org.apache.flink.client.deployment.executors.PipelineExecutorUtils;
import org.apache.flink.configuration.BlobServerOptions;
import org.apache.flink.configuration.ClusterOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.DeploymentOptions;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.configuration.WebOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.PipelineExecutor;
import org.apache.flink.core.execution.PipelineExecutorFactory;
import org.apache.flink.core.execution.PipelineExecutorServiceLoader;
import org.apache.flink.runtime.minicluster.MiniCluster;
import org.apache.flink.runtime.minicluster.MiniClusterConfiguration;
import org.apache.flink.runtime.minicluster.MiniClusterJobClient;
import org.apache.flink.runtime.rpc.RpcSystem;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.util.Reference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Flink cluster inside this JVM (a {@link MiniCluster}) for the embedded mode and tests, with
 * environments whose {@code execute()} / {@code executeAsync()} run jobs on it.
 *
 * <p>Everything Flink writes to disk (the extracted RPC system jar, blobs, working directories,
 * spill files) goes to one folder of its own, which {@link #close()} deletes; a JVM shutdown hook
 * does the same if the process ends without closing (otherwise each run leaves a ~21 MB rpc jar and
 * a {@code minicluster_*} folder in the temp dir).
 */
public final class EmbeddedFlink implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedFlink.class);

    /** Name of the pipeline executor that submits to this cluster ({@code execution.target}). */
    public static final String EXECUTION_TARGET = "sps2-embedded";

    /**
     * How to size the cluster.
     *
     * @param taskManagers task managers in the JVM
     * @param slotsPerTaskManager slots of each
     * @param networkMemory network buffer memory of each task manager (MiniCluster's default of
     *     64 MB runs out with many operators at higher parallelism)
     * @param baseDirectory where to create the cluster's own temporary folder
     * @param extra further Flink settings, applied last
     */
    public record Options(int taskManagers, int slotsPerTaskManager, MemorySize networkMemory, Path baseDirectory,
                          Configuration extra) {

        public static Options of(int taskManagers, int slotsPerTaskManager) {
            return new Options(taskManagers, slotsPerTaskManager, MemorySize.ofMebiBytes(256),
                    Path.of(System.getProperty("java.io.tmpdir")), new Configuration());
        }

        public Options withNetworkMemory(MemorySize size) {
            return new Options(taskManagers, slotsPerTaskManager, size, baseDirectory, extra);
        }

        public Options withBaseDirectory(Path directory) {
            return new Options(taskManagers, slotsPerTaskManager, networkMemory, directory, extra);
        }

        public Options withExtra(Configuration settings) {
            return new Options(taskManagers, slotsPerTaskManager, networkMemory, baseDirectory, settings);
        }
    }

    private final MiniCluster cluster;
    private final Path directory;
    private final int totalSlots;
    private final Thread shutdownHook;
    private boolean closed;

    private EmbeddedFlink(MiniCluster cluster, Path directory, int totalSlots) {
        this.cluster = cluster;
        this.directory = directory;
        this.totalSlots = totalSlots;
        this.shutdownHook = new Thread(this::shutDown, "sps2-embedded-flink-shutdown");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
    }

    /** Starts a cluster of {@code taskManagers} x {@code slotsPerTaskManager} slots with default options. */
    public static EmbeddedFlink start(int taskManagers, int slotsPerTaskManager) throws Exception {
        return start(Options.of(taskManagers, slotsPerTaskManager));
    }

    public static EmbeddedFlink start(Options options) throws Exception {
        if (options.taskManagers() < 1 || options.slotsPerTaskManager() < 1) {
            throw new IllegalArgumentException("An embedded Flink cluster needs at least one task manager with one slot, not "
                    + options.taskManagers() + " x " + options.slotsPerTaskManager() + ".");
        }
        Files.createDirectories(options.baseDirectory());
        Path directory = Files.createTempDirectory(options.baseDirectory(), "sps2-flink-");
        Configuration config = clusterConfiguration(options, directory);
        MiniClusterConfiguration clusterConfig = new MiniClusterConfiguration.Builder()
                .setConfiguration(config)
                .setNumTaskManagers(options.taskManagers())
                .setNumSlotsPerTaskManager(options.slotsPerTaskManager())
                .build();
        // The RPC system unpacks its jar into the first io.tmp.dirs folder of this configuration.
        MiniCluster cluster = new MiniCluster(clusterConfig, () -> Reference.owned(RpcSystem.load(config)));
        try {
            cluster.start();
        } catch (Exception e) {
            cluster.closeAsync().get(30, TimeUnit.SECONDS);
            TempFolders.deleteRecursively(directory);
            throw e;
        }
        EmbeddedFlink flink = new EmbeddedFlink(cluster, directory, options.taskManagers() * options.slotsPerTaskManager());
        LOG.info("Embedded Flink runs {} task manager(s) x {} slot(s), REST API at {} (files in {}).",
                options.taskManagers(), options.slotsPerTaskManager(), flink.restAddress(), directory);
        return flink;
    }

    private static Configuration clusterConfiguration(Options options, Path directory) throws IOException {
        Path io = Files.createDirectories(directory.resolve("io"));
        Path work = Files.createDirectories(directory.resolve("work"));
        Path blobs = Files.createDirectories(directory.resolve("blobs"));
        Configuration config = new Configuration();
        config.set(CoreOptions.TMP_DIRS, io.toString());
        config.set(ClusterOptions.PROCESS_WORKING_DIR_BASE, work.toString());
        config.set(BlobServerOptions.STORAGE_DIRECTORY, blobs.toString());
        config.set(WebOptions.TMP_DIR, Files.createDirectories(directory.resolve("web")).toString());
        config.set(WebOptions.UPLOAD_DIR, Files.createDirectories(directory.resolve("web-upload")).toString());
        config.set(TaskManagerOptions.NETWORK_MEMORY_MIN, options.networkMemory());
        config.set(TaskManagerOptions.NETWORK_MEMORY_MAX, options.networkMemory());
        // MiniCluster always serves the REST API: on localhost only, on a free port.
        config.set(RestOptions.BIND_ADDRESS, "localhost");
        config.set(RestOptions.ADDRESS, "localhost");
        config.set(RestOptions.BIND_PORT, "0");
        config.addAll(options.extra());
        return config;
    }

    /**
     * A new environment whose jobs run on this cluster; default parallelism is the cluster's slot
     * count unless {@code jobConfig} sets {@code parallelism.default}.
     */
    public StreamExecutionEnvironment createEnvironment(Configuration jobConfig) {
        Configuration config = new Configuration();
        config.set(CoreOptions.DEFAULT_PARALLELISM, totalSlots);
        config.addAll(jobConfig);
        config.set(DeploymentOptions.TARGET, EXECUTION_TARGET);
        config.set(DeploymentOptions.ATTACHED, true);
        return new StreamExecutionEnvironment(new ExecutorLoader(), config, Thread.currentThread().getContextClassLoader());
    }

    public StreamExecutionEnvironment createEnvironment() {
        return createEnvironment(new Configuration());
    }

    /** The underlying MiniCluster (job status, savepoints, task manager failures in tests). */
    public MiniCluster miniCluster() {
        return cluster;
    }

    /** Slots in all task managers together. */
    public int totalSlots() {
        return totalSlots;
    }

    /** The cluster's own folder (deleted on close). */
    public Path directory() {
        return directory;
    }

    /** Address of Flink's REST API (localhost, random port). */
    public URI restAddress() {
        return cluster.getRestAddress().join();
    }

    /** Cancels a job and waits, at most {@code timeout}, until it has stopped. */
    public static void cancel(JobClient job, Duration timeout) throws Exception {
        job.cancel().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!job.getJobStatus().get(timeout.toMillis(), TimeUnit.MILLISECONDS).isGloballyTerminalState()) {
            if (System.nanoTime() - deadline > 0) {
                throw new TimeoutException("Job " + job.getJobID() + " did not stop within " + timeout + ".");
            }
            // Job status has no change notification here; a short pause between polls.
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
        }
    }

    @Override
    public void close() {
        shutDown();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException e) {
            // The JVM is shutting down already; the hook runs (or ran) shutDown itself.
        }
    }

    private synchronized void shutDown() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            cluster.closeAsync().get(60, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.warn("The embedded Flink cluster did not shut down cleanly: {}", e.toString());
        }
        TempFolders.deleteRecursively(directory);
        LOG.info("Embedded Flink stopped.");
    }

    /** Finds the executor below for the {@code sps2-embedded} target. */
    private final class ExecutorLoader implements PipelineExecutorServiceLoader {
        @Override
        public PipelineExecutorFactory getExecutorFactory(Configuration configuration) {
            return new PipelineExecutorFactory() {
                @Override
                public String getName() {
                    return EXECUTION_TARGET;
                }

                @Override
                public boolean isCompatibleWith(Configuration config) {
                    return EXECUTION_TARGET.equals(config.get(DeploymentOptions.TARGET));
                }

                @Override
                public PipelineExecutor getExecutor(Configuration config) {
                    return EmbeddedFlink.this::submit;
                }
            };
        }

        @Override
        public Stream<String> getExecutorNames() {
            return Stream.of(EXECUTION_TARGET);
        }
    }

    private CompletableFuture<JobClient> submit(Pipeline pipeline, Configuration configuration, ClassLoader classLoader)
            throws Exception {
        StreamGraph graph = PipelineExecutorUtils.getStreamGraph(pipeline, configuration);
        return cluster.submitJob(graph).thenApply(result -> {
            LOG.info("Submitted job '{}' ({}).", graph.getJobName(), result.getJobID());
            return new MiniClusterJobClient(result.getJobID(), cluster, classLoader,
                    MiniClusterJobClient.JobFinalizationBehavior.NOTHING);
        });
    }
}
