package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import javax.imageio.ImageIO;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import sps2.bench.Main;

/**
 * The trace-driven benchmark end to end: 20 requests of the real Mooncake trace, lengths scaled by 0.02, replayed
 * through a real broker into the job in sps2 and in Sarathi mode on stories260K.
 */
class BenchSmokeTest {
    private static final int REQUESTS = 20;

    @TempDir
    Path out;

    @Test
    void bothModesCompleteEveryRequestAndWriteTheReport() throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        Path trace = Path.of(System.getenv().getOrDefault("SPS2_SHARED", "../../shared"), "traces", "mooncake_conversation.jsonl");
        Assumptions.assumeTrue(Files.exists(trace), "Skipped: " + trace + " is absent (no shared data beside the checkout).");

        PrintStream oldOut = System.out;
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(stdout, true, StandardCharsets.UTF_8));
            code = Main.run("bench", "--trace", trace.toString(), "--mode", "both", "--max-requests", Integer.toString(REQUESTS),
                    "--length-scale", "0.02", "--model", model.toString(), "--out", out.toString(), "--no-progress", "--warmup-requests", "2");
        } finally {
            System.setOut(oldOut);
        }
        String printed = stdout.toString(StandardCharsets.UTF_8);
        oldOut.print(printed);
        assertEquals(0, code, printed);
        assertTrue(printed.contains("sarathi/sps2"), "the table has the ratio column:\n" + printed);

        JsonNode summary = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        assertEquals(REQUESTS, summary.get("requests").asInt());
        JsonNode modes = summary.get("modes");
        assertEquals(2, modes.size());
        for (JsonNode m : modes) {
            String name = m.get("mode").asText();
            assertEquals(REQUESTS, m.get("completed").asInt(), name + ": every request completes");
            assertEquals(0, m.get("failed").asInt(), name);
            for (String rate : List.of("durationS", "requestThroughput", "prefillTokensPerS", "decodeTokensPerS")) {
                assertPositive(m.get(rate), name + " " + rate);
            }
            assertTrue(m.get("goodput").isNumber() && m.get("goodput").asDouble() >= 0, name + " goodput");
            for (String metric : List.of("ttftMs", "tbtMs", "tpotMs", "e2eMs")) {
                JsonNode s = m.get(metric);
                assertTrue(s.get("count").asLong() > 0, name + " " + metric + " has values");
                double p50 = s.get("p50").asDouble();
                double p90 = s.get("p90").asDouble();
                double p99 = s.get("p99").asDouble();
                for (String stat : List.of("mean", "p50", "p90", "p99", "max")) {
                    assertTrue(s.get(stat).isNumber() && Double.isFinite(s.get(stat).asDouble()) && s.get(stat).asDouble() >= 0,
                            name + " " + metric + " " + stat + " = " + s.get(stat));
                }
                assertTrue(p50 <= p90 && p90 <= p99 && p99 <= s.get("max").asDouble() * 1.001, name + " " + metric + " percentiles ascend");
            }
            assertTrue(m.get("e2eMs").get("mean").asDouble() >= m.get("ttftMs").get("mean").asDouble(), name + ": e2e is at least TTFT");
            assertEquals(m.get("promptTokens").asLong(), summary.get("prompt_tokens").asLong(), name + ": every prompt token counted");
            assertEquals(m.get("outputTokens").asLong(), summary.get("output_tokens").asLong(), name + ": every generated token counted");
        }
        JsonNode ratios = summary.get("ratios_sarathi_over_sps2");
        assertNotNull(ratios);
        ratios.fields().forEachRemaining(e -> assertTrue(e.getValue().isNumber() && Double.isFinite(e.getValue().asDouble()),
                "ratio " + e.getKey() + " = " + e.getValue()));

        List<String> csv = Files.readAllLines(out.resolve("requests.csv"));
        assertEquals(1 + 2 * REQUESTS, csv.size());
        int completed = List.of(csv.get(0).split(",")).indexOf("completed");
        assertTrue(csv.stream().skip(1).allMatch(l -> l.split(",", -1)[completed].equals("true")));
        for (String png : List.of("ttft_cdf.png", "tbt_cdf.png", "decode_throughput.png", "prefill_throughput.png")) {
            assertNotNull(ImageIO.read(out.resolve(png).toFile()), png + " is a readable image");
        }
        String html = Files.readString(out.resolve("report.html"));
        assertEquals(4, html.split("data:image/png;base64,", -1).length - 1, "the page embeds the four charts");
    }

    private static void assertPositive(JsonNode v, String what) {
        assertTrue(v != null && v.isNumber() && Double.isFinite(v.asDouble()) && v.asDouble() > 0, what + " = " + v);
    }
}
