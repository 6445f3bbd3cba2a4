package sps2.bench.trace;

import org.HdrHistogram.Histogram;

/**
 * Summary of a latency distribution in milliseconds. Percentiles come from an HdrHistogram at microsecond
 * resolution with 3 significant digits (so they are within 0.1% of the exact order statistic); the mean and
 * maximum are exact.
 *
 * @param count values summarised
 * @param mean  arithmetic mean, NaN when empty
 * @param p50   median, NaN when empty
 * @param p90   90th percentile, NaN when empty
 * @param p99   99th percentile, NaN when empty
 * @param max   largest value, NaN when empty
 */
public record LatencyStats(long count, double mean, double p50, double p90, double p99, double max) {

    public static LatencyStats of(double[] valuesMs) {
        Histogram h = new Histogram(3);
        double sum = 0;
        double max = Double.NEGATIVE_INFINITY;
        long n = 0;
        for (double v : valuesMs) {
            if (Double.isNaN(v)) {
                continue;
            }
            h.recordValue(Math.max(0, Math.round(v * 1000)));
            sum += v;
            max = Math.max(max, v);
            n++;
        }
        if (n == 0) {
            return new LatencyStats(0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN);
        }
        return new LatencyStats(n, sum / n, percentile(h, 50), percentile(h, 90), percentile(h, 99), max);
    }

    /** The value at a percentile, in ms: the middle of the histogram bucket that holds it. */
    private static double percentile(Histogram h, double p) {
        return h.medianEquivalentValue(h.getValueAtPercentile(p)) / 1000.0;
    }

    public double get(String stat) {
        return switch (stat) {
            case "mean" -> mean;
            case "p50" -> p50;
            case "p90" -> p90;
            case "p99" -> p99;
            case "max" -> max;
            default -> throw new IllegalArgumentException("Unknown statistic " + stat);
        };
    }
}
