package sps2.bench.trace;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

/**
 * Everything a benchmark writes: the console table, a CSV with one row per request and mode, a JSON summary
 * and a report (PNG charts and one self-contained HTML page that embeds them).
 */
public final class BenchReport {
    public static final String CSV = "requests.csv";
    public static final String JSON = "summary.json";
    public static final String HTML = "report.html";

    /** Labels and getters of the table's rows; {@code higherIsBetter} only explains the ratio. */
    private record Row(String label, java.util.function.ToDoubleFunction<ModeSummary> value, String format, String key) {
    }

    private static final List<Row> ROWS = rows();

    private BenchReport() {
    }

    private static List<Row> rows() {
        List<Row> r = new ArrayList<>();
        r.add(new Row("duration (s)", ModeSummary::durationS, "%.2f", "duration_s"));
        r.add(new Row("request throughput (req/s)", ModeSummary::requestThroughput, "%.3f", "request_throughput"));
        r.add(new Row("prefill throughput (prompt tok/s)", ModeSummary::prefillTokensPerS, "%.1f", "prefill_tokens_per_s"));
        r.add(new Row("decode throughput (gen tok/s)", ModeSummary::decodeTokensPerS, "%.1f", "decode_tokens_per_s"));
        r.add(new Row("goodput (req/s within SLOs)", ModeSummary::goodput, "%.3f", "goodput"));
        r.add(new Row("SLO attainment (%)", s -> 100 * s.sloAttainment(), "%.1f", "slo_attainment_pct"));
        for (String metric : new String[] {"TTFT", "TBT", "TPOT", "E2E"}) {
            for (String stat : new String[] {"mean", "p50", "p90", "p99"}) {
                r.add(new Row(metric + " " + stat + " (ms)", s -> stats(s, metric).get(stat), "%.1f", metric.toLowerCase() + "_" + stat + "_ms"));
            }
        }
        return r;
    }

    private static LatencyStats stats(ModeSummary s, String metric) {
        return switch (metric) {
            case "TTFT" -> s.ttftMs();
            case "TBT" -> s.tbtMs();
            case "TPOT" -> s.tpotMs();
            default -> s.e2eMs();
        };
    }

    /** The summary table; with both modes a last column holds sarathi / sps2. */
    public static String table(List<ModeSummary> modes) {
        StringBuilder b = new StringBuilder();
        boolean ratio = ratioPair(modes) != null;
        String head = String.format(Locale.ROOT, "%-36s", "metric");
        for (ModeSummary m : modes) {
            head += String.format(Locale.ROOT, " %14s", m.mode() + " (" + m.workers() + ")");
        }
        if (ratio) {
            head += String.format(Locale.ROOT, " %14s", "sarathi/sps2");
        }
        b.append(head).append('\n').append("-".repeat(head.length())).append('\n');
        b.append(String.format(Locale.ROOT, "%-36s", "requests completed"));
        for (ModeSummary m : modes) {
            b.append(String.format(Locale.ROOT, " %14s", m.completed() + "/" + m.requests()));
        }
        b.append('\n');
        for (Row row : ROWS) {
            b.append(String.format(Locale.ROOT, "%-36s", row.label()));
            for (ModeSummary m : modes) {
                b.append(String.format(Locale.ROOT, " %14s", String.format(Locale.ROOT, row.format(), row.value().applyAsDouble(m))));
            }
            if (ratio) {
                b.append(String.format(Locale.ROOT, " %14s", String.format(Locale.ROOT, "%.2f", ratio(row, modes))));
            }
            b.append('\n');
        }
        return b.toString();
    }

    /** sarathi / sps2 of every row, or an empty map unless both modes ran. */
    public static Map<String, Double> ratios(List<ModeSummary> modes) {
        Map<String, Double> out = new LinkedHashMap<>();
        if (ratioPair(modes) != null) {
            for (Row row : ROWS) {
                out.put(row.key(), ratio(row, modes));
            }
        }
        return out;
    }

    private static double ratio(Row row, List<ModeSummary> modes) {
        ModeSummary[] p = ratioPair(modes);
        return row.value().applyAsDouble(p[1]) / row.value().applyAsDouble(p[0]);
    }

    private static ModeSummary[] ratioPair(List<ModeSummary> modes) {
        ModeSummary sps2 = null;
        ModeSummary sarathi = null;
        for (ModeSummary m : modes) {
            if (m.mode().equals("sps2")) {
                sps2 = m;
            } else if (m.mode().equals("sarathi")) {
                sarathi = m;
            }
        }
        return sps2 != null && sarathi != null ? new ModeSummary[] {sps2, sarathi} : null;
    }

