package sps2.operators.stage;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;

import sps2.operators.runtime.IterationContext;

/**
 * Flink metrics of a stage subtask: time computing and time waiting for remote data (their ratio is the
 * overlap of communication with computation), iterations completed, and on the sampling stage the
 * serving figures: time to first token, time between tokens (both in ms, as the job sees them) and
 * tokens per second.
 */
final class StageMetrics {
    private final Counter waitNanos;
    private final Counter prefillIterations;
    private final Counter decodeIterations;
    private final Histogram ttftMs;
    private final Histogram tbtMs;
    private final Counter tokens;
    /** Emit time of each running request's last token, for TBT. */
    private final Map<String, Long> lastTokenMs = new HashMap<>();
    private volatile double computeSeconds;
    private volatile double waitSeconds;

    StageMetrics(MetricGroup group) {
        this.waitNanos = group.counter("remoteWaitNanos");
        this.prefillIterations = group.counter("prefillIterations");
        this.decodeIterations = group.counter("decodeIterations");
        this.ttftMs = group.histogram("ttftMs", new DescriptiveStatisticsHistogram(1000));
        this.tbtMs = group.histogram("tbtMs", new DescriptiveStatisticsHistogram(1000));
        this.tokens = group.counter("tokens");
        group.meter("tokensPerSecond", new MeterView(tokens));
        group.gauge("overlapRatio", (Gauge<Double>) () -> computeSeconds + waitSeconds == 0 ? 1.0 : computeSeconds / (computeSeconds + waitSeconds));
    }

    /** A token was sampled for a request; {@code admittedAtMs} is when the job read the request. */
    void token(String requestId, int outputIndex, boolean finished, long nowMs, long admittedAtMs) {
        tokens.inc();
        if (outputIndex == 0) {
            ttftMs.update(nowMs - admittedAtMs);
        } else {
            Long last = lastTokenMs.get(requestId);
            if (last != null) {
                tbtMs.update(nowMs - last);
            }
        }
        if (finished) {
            lastTokenMs.remove(requestId);
        } else {
            lastTokenMs.put(requestId, nowMs);
        }
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
