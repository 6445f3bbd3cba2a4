package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import sps2.job.Main;

class GenerateCommandTest {
    /** llama2.c's run.c output for BOS + "Once upon a time", greedy (shared/README.md). */
    private static final String REFERENCE = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
            + "One day, she saw a big, red ball.";

    record Result(int code, String out, String err) {
    }

    static Path shared(String name) {
        String dir = System.getenv().getOrDefault("SPS2_SHARED", "../../shared");
        Path p = Path.of(dir, "models", name);
        assumeTrue(Files.exists(p), "Skipped: " + p + " is absent (the shared data folder is not beside the checkout).");
        return p;
    }

    static Result run(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void greedyContinuationMatchesTheReferenceImplementation() {
        Path gguf = shared("stories260K.gguf");
        Result r = run("generate", "--model", gguf.toString(), "--prompt", "Once upon a time", "--max-tokens", "64", "--temperature", "0");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith(REFERENCE), "got: " + r.out());
    }

    @Test
    void llama2cCheckpointsGiveTheSameTokensAsGguf() {
        Path gguf = shared("stories260K.gguf");
        Path v0 = shared("stories260K.bin");
        Path v1 = shared("stories260K_v1.bin");
        Path tok = shared("tok512.bin");
        String a = run("generate", "--model", gguf.toString(), "--prompt", "Once upon a time", "--max-tokens", "64", "--temperature", "0", "--ids").out();
        String b = run("generate", "--model", v0.toString(), "--tokenizer", tok.toString(), "--prompt", "Once upon a time", "--max-tokens", "64",
                "--temperature", "0", "--ids").out();
        String c = run("generate", "--model", v1.toString(), "--tokenizer", tok.toString(), "--prompt", "Once upon a time", "--max-tokens", "64",
                "--temperature", "0", "--ids").out();
        assertEquals(a, b);
        assertEquals(a, c);
        assertTrue(a.trim().split(" ").length == 5 + 64, a);
    }

    @Test
    void generationContinuesPastPosition512UpToTheGgufContext() {
        Path gguf = shared("stories260K.gguf");
        Result r = run("generate", "--model", gguf.toString(), "--prompt", "Once upon a time", "--max-tokens", "700", "--temperature", "0",
                "--ids", "--ignore-eos");
        assertEquals(0, r.code(), r.err());
        assertEquals(5 + 700, r.out().trim().split(" ").length);
    }

    @Test
    void sameSeedSameTokensAndDifferentSeedDifferentTokens() {
        Path gguf = shared("stories260K.gguf");
        String[] base = {"generate", "--model", gguf.toString(), "--prompt", "Once upon a time", "--max-tokens", "40", "--temperature", "1.0", "--ids"};
        String a = run(concat(base, "--seed", "5")).out();
        String b = run(concat(base, "--seed", "5")).out();
        String c = run(concat(base, "--seed", "6")).out();
        assertEquals(a, b);
        assertFalse(a.equals(c), "different seeds should sample differently");
    }

    @Test
    void badArgumentsGiveOneLineAndExitCode2(@TempDir Path dir) throws IOException {
        Path gguf = shared("stories260K.gguf");
        Result missing = run("generate", "--model", dir.resolve("nope.gguf").toString(), "--prompt", "x");
        assertEquals(2, missing.code());
        assertOneLineError(missing.err(), "does not exist");

        Path junk = dir.resolve("junk.bin");
        Files.write(junk, new byte[] {1, 2, 3, 4, 5, 6, 7});
        Result unknown = run("generate", "--model", junk.toString(), "--prompt", "x");
        assertEquals(2, unknown.code());
        assertOneLineError(unknown.err(), "");

        Path truncated = dir.resolve("cut.gguf");
        byte[] all = Files.readAllBytes(gguf);
        Files.write(truncated, java.util.Arrays.copyOf(all, all.length / 2));
        Result cut = run("generate", "--model", truncated.toString(), "--prompt", "x");
        assertEquals(2, cut.code());
        assertOneLineError(cut.err(), "truncated");

        Path bigVocab = shared("llama2_tokenizer.bin");
        Result vocab = run("generate", "--model", gguf.toString(), "--tokenizer", bigVocab.toString(), "--prompt", "x");
        assertEquals(2, vocab.code());
        assertOneLineError(vocab.err(), "");

        String longPrompt = "Once upon a time ".repeat(600);
        Result tooLong = run("generate", "--model", gguf.toString(), "--prompt", longPrompt);
        assertEquals(2, tooLong.code());
        assertOneLineError(tooLong.err(), "context");
    }

    private static void assertOneLineError(String err, String mustContain) {
        String[] lines = err.trim().split("\n");
        String last = lines[lines.length - 1];
        assertTrue(last.startsWith("error: ") && last.contains(mustContain), "stderr was: " + err);
        assertFalse(err.contains("\tat "), "no stack trace expected: " + err);
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
