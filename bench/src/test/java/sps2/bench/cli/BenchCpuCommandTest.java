package sps2.bench.cli;

import static sps2.job.cli.QuickArgsAgreement.assertAgrees;

import java.util.List;

import org.junit.jupiter.api.Test;

/** bench-cpu starts without picocli (sps2.job.Main.runFast): its plain-line parser agrees with its annotations. */
class BenchCpuCommandTest {

    @Test
    void quickArgsAgreeWithPicocli() {
        assertAgrees("bench-cpu", BenchCpuCommand::new, BenchCpuCommand::quick, List.of());
    }
}
