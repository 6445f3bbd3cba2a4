package sps2.model.safetensors;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.slf4j.LoggerFactory;

import sps2.model.DType;
import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelFormatException;
import sps2.model.ModelWeights;

/**
 * Loads Hugging Face Llama checkpoints: {@code config.json} plus safetensors weights, either one
 * {@code model.safetensors} or shards listed in {@code model.safetensors.index.json}.
 *
 * <p>A safetensors file is: an unsigned 64-bit little-endian header length N, N bytes of JSON
 * ({@code {"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [begin, end]}, "__metadata__": {...}}}),
 * then the tensor bytes, offsets counted from the end of the header. Every tensor is memory-mapped on
 * its own (one mapping holds at most 2 GiB, files may be larger); q_proj and k_proj are copied to the
 * heap in the interleaved RoPE layout (see {@link HfLlamaLayout}). Unusable files raise
 * {@link ModelFormatException}; failed reads raise {@link UncheckedIOException}.
 */
public final class SafetensorsCheckpoint {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    public static final String CONFIG = "config.json";
    public static final String SINGLE = "model.safetensors";
    public static final String INDEX = "model.safetensors.index.json";

    private SafetensorsCheckpoint() {
    }

    /**
     * Loads a checkpoint from a directory (config.json with model.safetensors or a sharded index), from a
     * .safetensors file with config.json beside it, or from an index file with its shards beside it.
     */
    public static ModelWeights load(Path path) {
        try {
            Path dir;
            Path single = null;                // one safetensors file, or
            Map<String, Path> sharded = null;  // HF tensor name -> the shard holding it
            if (Files.isDirectory(path)) {
                dir = path;
                if (Files.isRegularFile(dir.resolve(INDEX))) {
                    sharded = readIndex(dir.resolve(INDEX));
                } else if (Files.isRegularFile(dir.resolve(SINGLE))) {
                    single = dir.resolve(SINGLE);
                } else {
                    throw new ModelFormatException("The directory " + path + " has neither " + SINGLE + " nor " + INDEX);
                }
            } else if (Files.isRegularFile(path)) {
                dir = path.toAbsolutePath().getParent();
                String name = path.getFileName().toString();
                if (name.endsWith(".index.json")) {
                    sharded = readIndex(path);
                } else if (name.endsWith(".safetensors")) {
                    single = path;
                } else {
                    throw new ModelFormatException("The file " + path + " is neither a .safetensors file nor a .index.json shard index");
                }
            } else {
                throw new ModelFormatException("The model path " + path + " does not exist");
            }
            ModelConfig config = readConfig(dir.resolve(CONFIG));

            Map<String, HostTensor> hfTensors = new LinkedHashMap<>();
            if (single != null) {
                hfTensors.putAll(readTensors(single));
            } else {
                Map<Path, Map<String, HostTensor>> shards = new LinkedHashMap<>();
                for (Map.Entry<String, Path> e : sharded.entrySet()) {
                    Map<String, HostTensor> shard = shards.computeIfAbsent(e.getValue(), SafetensorsCheckpoint::readTensors);
                    HostTensor t = shard.get(e.getKey());
                    if (t == null) {
                        throw new ModelFormatException("The shard " + e.getValue() + " lacks tensor " + e.getKey() + " that the index lists in it");
                    }
                    hfTensors.put(e.getKey(), t);
                }
            }
            ModelWeights weights = toCanonical(config, hfTensors, path.toString());
            return weights;
        } catch (IOException e) {
            throw new UncheckedIOException("Could not read the checkpoint " + path + ": " + e.getMessage(), e);
        }
    }

