package sps2.operators.stage;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;

import sps2.operators.runtime.IterationContext;

/**
 * Flink metrics of a stage subtask: time computing and time waiting for remote data (their ratio is the
 * overlap of communication with computation), and iterations completed.
 */
final class StageMetrics {
    private final Counter waitNanos;
    private final Counter prefillIterations;
    private final Counter decodeIterations;
    private volatile double computeSeconds;
    private volatile double waitSeconds;

    StageMetrics(MetricGroup group) {
        this.waitNanos = group.counter("remoteWaitNanos");
        this.prefillIterations = group.counter("prefillIterations");
        this.decodeIterations = group.counter("decodeIterations");
        group.gauge("overlapRatio", (Gauge<Double>) () -> computeSeconds + waitSeconds == 0 ? 1.0 : computeSeconds / (computeSeconds + waitSeconds));
    }

    void waitNanos(long nanos) {
        waitNanos.inc(nanos);
    }

    /** Called by the last stage with the iteration's totals over all stages of this shard. */
    void iterationDone(IterationContext ic, boolean prefill) {
        computeSeconds += ic.computeSeconds;
        waitSeconds += ic.waitSeconds;
        (prefill ? prefillIterations : decodeIterations).inc();
    }
}
