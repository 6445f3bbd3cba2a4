package sps2.model.llama2c;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import sps2.model.DType;
import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelFormatException;
import sps2.model.ModelWeights;

/**
 * Karpathy's llama2.c fp32 checkpoints, memory-mapped tensor by tensor. Both layouts store per-kind stacks
 * over all layers (all wq, then all wk, ...); RoPE theta is 10000, RMSNorm epsilon 1e-5.
 *
 * <pre>
 * legacy (v0): int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: own classifier), seq_len
 *              tok_embeddings, attention_norm[L], wq[L], wk[L], wv[L], wo[L], ffn_norm[L], w1[L], w2[L], w3[L], norm,
 *              freq_cis_real, freq_cis_imag (seq_len*head_size/2 floats each, unused), [output]
 * v1:          uint32 magic 0x616b3432 ("ak42"), int32 version 1, the 7 int32 above (vocab positive),
 *              uint8 shared_classifier, zero padding to 256 bytes,
 *              attention_norm[L], ffn_norm[L], norm, tok_embeddings, wq[L], wk[L], wv[L], wo[L], w1[L], w2[L], w3[L], [output]
 * </pre>
 */
public final class Llama2cCheckpoint {

    public static final int MAGIC_V1 = 0x616b3432;
    private static final int V1_HEADER_BYTES = 256;
    private static final int V0_HEADER_BYTES = 28;
    private static final int MAX_DIM = 1 << 24;

    private Llama2cCheckpoint() {
    }

    /** The 7 hyper-parameters of either version's header. */
    record Header(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads, int vocabSize, int seqLen, boolean shared) {

        boolean plausible() {
            return dim > 0 && dim <= MAX_DIM && hiddenDim > 0 && hiddenDim <= MAX_DIM && nLayers > 0 && nLayers <= 4096
                    && nHeads > 0 && nHeads <= dim && dim % nHeads == 0 && nKvHeads > 0 && nKvHeads <= nHeads && nHeads % nKvHeads == 0
                    && (dim / nHeads) % 2 == 0 && vocabSize > 0 && vocabSize <= MAX_DIM && seqLen > 0 && seqLen <= MAX_DIM;
        }

        int headSize() {
            return dim / nHeads;
        }

        int kvDim() {
            return nKvHeads * headSize();
        }

        /** Float count of the weights one layer holds, all kinds together. */
        long layerFloats() {
            return 2L * dim + (long) dim * dim * 2 + (long) kvDim() * dim * 2 + 3L * hiddenDim * dim;
        }

        long bytes(boolean v1) {
            long floats = (long) vocabSize * dim + nLayers * layerFloats() + dim + (shared ? 0 : (long) vocabSize * dim);
            if (!v1) {
                floats += (long) seqLen * headSize(); // freq_cis_real + freq_cis_imag, seq_len*head_size/2 each
            }
            return (v1 ? V1_HEADER_BYTES : V0_HEADER_BYTES) + 4 * floats;
        }

        ModelConfig config() {
            return new ModelConfig(dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, 10000f, 1e-5f, shared, null);
        }
    }

    /** Whether the file starts with the v1 magic number. */
    public static boolean hasV1Magic(ByteBuffer start) {
        return start.remaining() >= 4 && start.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(start.position()) == MAGIC_V1;
    }

    /**
     * Whether the first 28 bytes read as a plausible legacy header (positive sizes within bounds, heads dividing
     * the width): the legacy format has no magic number, so this is how it is recognised. {@link #load} then
     * checks the size the header implies against the file's, so a truncated legacy file is reported as such.
     */
    public static boolean looksLikeV0(ByteBuffer start) {
        return start.remaining() >= V0_HEADER_BYTES && readV0(start).plausible();
    }

