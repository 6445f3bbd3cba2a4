package sps2.tests.deploy;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ConfigurationUtils;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * A Flink standalone session cluster of real processes, started the way Flink's scripts start one, from Maven
 * artifacts (Maven Central has no flink-dist): the shipped {@code flink-conf/config.yaml} with only addresses,
 * ports, memory sizes and folders changed for one machine; every JVM gets the flags that file gives
 * ({@code env.java.default-opts.all}, then {@code env.java.opts.all}); memory flags and derived settings come from
 * Flink's own {@code BashJavaUtils}, as in {@code jobmanager.sh} and {@code taskmanager.sh}; jobs are submitted,
 * cancelled and listed by Flink's {@code CliFrontend} (what {@code bin/flink} runs).
 *
 * <p>The processes' class path is this test's minus sps2's own classes and the Flink connectors, which the job jar
 * brings (as on a cluster, where they are not in {@code lib/}). The job jar is {@code job/target/sps2-job-*-flink.jar}
 * when a package build left one newer than the classes, and otherwise one assembled here from sps2's classes and the
 * connectors it bundles.
 */
final class StandaloneFlink implements AutoCloseable {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
    private static final List<String> SPS2_MODULES = List.of("schemas", "model", "gpu", "operators", "job");
    /** Flink artifacts the job jar brings: on the processes' class path they would load parent-first and clash. */
    private static final List<String> BUNDLED_BY_JOB = List.of("flink-connector-kafka", "flink-connector-base", "flink-avro");

    private final Path dir;
    private final Path conf;
    private final Configuration config;
    private final List<String> jvmFlags;
    private final String classpath;
    private final Path jobJar;
    private final int restPort;
    private final int[] metricsPorts;
    private final HttpClient http = HttpClient.newHttpClient();
    private final ObjectMapper json = new ObjectMapper();
    private Process jobManager;
    private Process taskManager;
    private int taskManagers;
    /** BashJavaUtils' answer for TaskManagers (the same for every one). */
    private List<String> taskManagerMemory;

    private StandaloneFlink(Path dir, Path conf, Configuration config, String classpath, Path jobJar, int restPort, int[] metricsPorts) {
        this.dir = dir;
        this.conf = conf;
        this.config = config;
        this.jvmFlags = DeploymentConfigTest.jvmFlags(config);
        this.classpath = classpath;
        this.jobJar = jobJar;
        this.restPort = restPort;
        this.metricsPorts = metricsPorts;
    }

