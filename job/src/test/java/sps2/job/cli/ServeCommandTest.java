package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;
import sps2.operators.io.KafkaTopics;

/** What serve promises in its help, and the Flink settings behind it. */
class ServeCommandTest {

    @Test
    void helpAndBehaviourAgreeOnCheckpointing() {
        GenerateCommandTest.Result help = GenerateCommandTest.run("serve", "--help");
        assertEquals(0, help.code());
        String text = help.out().replaceAll("\\s+", " ");
        assertTrue(text.contains("0 disables checkpointing (default: 10000 for serve"), text);
        assertTrue(text.contains("--checkpoint-dir") && text.contains("--fresh") && text.contains("--metrics-port"), text);

        JobOptions unset = new JobOptions();
        new CommandLine(unset).parseArgs();
        assertEquals(ServeCommand.DEFAULT_CHECKPOINT_INTERVAL_MS, unset.checkpointIntervalMs(ServeCommand.DEFAULT_CHECKPOINT_INTERVAL_MS));
        assertEquals(0, unset.checkpointIntervalMs(0), "the embedded commands do not checkpoint unless asked");
        JobOptions off = new JobOptions();
        new CommandLine(off).parseArgs("--checkpoint-interval", "0");
        assertEquals(0, off.checkpointIntervalMs(ServeCommand.DEFAULT_CHECKPOINT_INTERVAL_MS), "0 disables it for serve too");
    }

    @Test
    void checkpointsAreKeptInTheCurrentKeysAndRetainedOnCancel(@TempDir Path dir) {
        Configuration conf = new Configuration();
        ServeCommand.durableCheckpoints(conf, org.apache.flink.core.fs.Path.fromLocalFile(dir.toFile()));
        Map<String, String> keys = conf.toMap();
        assertTrue(keys.containsKey("execution.checkpointing.dir"), keys.toString());
        assertFalse(keys.containsKey("state.checkpoints.dir"), "deprecated in Flink 2: " + keys);
        assertEquals("RETAIN_ON_CANCELLATION", keys.get("execution.checkpointing.externalized-checkpoint-retention"));
        assertEquals(local(dir), conf.get(CheckpointingOptions.CHECKPOINTS_DIRECTORY));
    }

    @Test
    void eachGroupAndTopicHasItsOwnCheckpointFolderUnderTheChosenBase(@TempDir Path dir) {
        ServeCommand serve = new ServeCommand();
        new CommandLine(serve).parseArgs("--bootstrap-servers", "x:1", "--model", "m", "--group-id", "team a/1");
        KafkaTopics topics = KafkaTopics.withPrefix("p-");
        Configuration cluster = new Configuration();
        String fromHome = serve.checkpointDirectory(cluster, topics).toString();
        assertTrue(fromHome.startsWith(local(Path.of(System.getProperty("user.home"), ".sps2", "checkpoints")) + "/"), fromHome);
        assertTrue(fromHome.endsWith("/team_a_1-p-sps2-requests"), fromHome);

        cluster.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, "s3://bucket/flink-checkpoints");
        assertEquals("s3://bucket/flink-checkpoints/team_a_1-p-sps2-requests", serve.checkpointDirectory(cluster, topics).toString(),
                "under flink run the cluster's checkpoint directory is the base");

        new CommandLine(serve).parseArgs("--bootstrap-servers", "x:1", "--model", "m", "--checkpoint-dir", dir.toString());
        assertEquals(new org.apache.flink.core.fs.Path(local(dir), "sps2-p-sps2-requests").toString(), serve.checkpointDirectory(cluster, topics).toString());
    }

    private static String local(Path dir) {
        return org.apache.flink.core.fs.Path.fromLocalFile(dir.toFile()).toString();
    }

    @Test
    void aRestartStrategyWithoutABudgetToUseUp() {
        Configuration conf = new Configuration();
        FaultTolerance.restartStrategy(conf);
        assertEquals("exponential-delay", conf.get(RestartStrategyOptions.RESTART_STRATEGY));
        assertEquals(Integer.MAX_VALUE, conf.get(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_ATTEMPTS));
        assertTrue(conf.get(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_MAX_BACKOFF).toSeconds() <= 60);
    }

    @Test
    void theNewestReadableCheckpointIsTheOneToResumeFrom(@TempDir Path dir) throws Exception {
        org.apache.flink.core.fs.Path base = org.apache.flink.core.fs.Path.fromLocalFile(dir.toFile());
        assertTrue(RetainedCheckpoints.latest(new org.apache.flink.core.fs.Path(base, "missing")).isEmpty());
        Path older = Files.createDirectories(dir.resolve("job1/chk-7"));
        Path newer = Files.createDirectories(dir.resolve("job2/chk-3"));
        Files.createDirectories(dir.resolve("job2/chk-4")); // in progress: no metadata yet
        Files.write(older.resolve("_metadata"), new byte[] {1, 2, 3});
        Files.write(newer.resolve("_metadata"), new byte[] {4, 5, 6});
        Files.setLastModifiedTime(older.resolve("_metadata"), java.nio.file.attribute.FileTime.fromMillis(1_000_000));
        assertEquals(2, RetainedCheckpoints.all(base).size());
        assertEquals(3, RetainedCheckpoints.all(base).get(0).number(), "newest first");
        assertTrue(RetainedCheckpoints.latest(base).isEmpty(), "metadata Flink cannot read is skipped");
    }
}
