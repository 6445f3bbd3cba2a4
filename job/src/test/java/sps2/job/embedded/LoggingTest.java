package sps2.job.embedded;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

class LoggingTest {

    @AfterEach
    void restoreDefaults() {
        Logging.configure(false);
    }

    @Test
    void verboseRaisesBothLevels() {
        Logger sps2 = LoggerFactory.getLogger("sps2.job.Example");
        Logger flink = LoggerFactory.getLogger("org.apache.flink.runtime.Example");

        Logging.configure(false);
        assertTrue(sps2.isInfoEnabled());
        assertFalse(sps2.isDebugEnabled());
        assertTrue(flink.isWarnEnabled());
        assertFalse(flink.isInfoEnabled());

        Logging.configure(true);
        assertTrue(sps2.isDebugEnabled());
        assertTrue(flink.isInfoEnabled());
        assertFalse(flink.isDebugEnabled());
    }
}