    /** Writes the configuration, starts a JobManager and one TaskManager and waits until the TaskManager's slots are there. */
    static StandaloneFlink start(Path dir) throws Exception {
        Configuration config = DeploymentConfigTest.flinkConf();
        int rpcPort = freePort();
        int restPort = freePort();
        int[] metricsPorts = {freePort(), freePort(), freePort()};
        config.setString("jobmanager.rpc.address", "localhost");
        config.setString("jobmanager.rpc.port", Integer.toString(rpcPort));
        config.setString("jobmanager.bind-host", "localhost");
        config.setString("taskmanager.bind-host", "localhost");
        config.setString("taskmanager.host", "localhost");
        config.setString("rest.address", "localhost");
        config.setString("rest.bind-address", "localhost");
        config.setString("rest.port", Integer.toString(restPort));
        config.setString("jobmanager.memory.process.size", "1g");
        config.setString("taskmanager.memory.process.size", "2g");
        config.setString("taskmanager.memory.network.min", "128mb");
        config.setString("taskmanager.memory.network.max", "128mb");
        config.setString("execution.checkpointing.dir", dir.resolve("checkpoints").toUri().toString());
        config.setString("io.tmp.dirs", Files.createDirectories(dir.resolve("io")).toString());
        config.setString("blob.storage.directory", Files.createDirectories(dir.resolve("blobs")).toString());
        config.setString("web.tmpdir", Files.createDirectories(dir.resolve("web")).toString());
        Path conf = Files.createDirectories(dir.resolve("conf"));
        Files.write(conf.resolve("config.yaml"), ConfigurationUtils.convertConfigToWritableLines(config, false));
        Files.writeString(conf.resolve("log4j.properties"), String.join("\n",
                "rootLogger.level = INFO", "rootLogger.appenderRef.main.ref = Main",
                "appender.main.name = Main", "appender.main.type = File", "appender.main.fileName = ${sys:log.file}",
                "appender.main.layout.type = PatternLayout", "appender.main.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1} - %m%n", ""));
        StandaloneFlink flink = new StandaloneFlink(dir, conf, config, clusterClasspath(), jobJar(dir), restPort, metricsPorts);
        java.util.concurrent.CompletableFuture<List<String>> tmMemory = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            try {
                return memoryFlags(flink, "GET_TM_RESOURCE_PARAMS");
            } catch (Exception e) {
                throw new java.util.concurrent.CompletionException(e);
            }
        });
        flink.jobManager = flink.java("jobmanager", memoryFlags(flink, "GET_JM_RESOURCE_PARAMS"), metricsPorts[0],
                "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint", "--configDir", conf.toString());
        // The TaskManager starts alongside and keeps trying to register until the JobManager answers, as with start-cluster.sh.
        flink.taskManagerMemory = tmMemory.join();
        flink.startTaskManager();
        return flink;
    }

    /** Starts a TaskManager process (after a kill: a replacement) and waits until the JobManager has its slots. */
    void startTaskManager() throws Exception {
        int n = ++taskManagers;
        taskManager = java("taskmanager-" + n, taskManagerMemory, metricsPorts[Math.min(n, metricsPorts.length - 1)],
                "org.apache.flink.runtime.taskexecutor.TaskManagerRunner", "--configDir", conf.toString());
        awaitRest(() -> {
            JsonNode overview = rest("/overview");
            return overview != null && overview.path("taskmanagers").asInt() >= 1 && overview.path("slots-available").asInt() > 0;
        }, "TaskManager " + n + " to register its slots");
    }

    /** SIGKILL of the running TaskManager. */
    void killTaskManager() throws InterruptedException {
        taskManager.destroyForcibly();
        taskManager.waitFor(30, TimeUnit.SECONDS);
    }

    /** Port of the Prometheus endpoint of the n-th TaskManager (1-based). */
    int taskManagerMetricsPort(int n) {
        return metricsPorts[Math.min(n, metricsPorts.length - 1)];
    }

    /** What Flink's client printed and its exit code. */
    record CliResult(int exitCode, String output) {
        Optional<String> jobId() {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("JobID ([0-9a-f]{32})").matcher(output);
            return m.find() ? Optional.of(m.group(1)) : Optional.empty();
        }
    }

    /** {@code bin/flink args...}: Flink's CliFrontend in a JVM of its own with the configuration's flags. */
    CliResult flink(String... args) throws Exception {
        List<String> command = new ArrayList<>();
        command.add(javaBinary());
        command.addAll(jvmFlags);
        command.add("-XX:TieredStopAtLevel=1"); // a short-lived client: start fast rather than peak
        command.add("-Dlog.file=" + dir.resolve("client.log"));
        command.add("-Dlog4j.configurationFile=" + conf.resolve("log4j.properties").toUri());
        command.add("-cp");
        command.add(classpath);
        command.add("org.apache.flink.client.cli.CliFrontend");
        command.addAll(Arrays.asList(args));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().put("FLINK_CONF_DIR", conf.toString());
        Process p = builder.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("flink " + String.join(" ", args) + " did not end:\n" + out);
        }
        return new CliResult(p.exitValue(), out);
    }

    /** Where the cluster keeps checkpoints (execution.checkpointing.dir). */
    Path checkpointDirectory() {
        return dir.resolve("checkpoints");
    }

    Path jobJar() {
        return jobJar;
    }

    Configuration config() {
        return config;
    }

    /** GET on the REST API; null while it does not answer. */
    JsonNode rest(String path) {
        try {
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://localhost:" + restPort + path))
                    .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
            return response.statusCode() == 200 ? json.readTree(response.body()) : null;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    /** A job metric of the JobManager (e.g. numRestarts), or -1 while it is not there. */
    long jobMetric(String jobId, String metric) {
        JsonNode values = rest("/jobs/" + jobId + "/metrics?get=" + metric);
        if (values == null || !values.isArray() || values.isEmpty()) {
            return -1;
        }
        return values.get(0).path("value").asLong(-1);
    }

    /**
     * Failures in a job's exception history per the REST API (each one a failover the job went through), or -1. It
     * is built from the job's execution graph on every request, while the metrics behind {@link #jobMetric} reach the
     * REST API through a fetcher that may lag under load.
     */
    long failures(String jobId) {
        JsonNode exceptions = rest("/jobs/" + jobId + "/exceptions?maxExceptions=1000");
        JsonNode entries = exceptions == null ? null : exceptions.path("exceptionHistory").path("entries");
        return entries == null || !entries.isArray() ? -1 : entries.size();
    }

    /** Completed checkpoints of a job per the REST API, or -1. */
    long completedCheckpoints(String jobId) {
        JsonNode checkpoints = rest("/jobs/" + jobId + "/checkpoints");
        return checkpoints == null ? -1 : checkpoints.path("counts").path("completed").asLong(-1);
    }

    /** The job's state per the REST API, or "" while unknown. */
    String jobState(String jobId) {
        JsonNode job = rest("/jobs/" + jobId);
        return job == null ? "" : job.path("state").asText("");
    }

    /** Whether every vertex of the job runs all its subtasks. */
    boolean jobRunning(String jobId) {
        JsonNode job = rest("/jobs/" + jobId);
        if (job == null || !"RUNNING".equals(job.path("state").asText())) {
            return false;
        }
        for (JsonNode vertex : job.path("vertices")) {
            if (!"RUNNING".equals(vertex.path("status").asText())) {
                return false;
            }
        }
        return true;
    }

    String logs() {
        StringBuilder b = new StringBuilder();
        try (Stream<Path> files = Files.list(dir)) {
            for (Path log : files.filter(p -> p.toString().endsWith(".log")).sorted().toList()) {
                String text = Files.readString(log);
                b.append("==== ").append(log.getFileName()).append('\n').append(text.length() > 4000 ? text.substring(text.length() - 4000) : text);
            }
        } catch (IOException e) {
            b.append(e);
        }
        return b.toString();
    }

    interface Check {
        boolean ok() throws Exception;
    }

    void awaitRest(Check check, String what) throws Exception {
        long deadline = System.nanoTime() + Duration.ofMinutes(3).toNanos();
        while (!check.ok()) {
            if (jobManager != null && !jobManager.isAlive()) {
                throw new IllegalStateException("The JobManager died while waiting for " + what + ":\n" + logs());
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("No " + what + " within 3 minutes:\n" + logs());
            }
            java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100)); // REST has no push
        }
    }

    private Process java(String name, List<String> memory, int metricsPort, String main, String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(javaBinary());
        command.addAll(memory.subList(0, memory.indexOf("--")));
        command.addAll(jvmFlags);
        command.add("-XX:+UseSerialGC");
        command.add("-Dlog.file=" + dir.resolve(name + ".log"));
        command.add("-Dlog4j.configurationFile=" + conf.resolve("log4j.properties").toUri());
        command.add("-cp");
        command.add(classpath);
        command.add(main);
        command.addAll(Arrays.asList(args));
        command.addAll(memory.subList(memory.indexOf("--") + 1, memory.size()));
        command.add("-D");
        command.add("metrics.reporter.prom.port=" + metricsPort);
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(dir.resolve(name + ".out").toFile()).start();
    }

    /** JVM memory flags, "--", then the derived -D settings, as Flink's BashJavaUtils gives them to the scripts. */
    private static List<String> memoryFlags(StandaloneFlink flink, String what) throws Exception {
        List<String> command = new ArrayList<>(List.of(javaBinary(), "-XX:TieredStopAtLevel=1", "-cp", flink.classpath,
                "org.apache.flink.runtime.util.bash.BashJavaUtils",
                what, "--configDir", flink.conf.toString()));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor(60, TimeUnit.SECONDS);
        List<String> results = out.lines().filter(l -> l.startsWith("BASH_JAVA_UTILS_EXEC_RESULT:"))
                .map(l -> l.substring("BASH_JAVA_UTILS_EXEC_RESULT:".length()).trim()).toList();
        if (results.size() < 2) {
            throw new IllegalStateException("BashJavaUtils " + what + " failed:\n" + out);
        }
        List<String> flags = new ArrayList<>(Arrays.asList(results.get(0).split("\\s+")));
        flags.add("--");
        flags.addAll(Arrays.asList(results.get(1).split("\\s+")));
        return flags;
    }

    private static String javaBinary() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    private static List<String> testClasspath() {
        return Arrays.asList(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")).split(File.pathSeparator));
    }

    private static boolean isSps2(String entry) {
        Path p = Path.of(entry).toAbsolutePath().normalize();
        return p.startsWith(ROOT) || p.getFileName().toString().startsWith("sps2-");
    }

    private static boolean bundledByJob(String entry) {
        String name = Path.of(entry).getFileName().toString();
        return BUNDLED_BY_JOB.stream().anyMatch(a -> name.startsWith(a + "-"));
    }

    private static String clusterClasspath() {
        return String.join(File.pathSeparator, testClasspath().stream().filter(e -> !isSps2(e) && !bundledByJob(e)).toList());
    }

    /** The package build's fat jar if it is newer than every class of sps2, else one assembled from them. */
    private static Path jobJar(Path dir) throws IOException {
        long newestClass = 0;
        for (String module : SPS2_MODULES) {
            Path classes = ROOT.resolve(module).resolve("target/classes");
            if (Files.isDirectory(classes)) {
                try (Stream<Path> files = Files.walk(classes)) {
                    newestClass = Math.max(newestClass, files.mapToLong(p -> p.toFile().lastModified()).max().orElse(0));
                }
            }
        }
        try (Stream<Path> jars = Files.list(ROOT.resolve("job/target"))) {
            Optional<Path> fat = jars.filter(p -> p.getFileName().toString().matches("sps2-job-.*-flink\\.jar")).findFirst();
            if (fat.isPresent() && fat.get().toFile().lastModified() >= newestClass) {
                return fat.get();
            }
        }
        Path jar = dir.resolve("sps2-job-assembled.jar");
        Manifest manifest = new Manifest();
        manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        manifest.getMainAttributes().put(Attributes.Name.MAIN_CLASS, "sps2.job.Main");
        Set<String> seen = new HashSet<>();
        java.util.Map<String, StringBuilder> services = new java.util.TreeMap<>();
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), manifest)) {
            for (String module : SPS2_MODULES) {
                Path classes = ROOT.resolve(module).resolve("target/classes");
                try (Stream<Path> files = Files.walk(classes)) {
                    for (Path file : files.filter(Files::isRegularFile).toList()) {
                        String name = classes.relativize(file).toString().replace(File.separatorChar, '/');
                        if (name.startsWith("META-INF/services/")) {
                            services.computeIfAbsent(name, k -> new StringBuilder()).append(Files.readString(file)).append('\n');
                        } else if (seen.add(name)) {
                            out.putNextEntry(new JarEntry(name));
                            Files.copy(file, out);
                            out.closeEntry();
                        }
                    }
                }
            }
            for (String entry : testClasspath()) {
                if (bundledByJob(entry) && entry.endsWith(".jar")) {
                    copyJar(Path.of(entry), out, seen, services);
                }
            }
            for (java.util.Map.Entry<String, StringBuilder> service : services.entrySet()) {
                out.putNextEntry(new JarEntry(service.getKey()));
                out.write(service.getValue().toString().getBytes(StandardCharsets.UTF_8));
                out.closeEntry();
            }
        }
        return jar;
    }

    private static void copyJar(Path from, JarOutputStream out, Set<String> seen, java.util.Map<String, StringBuilder> services)
            throws IOException {
        try (JarFile jar = new JarFile(from.toFile())) {
            for (JarEntry entry : java.util.Collections.list(jar.entries())) {
                String name = entry.getName();
                if (!entry.isDirectory() && name.startsWith("META-INF/services/")) {
                    try (InputStream in = jar.getInputStream(entry)) {
                        services.computeIfAbsent(name, k -> new StringBuilder()).append(new String(in.readAllBytes(), StandardCharsets.UTF_8)).append('\n');
                    }
                    continue;
                }
                if (entry.isDirectory() || name.startsWith("META-INF/MANIFEST") || name.endsWith("module-info.class")
                        || name.matches("META-INF/.*\\.(SF|DSA|RSA)") || !seen.add(name)) {
                    continue;
                }
                out.putNextEntry(new JarEntry(name));
                try (InputStream in = jar.getInputStream(entry)) {
                    in.transferTo(out);
                }
                out.closeEntry();
            }
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    @Override
    public void close() throws InterruptedException {
        for (Process p : new Process[] {taskManager, jobManager}) {
            if (p != null && p.isAlive()) {
                p.destroyForcibly();
                p.waitFor(30, TimeUnit.SECONDS);
            }
        }
    }
}
