package sps2.model.shapes;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.safetensors.HfLlamaLayout;
import sps2.model.safetensors.SafetensorsCheckpoint;

/**
 * Writes a random-weight Hugging Face Llama checkpoint ({@code config.json} + {@code model.safetensors})
 * that {@code transformers}' LlamaForCausalLM and {@link SafetensorsCheckpoint} both load. Values come
 * from {@link RandomWeights} (deterministic per seed); q_proj/k_proj rows are written in HF's
 * rotate-half order, so loading gives back the interleaved layout. Tensors are generated in chunks of
 * about a million values in parallel and written straight to the file: memory use does not grow with
 * the model.
 */
public final class RandomCheckpointWriter {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int CHUNK_VALUES = 1 << 20;
    private static final int BATCH = 32;

    private RandomCheckpointWriter() {
    }

    /** Told how many bytes of tensor data are on disk so far, out of how many. */
    @FunctionalInterface
    public interface Progress {
        void update(long bytesWritten, long bytesTotal);

        Progress NONE = (done, total) -> { };
    }

    /** One unit of work: rows [firstRow, endRow) of a tensor, written at a file offset. */
    private record Chunk(RandomWeights.Spec spec, int firstRow, int endRow, long fileOffset) {
    }

    /**
     * Writes the checkpoint into {@code outDir} (created if needed) and returns the safetensors file.
     *
     * @param shapeName used for the token ids in config.json (Llama 3 ids for "llama-3.2-1b", llama2.c's otherwise)
     * @param dtype     F32 or BF16 (F16 also works)
     */
    public static Path write(ModelConfig config, String shapeName, Path outDir, DType dtype, long seed, Progress progress) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("Random checkpoints can be written as F32, BF16 or F16, not " + dtype);
        }
        try {
            Files.createDirectories(outDir);
            Files.writeString(outDir.resolve(SafetensorsCheckpoint.CONFIG),
                    JSON.writerWithDefaultPrettyPrinter().writeValueAsString(hfConfig(config, shapeName, dtype)));

            // Header: every tensor's HF name, dtype, shape and byte range, in file order.
            ObjectNode header = JSON.createObjectNode();
            header.putObject("__metadata__").put("format", "pt");
            List<RandomWeights.Spec> specs = RandomWeights.specs(config);
            long[] begin = new long[specs.size()];
            long offset = 0;
            for (int i = 0; i < specs.size(); i++) {
                RandomWeights.Spec s = specs.get(i);
                long bytes = dtype.byteSize(s.elements());
                ObjectNode t = header.putObject(HfLlamaLayout.hfName(s.name()));
                t.put("dtype", dtype.name());
                var shape = t.putArray("shape");
                for (long d : s.shape()) {
                    shape.add(d);
                }
                t.putArray("data_offsets").add(offset).add(offset + bytes);
                begin[i] = offset;
                offset += bytes;
            }
            long dataBytes = offset;
            byte[] json = JSON.writeValueAsBytes(header);
            int padded = (json.length + 7) / 8 * 8;
            ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(padded).put(json);
            while (head.hasRemaining()) {
                head.put((byte) ' ');
            }
            head.flip();
            long dataStart = 8 + padded;

            List<Chunk> chunks = new ArrayList<>();
            for (int i = 0; i < specs.size(); i++) {
                RandomWeights.Spec s = specs.get(i);
                int rowsPerChunk = Math.max(1, CHUNK_VALUES / s.cols());
                if (HfLlamaLayout.isRopePermuted(s.name())) {
                    // The permutation stays within a head, so whole heads keep it within a chunk.
                    rowsPerChunk = Math.max(config.headSize(), rowsPerChunk / config.headSize() * config.headSize());
                }
                for (int r = 0; r < s.rows(); r += rowsPerChunk) {
                    chunks.add(new Chunk(s, r, Math.min(s.rows(), r + rowsPerChunk), dataStart + begin[i] + dtype.byteSize((long) r * s.cols())));
                }
            }

            Path target = outDir.resolve(SafetensorsCheckpoint.SINGLE);
            Path partial = outDir.resolve(SafetensorsCheckpoint.SINGLE + ".partial");
            long written = 0;
            try (FileChannel ch = FileChannel.open(partial, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                writeFully(ch, head, 0);
                progress.update(0, dataBytes);
                for (int from = 0; from < chunks.size(); from += BATCH) {
                    List<Chunk> batch = chunks.subList(from, Math.min(chunks.size(), from + BATCH));
                    IntStream.range(0, batch.size()).parallel().forEach(k -> writeChunk(ch, batch.get(k), config.headSize(), dtype, seed));
                    for (Chunk c : batch) {
                        written += dtype.byteSize((long) (c.endRow() - c.firstRow()) * c.spec().cols());
                    }
                    progress.update(written, dataBytes);
                }
            }
            Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException("Could not write the random checkpoint to " + outDir + ": " + e.getMessage(), e);
        }
    }

    private static void writeChunk(FileChannel ch, Chunk c, int headSize, DType dtype, long seed) {
        RandomWeights.Spec s = c.spec();
        int rowBytes = Math.toIntExact(dtype.byteSize(s.cols()));
        boolean permuted = HfLlamaLayout.isRopePermuted(s.name());
        ByteBuffer buf = ByteBuffer.allocate((c.endRow() - c.firstRow()) * rowBytes).order(ByteOrder.LITTLE_ENDIAN);
        float[] row = new float[s.cols()];
        for (int r = c.firstRow(); r < c.endRow(); r++) {
            RandomWeights.fillRow(seed, s, r, row);
            int fileRow = permuted ? HfLlamaLayout.hfRow(r, headSize) : r;
            buf.position((fileRow - c.firstRow()) * rowBytes);
            RandomWeights.encode(row, row.length, dtype, buf);
        }
        buf.clear();
        try {
            writeFully(ch, buf, c.fileOffset());
        } catch (IOException e) {
            throw new UncheckedIOException("Could not write tensor " + s.name() + ": " + e.getMessage(), e);
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        long at = position;
        while (buf.hasRemaining()) {
            at += ch.write(buf, at);
        }
    }

    /** A float as the double with the same shortest decimal form (1e-5f gives 1e-5, not 9.99999974e-6). */
    private static double exact(float f) {
        return Double.parseDouble(Float.toString(f));
    }

    /** The HF config.json of a Llama model of this shape. */
    public static ObjectNode hfConfig(ModelConfig c, String shapeName, DType dtype) {
        boolean llama3 = shapeName.startsWith("llama-3");
        ObjectNode n = JSON.createObjectNode();
        n.putArray("architectures").add("LlamaForCausalLM");
        n.put("model_type", "llama");
        n.put("torch_dtype", switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        });
        n.put("hidden_size", c.dim());
        n.put("intermediate_size", c.hiddenDim());
        n.put("num_hidden_layers", c.nLayers());
        n.put("num_attention_heads", c.nHeads());
        n.put("num_key_value_heads", c.nKvHeads());
        n.put("head_dim", c.headSize());
        n.put("vocab_size", c.vocabSize());
        n.put("max_position_embeddings", c.contextLength());
        n.put("rope_theta", exact(c.ropeTheta()));
        n.put("rms_norm_eps", exact(c.rmsEps()));
        n.put("tie_word_embeddings", c.tiedEmbeddings());
        if (c.ropeScaling() == null) {
            n.putNull("rope_scaling");
        } else {
            ModelConfig.RopeScaling s = c.ropeScaling();
            n.putObject("rope_scaling")
                    .put("rope_type", "llama3")
                    .put("factor", exact(s.factor()))
                    .put("low_freq_factor", exact(s.lowFreqFactor()))
                    .put("high_freq_factor", exact(s.highFreqFactor()))
                    .put("original_max_position_embeddings", s.originalContextLength());
        }
        n.put("bos_token_id", llama3 ? 128000 : 1);
        n.put("eos_token_id", llama3 ? 128001 : 2);
        n.put("hidden_act", "silu");
        n.put("attention_bias", false);
        n.put("attention_dropout", 0.0);
        n.put("mlp_bias", false);
        n.put("initializer_range", RandomWeights.STD);
        n.put("pretraining_tp", 1);
        n.put("use_cache", true);
        return n;
    }
}
