package sps2.job.embedded;

import java.net.URI;
import java.net.URL;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;

/**
 * Console logging of the command line and the embedded mode (see {@code log4j2.properties} in this jar):
 * sps2 at INFO and everything else at WARN by default; verbose raises sps2 to DEBUG and the rest
 * to INFO.
 */
public final class Logging {

    /** System property read by log4j2.properties: level of sps2's own loggers. */
    public static final String SPS2_LEVEL_PROPERTY = "sps2.log.level";
    /** System property read by log4j2.properties: level of every other logger (Flink, Kafka, ...). */
    public static final String OTHER_LEVEL_PROPERTY = "sps2.log.otherLevel";

    /** System property read by log4j2.properties: level of a few loggers whose warnings are routine. */
    public static final String QUIET_LEVEL_PROPERTY = "sps2.log.quietLevel";

    private Logging() {
    }

    /**
     * Sets the levels and (re)loads sps2's log4j2.properties, whatever configuration log4j picked up at
     * start. Call it first thing in main; does nothing when log4j-core is not the logging backend.
     */
    public static void configure(boolean verbose) {
        System.setProperty(SPS2_LEVEL_PROPERTY, verbose ? "DEBUG" : "INFO");
        System.setProperty(OTHER_LEVEL_PROPERTY, verbose ? "INFO" : "WARN");
        System.setProperty(QUIET_LEVEL_PROPERTY, verbose ? "INFO" : "ERROR");
        URL config = Logging.class.getResource("/log4j2.properties");
        if (config == null) {
            return;
        }
        try {
            if (LogManager.getContext(false) instanceof LoggerContext context) {
                context.setConfigLocation(URI.create(config.toString()));
            }
        } catch (LinkageError e) {
            // log4j-core is not on the class path: another SLF4J backend is in charge.
        }
    }
}
