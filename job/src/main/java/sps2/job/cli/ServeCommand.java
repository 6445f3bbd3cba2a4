package sps2.job.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
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
import sps2.job.embedded.Logging;
import sps2.operators.JobSettings;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;

/**
 * The job against an existing Kafka. Run by {@code ./sps2 serve} it executes on a local Flink cluster in
 * this process; submitted with {@code flink run sps2-job-*-flink.jar serve ...} it runs on that cluster.
 */
@Command(name = "serve", mixinStandardHelpOptions = true, description = "Run the sps2 job against an existing Kafka cluster.")
public final class ServeCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(ServeCommand.class);

    @Option(names = "--bootstrap-servers", required = true, description = "Kafka bootstrap servers, HOST:PORT[,...].")
    String bootstrapServers;

    @Option(names = "--model", required = true, description = "Model checkpoint (on every task manager's file system).")
    Path model;

    @Option(names = "--topic-prefix", defaultValue = "", description = "Prefix of the sps2 topics (default: none).")
    String topicPrefix;

    @Option(names = "--partitions", defaultValue = "1", description = "Partitions of topics that are created (default: ${DEFAULT-VALUE}).")
    int partitions;

    @Option(names = "--group-id", defaultValue = "sps2", description = "Consumer group of the request source (default: ${DEFAULT-VALUE}).")
    String groupId;

    @Option(names = "--verbose", description = "Show Flink's and Kafka's own logs.")
    boolean verbose;

    @Mixin
    JobOptions jobOptions;

    @Override
    public Integer call() throws Exception {
        Logging.configure(verbose);
        KafkaTopics topics = KafkaTopics.withPrefix(topicPrefix);
        createMissingTopics(topics);
        JobSettings settings = jobOptions.settings(model);
        Configuration conf = new Configuration();
        conf.set(PipelineOptions.GENERIC_TYPES, false);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        EmbeddedJob.configure(env, jobOptions.checkpointIntervalMs > 0 ? jobOptions.checkpointIntervalMs : 10_000);
        Sps2Job.build(env, settings, new KafkaIo(bootstrapServers, groupId, topics));
        LOG.info("Starting the sps2 job against Kafka at {}: requests from {}, tokens to {}.", bootstrapServers, topics.requests(), topics.tokens());
        env.execute("sps2 (" + settings.mode() + ", " + settings.shards() + " shard(s))");
        return 0;
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
