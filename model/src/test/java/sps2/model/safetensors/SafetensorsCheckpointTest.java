package sps2.model.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import sps2.model.DType;
import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelFormatException;
import sps2.model.ModelWeights;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomCheckpointWriter;
import sps2.model.shapes.RandomWeights;

class SafetensorsCheckpointTest {
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    static byte[] bytes(HostTensor t) {
        ByteBuffer b = t.data().duplicate();
        byte[] out = new byte[Math.toIntExact(t.dtype().byteSize(t.size()))];
        b.get(out);
        return out;
    }

    static void assertSameWeights(ModelWeights expected, ModelWeights actual) {
        assertEquals(expected.config(), actual.config());
        assertEquals(expected.tensors().keySet(), actual.tensors().keySet());
        for (String name : expected.tensors().keySet()) {
            HostTensor e = expected.get(name);
            HostTensor a = actual.get(name);
            assertEquals(e.dtype(), a.dtype(), name);
            assertArrayEquals(e.shape(), a.shape(), name);
            assertArrayEquals(bytes(e), bytes(a), name);
        }
    }

    /** A safetensors file written by hand here, independent of the code under test. */
    static void writeSafetensors(Path file, Map<String, HostTensor> tensors) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        long offset = 0;
        List<byte[]> blobs = new ArrayList<>();
        for (Map.Entry<String, HostTensor> e : tensors.entrySet()) {
            byte[] b = bytes(e.getValue());
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", e.getValue().dtype().name());
            var shape = t.putArray("shape");
            for (long d : e.getValue().shape()) {
                shape.add(d);
            }
            t.putArray("data_offsets").add(offset).add(offset + b.length);
            offset += b.length;
            blobs.add(b);
        }
        byte[] json = JSON.writeValueAsBytes(header);
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(8 + json.length + offset)).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(json.length).put(json);
        blobs.forEach(out::put);
        Files.write(file, out.array());
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void randomCheckpointLoadsBackAsTheGeneratedWeights(DType dtype) {
        ModelConfig tiny = ModelShapes.get("tiny");
        RandomCheckpointWriter.write(tiny, "tiny", dir, dtype, 42, RandomCheckpointWriter.Progress.NONE);
        ModelWeights loaded = SafetensorsCheckpoint.load(dir);
        assertSameWeights(RandomWeights.generate(tiny, dtype, 42), loaded);
        assertTrue(loaded.tensors().containsKey("output"), "tiny has an untied head");
        // The file itself holds HF names, with q/k rows in rotate-half order.
        Map<String, HostTensor> raw = SafetensorsCheckpoint.readTensors(dir.resolve("model.safetensors"));
        assertTrue(raw.containsKey("model.layers.1.self_attn.k_proj.weight"));
        assertFalse(java.util.Arrays.equals(bytes(raw.get("model.layers.0.self_attn.q_proj.weight")), bytes(loaded.layer(0, "wq"))));
        // Loading the file path (config.json beside it) gives the same.
        assertSameWeights(loaded, SafetensorsCheckpoint.load(dir.resolve("model.safetensors")));
    }

    @Test
    void writerIsDeterministicPerSeed(@TempDir Path other, @TempDir Path third) throws IOException {
        ModelConfig tiny = ModelShapes.get("tiny");
        RandomCheckpointWriter.write(tiny, "tiny", dir, DType.BF16, 7, RandomCheckpointWriter.Progress.NONE);
        RandomCheckpointWriter.write(tiny, "tiny", other, DType.BF16, 7, RandomCheckpointWriter.Progress.NONE);
        RandomCheckpointWriter.write(tiny, "tiny", third, DType.BF16, 8, RandomCheckpointWriter.Progress.NONE);
        byte[] a = Files.readAllBytes(dir.resolve("model.safetensors"));
        assertArrayEquals(a, Files.readAllBytes(other.resolve("model.safetensors")));
        assertFalse(java.util.Arrays.equals(a, Files.readAllBytes(third.resolve("model.safetensors"))));
    }

    @Test
    void randomValuesHaveTheAdvertisedSpread() {
        ModelWeights w = RandomWeights.generate(ModelShapes.get("tiny"), DType.F32, 1);
        float[] emb = w.get("tok_embeddings").toFloats();
        double sum = 0;
        double sq = 0;
        for (float v : emb) {
            sum += v;
            sq += v * v;
        }
        double mean = sum / emb.length;
        double std = Math.sqrt(sq / emb.length - mean * mean);
        assertEquals(0, mean, 0.001);
        assertEquals(0.02, std, 0.001);
        float[] norm = w.get("norm").toFloats();
        for (float v : norm) {
            assertEquals(1.0, v, 0.2);
        }
    }

    @Test
    void progressReachesTheTotal() {
        long[] last = {-1, -1};
        RandomCheckpointWriter.write(ModelShapes.get("tiny"), "tiny", dir, DType.F32, 1, (done, total) -> {
            assertTrue(done >= last[0] && done <= total);
            last[0] = done;
            last[1] = total;
        });
        assertEquals(last[1], last[0]);
        assertTrue(last[1] > 0);
    }

    @Test
    void tiedCheckpointHasNoOutputTensor() {
        RandomCheckpointWriter.write(ModelShapes.get("stories260k"), "stories260k", dir, DType.F32, 3, RandomCheckpointWriter.Progress.NONE);
        ModelWeights w = SafetensorsCheckpoint.load(dir);
        assertEquals(ModelShapes.get("stories260k"), w.config());
        assertFalse(w.tensors().containsKey("output"));
        assertSame(w.get("tok_embeddings"), w.output());
    }

    @Test
    void shardedCheckpointLoadsLikeTheSingleFile() throws IOException {
        ModelConfig tiny = ModelShapes.get("tiny");
        RandomCheckpointWriter.write(tiny, "tiny", dir, DType.BF16, 5, RandomCheckpointWriter.Progress.NONE);
        ModelWeights single = SafetensorsCheckpoint.load(dir);

        Path sharded = Files.createDirectory(dir.resolve("sharded"));
        Files.copy(dir.resolve("config.json"), sharded.resolve("config.json"));
        Map<String, HostTensor> first = new LinkedHashMap<>();
        Map<String, HostTensor> second = new LinkedHashMap<>();
        ObjectNode index = JSON.createObjectNode();
        index.putObject("metadata").put("total_size", 0);
        ObjectNode weightMap = index.putObject("weight_map");
        SafetensorsCheckpoint.readTensors(dir.resolve("model.safetensors")).forEach((name, t) -> {
            boolean inFirst = name.startsWith("model.embed_tokens") || name.startsWith("model.layers.0.");
            (inFirst ? first : second).put(name, t);
            weightMap.put(name, inFirst ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
        });
        writeSafetensors(sharded.resolve("model-00001-of-00002.safetensors"), first);
        writeSafetensors(sharded.resolve("model-00002-of-00002.safetensors"), second);
        Files.writeString(sharded.resolve("model.safetensors.index.json"), JSON.writeValueAsString(index));

        assertSameWeights(single, SafetensorsCheckpoint.load(sharded));
        assertSameWeights(single, SafetensorsCheckpoint.load(sharded.resolve("model.safetensors.index.json")));
    }

    @Test
    void configRoundTripsThroughHfConfigJson() throws IOException {
        for (String shape : ModelShapes.names()) {
            Path file = dir.resolve(shape + ".json");
            Files.writeString(file, JSON.writeValueAsString(RandomCheckpointWriter.hfConfig(ModelShapes.get(shape), shape, DType.BF16)));
            assertEquals(ModelShapes.get(shape), SafetensorsCheckpoint.readConfig(file), shape);
        }
        String text = Files.readString(dir.resolve("llama-3.2-1b.json"));
        assertTrue(text.contains("\"rms_norm_eps\":1.0E-5") && text.contains("\"bos_token_id\":128000"), text);
    }

    @Test
    void configDefaultsFollowHf() throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, "{\"hidden_size\": 64, \"intermediate_size\": 100, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                + " \"vocab_size\": 10, \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-6}");
        ModelConfig c = SafetensorsCheckpoint.readConfig(file);
        assertEquals(4, c.nKvHeads());
        assertEquals(10000f, c.ropeTheta());
        assertFalse(c.tiedEmbeddings());
        assertEquals(null, c.ropeScaling());
    }

    @Test
    void transformers5RopeParametersAreRead() throws IOException {
        Path file = dir.resolve("config.json");
        String common = "\"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16, \"num_attention_heads\": 32,"
                + " \"num_key_value_heads\": 8, \"vocab_size\": 128256, \"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-5,"
                + " \"tie_word_embeddings\": true, ";
        Files.writeString(file, "{" + common + "\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 32.0,"
                + " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}");
        assertEquals(ModelShapes.get("llama-3.2-1b"), SafetensorsCheckpoint.readConfig(file));
        Files.writeString(file, "{" + common + "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 123.0}}");
        ModelConfig plain = SafetensorsCheckpoint.readConfig(file);
        assertEquals(123f, plain.ropeTheta());
        assertEquals(null, plain.ropeScaling());
        Files.writeString(file, "{" + common + "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.readConfig(file));
        assertTrue(e.getMessage().contains("yarn"), e.getMessage());
    }

    /** A sparse file: zero-filled padding tensors (no disk space) put tensor "w" beyond the 2 GiB mark. */
    static Path sparseFile(Path file, long... padElements) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        long offset = 0;
        for (int i = 0; i < padElements.length; i++) {
            ObjectNode t = header.putObject("pad" + i);
            t.put("dtype", "BF16");
            t.putArray("shape").add(padElements[i]);
            t.putArray("data_offsets").add(offset).add(offset + 2 * padElements[i]);
            offset += 2 * padElements[i];
        }
        ObjectNode w = header.putObject("w");
        w.put("dtype", "F32");
        w.putArray("shape").add(2);
        w.putArray("data_offsets").add(offset).add(offset + 8);
        byte[] json = JSON.writeValueAsBytes(header);
        try (var ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, json.length), 0);
            ch.write(ByteBuffer.wrap(json), 8);
            ch.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, 1.5f).putFloat(4, -2f), 8 + json.length + offset);
        }
        return file;
    }

    @Test
    void tensorsBeyondTwoGigabytesAreMapped() throws IOException {
        Path file = sparseFile(dir.resolve("big.safetensors"), 600_000_000L, 600_000_000L);
        assertTrue(Files.size(file) - 8 > 1L << 31, "w lies beyond 2 GiB");
        HostTensor w = SafetensorsCheckpoint.readTensors(file).get("w");
        assertArrayEquals(new float[] {1.5f, -2f}, w.toFloats());
    }

    @Test
    void tensorsLargerThanOneMappingAreReported() throws IOException {
        Path file = sparseFile(dir.resolve("huge.safetensors"), (1L << 30) + 1);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.readTensors(file));
        assertTrue(e.getMessage().contains("pad0") && e.getMessage().contains("2 GiB"), e.getMessage());
    }

    @Test
    void unsupportedDtypeIsNamed() throws IOException {
        Path file = dir.resolve("x.safetensors");
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(1L);
        b.flip();
        writeSafetensors(file, Map.of("w", new HostTensor("w", DType.F32, new long[] {2}, b)));
        byte[] content = Files.readAllBytes(file);
        String s = new String(content, StandardCharsets.ISO_8859_1).replace("\"F32\"", "\"F64\"");
        Files.write(file, s.getBytes(StandardCharsets.ISO_8859_1));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.readTensors(file));
        assertTrue(e.getMessage().contains("dtype F64") && e.getMessage().contains("tensor w"), e.getMessage());
    }

    @Test
    void truncatedFileIsReported() throws IOException {
        RandomCheckpointWriter.write(ModelShapes.get("tiny"), "tiny", dir, DType.F32, 1, RandomCheckpointWriter.Progress.NONE);
        Path file = dir.resolve("model.safetensors");
        byte[] content = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(content, content.length - 100));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.load(dir));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        Files.write(file, new byte[] {1, 2, 3});
        e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.load(dir));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void missingTensorIsNamed() throws IOException {
        ModelConfig tiny = ModelShapes.get("tiny");
        RandomCheckpointWriter.write(tiny, "tiny", dir, DType.F32, 1, RandomCheckpointWriter.Progress.NONE);
        Map<String, HostTensor> raw = new LinkedHashMap<>(SafetensorsCheckpoint.readTensors(dir.resolve("model.safetensors")));
        raw.remove("model.layers.1.mlp.up_proj.weight");
        Path partial = Files.createDirectory(dir.resolve("partial"));
        Files.copy(dir.resolve("config.json"), partial.resolve("config.json"));
        writeSafetensors(partial.resolve("model.safetensors"), raw);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.load(partial));
        assertTrue(e.getMessage().contains("model.layers.1.mlp.up_proj.weight"), e.getMessage());
    }

    @Test
    void layersBeyondTheConfigAreReported() throws IOException {
        RandomCheckpointWriter.write(ModelShapes.get("tiny"), "tiny", dir, DType.F32, 1, RandomCheckpointWriter.Progress.NONE);
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"num_hidden_layers\" : 2", "\"num_hidden_layers\" : 1"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.load(dir));
        assertTrue(e.getMessage().contains("model.layers.1.") && e.getMessage().contains("1 layers"), e.getMessage());
    }

    @Test
    void directoryWithoutWeightsIsReported() throws IOException {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsCheckpoint.load(dir));
        assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
        assertNotEquals(null, e.getMessage());
    }
}
