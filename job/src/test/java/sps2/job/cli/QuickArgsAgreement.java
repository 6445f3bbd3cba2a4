package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The check that a fast command's plain-line reader (its {@code quick} method, see QuickArgs) agrees with its picocli
 * annotations, option by option; bench/ runs it on bench-cpu.
 */
public final class QuickArgsAgreement {
    private QuickArgsAgreement() {
    }

    /**
     * Asserts that {@code quick} reads what picocli reads from {@code required} alone and from a line of every option,
     * and that it leaves lines that need picocli (help, an unknown option, a positional parameter) to it.
     */
    public static void assertAgrees(String name, Supplier<Object> fresh, Function<String[], Object> quick, List<String> required) {
        for (List<String> line : List.of(required, everyOption(fresh.get()))) {
            String[] args = line.toArray(String[]::new);
            Object viaPicocli = fresh.get();
            new CommandLine(viaPicocli).parseArgs(args);
            Object read = quick.apply(args);
            assertNotNull(read, name + " " + line);
            assertEquals(values(viaPicocli), values(read), name + " " + line);
        }
        for (List<String> extra : List.of(List.of("--help"), List.of("-h"), List.of("--no-such-option", "1"), List.of("positional"))) {
            List<String> line = new ArrayList<>(required);
            line.addAll(extra);
            assertNull(quick.apply(line.toArray(String[]::new)), name + " " + line);
        }
    }

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
}
