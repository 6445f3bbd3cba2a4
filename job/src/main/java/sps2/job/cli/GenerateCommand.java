package sps2.job.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.StringJoiner;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import sps2.gpu.Backend;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.job.UserException;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.generation.StopRule;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;
import sps2.model.tokenizer.TextStream;
import sps2.model.tokenizer.Tokenizer;

/**
 * Single-process generation: the reference that every distributed mode is compared with. The token at
 * position p is drawn with randomness that depends only on (seed, p).
 */
@Command(name = "generate", mixinStandardHelpOptions = true, description = "Generate text from a prompt in this process (no Flink, no Kafka).")
public final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--prompt", description = "Prompt text.")
    String prompt;

    @Option(names = "--prompt-file", description = "Read the prompt text from a file.")
    Path promptFile;

    @Option(names = "--max-tokens", defaultValue = "256", description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "1.0", description = "Sampling temperature; 0 = greedy (default: ${DEFAULT-VALUE}).")
    float temperature;

    @Option(names = "--top-p", defaultValue = "0.9", description = "Nucleus sampling mass (default: ${DEFAULT-VALUE}).")
    float topP;

    @Option(names = "--top-k", defaultValue = "0", description = "Top-k sampling; 0 disables it.")
    int topK;

    @Option(names = "--min-p", defaultValue = "0", description = "Min-p sampling; 0 disables it.")
    float minP;

    @Option(names = "--seed", defaultValue = "42", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--ignore-eos", description = "Keep generating past the end-of-sequence token.")
    boolean ignoreEos;

    @Option(names = "--ids", description = "Print the whole token id sequence (BOS and prompt included) on one line instead of text.")
    boolean ids;

    @Option(names = "--chunk", defaultValue = "512", description = "Prefill chunk size in tokens.")
    int chunk;

    @Override
    public Integer call() throws IOException {
        String text = promptText(prompt, promptFile);
        SamplingParams params = new SamplingParams(temperature, topK, topP, minP, seed);
        if (maxTokens < 0) {
            throw new UserException("--max-tokens must not be negative, got " + maxTokens + ".");
        }
        ModelWeights weights = modelOptions.loadWeights();
        Tokenizer tokenizer = modelOptions.loadTokenizer(weights);
        ModelConfig config = weights.config();
        int[] promptTokens = tokenizer.encode(text, true);
        if (promptTokens.length >= config.contextLength()) {
            throw new UserException("The prompt has " + promptTokens.length + " tokens but the model's context is " + config.contextLength()
                    + " tokens; shorten the prompt.");
        }
        int total = Math.min(config.contextLength(), promptTokens.length + maxTokens);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        try (Backend backend = modelOptions.openBackend(); LlamaModel model = ModelOptions.upload(backend, weights);
                Sequence seq = new Sequence(model, total, chunk)) {
            Sampler sampler = new Sampler(config.vocabSize());
            StopRule stop = new StopRule(maxTokens, ignoreEos ? -1 : tokenizer.eos(), ignoreEos, Set.of(), List.of(), config.contextLength());
            TextStream stream = new TextStream(tokenizer, promptTokens[promptTokens.length - 1]);
            StringJoiner idLine = new StringJoiner(" ");
            for (int t : promptTokens) {
                idLine.add(Integer.toString(t));
            }
            if (!ids) {
                out.print(text);
            }
            long start = System.nanoTime();
            float[] logits = seq.forward(promptTokens);
            long firstToken = 0;
            StringBuilder generated = new StringBuilder();
            for (int i = 0; i < maxTokens && seq.length() < total; i++) {
                int position = seq.length();
                int token = sampler.sample(logits, 0, config.vocabSize(), params, position);
                if (i == 0) {
                    firstToken = System.nanoTime();
                }
                idLine.add(Integer.toString(token));
                String piece = stream.append(token);
                generated.append(piece);
                if (!ids) {
                    out.print(piece);
                }
                if (stop.after(token, i, position, generated) != StopRule.Reason.NONE || seq.length() + 1 > total) {
                    break;
                }
                logits = seq.forward(new int[] {token});
            }
            long end = System.nanoTime();
            if (ids) {
                out.println(idLine);
            } else {
                out.println();
            }
            int produced = seq.length() - promptTokens.length + 1;
            System.err.printf("%d prompt tokens, %d generated; prefill+first token %.1f ms, decode %.1f tokens/s on %s%n",
                    promptTokens.length, produced, (firstToken - start) / 1e6,
                    produced > 1 ? (produced - 1) / ((end - firstToken) / 1e9) : 0.0, backend.name());
        }
        return 0;
    }

    static String promptText(String prompt, Path promptFile) throws IOException {
        if ((prompt == null) == (promptFile == null)) {
            throw new UserException("Give exactly one of --prompt and --prompt-file.");
        }
        if (promptFile != null) {
            if (!Files.exists(promptFile)) {
                throw new UserException("The prompt file " + promptFile + " does not exist.");
            }
            return Files.readString(promptFile, StandardCharsets.UTF_8);
        }
        return prompt;
    }
}
