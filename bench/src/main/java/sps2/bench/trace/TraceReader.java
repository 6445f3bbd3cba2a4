package sps2.bench.trace;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import sps2.job.UserException;

/** Reads a JSONL serving trace (see {@link TraceEntry}); blank lines are skipped, anything else malformed is an error naming the line. */
public final class TraceReader {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TraceReader() {
    }

    /**
     * Reads at most {@code maxRequests} entries (all when it is 0 or less) in file order. Entries must not go back in
     * time: the trace is replayed in order.
     */
    public static List<TraceEntry> read(Path file, int maxRequests) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new UserException("The trace file " + file + " does not exist.");
        }
        List<TraceEntry> entries = new ArrayList<>();
        try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            String line;
            int lineNo = 0;
            long last = -1;
            while ((line = in.readLine()) != null && (maxRequests <= 0 || entries.size() < maxRequests)) {
                lineNo++;
                if (line.isBlank()) {
                    continue;
                }
                TraceEntry e = parse(line, file, lineNo);
                if (e.timestampMs() < last) {
                    throw new UserException("The trace file " + file + " goes back in time at line " + lineNo + ": timestamp "
                            + e.timestampMs() + " ms after " + last + " ms.");
                }
                last = e.timestampMs();
                entries.add(e);
            }
        }
        if (entries.isEmpty()) {
            throw new UserException("The trace file " + file + " has no requests.");
        }
        return entries;
    }

    /** Parses one line of a trace; {@code file} and {@code lineNo} only name the place in errors. */
    static TraceEntry parse(String line, Path file, int lineNo) {
        String where = "Line " + lineNo + " of the trace file " + file;
        JsonNode node;
        try {
            node = JSON.readTree(line);
        } catch (JsonProcessingException e) {
            throw new UserException(where + " is not valid JSON: " + e.getOriginalMessage());
        }
        if (node == null || !node.isObject()) {
            throw new UserException(where + " is not a JSON object.");
        }
        long timestamp = number(node, "timestamp", where);
        long input = number(node, "input_length", where);
        long output = number(node, "output_length", where);
        JsonNode hashes = node.get("hash_ids");
        if (hashes != null && !hashes.isArray()) {
            throw new UserException(where + " has hash_ids that is not a list of integers.");
        }
        int[] ids = new int[hashes == null ? 0 : hashes.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode h = hashes.get(i);
            if (!h.canConvertToInt()) {
                throw new UserException(where + " has hash_ids[" + i + "] = " + h + ", not an integer.");
            }
            ids[i] = h.intValue();
        }
        if (timestamp < 0 || input < 1 || input > Integer.MAX_VALUE || output < 0 || output > Integer.MAX_VALUE) {
            throw new UserException(where + " needs timestamp >= 0, input_length >= 1 and output_length >= 0, but has " + timestamp + ", "
                    + input + " and " + output + ".");
        }
        return new TraceEntry(timestamp, (int) input, (int) output, ids);
    }

    private static long number(JsonNode node, String field, String where) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            throw new UserException(where + " has no " + field + ".");
        }
        if (!v.isIntegralNumber() && !(v.isNumber() && v.asDouble() == Math.rint(v.asDouble()))) {
            throw new UserException(where + " has " + field + " = " + v + ", not an integer.");
        }
        return v.asLong();
    }
}
