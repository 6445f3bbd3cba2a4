package sps2.tests;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** End-to-end tests of one class share one real Kafka broker; each test runs its own job with its own topics. */
abstract class JobTestBase {
    static JobHarness harness;

    @BeforeAll
    static void startBroker() throws Exception {
        harness = new JobHarness();
    }

    @AfterAll
    static void stopBroker() {
        if (harness != null) {
            harness.close();
            harness = null;
        }
    }
}
