package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

import sps2.gpu.Generator;
import sps2.gpu.LlamaModel;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.generation.StopRule;
import sps2.model.sampler.SamplingParams;
import sps2.model.tokenizer.Tokenizer;
import sps2.model.tokenizer.Tokenizers;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/** The whole job on a real broker and a MiniCluster: every request gets exactly the tokens generate gives. */
class JobEndToEndTest extends JobTestBase {
    static GenerateRequest request(String id, String prompt, int maxTokens, float temperature, long seed) {
        return GenerateRequest.newBuilder().setRequestId(id).setPrompt(prompt).setMaxTokens(maxTokens).setTemperature(temperature)
                .setTopP(0.9f).setSeed(seed).build();
    }

    /** What single-process generation produces for a request (the reference). */
    static int[] reference(Path model, GenerateRequest r) {
        ModelWeights w = ModelLoader.load(model);
        Tokenizer tok = Tokenizers.forModel(model, null, w);
        int[] prompt = tok.encode(r.getPrompt(), true);
        SamplingParams p = new SamplingParams(r.getTemperature(), r.getTopK(), r.getTopP(), r.getMinP(), r.getSeed());
        StopRule stop = new StopRule(r.getMaxTokens(), r.getIgnoreEos() ? -1 : tok.eos(), r.getIgnoreEos(), java.util.Set.of(), List.of(),
                w.config().contextLength());
        try (CpuBackend b = new CpuBackend(1); LlamaModel m = new LlamaModel(b, w, null)) {
            int[] n = {0};
            return new Generator(m, 512).generate(prompt, r.getMaxTokens(), p, t -> {
                int i = n[0]++;
                return stop.after(t, i, prompt.length + i, "") != StopRule.Reason.NONE;
            });
        }
    }

    @Test
    void twentyConcurrentRequestsGetExactlyTheReferenceTokens() throws Exception {
        Path model = JobHarness.sharedModel("stories260K.gguf");
        String[] prompts = {"Once upon a time", "The little dog", "Lily and Tom went to the park", "One day", "The sun was"};
        List<GenerateRequest> requests = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            requests.add(request("r" + i, prompts[i % prompts.length], 8 + 3 * i, i % 3 == 0 ? 0f : 0.8f, 1000 + i));
        }
        try (JobHarness.RunningJob job = harness.new RunningJob(JobHarness.settings(model, "sps2", 1, "dense"), 0)) {
            requests.forEach(job::send);
            job.awaitFinished(requests.stream().map(GenerateRequest::getRequestId).toList(), Duration.ofMinutes(3));
            for (GenerateRequest r : requests) {
                assertArrayEquals(reference(model, r), job.tokens(r.getRequestId()), "request " + r.getRequestId());
            }
        }
    }
}
