package sps2.tests;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;

/**
 * A command of this project ({@code sps2.job.Main}) in a JVM process of its own, with this test JVM's class path
 * and flags, its output in a file: what {@code ./sps2 serve} runs, so tests can kill it with SIGKILL.
 */
final class ServeProcess implements AutoCloseable {
    private final Process process;
    private final Path log;

    private ServeProcess(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /** Starts {@code sps2.job.Main args...}; output goes to {@code log}. */
    static ServeProcess start(Path log, Path tmp, List<String> args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String flag : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            // The module and opens flags the code needs, the stack size; not the test JVM's own temp dir or agents.
            if (flag.startsWith("--add-") || flag.startsWith("-Xss") || flag.equals("jdk.incubator.vector")
                    || flag.startsWith("java.base/") || flag.startsWith("ALL-UNNAMED")) {
                command.add(flag);
            }
        }
        command.add("-Xmx1g");
        command.add("-XX:+UseSerialGC");
        command.add("-XX:TieredStopAtLevel=1");
        command.add("-Djava.io.tmpdir=" + Files.createDirectories(tmp));
        command.add("-cp");
        command.add(System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
        command.add("sps2.job.Main");
        command.addAll(args);
        Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new ServeProcess(process, log);
    }

    String output() {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no output: " + e + ")";
        }
    }

    /** Waits until the output holds {@code text}; fails early if the process ends. */
    void awaitOutput(String text, Duration timeout) throws TimeoutException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!output().contains(text)) {
            if (!process.isAlive()) {
                throw new IllegalStateException("The process ended (exit " + process.exitValue() + ") before printing '" + text + "':\n" + tail());
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("No '" + text + "' within " + timeout + ":\n" + tail());
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50)); // a file has no change notification here
        }
    }

    boolean alive() {
        return process.isAlive();
    }

    /** SIGKILL, as {@code kill -9}: no shutdown hook, no cleanup; waits until the process is gone. */
    void kill9() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(30, TimeUnit.SECONDS);
    }

    String tail() {
        String out = output();
        return out.length() > 6000 ? out.substring(out.length() - 6000) : out;
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            kill9();
        }
    }
}
