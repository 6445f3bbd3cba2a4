package sps2.bench.trace;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import sps2.job.UserException;

class TraceReaderTest {
    @TempDir
    Path dir;

    private Path trace(String... lines) throws IOException {
        Path f = dir.resolve("trace.jsonl");
        Files.write(f, List.of(lines));
        return f;
    }

    @Test
    void readsEntriesInFileOrderSkippingBlankLines() throws IOException {
        Path f = trace("{\"timestamp\": 0, \"input_length\": 6758, \"output_length\": 500, \"hash_ids\": [0, 1, 2]}", "",
                "{\"timestamp\": 3000, \"input_length\": 915, \"output_length\": 0, \"hash_ids\": [0, 462]}");
        List<TraceEntry> entries = TraceReader.read(f, 0);
        assertEquals(2, entries.size());
        assertEquals(0, entries.get(0).timestampMs());
        assertEquals(6758, entries.get(0).inputLength());
        assertEquals(500, entries.get(0).outputLength());
        assertArrayEquals(new int[] {0, 1, 2}, entries.get(0).hashIds());
        assertEquals(3000, entries.get(1).timestampMs());
        assertEquals(462, entries.get(1).hashIdAt(1));
        assertEquals(-1, entries.get(1).hashIdAt(2));
    }

    @Test
    void maxRequestsStopsReadingEarly() throws IOException {
        Path f = trace("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}",
                "{\"timestamp\": 5, \"input_length\": 11, \"output_length\": 2, \"hash_ids\": [1]}",
                "this line is never read");
        List<TraceEntry> entries = TraceReader.read(f, 2);
        assertEquals(2, entries.size());
        assertEquals(11, entries.get(1).inputLength());
    }

    @Test
    void hashIdsMayBeAbsent() throws IOException {
        Path f = trace("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1}");
        assertEquals(0, TraceReader.read(f, 0).get(0).blocks());
    }

    @Test
    void malformedLinesAreReportedWithTheirLineNumber() throws IOException {
        Path f = trace("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}", "{\"timestamp\": 1, ");
        UserException e = assertThrows(UserException.class, () -> TraceReader.read(f, 0));
        assertTrue(e.getMessage().startsWith("Line 2 of the trace file"), e.getMessage());
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    }

    @Test
    void missingAndWrongFieldsAreNamed() throws IOException {
        UserException missing = assertThrows(UserException.class,
                () -> TraceReader.read(trace("{\"timestamp\": 0, \"output_length\": 1}"), 0));
        assertTrue(missing.getMessage().contains("has no input_length"), missing.getMessage());
        UserException text = assertThrows(UserException.class,
                () -> TraceReader.read(trace("{\"timestamp\": \"soon\", \"input_length\": 3, \"output_length\": 1}"), 0));
        assertTrue(text.getMessage().contains("timestamp = \"soon\", not an integer"), text.getMessage());
        UserException hashes = assertThrows(UserException.class,
                () -> TraceReader.read(trace("{\"timestamp\": 0, \"input_length\": 3, \"output_length\": 1, \"hash_ids\": [1, \"x\"]}"), 0));
        assertTrue(hashes.getMessage().contains("hash_ids[1]"), hashes.getMessage());
        UserException empty = assertThrows(UserException.class,
                () -> TraceReader.read(trace("{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1}"), 0));
        assertTrue(empty.getMessage().contains("input_length >= 1"), empty.getMessage());
    }

    @Test
    void timeMustNotGoBackwards() throws IOException {
        Path f = trace("{\"timestamp\": 10, \"input_length\": 10, \"output_length\": 1}", "{\"timestamp\": 9, \"input_length\": 10, \"output_length\": 1}");
        UserException e = assertThrows(UserException.class, () -> TraceReader.read(f, 0));
        assertTrue(e.getMessage().contains("goes back in time at line 2"), e.getMessage());
    }

    @Test
    void missingAndEmptyFilesAreErrors() throws IOException {
        assertTrue(assertThrows(UserException.class, () -> TraceReader.read(dir.resolve("nope.jsonl"), 0)).getMessage()
                .contains("does not exist"));
        assertTrue(assertThrows(UserException.class, () -> TraceReader.read(trace("", "  "), 0)).getMessage().contains("has no requests"));
    }
}
