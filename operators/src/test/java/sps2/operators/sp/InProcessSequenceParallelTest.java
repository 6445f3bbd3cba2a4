package sps2.operators.sp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomWeights;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.placement.Segmenter;

class InProcessSequenceParallelTest {



    /** Dense SP prefill over any cut agrees with one-shard prefill: last logits within 1e-4, same greedy continuation. */
    @Test
    void denseSequenceParallelMatchesSingleShard() {
        ModelConfig c = ModelShapes.get("tiny").withContextLength(512);
        ModelWeights w = RandomWeights.generate(c, DType.F32, 5);
        int[] tokens = new SplittableRandom(9).ints(301, 3, c.vocabSize()).toArray();
        int[][] cuts = {{0, 301}, {0, 150, 301}, {0, 37, 38, 200, 301}, {0, 1, 2, 3, 301}, {0, 300, 301}};
        try (CpuBackend b = new CpuBackend(2); LlamaModel m = new LlamaModel(b, w, null)) {
            float[] ref;
            int[] refTokens = new int[20];
            try (Sequence s = new Sequence(m, 400, 512)) {
                ref = s.forward(tokens).clone();
                float[] logits = ref;
                for (int i = 0; i < refTokens.length; i++) {
                    refTokens[i] = LogitChecks.argmax(logits);
                    logits = s.forward(new int[] {refTokens[i]});
                }
            }
            for (int[] cut : cuts) {
                try (Sequence s = new Sequence(m, 400, 512)) {
                    InProcessSequenceParallel.Result r = InProcessSequenceParallel.prefill(m, tokens, cut, new CsaPolicy.Dense(), 300, s);
                    float[] last = r.logits()[0];
                    assertTrue(LogitChecks.relErr(last, ref) < 1e-4, java.util.Arrays.toString(cut) + ": " + LogitChecks.relErr(last, ref));
                    int[] got = new int[refTokens.length];
                    float[] logits = last;
                    for (int i = 0; i < got.length; i++) {
                        got[i] = LogitChecks.argmax(logits);
                        logits = s.forward(new int[] {got[i]});
                    }
                    assertArrayEquals(refTokens, got, java.util.Arrays.toString(cut));
                    assertEquals(r.denseBytes(), r.bytesSent());
                }
            }
        }
    }

    @Test
    void sparsePoliciesSendLessAndStridedCoversEveryTokenAcrossHeads() {
        ModelConfig c = ModelShapes.get("tiny").withContextLength(512);
        ModelWeights w = RandomWeights.generate(c, DType.F32, 6);
        int[] tokens = new SplittableRandom(10).ints(256, 3, c.vocabSize()).toArray();
        int[] cut = new Segmenter(c, 16).split(tokens.length, 4);
        try (CpuBackend b = new CpuBackend(2); LlamaModel m = new LlamaModel(b, w, null)) {
            long dense = InProcessSequenceParallel.prefill(m, tokens, cut, new CsaPolicy.Dense(), 255, null).bytesSent();
            long strided = InProcessSequenceParallel.prefill(m, tokens, cut, CsaPolicy.parse("strided:2"), 255, null).bytesSent();
            long window = InProcessSequenceParallel.prefill(m, tokens, cut, CsaPolicy.parse("sink-window:4:16"), 255, null).bytesSent();
            assertTrue(strided < dense && window < dense, dense + " " + strided + " " + window);
            // 2 KV heads, degree 2: each head gets the positions of one residue class, exactly half
            assertEquals(dense / 2, strided);
        }
    }
}
