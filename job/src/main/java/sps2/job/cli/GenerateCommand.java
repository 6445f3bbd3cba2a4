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
import sps2.gpu.Generator;
import sps2.job.UserException;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.generation.StopRule;
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

    @Option(names = "--max-tokens", description = "Tokens to generate at most (default: ${DEFAULT-VALUE}).")
    int maxTokens = 256;

    @Option(names = "--temperature", description = "Sampling temperature; 0 = greedy (default: ${DEFAULT-VALUE}).")
    float temperature = 1.0f;

    @Option(names = "--top-p", description = "Nucleus sampling mass (default: ${DEFAULT-VALUE}).")
    float topP = 0.9f;

    @Option(names = "--top-k", description = "Top-k sampling; 0 disables it.")
    int topK = 0;

    @Option(names = "--min-p", description = "Min-p sampling; 0 disables it.")
    float minP = 0f;

    @Option(names = "--seed", description = "Sampling seed (default: ${DEFAULT-VALUE}).")
    long seed = 42;

    @Option(names = "--ignore-eos", description = "Keep generating past the end-of-sequence token.")
    boolean ignoreEos;

    @Option(names = "--ids", description = "Print the whole token id sequence (BOS and prompt included) on one line instead of text.")
    boolean ids;

    @Option(names = "--chunk", description = "Prefill chunk size in tokens.")
    int chunk = 512;

    /** This command from a plain line without picocli, or null when picocli must parse it (QuickArgs). */
    public static GenerateCommand quick(String[] args) {
        GenerateCommand c = new GenerateCommand();
        c.modelOptions = new ModelOptions();
        QuickArgs a = new QuickArgs(args);
        try {
            while (a.next()) {
                switch (a.name()) {
                    case "--prompt" -> c.prompt = a.string();
                    case "--prompt-file" -> c.promptFile = a.path();
                    case "--max-tokens" -> c.maxTokens = a.integer();
                    case "--temperature" -> c.temperature = a.floatValue();
                    case "--top-p" -> c.topP = a.floatValue();
                    case "--top-k" -> c.topK = a.integer();
                    case "--min-p" -> c.minP = a.floatValue();
                    case "--seed" -> c.seed = a.longValue();
                    case "--ignore-eos" -> c.ignoreEos = a.flag();
                    case "--ids" -> c.ids = a.flag();
                    case "--chunk" -> c.chunk = a.integer();
                    default -> c.modelOptions.quick(a);
                }
            }
            QuickArgs.required(c.modelOptions.model);
            return c;
        } catch (QuickArgs.Unclear e) {
            return null;
        }
    }

    @Override
    public Integer call() throws IOException {
        String text = promptText(prompt, promptFile);
        SamplingParams params = new SamplingParams(temperature, topK, topP, minP, seed);
        if (maxTokens < 0) {
            throw new UserException("--max-tokens must not be negative, got " + maxTokens + ".");
        }
        ModelWeights weights = modelOptions.loadWeights();
        System.err.println("Loaded " + weights.source() + ": " + weights.summary() + ".");
        Tokenizer tokenizer = modelOptions.loadTokenizer(weights);
        ModelConfig config = weights.config();
        int[] promptTokens = tokenizer.encode(text, true);
        if (promptTokens.length >= config.contextLength()) {
            throw new UserException("The prompt has " + promptTokens.length + " tokens but the model's context is " + config.contextLength()
                    + " tokens; shorten the prompt.");
        }
        int total = Math.min(config.contextLength(), promptTokens.length + maxTokens);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        try (Backend backend = modelOptions.openBackend(); LlamaModel model = ModelOptions.upload(backend, weights)) {
            StopRule stop = new StopRule(maxTokens, ignoreEos ? -1 : tokenizer.eos(), ignoreEos, Set.of(), List.of(), config.contextLength());
            TextStream stream = new TextStream(tokenizer, promptTokens[promptTokens.length - 1]);
            StringBuilder generated = new StringBuilder();
            if (!ids) {
                out.print(text);
            }
            long start = System.nanoTime();
            long[] firstToken = {0};
            int[] count = {0};
            int[] tokens = new Generator(model, chunk).generate(promptTokens, maxTokens, params, token -> {
                if (count[0] == 0) {
                    firstToken[0] = System.nanoTime();
                }
                String piece = stream.append(token);
                generated.append(piece);
                if (!ids) {
                    out.print(piece);
                }
                int index = count[0]++;
                return stop.after(token, index, promptTokens.length + index, generated) != StopRule.Reason.NONE;
            });
            long end = System.nanoTime();
            if (ids) {
                StringJoiner idLine = new StringJoiner(" ");
                for (int t : promptTokens) {
                    idLine.add(Integer.toString(t));
                }
                for (int t : tokens) {
                    idLine.add(Integer.toString(t));
                }
                out.println(idLine);
            } else {
                out.println();
            }
            System.err.printf("%d prompt tokens, %d generated; prefill+first token %.1f ms, decode %.1f tokens/s on %s%n",
                    promptTokens.length, tokens.length, (firstToken[0] - start) / 1e6,
                    tokens.length > 1 ? (tokens.length - 1) / ((end - firstToken[0]) / 1e9) : 0.0, backend.name());
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
