package sps2.job;

import java.io.FileNotFoundException;
import java.io.UncheckedIOException;
import java.nio.file.NoSuchFileException;

import sps2.model.ModelFormatException;

/**
 * Turns the exceptions that mean "the user gave something wrong" into one line on stderr and exit code 2;
 * anything else is a bug and keeps its stack trace. No picocli type here: the commands read without picocli
 * (Main) report through it without loading picocli's classes.
 */
final class UserErrors {
    private UserErrors() {
    }

    /** Reports a command's failure on {@code err} and returns the exit code. */
    static int report(Exception e, java.io.PrintWriter err) {
        Throwable t = e;
        if (t instanceof UncheckedIOException u) {
            t = u.getCause();
        }
        if (t instanceof ModelFormatException || t instanceof IllegalArgumentException || t instanceof UserException) {
            err.println("error: " + t.getMessage());
            return 2;
        }
        if (t instanceof NoSuchFileException || t instanceof FileNotFoundException) {
            err.println("error: no such file: " + t.getMessage());
            return 2;
        }
        if (t instanceof java.io.IOException) {
            err.println("error: " + t.getMessage());
            return 2;
        }
        err.println("error: " + t);
        t.printStackTrace(err);
        return 1;
    }
}