    /** Loads either version, choosing by the magic number. */
    public static ModelWeights load(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            ByteBuffer head = ByteBuffer.allocate((int) Math.min(size, V1_HEADER_BYTES)).order(ByteOrder.LITTLE_ENDIAN);
            while (head.hasRemaining() && ch.read(head, head.position()) > 0) {
                // read fully
            }
            head.flip();
            boolean v1 = hasV1Magic(head);
            Header h;
            if (v1) {
                if (size < V1_HEADER_BYTES) {
                    throw new ModelFormatException("The llama2.c checkpoint " + path + " is truncated: it has " + size + " bytes, fewer than its 256-byte header.");
                }
                int version = head.getInt(4);
                if (version != 1) {
                    throw new ModelFormatException("The llama2.c checkpoint " + path + " has version " + version
                            + "; only version 1 (fp32) and the legacy format are supported.");
                }
                head.position(8);
                h = readHeader(head, head.get(36) != 0, false);
            } else {
                if (size < V0_HEADER_BYTES) {
                    throw new ModelFormatException("The file " + path + " is too short (" + size + " bytes) to be a model.");
                }
                h = readV0(head);
            }
            if (!h.plausible()) {
                throw new ModelFormatException("The file " + path + " is not a recognised model: its header " + h + " is not a valid llama2.c header.");
            }
            long expected = h.bytes(v1);
            if (expected != size) {
                throw new ModelFormatException("The llama2.c checkpoint " + path + (expected > size ? " is truncated" : " has trailing data")
                        + ": its header describes " + expected + " bytes but the file has " + size + ".");
            }
            ModelConfig config = h.config();
            Map<String, HostTensor> tensors = v1 ? layoutV1(new Cursor(path, ch, V1_HEADER_BYTES), config) : layoutV0(new Cursor(path, ch, V0_HEADER_BYTES), config);
            return new ModelWeights(config, tensors, path.toString());
        } catch (NoSuchFileException e) {
            throw new ModelFormatException("The model file " + path + " does not exist.", e);
        } catch (IOException e) {
            throw new ModelFormatException("The model file " + path + " cannot be read: " + e.getMessage(), e);
        }
    }

    private static Header readV0(ByteBuffer b) {
        return readHeader(b.duplicate().order(ByteOrder.LITTLE_ENDIAN), true, true);
    }

    /** Reads the 7 int32 parameters; in the legacy format a negative vocab size means an own classifier. */
    private static Header readHeader(ByteBuffer b, boolean shared, boolean legacy) {
        int dim = b.getInt();
        int hidden = b.getInt();
        int layers = b.getInt();
        int heads = b.getInt();
        int kvHeads = b.getInt();
        int vocab = b.getInt();
        int seqLen = b.getInt();
        if (legacy) {
            shared = vocab > 0;
            vocab = Math.abs(vocab);
        }
        return new Header(dim, hidden, layers, heads, kvHeads, vocab, seqLen, shared);
    }

    private static Map<String, HostTensor> layoutV0(Cursor c, ModelConfig p) {
        Map<String, HostTensor> t = new LinkedHashMap<>();
        c.next(t, "tok_embeddings", p.vocabSize(), p.dim());
        c.stack(t, p, "attention_norm", p.dim());
        c.stack(t, p, "wq", p.dim(), p.dim());
        c.stack(t, p, "wk", p.kvDim(), p.dim());
        c.stack(t, p, "wv", p.kvDim(), p.dim());
        c.stack(t, p, "wo", p.dim(), p.dim());
        c.stack(t, p, "ffn_norm", p.dim());
        c.stack(t, p, "w1", p.hiddenDim(), p.dim());
        c.stack(t, p, "w2", p.dim(), p.hiddenDim());
        c.stack(t, p, "w3", p.hiddenDim(), p.dim());
        c.next(t, "norm", p.dim());
        c.skipFloats((long) p.contextLength() * p.headSize()); // freq_cis_real and freq_cis_imag
        if (!p.tiedEmbeddings()) {
            c.next(t, "output", p.vocabSize(), p.dim());
        }
        return t;
    }

    private static Map<String, HostTensor> layoutV1(Cursor c, ModelConfig p) {
        Map<String, HostTensor> t = new LinkedHashMap<>();
        c.stack(t, p, "attention_norm", p.dim());
        c.stack(t, p, "ffn_norm", p.dim());
        c.next(t, "norm", p.dim());
        c.next(t, "tok_embeddings", p.vocabSize(), p.dim());
        c.stack(t, p, "wq", p.dim(), p.dim());
        c.stack(t, p, "wk", p.kvDim(), p.dim());
        c.stack(t, p, "wv", p.kvDim(), p.dim());
        c.stack(t, p, "wo", p.dim(), p.dim());
        c.stack(t, p, "w1", p.hiddenDim(), p.dim());
        c.stack(t, p, "w2", p.dim(), p.hiddenDim());
        c.stack(t, p, "w3", p.hiddenDim(), p.dim());
        if (!p.tiedEmbeddings()) {
            c.next(t, "output", p.vocabSize(), p.dim());
        }
        return t;
    }

    /** Walks the file from the header on, mapping one fp32 tensor at a time. */
    private static final class Cursor {
        private final Path path;
        private final FileChannel ch;
        private long offset;

        Cursor(Path path, FileChannel ch, long offset) {
            this.path = path;
            this.ch = ch;
            this.offset = offset;
        }

        void next(Map<String, HostTensor> out, String name, long... shape) {
            long bytes = DType.F32.byteSize(HostTensor.elementCount(shape));
            if (bytes > Integer.MAX_VALUE) {
                throw new ModelFormatException("The tensor " + name + " in " + path + " takes " + bytes + " bytes, more than the 2 GB one mapping can hold.");
            }
            try {
                if (offset + bytes > ch.size()) {
                    throw new ModelFormatException("The llama2.c checkpoint " + path + " is truncated: tensor " + name + " needs " + bytes
                            + " bytes at offset " + offset + " but the file ends at " + ch.size() + ".");
                }
                out.put(name, new HostTensor(name, DType.F32, shape, ch.map(FileChannel.MapMode.READ_ONLY, offset, bytes)));
            } catch (IOException e) {
                throw new ModelFormatException("The tensor " + name + " of " + path + " cannot be mapped: " + e.getMessage(), e);
            }
            offset += bytes;
        }

        /** One tensor of the given per-layer shape for each layer, stored back to back. */
        void stack(Map<String, HostTensor> out, ModelConfig p, String kind, long... shape) {
            for (int l = 0; l < p.nLayers(); l++) {
                next(out, "layers." + l + "." + kind, shape);
            }
        }

        void skipFloats(long n) {
            offset += 4 * n;
        }
    }
}
