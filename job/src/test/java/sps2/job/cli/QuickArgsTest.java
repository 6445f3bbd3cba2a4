package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertNull;
import static sps2.job.cli.QuickArgsAgreement.assertAgrees;

import java.util.List;

import org.junit.jupiter.api.Test;

/** The plain-line parsers of the job's fast commands agree with their picocli annotations, option by option. */
class QuickArgsTest {

    @Test
    void generateAgreesWithPicocli() {
        assertAgrees("generate", GenerateCommand::new, GenerateCommand::quick, List.of("--model", "m.gguf"));
    }

    @Test
    void makeModelAgreesWithPicocli() {
        assertAgrees("make-model", MakeModelCommand::new, MakeModelCommand::quick, List.of("--shape", "tiny", "--out", "dir"));
    }

    @Test
    void linesThatNeedPicocliAreLeftToIt() {
        assertNull(GenerateCommand.quick(new String[] {"--prompt", "x"}), "--model is required");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--max-tokens", "many"}), "not a number");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--seed", "1", "--seed", "2"}), "given twice");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--prompt"}), "no value");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--ids=false"}), "a flag with a value");
        assertNull(MakeModelCommand.quick(new String[] {"--shape", "tiny"}), "--out is required");
    }
}
