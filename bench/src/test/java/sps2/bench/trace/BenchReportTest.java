package sps2.bench.trace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.imageio.ImageIO;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BenchReportTest {
    private static final RequestOutcome.Slo SLO = new RequestOutcome.Slo(500, 50);

    @TempDir
    Path dir;

    /** sarathi is twice as slow as sps2 on the same two requests. */
    private static Map<String, List<RequestOutcome>> runs() {
        BenchRequest a = MetricsTest.request("a", 100, 3);
        BenchRequest b = MetricsTest.request("b", 50, 2);
        Map<String, List<RequestOutcome>> runs = new LinkedHashMap<>();
        runs.put("sps2", List.of(MetricsTest.outcome(a, 0, 100, 110, 120), MetricsTest.outcome(b, 500, 700, 720)));
        runs.put("sarathi", List.of(MetricsTest.outcome(a, 0, 200, 220, 240), MetricsTest.outcome(b, 500, 900, 940)));
        return runs;
    }

    private static List<ModeSummary> summaries(Map<String, List<RequestOutcome>> runs) {
        return runs.entrySet().stream().map(e -> ModeSummary.of(e.getKey(), 2, e.getValue(), SLO)).toList();
    }

    @Test
    void ratiosAreSarathiOverSps2() {
        Map<String, Double> r = BenchReport.ratios(summaries(runs()));
        assertEquals(2.0, r.get("ttft_mean_ms"), 1e-9, "TTFT means 150 and 300 ms");
        assertEquals(2.0, r.get("tbt_mean_ms"), 1e-9);
        assertEquals(720.0 / 940.0, r.get("request_throughput"), 1e-9, "durations 0.72 and 0.94 s");
        assertTrue(BenchReport.ratios(summaries(runs()).subList(0, 1)).isEmpty(), "one mode has no ratios");
    }

    @Test
    void tableHasOneColumnPerModeAndTheRatio() {
        String table = BenchReport.table(summaries(runs()));
        String header = table.lines().findFirst().orElseThrow();
        assertTrue(header.contains("sps2 (2)") && header.contains("sarathi (2)") && header.contains("sarathi/sps2"), header);
        String ttft = table.lines().filter(l -> l.startsWith("TTFT mean")).findFirst().orElseThrow();
        assertTrue(ttft.matches("TTFT mean \\(ms\\)\\s+150\\.0\\s+300\\.0\\s+2\\.00"), ttft);
        assertTrue(table.contains("requests completed"));
    }

    @Test
    void throughputBinsAndCdfPoints() {
        BenchRequest r = MetricsTest.request("a", 100, 3);
        List<RequestOutcome> o = List.of(MetricsTest.outcome(r, 0, 100, 200, 1100));
        double[][] decode = Plots.rate(o, 1.0, 1.5, false);
        assertArrayEquals(new double[] {0.5, 1.5}, decode[0], 1e-9);
        assertArrayEquals(new double[] {2, 1}, decode[1], 1e-9);
        double[][] prefill = Plots.rate(o, 0.5, 1.5, true);
        assertArrayEquals(new double[] {200, 0, 0}, prefill[1], 1e-9, "100 prompt tokens in the first 0.5 s bin");
        double[][] cdf = Plots.cdfPoints(new double[] {3, 1, 2, 4});
        assertArrayEquals(new double[] {1, 2, 3, 4}, cdf[0], 1e-9);
        assertArrayEquals(new double[] {0.25, 0.5, 0.75, 1}, cdf[1], 1e-9);
        double[] many = new double[10_000];
        for (int i = 0; i < many.length; i++) {
            many[i] = many.length - i;
        }
        double[][] thinned = Plots.cdfPoints(many);
        assertEquals(2000, thinned[0].length);
        assertEquals(1, thinned[0][0], 1e-9);
        assertEquals(10_000, thinned[0][1999], 1e-9);
        assertEquals(1.0, thinned[1][1999], 1e-9);
        assertEquals(0.25, Plots.binSeconds(3));
        assertEquals(5.0, Plots.binSeconds(100));
        double[][] steps = Plots.steps(new double[][] {{1, 2}, {0.5, 1}}, 0);
        assertArrayEquals(new double[] {1, 1, 2, 2}, steps[0], 1e-9);
        assertArrayEquals(new double[] {0, 0.5, 0.5, 1}, steps[1], 1e-9);
        double[][] outline = Plots.outline(decode);
        assertArrayEquals(new double[] {0, 1, 1, 2}, outline[0], 1e-9);
        assertArrayEquals(new double[] {2, 2, 1, 1}, outline[1], 1e-9);
    }

    @Test
    void writesCsvJsonChartsAndHtml() throws IOException {
        Map<String, List<RequestOutcome>> runs = runs();
        List<ModeSummary> summaries = summaries(runs);
        BenchReport.writeCsv(dir.resolve(BenchReport.CSV), runs, SLO);
        List<String> csv = Files.readAllLines(dir.resolve(BenchReport.CSV));
        assertEquals(5, csv.size(), "a header and one row per request and mode");
        assertTrue(csv.get(0).startsWith("mode,request_id,"));
        assertTrue(csv.get(1).startsWith("sps2,a,"), csv.get(1));
        assertEquals(csv.get(0).split(",").length, csv.get(1).split(",", -1).length);

        Map<String, Object> description = new LinkedHashMap<>();
        description.put("trace", "t.jsonl");
        BenchReport.writeJson(dir.resolve(BenchReport.JSON), description, summaries);
        JsonNode json = new ObjectMapper().readTree(dir.resolve(BenchReport.JSON).toFile());
        assertEquals("t.jsonl", json.get("trace").asText());
        assertEquals(2, json.get("modes").size());
        assertEquals(150.0, json.get("modes").get(0).get("ttftMs").get("mean").asDouble(), 1e-9);
        assertEquals(2.0, json.get("ratios_sarathi_over_sps2").get("ttft_mean_ms").asDouble(), 1e-9);

        Map<String, Path> charts = Plots.write(dir, runs);
        assertEquals(4, charts.size());
        for (Path p : charts.values()) {
            BufferedImage image = ImageIO.read(p.toFile());
            assertEquals(Plots.WIDTH, image.getWidth(), p.toString());
            assertEquals(Plots.HEIGHT, image.getHeight(), p.toString());
        }
        BenchReport.writeHtml(dir.resolve(BenchReport.HTML), "test", description, summaries, charts);
        String html = Files.readString(dir.resolve(BenchReport.HTML));
        assertEquals(4, html.split("src=\"data:image/png;base64,", -1).length - 1);
        assertTrue(html.contains("<td>TTFT mean (ms)</td><td>150.0</td><td>300.0</td><td>2.00</td>"), "the table is in the page");
    }
}
