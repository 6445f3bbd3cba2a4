package sps2.model.shapes;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

import sps2.model.ModelConfig;

/**
 * Named model shapes for random-weight checkpoints: real architectures (for performance work, where
 * speed does not depend on the weight values) and a tiny one for tests.
 */
public final class ModelShapes {
    private ModelShapes() {
    }

    private static final Map<String, ModelConfig> SHAPES = new LinkedHashMap<>();

    static {
        // Llama 3.2 1B: 16 x (32 q heads, 8 kv heads, head 64), FFN 8192, 128256 tokens, tied head.
        SHAPES.put("llama-3.2-1b", new ModelConfig(2048, 8192, 16, 32, 8, 128256, 131072, 500000f, 1e-5f, true,
                new ModelConfig.RopeScaling(32f, 1f, 4f, 8192)));
        // TinyStories models of llama2.c.
        SHAPES.put("stories15m", new ModelConfig(288, 768, 6, 6, 6, 32000, 256, 10000f, 1e-5f, true, null));
        SHAPES.put("stories260k", new ModelConfig(64, 172, 5, 8, 4, 512, 512, 10000f, 1e-5f, true, null));
        // Test shape: grouped-query attention and an untied output head, small enough for unit tests.
        SHAPES.put("tiny", new ModelConfig(64, 160, 2, 4, 2, 256, 128, 10000f, 1e-5f, false, null));
    }

    /** The configuration of the shape called {@code name}. */
    public static ModelConfig get(String name) {
        ModelConfig config = SHAPES.get(name);
        if (config == null) {
            throw new IllegalArgumentException("Unknown model shape '" + name + "'; known shapes are " + SHAPES.keySet());
        }
        return config;
    }

    /** Names of all shapes, in a stable order. */
    public static Set<String> names() {
        return java.util.Collections.unmodifiableSet(SHAPES.keySet());
    }
}
