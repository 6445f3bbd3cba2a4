package sps2.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sps2.model.shapes.RandomCheckpointWriter;

public class ModelLoaderTest {

    @TempDir
    Path dir;

    /** A file of the shared test data (models/...), or the test is skipped when the shared folder is absent. */
    public static Path sharedModel(String name) {
        String shared = System.getenv("SPS2_SHARED");
        Assumptions.assumeTrue(shared != null, "SPS2_SHARED is not set, so the shared test models are not available");
        Path p = Path.of(shared, "models", name);
        Assumptions.assumeTrue(Files.isRegularFile(p), "The shared test model " + p + " is absent");
        return p;
    }

    @Test
    void stories260KIsTheSameModelInAllThreeFormats() {
        ModelWeights gguf = ModelLoader.load(sharedModel("stories260K.gguf"));
        ModelWeights v0 = ModelLoader.load(sharedModel("stories260K.bin"));
        ModelWeights v1 = ModelLoader.load(sharedModel("stories260K_v1.bin"));

        ModelConfig c = v0.config();
        assertEquals(new ModelConfig(64, 172, 5, 8, 4, 512, 512, 10000f, 1e-5f, true, null), c);
        assertEquals(c, v1.config());
        // The GGUF conversion wrote its own context length (2048) and a separate copy of the classifier.
        ModelConfig g = gguf.config();
        assertEquals(c.withContextLength(2048), new ModelConfig(g.dim(), g.hiddenDim(), g.nLayers(), g.nHeads(), g.nKvHeads(),
                g.vocabSize(), g.contextLength(), g.ropeTheta(), g.rmsEps(), true, g.ropeScaling()));
        assertFalse(g.tiedEmbeddings());

        assertEquals(v0.tensors().keySet(), v1.tensors().keySet());
        for (String name : v0.tensors().keySet()) {
            float[] expected = v0.get(name).toFloats();
            assertArrayEquals(v0.get(name).shape(), v1.get(name).shape(), name);
            assertArrayEquals(v0.get(name).shape(), gguf.get(name).shape(), name);
            assertArrayEquals(expected, v1.get(name).toFloats(), name);
            assertArrayEquals(expected, gguf.get(name).toFloats(), name);
        }
        assertArrayEquals(v0.output().toFloats(), gguf.output().toFloats());
        // sanity: the weights are real numbers, not zeros from a misplaced offset
        float[] wq = v0.layer(4, "wq").toFloats();
        assertTrue(Arrays.stream(toDoubles(wq)).allMatch(Double::isFinite));
        assertNotEquals(0.0, Arrays.stream(toDoubles(wq)).map(Math::abs).sum());
        float[] norm = v0.get("norm").toFloats();
        assertTrue(Arrays.stream(toDoubles(norm)).allMatch(x -> x > 0 && x < 100), "RMSNorm gains look like gains");
    }

    private static double[] toDoubles(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    @Test
    void detectsFormatsByContent() throws IOException {
        assertEquals(ModelLoader.Format.GGUF, ModelLoader.detect(sharedModel("stories260K.gguf")));
        assertEquals(ModelLoader.Format.LLAMA2C, ModelLoader.detect(sharedModel("stories260K.bin")));
        assertEquals(ModelLoader.Format.LLAMA2C, ModelLoader.detect(sharedModel("stories260K_v1.bin")));
        Path renamed = Files.copy(sharedModel("stories260K.gguf"), dir.resolve("model.bin"));
        assertEquals(ModelLoader.Format.GGUF, ModelLoader.detect(renamed));
    }

    @Test
    void truncatedRealFilesGiveClearErrors() throws IOException {
        for (String name : new String[] {"stories260K.gguf", "stories260K.bin", "stories260K_v1.bin"}) {
            byte[] bytes = Files.readAllBytes(sharedModel(name));
            Path cut = Files.write(dir.resolve("cut-" + name), Arrays.copyOf(bytes, bytes.length - 1000));
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelLoader.load(cut), name);
            assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains(cut.toString()), e.getMessage());
        }
    }

    @Test
    void unknownMissingAndEmptyInputsGiveClearErrors() throws IOException {
        byte[] noise = new byte[4096];
        new Random(1).nextBytes(noise);
        Path junk = Files.write(dir.resolve("junk.bin"), noise);
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(junk)).getMessage().contains("not a recognised model"));
        Path empty = Files.write(dir.resolve("empty.bin"), new byte[0]);
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(empty)).getMessage().contains("not a recognised model"));
        Path missing = dir.resolve("nope.gguf");
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(missing)).getMessage().contains("does not exist"));
        Path emptyDir = Files.createDirectory(dir.resolve("emptydir"));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(emptyDir)).getMessage().contains("holds no model"));
    }

    @Test
    void safetensorsIsDispatchedByDirectoryOrFileContent() throws IOException {
        ModelConfig tiny = new ModelConfig(16, 32, 2, 4, 2, 40, 64, 10000f, 1e-5f, false, null);
        Path file = RandomCheckpointWriter.write(tiny, "tiny", dir.resolve("hf"), DType.F32, 7, RandomCheckpointWriter.Progress.NONE);
        assertEquals(ModelLoader.Format.SAFETENSORS, ModelLoader.detect(dir.resolve("hf")));
        Path renamed = Files.copy(file, dir.resolve("hf").resolve("weights.bin"));
        assertEquals(ModelLoader.Format.SAFETENSORS, ModelLoader.detect(renamed), "recognised by its JSON header, not its name");
        ModelWeights fromDir = ModelLoader.load(dir.resolve("hf"));
        ModelWeights fromFile = ModelLoader.load(file);
        assertEquals(tiny.nLayers(), fromDir.config().nLayers());
        assertEquals(tiny.vocabSize(), fromDir.config().vocabSize());
        assertArrayEquals(fromDir.layer(1, "wk").toFloats(), fromFile.layer(1, "wk").toFloats());

        Path broken = Files.createDirectory(dir.resolve("broken"));
        Files.writeString(broken.resolve("config.json"), "{}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelLoader.load(broken));
        assertTrue(e.getMessage().contains(broken.toString()), e.getMessage());
    }

    @Test
    void validateNamesAMisshapenTensor() {
        ModelWeights w = ModelLoader.load(sharedModel("stories260K.bin"));
        java.util.Map<String, HostTensor> t = new java.util.HashMap<>(w.tensors());
        t.put("layers.2.wk", w.layer(2, "wq"));
        ModelWeights broken = new ModelWeights(w.config(), t, "broken");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelLoader.validate(broken));
        assertTrue(e.getMessage().contains("layers.2.wk") && e.getMessage().contains("[32, 64]"), e.getMessage());
        t.put("layers.2.wk", w.layer(2, "wk"));
        t.remove("norm");
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.validate(new ModelWeights(w.config(), t, "x")))
                .getMessage().contains("lacks the tensor"));
        assertNull(w.tensors().get("output"));
    }
}