    /** One row per request and mode. */
    public static void writeCsv(Path file, Map<String, List<RequestOutcome>> runs, RequestOutcome.Slo slo) throws IOException {
        try (Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            w.write("mode,request_id,trace_index,arrival_ms,sent_ms,prompt_tokens,max_tokens,output_tokens,trace_input_length,"
                    + "trace_output_length,clipped,completed,ttft_ms,tpot_ms,e2e_ms,max_tbt_ms,ttft_job_ms,meets_slo,error\n");
            for (Map.Entry<String, List<RequestOutcome>> e : runs.entrySet()) {
                for (RequestOutcome o : e.getValue()) {
                    BenchRequest r = o.request();
                    double maxGap = java.util.Arrays.stream(o.itlMs()).max().orElse(Double.NaN);
                    w.write(String.join(",", e.getKey(), r.id(), Integer.toString(r.traceIndex()), num(r.arrivalMs()), num(o.sentMs()),
                            Integer.toString(r.promptLength()), Integer.toString(r.maxTokens()), Integer.toString(o.outputTokens()),
                            Integer.toString(r.traceInputLength()), Integer.toString(r.traceOutputLength()), Boolean.toString(r.clipped()),
                            Boolean.toString(o.completed()), num(o.ttftMs()), num(o.tpotMs()), num(o.e2eMs()), num(maxGap),
                            num(o.ttftJobMs()), Boolean.toString(o.meets(slo)), csvText(o.error())));
                    w.write('\n');
                }
            }
        }
    }

    private static String num(double v) {
        return Double.isNaN(v) ? "" : String.format(Locale.ROOT, "%.3f", v);
    }

    private static String csvText(String s) {
        if (s == null) {
            return "";
        }
        return "\"" + s.replace("\"", "\"\"").replace('\n', ' ') + "\"";
    }

    /** The JSON summary: the run's description, one summary per mode and the ratios. */
    public static void writeJson(Path file, Map<String, Object> run, List<ModeSummary> modes) throws IOException {
        Map<String, Object> root = new LinkedHashMap<>(run);
        root.put("modes", modes);
        root.put("ratios_sarathi_over_sps2", ratios(modes));
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(file.toFile(), root);
    }

    /** A self-contained HTML page: the description, the table and the charts embedded as data URIs. */
    public static void writeHtml(Path file, String title, Map<String, Object> run, List<ModeSummary> modes, Map<String, Path> charts)
            throws IOException {
        StringBuilder h = new StringBuilder();
        h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").append(esc(title)).append("</title>\n<style>")
                .append("body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1900px}")
                .append("table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}")
                .append("td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}")
                .append(".charts{display:flex;flex-wrap:wrap;gap:16px}.charts figure{margin:0}img{max-width:100%;border:1px solid #eee}")
                .append("dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{font-weight:600}dd{margin:0}")
                .append("</style></head><body>\n<h1>").append(esc(title)).append("</h1>\n<dl>");
        for (Map.Entry<String, Object> e : run.entrySet()) {
            h.append("<dt>").append(esc(e.getKey())).append("</dt><dd>").append(esc(String.valueOf(e.getValue()))).append("</dd>");
        }
        h.append("</dl>\n<h2>Summary</h2>\n<table><tr><th>metric</th>");
        boolean ratio = ratioPair(modes) != null;
        for (ModeSummary m : modes) {
            h.append("<th>").append(esc(m.mode() + " (" + m.workers() + ")")).append("</th>");
        }
        if (ratio) {
            h.append("<th>sarathi / sps2</th>");
        }
        h.append("</tr>\n<tr><td>requests completed</td>");
        for (ModeSummary m : modes) {
            h.append("<td>").append(m.completed()).append('/').append(m.requests()).append("</td>");
        }
        if (ratio) {
            h.append("<td></td>");
        }
        h.append("</tr>\n");
        for (Row row : ROWS) {
            h.append("<tr><td>").append(esc(row.label())).append("</td>");
            for (ModeSummary m : modes) {
                h.append("<td>").append(String.format(Locale.ROOT, row.format(), row.value().applyAsDouble(m))).append("</td>");
            }
            if (ratio) {
                h.append("<td>").append(String.format(Locale.ROOT, "%.2f", ratio(row, modes))).append("</td>");
            }
            h.append("</tr>\n");
        }
        h.append("</table>\n<p>Client-side metrics (vLLM serving-benchmark definitions), measured from the wall clock at which the ")
                .append("Kafka consumer received each token (tokens that arrive in one fetch share a time, so some gaps are 0). TBT pools all gaps between consecutive tokens; TPOT is per request ")
                .append("(e2e &minus; TTFT) / (tokens &minus; 1). A request meets the SLOs when TTFT &le; ")
                .append(fmt(modes.isEmpty() ? Double.NaN : modes.get(0).slo().ttftMs())).append(" ms and TPOT &le; ")
                .append(fmt(modes.isEmpty() ? Double.NaN : modes.get(0).slo().tbtMs())).append(" ms. ")
                .append("For latencies a ratio above 1 means sps2 is faster; for throughputs a ratio below 1 means sps2 is faster.</p>\n")
                .append("<h2>Charts</h2>\n<div class=\"charts\">\n");
        for (Map.Entry<String, Path> c : charts.entrySet()) {
            String data = Base64.getEncoder().encodeToString(Files.readAllBytes(c.getValue()));
            h.append("<figure><img alt=\"").append(esc(c.getKey())).append("\" src=\"data:image/png;base64,").append(data)
                    .append("\"><figcaption>").append(esc(c.getKey())).append("</figcaption></figure>\n");
        }
        h.append("</div>\n</body></html>\n");
        Files.writeString(file, h, StandardCharsets.UTF_8);
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.0f", v);
    }

    private static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
