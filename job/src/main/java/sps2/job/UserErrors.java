package sps2.job;

import java.io.FileNotFoundException;
import java.io.UncheckedIOException;
import java.nio.file.NoSuchFileException;

import picocli.CommandLine;
import sps2.model.ModelFormatException;

/**
 * Turns the exceptions that mean "the user gave something wrong" into one line on stderr and exit code 2;
 * anything else is a bug and keeps its stack trace.
 */
final class UserErrors implements CommandLine.IExecutionExceptionHandler {
    @Override
    public int handleExecutionException(Exception e, CommandLine cli, CommandLine.ParseResult parsed) {
        Throwable t = e;
        if (t instanceof UncheckedIOException u) {
            t = u.getCause();
        }
        if (t instanceof ModelFormatException || t instanceof IllegalArgumentException || t instanceof UserException) {
            cli.getErr().println("error: " + t.getMessage());
            return 2;
        }
        if (t instanceof NoSuchFileException || t instanceof FileNotFoundException) {
            cli.getErr().println("error: no such file: " + t.getMessage());
            return 2;
        }
        if (t instanceof java.io.IOException) {
            cli.getErr().println("error: " + t.getMessage());
            return 2;
        }
        cli.getErr().println("error: " + t);
        t.printStackTrace(cli.getErr());
        return 1;
    }
}
