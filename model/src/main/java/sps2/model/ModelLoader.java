package sps2.model;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import sps2.model.gguf.GgufFile;
import sps2.model.gguf.GgufLlama;
import sps2.model.llama2c.Llama2cCheckpoint;
import sps2.model.safetensors.SafetensorsCheckpoint;

/**
 * Loads a Llama checkpoint whatever its format: GGUF (by its "GGUF" magic), llama2.c v1 (by its magic) or
 * legacy (by a plausible header, then checked against the file size), or safetensors (a directory with
 * config.json or *.safetensors files, a single .safetensors file, or a *.safetensors.index.json shard index).
 * The result's tensor shapes are checked against its config. Loading logs nothing: callers report what they
 * loaded ({@link ModelWeights#summary()}), so a command that needs no logging framework does not start one.
 */
public final class ModelLoader {

    public enum Format { GGUF, LLAMA2C, SAFETENSORS }

    private ModelLoader() {
    }

    public static ModelWeights load(Path path) {
        Format format = detect(path);
        ModelWeights weights = switch (format) {
            case GGUF -> GgufLlama.load(GgufFile.open(path));
            case LLAMA2C -> Llama2cCheckpoint.load(path);
            case SAFETENSORS -> loadSafetensors(path);
        };
        validate(weights);
        return weights;
    }

    /** The format of the file or directory at {@code path}, from its magic bytes or contents. */
    public static Format detect(Path path) {
        if (Files.isDirectory(path)) {
            if (Files.isRegularFile(path.resolve("config.json")) || containsSafetensors(path)) {
                return Format.SAFETENSORS;
            }
            throw new ModelFormatException("The directory " + path + " holds no model: a safetensors model needs config.json and *.safetensors files.");
        }
        if (!Files.isRegularFile(path)) {
            throw new ModelFormatException("The model file " + path + " does not exist.");
        }
        if (path.getFileName().toString().endsWith(".safetensors.index.json")) {
            return Format.SAFETENSORS;
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            ByteBuffer head = ByteBuffer.allocate((int) Math.min(size, 64)).order(ByteOrder.LITTLE_ENDIAN);
            while (head.hasRemaining() && ch.read(head, head.position()) > 0) {
                // read fully
            }
            head.flip();
            if (head.remaining() >= 4 && head.getInt(0) == GgufFile.MAGIC) {
                return Format.GGUF;
            }
            if (Llama2cCheckpoint.hasV1Magic(head)) {
                return Format.LLAMA2C;
            }
            if (head.remaining() >= 9) {
                long headerLength = head.getLong(0);
                if (headerLength > 1 && headerLength <= size - 8 && head.get(8) == '{') {
                    return Format.SAFETENSORS;
                }
            }
            if (Llama2cCheckpoint.looksLikeV0(head)) {
                return Format.LLAMA2C;
            }
            throw new ModelFormatException("The file " + path + " is not a recognised model (" + size
                    + " bytes): it is neither GGUF, nor a llama2.c checkpoint, nor safetensors.");
        } catch (IOException e) {
            throw new ModelFormatException("The model file " + path + " cannot be read: " + e.getMessage(), e);
        }
    }

    private static boolean containsSafetensors(Path dir) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, "*.safetensors")) {
            return files.iterator().hasNext();
        } catch (IOException e) {
            throw new ModelFormatException("The model directory " + dir + " cannot be listed: " + e.getMessage(), e);
        }
    }

    /** The safetensors loader reports problems as IllegalArgumentException or UncheckedIOException; users get ModelFormatException. */
    private static ModelWeights loadSafetensors(Path path) {
        try {
            return SafetensorsCheckpoint.load(path);
        } catch (ModelFormatException e) {
            throw e;
        } catch (IllegalArgumentException | UncheckedIOException e) {
            String message = e.getMessage() == null ? "The safetensors model " + path + " cannot be loaded" : e.getMessage();
            throw new ModelFormatException(message.endsWith(".") ? message : message + ".", e);
        }
    }

    /** Checks that every canonical tensor is there with the shape the config implies (see {@link ModelWeights}). */
    public static void validate(ModelWeights w) {
        ModelConfig c = w.config();
        int qDim = c.nHeads() * c.headSize();
        expect(w, "tok_embeddings", c.vocabSize(), c.dim());
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "layers." + l + ".";
            expect(w, p + "attention_norm", c.dim());
            expect(w, p + "wq", qDim, c.dim());
            expect(w, p + "wk", c.kvDim(), c.dim());
            expect(w, p + "wv", c.kvDim(), c.dim());
            expect(w, p + "wo", c.dim(), qDim);
            expect(w, p + "ffn_norm", c.dim());
            expect(w, p + "w1", c.hiddenDim(), c.dim());
            expect(w, p + "w2", c.dim(), c.hiddenDim());
            expect(w, p + "w3", c.hiddenDim(), c.dim());
        }
        expect(w, "norm", c.dim());
        if (c.tiedEmbeddings()) {
            if (w.tensors().containsKey("output")) {
                throw new ModelFormatException("The model " + w.source() + " is configured with tied embeddings but also has an output tensor.");
            }
        } else {
            expect(w, "output", c.vocabSize(), c.dim());
        }
    }

    private static void expect(ModelWeights w, String name, long... shape) {
        HostTensor t = w.tensors().get(name);
        if (t == null) {
            throw new ModelFormatException("The model " + w.source() + " lacks the tensor " + name + ".");
        }
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException("The model " + w.source() + " has tensor " + name + " of shape " + Arrays.toString(t.shape())
                    + " where its config implies " + Arrays.toString(shape) + ".");
        }
    }
}
