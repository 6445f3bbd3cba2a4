package sps2.job.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;

/**
 * The README's first command: `demo` runs the job on an embedded broker and MiniCluster and streams the reply.
 * With the shared pretrained model (the default when it lies beside the checkout) the text is the reference
 * continuation that `generate` prints too.
 */
class DemoCommandTest {
    @Test
    void demoStreamsTheSameGreedyTextAsGenerate() {
        Path gguf = GenerateCommandTest.shared("stories260K.gguf");
        GenerateCommandTest.Result gen = GenerateCommandTest.run("generate", "--model", gguf.toString(), "--prompt", "Once upon a time",
                "--max-tokens", "24", "--temperature", "0");
        assertEquals(0, gen.code(), gen.err());
        GenerateCommandTest.Result demo = GenerateCommandTest.run("demo", "--model", gguf.toString(), "--max-tokens", "24", "--temperature", "0",
                "Once upon a time");
        assertEquals(0, demo.code(), demo.err());
        String text = gen.out().lines().findFirst().orElseThrow();
        assertTrue(demo.out().contains(text), "demo printed:\n" + demo.out() + "\ngenerate printed:\n" + gen.out());
        assertTrue(demo.err().contains("24 tokens") && demo.err().contains("TTFT"), "the demo reports its token count and latencies: " + demo.err());
    }
}
