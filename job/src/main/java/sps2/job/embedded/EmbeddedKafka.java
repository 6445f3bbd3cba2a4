package sps2.job.embedded;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.test.KafkaClusterTestKit;
import org.apache.kafka.common.test.TestKitNodes;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real Kafka broker inside this JVM: one KRaft node that is both controller and broker, with its
 * storage formatted in a fresh temporary folder and its listeners on free ports. For the embedded
 * mode, tests and benchmarks.
 *
 * <p>Settings for a single node: replication factor 1 (and min ISR 1) for the internal offsets,
 * transaction and share-group state topics, each with one partition so the first group join does
 * not wait for 50 partitions to load, and no initial rebalance delay so consumer groups form at once.
 *
 * <p>Needs the Kafka broker jars ({@code kafka-test-common-runtime}, {@code kafka_2.13}) on the
 * class path; the job declares them {@code provided} so the Flink fat jar does not carry a broker.
 */
public final class EmbeddedKafka implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedKafka.class);

    /** Default bound on start-up: a cold JVM takes a few seconds to format, start and elect. */
    public static final Duration DEFAULT_START_TIMEOUT = Duration.ofSeconds(60);

    private final Path directory;
    private final KafkaClusterTestKit cluster;
    private final Admin admin;
    private final Duration timeout;
    private boolean closed;

    private EmbeddedKafka(Path directory, KafkaClusterTestKit cluster, Admin admin, Duration timeout) {
        this.directory = directory;
        this.cluster = cluster;
        this.admin = admin;
        this.timeout = timeout;
    }

    /** Starts a broker with the default settings and waits until it serves clients. */
    public static EmbeddedKafka start() throws IOException, TimeoutException {
        return start(Map.of(), DEFAULT_START_TIMEOUT);
    }

    /**
     * Starts a broker and waits, at most {@code timeout}, until it serves clients.
     *
     * @param brokerOverrides broker settings that replace the defaults (e.g. {@code num.partitions})
     */
    public static EmbeddedKafka start(Map<String, String> brokerOverrides, Duration timeout) throws IOException, TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        Path directory = Files.createTempDirectory("sps2-kafka-");
        KafkaClusterTestKit cluster = null;
        Admin admin = null;
        try {
            TestKitNodes nodes = new TestKitNodes.Builder()
                    .setCombined(true)
                    .setNumControllerNodes(1)
                    .setNumBrokerNodes(1)
                    .setBaseDirectory(directory)
                    .build();
            KafkaClusterTestKit.Builder builder = new KafkaClusterTestKit.Builder(nodes).setDeleteOnClose(true);
            for (Map.Entry<String, String> setting : brokerSettings(brokerOverrides).entrySet()) {
                builder.setConfigProp(setting.getKey(), setting.getValue());
            }
            KafkaClusterTestKit started = builder.build();
            cluster = started;
            formatStorage(started);
            // startup() and waitForReadyBrokers() wait without a bound of their own.
            CompletableFuture<Void> ready = CompletableFuture.runAsync(() -> {
                try {
                    started.startup();
                    started.waitForReadyBrokers();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            await(ready, deadline, "the Kafka broker to start");

            Properties adminProps = new Properties();
            adminProps.setProperty(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrapServers());
            admin = Admin.create(adminProps);
            int nodesSeen = await(admin.describeCluster().nodes().toCompletionStage().toCompletableFuture(), deadline,
                    "the Kafka broker to answer a client").size();
            if (nodesSeen != 1) {
                throw new IllegalStateException("The embedded Kafka cluster reports " + nodesSeen + " brokers instead of 1.");
            }
            LOG.info("Embedded Kafka broker serves {} (data in {}).", cluster.bootstrapServers(), directory);
            return new EmbeddedKafka(directory, cluster, admin, timeout);
        } catch (IOException | TimeoutException | RuntimeException e) {
            closeQuietly(admin, cluster, directory);
            throw e;
        } catch (Exception e) {
            closeQuietly(admin, cluster, directory);
            throw new IllegalStateException("The embedded Kafka broker failed to start: " + e.getMessage(), e);
        }
    }

    /**
     * Formats the node's storage. Kafka's formatter reports to System.out, which is the command
     * line's output here, so its report is captured for the debug log while it runs (a fraction of
     * a second at start-up, before anything else in the process prints).
     */
    private static void formatStorage(KafkaClusterTestKit cluster) throws Exception {
        PrintStream stdout = System.out;
        ByteArrayOutputStream report = new ByteArrayOutputStream();
        System.setOut(new PrintStream(report, true, StandardCharsets.UTF_8));
        try {
            cluster.format();
        } finally {
            System.setOut(stdout);
        }
        LOG.debug("Kafka formatted its storage: {}", report.toString(StandardCharsets.UTF_8).trim());
    }

    private static Map<String, String> brokerSettings(Map<String, String> overrides) {
        Map<String, String> settings = new HashMap<>();
        settings.put("offsets.topic.replication.factor", "1");
        settings.put("offsets.topic.num.partitions", "1");
        settings.put("transaction.state.log.replication.factor", "1");
        settings.put("transaction.state.log.min.isr", "1");
        settings.put("transaction.state.log.num.partitions", "1");
        settings.put("share.coordinator.state.topic.replication.factor", "1");
        settings.put("share.coordinator.state.topic.min.isr", "1");
        settings.put("share.coordinator.state.topic.num.partitions", "1");
        settings.put("group.initial.rebalance.delay.ms", "0");
        settings.put("num.partitions", "1");
        settings.put("default.replication.factor", "1");
        settings.put("min.insync.replicas", "1");
        settings.putAll(overrides);
        return settings;
    }

    /** {@code host:port} list for clients. */
    public String bootstrapServers() {
        return cluster.bootstrapServers();
    }

    /** An admin client of this broker, owned by it (do not close it). */
    public Admin admin() {
        return admin;
    }

    /** Folder holding the broker's metadata and logs; deleted on close. */
    public Path directory() {
        return directory;
    }

    /** Creates topics with {@code partitions} partitions each (existing ones are left as they are). */
    public void createTopics(int partitions, String... names) throws TimeoutException {
        createTopics(partitions, List.of(names));
    }

    /**
     * Creates topics with {@code partitions} partitions each and waits until every partition has a
     * leader, so that clients can use them at once. Topics that exist already are left as they are.
     */
    public void createTopics(int partitions, Collection<String> names) throws TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<NewTopic> topics = new ArrayList<>();
        for (String name : names) {
            topics.add(new NewTopic(name, partitions, (short) 1));
        }
        for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> created : admin.createTopics(topics).values().entrySet()) {
            try {
                await(created.getValue().toCompletionStage().toCompletableFuture(), deadline, "topic " + created.getKey() + " to be created");
            } catch (IllegalStateException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
        awaitLeaders(names, deadline);
    }

    /** Waits until the broker's metadata has a leader for every partition of the topics. */
    private void awaitLeaders(Collection<String> names, long deadline) throws TimeoutException {
        long backoffNanos = TimeUnit.MILLISECONDS.toNanos(5);
        while (true) {
            try {
                Map<String, TopicDescription> described = admin.describeTopics(names).allTopicNames()
                        .get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (described.values().stream().flatMap(d -> d.partitions().stream()).allMatch(EmbeddedKafka::hasLeader)) {
                    return;
                }
            } catch (ExecutionException e) {
                // The broker's metadata has not caught up with the controller yet: ask again.
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("Interrupted while waiting for topics " + names + ".", e);
            }
            if (System.nanoTime() - deadline > 0) {
                throw new TimeoutException("Topics " + names + " have no leader after " + timeout.toSeconds() + " s.");
            }
            LockSupport.parkNanos(backoffNanos);
        }
    }

    private static boolean hasLeader(TopicPartitionInfo partition) {
        return partition.leader() != null && !partition.leader().isEmpty();
    }

    private static <T> T await(CompletableFuture<T> future, long deadline, String what) throws TimeoutException {
        try {
            return future.get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while waiting for " + what + ".", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() instanceof IllegalStateException && e.getCause().getCause() != null
                    ? e.getCause().getCause() : e.getCause();
            throw new IllegalStateException("Failed while waiting for " + what + ": " + cause.getMessage(), cause);
        } catch (TimeoutException e) {
            future.cancel(true);
            throw new TimeoutException("Gave up waiting for " + what + ".");
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        closeQuietly(admin, cluster, directory);
        LOG.info("Embedded Kafka broker stopped.");
    }

    private static void closeQuietly(Admin admin, KafkaClusterTestKit cluster, Path directory) {
        if (admin != null) {
            admin.close(Duration.ofSeconds(5));
        }
        if (cluster != null) {
            try {
                cluster.close();
            } catch (Exception e) {
                LOG.warn("The embedded Kafka broker did not shut down cleanly: {}", e.toString());
            }
        }
        TempFolders.deleteRecursively(directory);
    }
}
