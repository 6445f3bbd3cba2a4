package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

import org.junit.jupiter.api.Test;

import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/** The plain-line parsers of the fast commands agree with their picocli annotations, option by option. */
class QuickArgsTest {

    private record Fast(String name, Supplier<Object> fresh, Function<String[], Object> quick, List<String> required) {
    }

    private static final List<Fast> COMMANDS = List.of(
            new Fast("generate", GenerateCommand::new, GenerateCommand::quick, List.of("--model", "m.gguf")),
            new Fast("bench-cpu", BenchCpuCommand::new, BenchCpuCommand::quick, List.of()),
            new Fast("make-model", MakeModelCommand::new, MakeModelCommand::quick, List.of("--shape", "tiny", "--out", "dir")));

    /** Every option picocli knows, each with a value that is not its default (lists twice). */
    private static List<String> everyOption(Object command) {
        List<String> args = new ArrayList<>();
        int k = 0;
        for (OptionSpec o : new CommandLine(command).getCommandSpec().options()) {
            if (o.usageHelp() || o.versionHelp()) {
                continue;
            }
            String name = o.longestName();
            Class<?> type = o.isMultiValue() ? o.auxiliaryTypes()[0] : o.type();
            k++;
            if (type == boolean.class || type == Boolean.class) {
                args.add(name);
                continue;
            }
            String value = type == int.class ? String.valueOf(7 + k) : type == long.class ? String.valueOf(900L + k)
                    : type == float.class ? (k + 0.25f) + "" : type == double.class ? (k + 0.5) + "" : type == Path.class ? "/p/" + k : "s" + k;
            args.add(name);
            args.add(value);
            if (o.isMultiValue()) {
                args.add(name + "=" + value + "b");
            }
        }
        return args;
    }

    /** The value of every option of a parsed command, in picocli's order. */
    private static List<Object> values(Object command) {
        List<Object> out = new ArrayList<>();
        for (OptionSpec o : new CommandLine(command).getCommandSpec().options()) {
            if (!o.usageHelp() && !o.versionHelp()) {
                out.add(o.longestName() + "=" + o.getValue());
            }
        }
        return out;
    }

    @Test
    void everyOptionAndEveryDefaultMatchesPicocli() {
        for (Fast c : COMMANDS) {
            for (List<String> line : List.of(c.required(), everyOption(c.fresh().get()))) {
                String[] args = line.toArray(String[]::new);
                Object viaPicocli = c.fresh().get();
                new CommandLine(viaPicocli).parseArgs(args);
                Object quick = c.quick().apply(args);
                assertNotNull(quick, c.name() + " " + line);
                assertEquals(values(viaPicocli), values(quick), c.name() + " " + line);
            }
        }
    }

    @Test
    void linesThatNeedPicocliAreLeftToIt() {
        for (Fast c : COMMANDS) {
            for (List<String> extra : List.of(List.of("--help"), List.of("-h"), List.of("--no-such-option", "1"), List.of("positional"))) {
                List<String> line = new ArrayList<>(c.required());
                line.addAll(extra);
                assertNull(c.quick().apply(line.toArray(String[]::new)), c.name() + " " + line);
            }
        }
        assertNull(GenerateCommand.quick(new String[] {"--prompt", "x"}), "--model is required");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--max-tokens", "many"}), "not a number");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--seed", "1", "--seed", "2"}), "given twice");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--prompt"}), "no value");
        assertNull(GenerateCommand.quick(new String[] {"--model", "m", "--ids=false"}), "a flag with a value");
        assertNull(MakeModelCommand.quick(new String[] {"--shape", "tiny"}), "--out is required");
    }
}
