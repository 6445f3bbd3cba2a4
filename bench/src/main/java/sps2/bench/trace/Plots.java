package sps2.bench.trace;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** The report's charts, drawn with XChart into PNG files: CDFs of TTFT and TBT per mode, and throughput over time. */
public final class Plots {
    public static final int WIDTH = 900;
    public static final int HEIGHT = 520;
    private static final int MAX_CDF_POINTS = 2000;
    private static final Color[] COLORS = {new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c), new Color(0xd62728)};

    private Plots() {
    }

    /**
     * Writes the charts into {@code dir} and returns their file names by title, in display order.
     *
     * @param runs outcomes per mode, in the order they ran
     */
    public static Map<String, Path> write(Path dir, Map<String, List<RequestOutcome>> runs) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Files.createDirectories(dir);
        Map<String, Path> files = new LinkedHashMap<>();
        Map<String, double[]> ttft = new LinkedHashMap<>();
        Map<String, double[]> tbt = new LinkedHashMap<>();
        double end = 0;
        for (Map.Entry<String, List<RequestOutcome>> e : runs.entrySet()) {
            List<Double> t = new ArrayList<>();
            List<Double> g = new ArrayList<>();
            for (RequestOutcome o : e.getValue()) {
                if (o.completed()) {
                    t.add(o.ttftMs());
                    for (double gap : o.itlMs()) {
                        g.add(gap);
                    }
                }
                if (o.outputTokens() > 0) {
                    end = Math.max(end, o.tokenMs()[o.outputTokens() - 1]);
                }
            }
            ttft.put(e.getKey(), t.stream().mapToDouble(Double::doubleValue).toArray());
            tbt.put(e.getKey(), g.stream().mapToDouble(Double::doubleValue).toArray());
        }
        files.put("Time to first token (CDF)", save(cdf("Time to first token, CDF over requests", "TTFT (ms)", ttft), dir, "ttft_cdf"));
        files.put("Time between tokens (CDF)", save(cdf("Time between tokens, CDF over all gaps", "TBT (ms)", tbt), dir, "tbt_cdf"));
        double bin = binSeconds(end / 1000.0);
        Map<String, double[][]> decode = new LinkedHashMap<>();
        Map<String, double[][]> prefill = new LinkedHashMap<>();
        for (Map.Entry<String, List<RequestOutcome>> e : runs.entrySet()) {
            decode.put(e.getKey(), rate(e.getValue(), bin, end / 1000.0, false));
            prefill.put(e.getKey(), rate(e.getValue(), bin, end / 1000.0, true));
        }
        files.put("Decode throughput over time", save(timeSeries("Generated tokens per second (" + fmt(bin) + " s bins)",
                "generated tokens/s", decode), dir, "decode_throughput"));
        files.put("Prefill throughput over time", save(timeSeries("Prompt tokens per second, counted when the first token arrives ("
                + fmt(bin) + " s bins)", "prompt tokens/s", prefill), dir, "prefill_throughput"));
        return files;
    }

    /** Bin width for throughput over time: about 30 bins, at least 0.25 s, rounded to a readable value. */
    static double binSeconds(double durationS) {
        double raw = Math.max(0.25, durationS / 30);
        double[] nice = {0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600};
        for (double n : nice) {
            if (raw <= n) {
                return n;
            }
        }
        return Math.ceil(raw / 600) * 600;
    }

    /**
     * Tokens per second in bins of {@code bin} seconds from 0 to {@code endS}: generated tokens at their arrival, or
     * (prefill) each completed request's prompt tokens at its first token's arrival. Returns {x (bin middles), y}.
     */
    static double[][] rate(List<RequestOutcome> outcomes, double bin, double endS, boolean prefill) {
        int bins = Math.max(1, (int) Math.ceil(endS / bin));
        double[] counts = new double[bins];
        for (RequestOutcome o : outcomes) {
            double[] times = o.tokenMs();
            if (prefill) {
                if (times.length > 0) {
                    counts[Math.min(bins - 1, (int) (times[0] / 1000.0 / bin))] += o.request().promptLength();
                }
            } else {
                for (double t : times) {
                    counts[Math.min(bins - 1, Math.max(0, (int) (t / 1000.0 / bin)))]++;
                }
            }
        }
        double[] x = new double[bins];
        double[] y = new double[bins];
        for (int i = 0; i < bins; i++) {
            x[i] = (i + 0.5) * bin;
            y[i] = counts[i] / bin;
        }
        return new double[][] {x, y};
    }

    /** Points of an empirical CDF: sorted values against (i + 1) / n, thinned to at most 2,000 quantiles. */
    static double[][] cdfPoints(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        int points = Math.min(n, MAX_CDF_POINTS);
        double[] x = new double[points];
        double[] y = new double[points];
        for (int i = 0; i < points; i++) {
            int k = points == n ? i : (int) Math.round((double) i * (n - 1) / (points - 1));
            x[i] = v[k];
            y[i] = (k + 1) / (double) n;
        }
        return new double[][] {x, y};
    }

    /**
     * A right-continuous step function through points (x_i, y_i) as corner points for a line chart: it starts at
     * (x_0, y0), rises to y_0 at x_0, stays until x_1, rises to y_1, and so on.
     */
    static double[][] steps(double[][] points, double y0) {
        int n = points[0].length;
        double[] x = new double[2 * n];
        double[] y = new double[2 * n];
        for (int i = 0; i < n; i++) {
            x[2 * i] = points[0][i];
            y[2 * i] = i == 0 ? y0 : points[1][i - 1];
            x[2 * i + 1] = points[0][i];
            y[2 * i + 1] = points[1][i];
        }
        return new double[][] {x, y};
    }

    /** Corner points of a histogram's outline from {bin middles, heights}: each height held from its bin's start to its end. */
    static double[][] outline(double[][] bins) {
        int n = bins[0].length;
        double half = n > 1 ? (bins[0][1] - bins[0][0]) / 2 : bins[0][0];
        double[] x = new double[2 * n];
        double[] y = new double[2 * n];
        for (int i = 0; i < n; i++) {
            x[2 * i] = bins[0][i] - half;
            x[2 * i + 1] = bins[0][i] + half;
            y[2 * i] = bins[1][i];
            y[2 * i + 1] = bins[1][i];
        }
        return new double[][] {x, y};
    }

    private static XYChart cdf(String title, String xTitle, Map<String, double[]> data) {
        XYChart chart = chart(title, xTitle, "fraction ≤ x");
        // XChart 3.8 puts the ticks on the data values when they are equally spaced, as the k/n of a CDF are, and
        // then labels them with the rounded decimal pattern at the wrong heights. An axis minimum a little below 0
        // whose distance to 0 is no 1/n (within XChart's 1e-4) makes it compute ordinary ticks at 0.0, 0.1, ... 1.0.
        chart.getStyler().setYAxisMin(-0.0225).setYAxisMax(1.0).setXAxisMin(0.0);
        chart.getStyler().setYAxisDecimalPattern("0.0");
        int c = 0;
        for (Map.Entry<String, double[]> e : data.entrySet()) {
            if (e.getValue().length == 0) {
                continue;
            }
            double[][] p = steps(cdfPoints(e.getValue()), 0);
            XYSeries s = chart.addSeries(e.getKey() + " (n=" + e.getValue().length + ")", p[0], p[1]);
            style(s, c++);
        }
        if (c == 0) {
            style(chart.addSeries("no completed requests", new double[] {0}, new double[] {0}), 0);
        }
        return chart;
    }

    private static XYChart timeSeries(String title, String yTitle, Map<String, double[][]> data) {
        XYChart chart = chart(title, "time since the replay started (s)", yTitle);
        chart.getStyler().setYAxisMin(0.0).setXAxisMin(0.0);
        int c = 0;
        for (Map.Entry<String, double[][]> e : data.entrySet()) {
            double[][] p = outline(e.getValue());
            XYSeries s = chart.addSeries(e.getKey(), p[0], p[1]);
            style(s, c++);
        }
        return chart;
    }

    private static XYChart chart(String title, String xTitle, String yTitle) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title(title).xAxisTitle(xTitle).yAxisTitle(yTitle).build();
        Styler s = chart.getStyler();
        s.setChartBackgroundColor(Color.WHITE);
        s.setPlotBackgroundColor(Color.WHITE);
        s.setLegendPosition(Styler.LegendPosition.InsideSE);
        s.setBaseFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        s.setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 15));
        chart.getStyler().setPlotGridLinesColor(new Color(0xdddddd));
        chart.getStyler().setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        chart.getStyler().setAxisTitleFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        chart.getStyler().setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
        return chart;
    }

    private static void style(XYSeries s, int i) {
        s.setLineColor(COLORS[i % COLORS.length]);
        s.setLineStyle(new BasicStroke(2.2f));
        s.setMarker(SeriesMarkers.NONE);
    }

    private static Path save(XYChart chart, Path dir, String name) throws IOException {
        Path file = dir.resolve(name + ".png");
        BitmapEncoder.saveBitmap(chart, file.toString(), BitmapEncoder.BitmapFormat.PNG);
        return file;
    }

    private static String fmt(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }
}
