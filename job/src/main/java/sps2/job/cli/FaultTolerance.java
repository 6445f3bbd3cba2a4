package sps2.job.cli;

import java.time.Duration;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;

/**
 * How the sps2 job restarts after a failure, the same for {@code serve} and the embedded commands, and the same
 * as {@code flink-conf/config.yaml}: exponential delay from 1 s up to 30 s, jitter 10%, back to 1 s after
 * 10 minutes without a failure, and no limit on attempts. A lost TaskManager costs a few quick attempts
 * (deployments to it fail until the JobManager has noticed it is gone); there is no budget to use up, and once a
 * TaskManager is back the job is running again within the 30 s cap. Input cannot make the job fail (see
 * RecordLimits), so endless restarts mean the cluster is short of resources, which the restart metrics show.
 */
public final class FaultTolerance {
    public static final Duration INITIAL_BACKOFF = Duration.ofSeconds(1);
    public static final Duration MAX_BACKOFF = Duration.ofSeconds(30);
    public static final Duration RESET_BACKOFF_AFTER = Duration.ofMinutes(10);

    private FaultTolerance() {
    }

    /** Sets the restart strategy on a job's configuration. */
    public static void restartStrategy(Configuration conf) {
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "exponential-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_INITIAL_BACKOFF, INITIAL_BACKOFF);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_MAX_BACKOFF, MAX_BACKOFF);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_BACKOFF_MULTIPLIER, 2.0);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_RESET_BACKOFF_THRESHOLD, RESET_BACKOFF_AFTER);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_JITTER_FACTOR, 0.1);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_EXPONENTIAL_DELAY_ATTEMPTS, Integer.MAX_VALUE);
    }
}
