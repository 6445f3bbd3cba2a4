package sps2.bench.trace;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.config.Configurator;

/**
 * Lowers console logging while a benchmark draws its progress bars: sps2's own loggers to WARN and everything
 * else (Flink, Kafka) to ERROR; {@link #close()} puts the previous levels back. Does nothing when log4j-core
 * is not the logging backend.
 */
public final class QuietLogs implements AutoCloseable {
    private final Level sps2;
    private final Level root;

    private QuietLogs(Level sps2, Level root) {
        this.sps2 = sps2;
        this.root = root;
    }

    /** Quietens the logs unless {@code verbose}; close the result to restore them. */
    public static QuietLogs apply(boolean verbose) {
        if (verbose) {
            return new QuietLogs(null, null);
        }
        try {
            Level sps2 = LogManager.getLogger("sps2").getLevel();
            Level root = LogManager.getRootLogger().getLevel();
            Configurator.setRootLevel(Level.ERROR);
            Configurator.setLevel("sps2", Level.WARN);
            return new QuietLogs(sps2, root);
        } catch (LinkageError | RuntimeException e) {
            return new QuietLogs(null, null);
        }
    }

    @Override
    public void close() {
        if (sps2 == null) {
            return;
        }
        try {
            Configurator.setRootLevel(root);
            Configurator.setLevel("sps2", sps2);
        } catch (LinkageError | RuntimeException e) {
            // logging stays quiet
        }
    }
}
