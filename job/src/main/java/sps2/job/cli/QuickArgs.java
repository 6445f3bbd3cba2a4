package sps2.job.cli;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

/**
 * A plain command line ({@code --name value}, {@code --name=value}, {@code --flag}) read without picocli, for the
 * commands that must start fast (see {@code Main}): picocli's classes are Java 5 bytecode, which class-data sharing
 * cannot archive, and building a command from its annotations took about 0.15 s of a one-token generate.
 *
 * <p>A command's {@code quick} method maps each option name to its field, as its picocli annotations do (a test
 * checks the two agree on every option). Whatever it is not sure of (help, an unknown or repeated option, a value
 * that does not parse, a missing required option) makes it give up, and picocli parses the same line and reports.
 */
public final class QuickArgs {
    /** This line needs picocli. */
    public static final class Unclear extends Exception {
        public Unclear() {
            super(null, null, false, false);
        }
    }

    private final String[] args;
    private final Set<String> seen = new HashSet<>();
    private int at;
    private String name;
    private String inline;

    public QuickArgs(String[] args) {
        this.args = args;
    }

    /** Moves to the next option; false at the end of the line. */
    public boolean next() throws Unclear {
        if (at == args.length) {
            return false;
        }
        String a = args[at++];
        if (!a.startsWith("--") || a.equals("--")) {
            throw new Unclear(); // positional parameters, short options (-h, -V), end of options
        }
        int eq = a.indexOf('=');
        name = eq < 0 ? a : a.substring(0, eq);
        inline = eq < 0 ? null : a.substring(eq + 1);
        return true;
    }

    /** The current option's name. */
    public String name() {
        return name;
    }

    /** Marks the current option as single-valued (picocli rejects it twice). */
    private void once() throws Unclear {
        if (!seen.add(name)) {
            throw new Unclear();
        }
    }

    /** The value of a repeatable option. */
    public String each() throws Unclear {
        if (inline != null) {
            return inline;
        }
        if (at == args.length || args[at].startsWith("--")) {
            throw new Unclear();
        }
        return args[at++];
    }

    public String string() throws Unclear {
        once();
        return each();
    }

    public Path path() throws Unclear {
        return Path.of(string());
    }

    public int integer() throws Unclear {
        try {
            return Integer.parseInt(string());
        } catch (NumberFormatException e) {
            throw new Unclear();
        }
    }

    public long longValue() throws Unclear {
        try {
            return Long.parseLong(string());
        } catch (NumberFormatException e) {
            throw new Unclear();
        }
    }

    public float floatValue() throws Unclear {
        try {
            return Float.parseFloat(string());
        } catch (NumberFormatException e) {
            throw new Unclear();
        }
    }

    public double doubleValue() throws Unclear {
        try {
            return Double.parseDouble(string());
        } catch (NumberFormatException e) {
            throw new Unclear();
        }
    }

    /** A flag: present means true; {@code --flag=value} is picocli's. */
    public boolean flag() throws Unclear {
        once();
        if (inline != null) {
            throw new Unclear();
        }
        return true;
    }

    /** A required option that the line did not give. */
    public static <T> T required(T value) throws Unclear {
        if (value == null) {
            throw new Unclear();
        }
        return value;
    }
}