    /** HF tensor name to shard path, from an index's weight_map. */
    private static Map<String, Path> readIndex(Path index) throws IOException {
        JsonNode map = JSON.readTree(index.toFile()).get("weight_map");
        if (map == null || !map.isObject() || map.isEmpty()) {
            throw new ModelFormatException("The shard index " + index + " has no weight_map");
        }
        Path dir = index.toAbsolutePath().getParent();
        Map<String, Path> files = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            Path shard = dir.resolve(e.getValue().asText());
            if (!Files.isRegularFile(shard)) {
                throw new ModelFormatException("The shard " + shard + " named in " + index + " does not exist");
            }
            files.put(e.getKey(), shard);
        }
        return files;
    }

    /** The model configuration from an HF config.json. */
    public static ModelConfig readConfig(Path configFile) {
        if (!Files.isRegularFile(configFile)) {
            throw new ModelFormatException("The model config " + configFile + " does not exist");
        }
        try {
            return parseConfig(JSON.readTree(configFile.toFile()), configFile.toString());
        } catch (IOException e) {
            throw new ModelFormatException("The model config " + configFile + " is not valid JSON: " + e.getMessage(), e);
        }
    }

    static ModelConfig parseConfig(JsonNode c, String source) {
        String type = c.path("model_type").asText("llama");
        if (!type.equals("llama")) {
            throw new ModelFormatException("The model config " + source + " is for model_type '" + type + "', but only 'llama' is supported");
        }
        int dim = requiredInt(c, "hidden_size", source);
        int heads = requiredInt(c, "num_attention_heads", source);
        if (c.hasNonNull("head_dim") && c.get("head_dim").asInt() * heads != dim) {
            throw new ModelFormatException("The model config " + source + " has head_dim " + c.get("head_dim").asInt()
                    + ", but only head_dim = hidden_size / num_attention_heads = " + dim / heads + " is supported");
        }
        // transformers 4 writes rope_theta and rope_scaling; transformers 5 writes both into rope_parameters.
        JsonNode rs = c.hasNonNull("rope_parameters") ? c.get("rope_parameters") : c.get("rope_scaling");
        float ropeTheta = c.hasNonNull("rope_theta") ? (float) c.get("rope_theta").asDouble()
                : rs != null && rs.hasNonNull("rope_theta") ? (float) rs.get("rope_theta").asDouble() : 10000f;
        ModelConfig.RopeScaling scaling = null;
        String ropeType = rs == null || rs.isNull() ? "default"
                : rs.hasNonNull("rope_type") ? rs.get("rope_type").asText() : rs.path("type").asText("default");
        if (!ropeType.equals("default")) {
            if (!ropeType.equals("llama3")) {
                throw new ModelFormatException("The model config " + source + " asks for rope_scaling of type '" + ropeType
                        + "', but only 'llama3' scaling (or none) is supported");
            }
            scaling = new ModelConfig.RopeScaling(
                    requiredFloat(rs, "factor", source),
                    requiredFloat(rs, "low_freq_factor", source),
                    requiredFloat(rs, "high_freq_factor", source),
                    requiredInt(rs, "original_max_position_embeddings", source));
        }
        return new ModelConfig(
                dim,
                requiredInt(c, "intermediate_size", source),
                requiredInt(c, "num_hidden_layers", source),
                heads,
                c.hasNonNull("num_key_value_heads") ? c.get("num_key_value_heads").asInt() : heads,
                requiredInt(c, "vocab_size", source),
                requiredInt(c, "max_position_embeddings", source),
                ropeTheta,
                requiredFloat(c, "rms_norm_eps", source),
                c.path("tie_word_embeddings").asBoolean(false),
                scaling);
    }

    private static int requiredInt(JsonNode c, String field, String source) {
        JsonNode v = c.get(field);
        if (v == null || !v.canConvertToInt()) {
            throw new ModelFormatException("The model config " + source + " lacks the integer field " + field);
        }
        return v.asInt();
    }

    private static float requiredFloat(JsonNode c, String field, String source) {
        JsonNode v = c.get(field);
        if (v == null || !v.isNumber()) {
            throw new ModelFormatException("The model config " + source + " lacks the number field " + field);
        }
        return (float) v.asDouble();
    }

    /** Every tensor of one safetensors file under its stored name, each memory-mapped. */
    public static Map<String, HostTensor> readTensors(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new ModelFormatException("The safetensors file " + file + " is truncated: it has " + size + " bytes, fewer than the 8-byte header length");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0);
            long headerLen = lenBuf.getLong(0);
            if (headerLen < 2 || headerLen > MAX_HEADER || 8 + headerLen > size) {
                throw new ModelFormatException("The safetensors file " + file + " has an invalid header length " + Long.toUnsignedString(headerLen)
                        + " (file size " + size + ")");
            }
            ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
            readFully(ch, headerBuf, 8);
            JsonNode header;
            try {
                header = JSON.readTree(headerBuf.array());
            } catch (IOException e) {
                throw new ModelFormatException("The safetensors file " + file + " has a header that is not valid JSON: " + e.getMessage(), e);
            }
            long dataStart = 8 + headerLen;
            Map<String, HostTensor> tensors = new TreeMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String name = e.getKey();
                if (name.equals("__metadata__")) {
                    continue;
                }
                JsonNode t = e.getValue();
                DType dtype = dtype(t.path("dtype").asText(), name, file);
                JsonNode shapeNode = t.get("shape");
                JsonNode offsets = t.get("data_offsets");
                if (shapeNode == null || !shapeNode.isArray() || offsets == null || !offsets.isArray() || offsets.size() != 2) {
                    throw new ModelFormatException("The safetensors file " + file + " describes tensor " + name + " without a shape or data_offsets");
                }
                long[] shape = new long[shapeNode.size()];
                for (int i = 0; i < shape.length; i++) {
                    shape[i] = shapeNode.get(i).asLong();
                }
                long begin = offsets.get(0).asLong();
                long end = offsets.get(1).asLong();
                long need = dtype.byteSize(HostTensor.elementCount(shape));
                if (begin < 0 || end - begin != need) {
                    throw new ModelFormatException("The safetensors file " + file + " gives tensor " + name + " of shape " + Arrays.toString(shape)
                            + " and dtype " + dtype + " the byte range [" + begin + ", " + end + "), but it needs " + need + " bytes");
                }
                if (dataStart + end > size) {
                    throw new ModelFormatException("The safetensors file " + file + " is truncated: tensor " + name + " needs " + need
                            + " bytes at offset " + (dataStart + begin) + " but the file ends at " + size);
                }
                if (need > Integer.MAX_VALUE) {
                    throw new ModelFormatException("The tensor " + name + " in " + file + " has " + need + " bytes, more than the 2 GiB one mapping can hold");
                }
                ByteBuffer data = ch.map(FileChannel.MapMode.READ_ONLY, dataStart + begin, need).order(ByteOrder.LITTLE_ENDIAN);
                tensors.put(name, new HostTensor(name, dtype, shape, data));
            }
            return tensors;
        } catch (IOException e) {
            throw new UncheckedIOException("Could not read the safetensors file " + file + ": " + e.getMessage(), e);
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + buf.position());
            if (n < 0) {
                throw new ModelFormatException("The safetensors file ended inside its header");
            }
        }
    }

    private static DType dtype(String name, String tensor, Path file) {
        return switch (name) {
            case "F32" -> DType.F32;
            case "F16" -> DType.F16;
            case "BF16" -> DType.BF16;
            default -> throw new ModelFormatException("The tensor " + tensor + " in " + file + " has dtype " + name
                    + ", but only F32, F16 and BF16 are supported");
        };
    }

    /** Renames HF tensors to canonical names, checks their shapes, un-permutes q/k and drops a tied head. */
    static ModelWeights toCanonical(ModelConfig config, Map<String, HostTensor> hfTensors, String source) {
        Map<String, HostTensor> out = new TreeMap<>();
        for (Map.Entry<String, HostTensor> e : hfTensors.entrySet()) {
            String canonical = HfLlamaLayout.canonicalName(e.getKey());
            if (canonical == null) {
                if (!e.getKey().endsWith("rotary_emb.inv_freq")) {
                    // the logger only here, so that loading a plain checkpoint starts no logging backend
                    LoggerFactory.getLogger(SafetensorsCheckpoint.class).warn("Ignoring tensor {} of {}, which is not a Llama weight.", e.getKey(), source);
                }
                continue;
            }
            if (canonical.equals("output") && config.tiedEmbeddings()) {
                continue;
            }
            HostTensor t = e.getValue();
            out.put(canonical, new HostTensor(canonical, t.dtype(), t.shape(), t.data()));
        }
        int hs = config.headSize();
        expect(out, "tok_embeddings", source, config.vocabSize(), config.dim());
        expect(out, "norm", source, config.dim());
        if (!config.tiedEmbeddings()) {
            expect(out, "output", source, config.vocabSize(), config.dim());
        }
        for (int l = 0; l < config.nLayers(); l++) {
            String p = "layers." + l + ".";
            expect(out, p + "attention_norm", source, config.dim());
            expect(out, p + "ffn_norm", source, config.dim());
            expect(out, p + "wq", source, (long) config.nHeads() * hs, config.dim());
            expect(out, p + "wk", source, config.kvDim(), config.dim());
            expect(out, p + "wv", source, config.kvDim(), config.dim());
            expect(out, p + "wo", source, config.dim(), (long) config.nHeads() * hs);
            expect(out, p + "w1", source, config.hiddenDim(), config.dim());
            expect(out, p + "w3", source, config.hiddenDim(), config.dim());
            expect(out, p + "w2", source, config.dim(), config.hiddenDim());
            out.put(p + "wq", HfLlamaLayout.toInterleaved(out.get(p + "wq"), p + "wq", hs));
            out.put(p + "wk", HfLlamaLayout.toInterleaved(out.get(p + "wk"), p + "wk", hs));
        }
        for (String name : out.keySet()) {
            if (name.startsWith("layers.") && Integer.parseInt(name.split("\\.")[1]) >= config.nLayers()) {
                throw new ModelFormatException("The model " + source + " has tensor " + HfLlamaLayout.hfName(name) + " but its config declares only "
                        + config.nLayers() + " layers");
            }
        }
        return new ModelWeights(config, out, source);
    }

    private static void expect(Map<String, HostTensor> tensors, String name, String source, long... shape) {
        HostTensor t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException("The model " + source + " lacks tensor " + HfLlamaLayout.hfName(name) + " (" + name + ")");
        }
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException("The tensor " + HfLlamaLayout.hfName(name) + " of " + source + " has shape " + Arrays.toString(t.shape())
                    + " but the config needs " + Arrays.toString(shape));
        }
    }
}
