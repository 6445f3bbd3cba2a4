package sps2.bench.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.shapes.ModelShapes;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;
import sps2.model.shapes.RandomWeights;
import sps2.model.tokenizer.Tokenizers;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.placement.Segmenter;
import sps2.operators.sp.InProcessSequenceParallel;

/**
 * What sparse attention costs in accuracy: for each policy and SP degree, the bytes that cross shards
 * relative to dense, the KL divergence of the next-token distribution from dense over the prompt's last
 * positions, and how many of the greedy tokens generated afterwards agree with dense.
 */
@Command(name = "bench-accuracy", mixinStandardHelpOptions = true,
        description = "Accuracy and bytes of the sparse-attention policies against dense attention, per SP degree.")
public final class BenchAccuracyCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Models to measure (repeatable); default: ../shared/models/stories260K.gguf when present.")
    List<Path> models = new ArrayList<>();

    @Option(names = "--random-shape", defaultValue = "stories15m", description = "Also measure a random-weight model of this shape ('none' to skip; default: ${DEFAULT-VALUE}).")
    String randomShape;

    @Option(names = "--policies", split = ",", defaultValue = "dense,strided:2,strided:4,sink-window:64:256",
            description = "Policies (default: ${DEFAULT-VALUE}).")
    List<String> policies;

    @Option(names = "--sp-degrees", split = ",", defaultValue = "2,4", description = "SP degrees (default: ${DEFAULT-VALUE}).")
    List<Integer> degrees;

    @Option(names = "--prompt-tokens", defaultValue = "1500", description = "Prompt length (default: ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--positions", defaultValue = "256", description = "Last prompt positions compared by KL (default: ${DEFAULT-VALUE}).")
    int positions;

    @Option(names = "--generate", defaultValue = "256", description = "Greedy tokens generated and compared (default: ${DEFAULT-VALUE}).")
    int generate;

    @Override
    public Integer call() throws Exception {
        if (models.isEmpty()) {
            Path shared = Path.of(System.getProperty("sps2.root", "."), "..", "shared", "models", "stories260K.gguf");
            if (Files.exists(shared)) {
                models.add(shared.normalize());
            }
        }
        System.out.printf("Sparse attention vs dense: %d-token prompts, KL over the last %d prompt positions, %d greedy tokens after prefill%n",
                promptTokens, positions, generate);
        System.out.printf("%-22s %4s %-20s %12s %12s %12s %14s%n", "model", "SP", "policy", "bytes/dense", "mean KL", "max KL", "greedy agree");
        for (Path p : models) {
            ModelWeights w = ModelLoader.load(p);
            int[] prompt = storyPrompt(p, w);
            measure(p.getFileName().toString(), w, prompt);
        }
        if (!randomShape.equals("none")) {
            ModelConfig c = ModelShapes.get(randomShape);
            ModelWeights w = RandomWeights.generate(c.withContextLength(Math.max(c.contextLength(), promptTokens + generate + 1)), DType.F32, 7);
            int[] prompt = new SplittableRandom(11).ints(promptTokens, 3, c.vocabSize()).toArray();
            measure(randomShape + " (random)", w, prompt);
        }
        return 0;
    }

    /** A long natural prompt for a real model: story sentences, tokenized, cut to length. */
    private int[] storyPrompt(Path model, ModelWeights w) {
        String[] parts = {"Lily went to the park with her mom.", "She saw a big red ball and a small dog.", "The dog was happy and ran fast.",
                "Tom came to play with them.", "They laughed and played all day.", "Then it was time to go home.", "The sun was warm and bright."};
        StringBuilder b = new StringBuilder("Once upon a time");
        int[] ids;
        int i = 0;
        do {
            b.append(' ').append(parts[i++ % parts.length]);
            ids = Tokenizers.forModel(model, null, w).encode(b.toString(), true);
        } while (ids.length < promptTokens);
        return java.util.Arrays.copyOf(ids, promptTokens);
    }

    private void measure(String name, ModelWeights w, int[] prompt) {
        ModelConfig c = w.config();
        int total = prompt.length + generate;
        if (total > c.contextLength()) {
            System.out.printf("%-22s skipped: %d prompt + %d generated tokens exceed its context of %d%n", name, prompt.length, generate, c.contextLength());
            return;
        }
        int from = prompt.length - Math.min(positions, prompt.length);
        try (CpuBackend b = new CpuBackend(); LlamaModel m = new LlamaModel(b, w, null)) {
            float[][] dense;
            int[] denseTokens;
            try (Sequence s = new Sequence(m, total, 512)) {
                dense = InProcessSequenceParallel.prefill(m, prompt, new int[] {0, prompt.length}, new CsaPolicy.Dense(), from, s).logits();
                denseTokens = greedy(s, dense[dense.length - 1]);
            }
            for (int degree : degrees) {
                int[] bounds = new Segmenter(c, 16).split(prompt.length, degree);
                for (String spec : policies) {
                    CsaPolicy policy = CsaPolicy.parse(spec);
                    try (Sequence s = new Sequence(m, total, 512)) {
                        InProcessSequenceParallel.Result r = InProcessSequenceParallel.prefill(m, prompt, bounds, policy, from, s);
                        double sum = 0;
                        double max = 0;
                        for (int i = 0; i < dense.length; i++) {
                            double kl = kl(dense[i], r.logits()[i]);
                            sum += kl;
                            max = Math.max(max, kl);
                        }
                        int[] tokens = greedy(s, r.logits()[r.logits().length - 1]);
                        int agree = 0;
                        for (int i = 0; i < tokens.length; i++) {
                            agree += tokens[i] == denseTokens[i] ? 1 : 0;
                        }
                        System.out.printf("%-22s %4d %-20s %12.3f %12.2e %12.2e %9d/%d%n", name, bounds.length - 1, policy.name(),
                                r.denseBytes() == 0 ? 1.0 : r.bytesSent() / (double) r.denseBytes(), sum / dense.length, max, agree, tokens.length);
                    }
                }
            }
        }
    }

    private int[] greedy(Sequence s, float[] first) {
        int[] out = new int[generate];
        float[] logits = first;
        Sampler sampler = new Sampler(first.length);
        for (int i = 0; i < generate; i++) {
            out[i] = sampler.sample(logits, 0, logits.length, SamplingParams.greedy(), s.length());
            if (i + 1 < generate) {
                logits = s.forward(new int[] {out[i]});
            }
        }
        return out;
    }


    /** KL(p || q) of the softmax distributions of two logit vectors, in nats. */
    static double kl(float[] p, float[] q) {
        double mp = Double.NEGATIVE_INFINITY;
        double mq = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < p.length; i++) {
            mp = Math.max(mp, p[i]);
            mq = Math.max(mq, q[i]);
        }
        double zp = 0;
        double zq = 0;
        for (int i = 0; i < p.length; i++) {
            zp += Math.exp(p[i] - mp);
            zq += Math.exp(q[i] - mq);
        }
        double lzp = Math.log(zp) + mp;
        double lzq = Math.log(zq) + mq;
        double kl = 0;
        for (int i = 0; i < p.length; i++) {
            double lp = p[i] - lzp;
            double lq = q[i] - lzq;
            kl += Math.exp(lp) * (lp - lq);
        }
        return Math.max(0, kl);
    }
}
