package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;

import picocli.CommandLine;
import sps2.job.Sps2Job;
import sps2.operators.JobSettings;
import sps2.operators.csa.CsaPolicy;

/**
 * The job's settings are typed where they are given: a misspelt mode, backend, policy or recovery mode is a
 * one-line usage error (exit 2) before anything starts; and whatever the SP degree, a decode step of the job that
 * the settings build crosses at most two Flink hops.
 */
class JobOptionsTest {

    @Test
    void typosAreUsageErrorsNamingTheValidChoices() {
        String[] model = {"--model", "../shared/models/stories260K.gguf"};
        for (String[] bad : new String[][] {{"--csa", "strided:two"}, {"--csa", "sparse"}, {"--mode", "sps3"}, {"--backend", "gpu"},
                {"--append-policy", "random"}, {"--kv-recovery", "replay"}}) {
            GenerateCommandTest.Result r = GenerateCommandTest.run("demo", model[0], model[1], bad[0], bad[1]);
            assertEquals(2, r.code(), String.join(" ", bad) + ": " + r.err());
            assertTrue(r.err().contains(bad[0]) && r.err().contains("'" + bad[1] + "'"), r.err());
            assertTrue(r.err().contains(" or "), "names the choices: " + r.err());
        }
    }

    @Test
    void valuesParseToTheirTypes() {
        JobOptions o = new JobOptions();
        new CommandLine(o).parseArgs("--mode", "sarathi", "--csa", "strided:4", "--append-policy", "least-loaded", "--backend", "cuda",
                "--kv-recovery", "recompute");
        assertEquals(JobSettings.Mode.SARATHI, o.mode);
        assertEquals(new CsaPolicy.Strided(4), o.csa);
        assertEquals(JobSettings.AppendPolicy.LEAST_LOADED, o.appendPolicy);
        assertEquals(JobSettings.BackendKind.CUDA, o.backend);
    }

    /** Building the graph reads nothing of the model (the path here does not exist), and a decode step crosses two hops. */
    @Test
    void aDecodeStepCrossesAtMostTwoHopsAtAnySpDegree() {
        JobOptions o = new JobOptions();
        new CommandLine(o).parseArgs();
        for (JobSettings.Mode mode : JobSettings.Mode.values()) {
            for (int shards : new int[] {1, 2, 4}) {
                o.mode = mode;
                o.spDegree = shards;
                JobSettings settings = o.settings(Path.of("/nonexistent/model.gguf"));
                int hops = Sps2Job.decodeStepHops(settings);
                assertTrue(hops >= 1 && hops <= 2, mode + " SP " + shards + ": " + hops + " hops");
            }
        }
    }
}
