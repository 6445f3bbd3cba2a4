package sps2.job.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.core.execution.RecoveryClaimMode;
import org.apache.flink.streaming.api.environment.LocalStreamEnvironment;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import sps2.job.Sps2Job;
import sps2.operators.JobSettings;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.operators.io.RecordLimits;

/**
 * The job against an existing Kafka. Run by {@code ./sps2 serve} it executes on a local Flink cluster in
 * this process; submitted with {@code flink run sps2-job-*-flink.jar serve ...} it runs on that cluster.
 *
 * <p>Durable by default: it checkpoints every 10 s into {@code --checkpoint-dir} (a folder of its own per
 * consumer group and requests topic), keeps the last checkpoints when the job is cancelled or the process
 * dies, and the same command run again resumes from the newest of them (claiming it: Flink deletes it once
 * the new run has checkpoints of its own). Without a checkpoint to resume from (the first run,
 * {@code --fresh}, or checkpointing off) the job reads the requests topic from the group's committed
 * offsets, which never pass a request without an outcome ({@link sps2.operators.io.FinishedOffsets}), so
 * nothing unfinished is skipped either way.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, description = "Run the sps2 job against an existing Kafka cluster.")
public final class ServeCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(ServeCommand.class);
    /** Default checkpoint interval of serve. */
    public static final long DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000;
    /** Default port of the Prometheus endpoint when serve runs Flink itself. */
    public static final int DEFAULT_METRICS_PORT = 9249;

    @Option(names = "--bootstrap-servers", required = true, description = "Kafka bootstrap servers, HOST:PORT[,...].")
    String bootstrapServers;

    @Option(names = "--model", required = true, description = "Model checkpoint (on every task manager's file system).")
    Path model;

    @Mixin
    JobOptions jobOptions;

    @Option(names = "--topic-prefix", defaultValue = "", description = "Prefix of the sps2 topics (default: none).")
    String topicPrefix;

    @Option(names = "--partitions", defaultValue = "1", description = "Partitions of topics that are created (default: ${DEFAULT-VALUE}).")
    int partitions;

    @Option(names = "--group-id", defaultValue = "sps2", description = "Consumer group of the request source (default: ${DEFAULT-VALUE}).")
    String groupId;

    @Option(names = "--checkpoint-dir",
            description = "Where checkpoints are kept, a path or a URI every task manager can reach (default: the cluster's "
                    + "execution.checkpointing.dir under flink run, else ~/.sps2/checkpoints); this job's go to a folder named after "
                    + "its group and requests topic.")
    String checkpointDir;

    @Option(names = "--fresh", description = "Do not resume from the checkpoints in --checkpoint-dir (requests not finished yet are read "
            + "again from the requests topic).")
    boolean fresh;

    @Option(names = "--max-request-bytes", defaultValue = "" + RecordLimits.DEFAULT_MAX_REQUEST_BYTES,
            description = "Request records larger than this are not read; they go to the dead-letter topic (default: ${DEFAULT-VALUE}).")
    int maxRequestBytes;

    @Option(names = "--metrics-port", defaultValue = "" + DEFAULT_METRICS_PORT,
            description = "Port of the Prometheus endpoint for the job's metrics when serve runs Flink itself; 0: none "
                    + "(default: ${DEFAULT-VALUE}). On a cluster, flink-conf/config.yaml sets the reporter.")
    int metricsPort;

    @Override
    public Integer call() throws Exception {
        jobOptions.configureLogging();
        KafkaTopics topics = KafkaTopics.withPrefix(topicPrefix);
        createMissingTopics(topics);
        JobSettings settings = jobOptions.settings(model);
        long checkpointMs = jobOptions.checkpointIntervalMs(DEFAULT_CHECKPOINT_INTERVAL_MS);
        Configuration conf = new Configuration();
        conf.set(PipelineOptions.GENERIC_TYPES, false);
        FaultTolerance.restartStrategy(conf);
        StreamExecutionEnvironment probe = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        boolean local = probe instanceof LocalStreamEnvironment;
        if (checkpointMs > 0) {
            org.apache.flink.core.fs.Path dir = checkpointDirectory(probe.getConfiguration(), topics);
            durableCheckpoints(conf, dir);
            if (fresh) {
                LOG.info("Starting without the checkpoints in {} (--fresh): the requests topic is read from the committed offsets.", dir);
            } else {
                resumeFromLatest(conf, dir);
            }
        } else {
            LOG.info("Checkpointing is off: a restart reads the requests topic again from the committed offsets.");
        }
        if (local && metricsPort > 0) {
            prometheus(conf, metricsPort);
            LOG.info("The job's metrics are served for Prometheus at http://localhost:{}/metrics.", metricsPort);
        }
        StreamExecutionEnvironment env = local ? StreamExecutionEnvironment.createLocalEnvironment(conf)
                : StreamExecutionEnvironment.getExecutionEnvironment(conf);
        EmbeddedJob.configure(env, checkpointMs);
        Sps2Job.build(env, settings, new KafkaIo(bootstrapServers, groupId, topics).withMaxRequestBytes(maxRequestBytes));
        LOG.info("Starting the sps2 job against Kafka at {}: requests from {}, tokens to {}.", bootstrapServers, topics.requests(), topics.tokens());
        env.execute("sps2 (" + settings.mode() + ", " + settings.shards() + " shard(s))");
        return 0;
    }

    /** {@code <base>/<group>-<requests topic>}: the base from --checkpoint-dir, the cluster's configuration, or ~/.sps2/checkpoints. */
    org.apache.flink.core.fs.Path checkpointDirectory(ReadableConfig flinkConfig, KafkaTopics topics) {
        String base = checkpointDir != null ? checkpointDir
                : flinkConfig.getOptional(CheckpointingOptions.CHECKPOINTS_DIRECTORY)
                        .orElse(Path.of(System.getProperty("user.home"), ".sps2", "checkpoints").toUri().toString());
        String name = (groupId + "-" + topics.requests()).replaceAll("[^A-Za-z0-9._-]", "_");
        org.apache.flink.core.fs.Path basePath = base.contains("://") ? new org.apache.flink.core.fs.Path(base)
                : org.apache.flink.core.fs.Path.fromLocalFile(Path.of(base).toAbsolutePath().toFile());
        return new org.apache.flink.core.fs.Path(basePath, name);
    }

    /** Checkpoints in {@code dir}, kept when the job is cancelled, the last two of them. */
    static void durableCheckpoints(Configuration conf, org.apache.flink.core.fs.Path dir) {
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, dir.toString());
        conf.set(CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION, ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION);
        conf.set(CheckpointingOptions.MAX_RETAINED_CHECKPOINTS, 2);
    }

    /** Restores the newest readable checkpoint in {@code dir}, if there is one. */
    static void resumeFromLatest(Configuration conf, org.apache.flink.core.fs.Path dir) throws java.io.IOException {
        java.util.Optional<RetainedCheckpoints.Retained> latest = RetainedCheckpoints.latest(dir);
        if (latest.isEmpty()) {
            LOG.info("No checkpoint to resume from in {}: the requests topic is read from the committed offsets.", dir);
            return;
        }
        conf.set(StateRecoveryOptions.SAVEPOINT_PATH, latest.get().directory().toString());
        conf.set(StateRecoveryOptions.RESTORE_MODE, RecoveryClaimMode.CLAIM);
        LOG.info("Resuming from checkpoint {} ({}), the newest an earlier run of this job left.", latest.get().number(), latest.get().directory());
    }

    /** Flink's Prometheus reporter on {@code port}, for a cluster that serve runs itself. */
    static void prometheus(Configuration conf, int port) {
        conf.setString("metrics.reporter.prom.factory.class", "org.apache.flink.metrics.prometheus.PrometheusReporterFactory");
        conf.setString("metrics.reporter.prom.port", Integer.toString(port));
    }

    private void createMissingTopics(KafkaTopics topics) throws Exception {
        java.util.Properties p = new java.util.Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        try (Admin admin = Admin.create(p)) {
            java.util.Set<String> existing = admin.listTopics().names().get();
            java.util.List<NewTopic> missing = topics.all().stream().filter(t -> !existing.contains(t))
                    .map(t -> new NewTopic(t, partitions, (short) 1)).toList();
            if (!missing.isEmpty()) {
                admin.createTopics(missing).all().get();
                LOG.info("Created the Kafka topics {}.", missing.stream().map(NewTopic::name).toList());
            }
        }
    }
}
