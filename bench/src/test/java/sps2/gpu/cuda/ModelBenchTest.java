package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import sps2.model.ModelConfig;
import sps2.model.shapes.ModelShapes;

/** The floor arithmetic of ModelBench (no GPU needed). */
class ModelBenchTest {

    @Test
    void parameterCountOfTheOneBillionShapeMatchesTheModelCard() {
        ModelConfig c = ModelShapes.get(ModelBench.SHAPE);
        // Llama 3.2 1B: 1,235,814,400 parameters = layer matrices + tied embedding table + 33 norm vectors.
        double norms = (2.0 * c.nLayers() + 1) * c.dim();
        assertEquals(1_235_814_400d, ModelBench.layerParams(c) + (double) c.vocabSize() * c.dim() + norms, 0.5);
        assertEquals(2 * (1_235_814_400d - norms), ModelBench.weightBytes(c), 0.5);
    }

    @Test
    void relativeErrorIsNanWhenTheOutputHasNan() {
        assertTrue(Double.isNaN(ModelBench.relErr(new float[] {1, Float.NaN}, new float[] {1, 2})));
        // |(0, 0.5)| / |(3, 4)| = 0.5 / 5
        assertEquals(0.1, ModelBench.relErr(new float[] {3, 4.5f}, new float[] {3, 4}), 1e-9);
    }
}
