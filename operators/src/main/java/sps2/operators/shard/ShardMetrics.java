package sps2.operators.shard;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.metrics.MeterView;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;


/**
 * Flink metrics of a shard subtask: time computing and time waiting for peers' data (their ratio is the overlap
 * of communication with computation), bytes received from peers by tier (same device, peer copy between GPUs),
 * iterations completed and how many replayed a recorded device graph, and the serving figures of the tokens it
 * samples: time to first token, time between tokens (both in ms, as the job sees them) and tokens per second.
 */
final class ShardMetrics {
    private final Counter waitNanos;
    private final Counter prefillIterations;
    private final Counter decodeIterations;
    private final Histogram ttftMs;
    private final Histogram tbtMs;
    private final Counter tokens;
    private final Counter bytesSameDevice;
    private final Counter bytesPeerCopy;
    private final Counter graphSteps;
    private final Counter resultsInJvm;
    /** Emit time of each running request's last token, for TBT. */
    private final Map<String, Long> lastTokenMs = new HashMap<>();
    private volatile double computeSeconds;
    private volatile double waitSeconds;

    ShardMetrics(MetricGroup group) {
        this.waitNanos = group.counter("remoteWaitNanos");
        this.prefillIterations = group.counter("prefillIterations");
        this.decodeIterations = group.counter("decodeIterations");
        this.ttftMs = group.histogram("ttftMs", new DescriptiveStatisticsHistogram(1000));
        this.tbtMs = group.histogram("tbtMs", new DescriptiveStatisticsHistogram(1000));
        this.tokens = group.counter("tokens");
        this.bytesSameDevice = group.counter("bytesExchangedSameDevice");
        this.bytesPeerCopy = group.counter("bytesExchangedPeerCopy");
        this.graphSteps = group.counter("graphDecodeSteps");
        this.resultsInJvm = group.counter("resultsToSchedulerInJvm");
        group.gauge("bytesExchanged", (Gauge<Long>) () -> bytesSameDevice.getCount() + bytesPeerCopy.getCount());
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

    /** A step result went to the scheduler in-JVM instead of through the feedback tail. */
    void resultInJvm() {
        resultsInJvm.inc();
    }

    /** One iteration of this shard is done. */
    void iterationDone(ShardEngine.Outcome o, boolean prefill) {
        computeSeconds += o.computeSeconds();
        waitSeconds += o.waitSeconds();
        waitNanos.inc(Math.round(o.waitSeconds() * 1e9));
        bytesSameDevice.inc(o.bytesSameDevice());
        bytesPeerCopy.inc(o.bytesPeerCopy());
        if (o.graph()) {
            graphSteps.inc();
        }
        (prefill ? prefillIterations : decodeIterations).inc();
    }
}
