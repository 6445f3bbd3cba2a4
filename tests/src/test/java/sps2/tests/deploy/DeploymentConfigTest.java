package sps2.tests.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.configuration.FallbackKey;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.metrics.reporter.MetricReporterFactory;
import org.junit.jupiter.api.Test;
import org.snakeyaml.engine.v2.api.Load;
import org.snakeyaml.engine.v2.api.LoadSettings;

/**
 * The shipped deployment files, read the way Flink and Docker read them: flink-conf/config.yaml gives every JVM the
 * flags Flink needs on Java 17 and the Vector API module sps2 needs (checked on real JVMs), uses no deprecated key,
 * keeps checkpoints on cancel, restarts with exponential delay and serves metrics for Prometheus;
 * docker/docker-compose.yml advertises a Kafka listener the host can reach on the port it publishes.
 */
class DeploymentConfigTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();

    /** Flink 2.2's own Java 17 flags: flink-dist's config.yaml ships them as env.java.opts.all. */
    private static final List<String> FLINK_JAVA17_FLAGS = List.of(
            "--add-exports=java.base/sun.net.util=ALL-UNNAMED", "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
            "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED", "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
            "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED", "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
            "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED", "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
            "--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-opens=java.base/java.net=ALL-UNNAMED", "--add-opens=java.base/java.io=ALL-UNNAMED",
            "--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED", "--add-opens=java.base/java.text=ALL-UNNAMED",
            "--add-opens=java.base/java.time=ALL-UNNAMED", "--add-opens=java.base/java.util=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED", "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
            "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED");

    static Configuration flinkConf() {
        return GlobalConfiguration.loadConfiguration(ROOT.resolve("flink-conf").toString());
    }

    /** The JVM flags Flink's scripts give every process: env.java.default-opts.all, then env.java.opts.all. */
    static List<String> jvmFlags(Configuration conf) {
        String all = conf.get(CoreOptions.FLINK_DEFAULT_JVM_OPTIONS) + " " + conf.get(CoreOptions.FLINK_JVM_OPTIONS);
        return Arrays.stream(all.trim().split("\\s+")).filter(s -> !s.isEmpty()).toList();
    }

    @Test
    void everyFlinkJvmGetsFlinksJava17FlagsAndTheVectorModule() throws Exception {
        List<String> flags = jvmFlags(flinkConf());
        for (String flag : FLINK_JAVA17_FLAGS) {
            assertTrue(flags.contains(flag), "Flink's own flag " + flag + " is missing: " + flags);
        }
        assertTrue(flags.contains("--add-modules=jdk.incubator.vector"), flags.toString());
        assertEquals(0, probe(flags), "a JVM with the shipped flags has the Vector API and an open java.util");
        // What the file used to say, and what Flink's list alone gives: each breaks one of the two.
        assertEquals(4, probe(List.of("--add-modules", "jdk.incubator.vector")), "without Flink's list java.util is closed");
        assertEquals(3, probe(FLINK_JAVA17_FLAGS), "without the module flag there is no Vector API");
    }

    private static int probe(List<String> flags) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(flags);
        command.add("-cp");
        command.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        command.add(JvmFlagsProbe.class.getName());
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), out);
        return p.exitValue();
    }

    @Test
    void noDeprecatedKeysAndTheDurabilityAndRestartSettingsTheJobRelyOn() throws Exception {
        Configuration conf = flinkConf();
        Set<String> deprecated = deprecatedKeys();
        assertTrue(deprecated.contains("state.checkpoints.dir"), "the scan finds Flink's deprecated keys");
        for (String key : conf.keySet()) {
            assertFalse(deprecated.contains(key), key + " is deprecated in Flink 2");
        }
        assertTrue(conf.getOptional(CheckpointingOptions.CHECKPOINTS_DIRECTORY).isPresent());
        assertEquals(ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION, conf.get(CheckpointingOptions.EXTERNALIZED_CHECKPOINT_RETENTION));
        assertEquals("exponential-delay", conf.get(RestartStrategyOptions.RESTART_STRATEGY));
        assertEquals(Integer.MAX_VALUE, conf.get(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_ATTEMPTS));
        assertEquals(sps2.job.cli.FaultTolerance.MAX_BACKOFF, conf.get(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_MAX_BACKOFF),
                "the cluster restarts like serve does");
        String factory = conf.toMap().get("metrics.reporter.prom.factory.class");
        assertNotNull(factory, "a Prometheus reporter");
        assertTrue(MetricReporterFactory.class.isAssignableFrom(Class.forName(factory)), factory);
    }

    /** Every deprecated key of Flink's configuration options (fallback keys marked deprecated, and deprecated options). */
    private static Set<String> deprecatedKeys() throws Exception {
        Set<String> keys = new HashSet<>();
        for (Class<?> options : List.of(CheckpointingOptions.class, CoreOptions.class, RestartStrategyOptions.class,
                org.apache.flink.configuration.StateBackendOptions.class, org.apache.flink.configuration.StateRecoveryOptions.class,
                org.apache.flink.configuration.TaskManagerOptions.class, org.apache.flink.configuration.JobManagerOptions.class,
                org.apache.flink.configuration.RestOptions.class, org.apache.flink.configuration.MetricOptions.class,
                org.apache.flink.configuration.HeartbeatManagerOptions.class, org.apache.flink.configuration.PipelineOptions.class,
                org.apache.flink.configuration.ExecutionOptions.class)) {
            for (Field field : options.getFields()) {
                if (!Modifier.isStatic(field.getModifiers()) || !ConfigOption.class.isAssignableFrom(field.getType())) {
                    continue;
                }
                ConfigOption<?> option = (ConfigOption<?>) field.get(null);
                if (field.isAnnotationPresent(Deprecated.class)) {
                    keys.add(option.key());
                }
                for (FallbackKey fallback : option.fallbackKeys()) {
                    if (fallback.isDeprecated()) {
                        keys.add(fallback.getKey());
                    }
                }
            }
        }
        return keys;
    }

    @Test
    @SuppressWarnings("unchecked")
    void composeAdvertisesAKafkaListenerTheHostReachesOnThePublishedPort() throws IOException {
        Map<String, Object> compose = (Map<String, Object>) new Load(LoadSettings.builder().build())
                .loadFromString(Files.readString(ROOT.resolve("docker/docker-compose.yml")));
        Map<String, Object> kafka = (Map<String, Object>) ((Map<String, Object>) compose.get("services")).get("kafka");
        Map<String, String> env = (Map<String, String>) kafka.get("environment");
        Map<String, Integer> listenerPorts = new HashMap<>();
        for (String listener : env.get("KAFKA_LISTENERS").split(",")) {
            listenerPorts.put(listener.substring(0, listener.indexOf(':')), Integer.parseInt(listener.substring(listener.lastIndexOf(':') + 1)));
        }
        Map<String, String> advertisedHost = new HashMap<>();
        Map<String, Integer> advertisedPort = new HashMap<>();
        for (String listener : env.get("KAFKA_ADVERTISED_LISTENERS").split(",")) {
            String name = listener.substring(0, listener.indexOf(':'));
            String address = listener.substring(listener.indexOf("://") + 3);
            assertTrue(listenerPorts.containsKey(name), "advertised " + name + " is not a listener");
            advertisedHost.put(name, address.substring(0, address.lastIndexOf(':')));
            advertisedPort.put(name, Integer.parseInt(address.substring(address.lastIndexOf(':') + 1)));
        }
        String protocols = env.getOrDefault("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "");
        for (String name : listenerPorts.keySet()) {
            // Kafka maps PLAINTEXT and, without an explicit map, the controller listener to PLAINTEXT itself.
            boolean implicit = name.equals("PLAINTEXT") || (protocols.isEmpty() && name.equals(env.get("KAFKA_CONTROLLER_LISTENER_NAMES")));
            assertTrue(implicit || protocols.contains(name + ":"), name + " has no security protocol");
        }
        List<String> ports = (List<String>) kafka.get("ports");
        assertFalse(ports.isEmpty(), "the broker is published to the host");
        for (String mapping : ports) {
            int hostPort = Integer.parseInt(mapping.split(":")[0]);
            int containerPort = Integer.parseInt(mapping.split(":")[1]);
            String name = listenerPorts.entrySet().stream().filter(e -> e.getValue() == containerPort).map(Map.Entry::getKey).findFirst()
                    .orElseThrow(() -> new AssertionError("port " + containerPort + " is no listener's"));
            String host = advertisedHost.get(name).replace("${KAFKA_EXTERNAL_HOST:-localhost}", "localhost");
            assertTrue(host.equals("localhost") || host.equals("127.0.0.1"),
                    "a host client on port " + hostPort + " is sent to " + advertisedHost.get(name) + ", which the host cannot resolve");
            assertEquals(hostPort, advertisedPort.get(name), "the advertised port must be the published one");
        }
        // Containers use a listener whose advertised name the compose network resolves: the service name.
        String internal = env.getOrDefault("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT");
        assertEquals("kafka", advertisedHost.get(internal));
        assertTrue(Files.readString(ROOT.resolve("docker/docker-compose.yml")).contains("--bootstrap-servers kafka:" + advertisedPort.get(internal)),
                "the documented flink run command uses the internal listener");
    }
}
