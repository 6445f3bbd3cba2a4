package sps2.model.safetensors;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import sps2.model.HostTensor;

/**
 * How Hugging Face's Llama checkpoints name and lay out tensors, relative to our canonical names and
 * layout (see {@link sps2.model.ModelWeights}).
 *
 * <p>HF applies RoPE in the rotate-half form: within a head of size hs, element i pairs with element
 * i + hs/2. Meta's (and our) interleaved form pairs elements 2i and 2i+1. HF's conversion script
 * therefore permutes the rows of q_proj and k_proj, head by head:
 * <pre>
 *   HF row  h*hs + j*hs/2 + i   holds   interleaved row  h*hs + 2i + j     (i &lt; hs/2, j in {0, 1})
 * </pre>
 * so that both forms compute the same attention scores.
 */
public final class HfLlamaLayout {
    private HfLlamaLayout() {
    }

    private static final Pattern LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");

    /** The canonical name of an HF tensor, or null when the name is not one of a Llama model's weights. */
    public static String canonicalName(String hfName) {
        switch (hfName) {
            case "model.embed_tokens.weight":
                return "tok_embeddings";
            case "model.norm.weight":
                return "norm";
            case "lm_head.weight":
                return "output";
            default:
                break;
        }
        Matcher m = LAYER.matcher(hfName);
        if (!m.matches()) {
            return null;
        }
        String suffix = switch (m.group(2)) {
            case "input_layernorm.weight" -> "attention_norm";
            case "self_attn.q_proj.weight" -> "wq";
            case "self_attn.k_proj.weight" -> "wk";
            case "self_attn.v_proj.weight" -> "wv";
            case "self_attn.o_proj.weight" -> "wo";
            case "post_attention_layernorm.weight" -> "ffn_norm";
            case "mlp.gate_proj.weight" -> "w1";
            case "mlp.down_proj.weight" -> "w2";
            case "mlp.up_proj.weight" -> "w3";
            default -> null;
        };
        return suffix == null ? null : "layers." + Integer.parseInt(m.group(1)) + "." + suffix;
    }

    /** The HF name of a canonical tensor. */
    public static String hfName(String canonical) {
        switch (canonical) {
            case "tok_embeddings":
                return "model.embed_tokens.weight";
            case "norm":
                return "model.norm.weight";
            case "output":
                return "lm_head.weight";
            default:
                break;
        }
        Matcher m = Pattern.compile("layers\\.(\\d+)\\.(.+)").matcher(canonical);
        if (!m.matches()) {
            throw new IllegalArgumentException("'" + canonical + "' is not a canonical Llama tensor name");
        }
        String suffix = switch (m.group(2)) {
            case "attention_norm" -> "input_layernorm.weight";
            case "wq" -> "self_attn.q_proj.weight";
            case "wk" -> "self_attn.k_proj.weight";
            case "wv" -> "self_attn.v_proj.weight";
            case "wo" -> "self_attn.o_proj.weight";
            case "ffn_norm" -> "post_attention_layernorm.weight";
            case "w1" -> "mlp.gate_proj.weight";
            case "w2" -> "mlp.down_proj.weight";
            case "w3" -> "mlp.up_proj.weight";
            default -> throw new IllegalArgumentException("'" + canonical + "' is not a canonical Llama tensor name");
        };
        return "model.layers." + m.group(1) + "." + suffix;
    }

    /** Whether the canonical tensor is a query or key projection, whose rows HF permutes. */
    public static boolean isRopePermuted(String canonical) {
        return canonical.endsWith(".wq") || canonical.endsWith(".wk");
    }

    /** The HF row that holds interleaved row {@code row} of a q/k projection with heads of {@code headSize}. */
    public static int hfRow(int row, int headSize) {
        int head = row / headSize;
        int r = row % headSize;
        return head * headSize + (r & 1) * (headSize / 2) + (r >> 1);
    }

    /**
     * Copies an HF-layout q/k projection [heads*headSize, in] into a new heap tensor, same dtype, in the
     * interleaved layout.
     */
    public static HostTensor toInterleaved(HostTensor hf, String canonicalName, int headSize) {
        if (hf.shape().length != 2 || hf.rows() % headSize != 0) {
            throw new IllegalArgumentException("Tensor " + canonicalName + " of shape " + java.util.Arrays.toString(hf.shape())
                    + " is not a stack of heads of size " + headSize);
        }
        int rows = hf.rows();
        int rowBytes = Math.toIntExact(hf.dtype().byteSize(hf.cols()));
        ByteBuffer src = hf.data();
        int base = src.position();
        ByteBuffer dst = ByteBuffer.allocate(Math.multiplyExact(rows, rowBytes)).order(ByteOrder.LITTLE_ENDIAN);
        for (int row = 0; row < rows; row++) {
            dst.put(row * rowBytes, src, base + hfRow(row, headSize) * rowBytes, rowBytes);
        }
        return new HostTensor(canonicalName, hf.dtype(), hf.shape().clone(), dst);
    }
}
