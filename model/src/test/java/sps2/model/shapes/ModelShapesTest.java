package sps2.model.shapes;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import sps2.model.ModelConfig;

class ModelShapesTest {

    static long parameters(ModelConfig c) {
        return RandomWeights.specs(c).stream().mapToLong(RandomWeights.Spec::elements).sum();
    }

    @Test
    void llama32OneBHasTheParameterCountOfTheRealModel() {
        // Hugging Face reports 1,235,814,400 parameters for meta-llama/Llama-3.2-1B.
        assertEquals(1_235_814_400L, parameters(ModelShapes.get("llama-3.2-1b")));
        ModelConfig c = ModelShapes.get("llama-3.2-1b");
        assertEquals(64, c.headSize());
        assertEquals(4, c.groupSize());
    }

    @Test
    void unknownShapeNamesTheKnownOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelShapes.get("llama-70b"));
        assertTrue(e.getMessage().contains("llama-70b") && e.getMessage().contains("stories15m"), e.getMessage());
    }
}
