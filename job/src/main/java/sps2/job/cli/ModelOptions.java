package sps2.job.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.DoubleConsumer;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Option;
import sps2.gpu.Backend;
import sps2.gpu.LlamaModel;
import sps2.job.UserException;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.tokenizer.Tokenizer;
import sps2.model.tokenizer.Tokenizers;
import sps2.operators.JobSettings;

/** Options shared by the commands that load a model. */
public final class ModelOptions {
    @Option(names = "--model", required = true, description = "Model checkpoint: GGUF, llama2.c .bin, or safetensors (directory or file with config.json).")
    public Path model;

    @Option(names = "--tokenizer", description = "Tokenizer file (llama2.c tokenizer.bin); default: the GGUF's vocabulary or a tokenizer next to the model.")
    public Path tokenizer;

    @Option(names = "--backend", description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    public String backend = "cpu";

    @Option(names = "--kernels", description = "CUDA kernels: invariant (a row's bits independent of its batch) or fast (default: ${DEFAULT-VALUE}).")
    public String kernels = "fast";

    @Option(names = "--threads", description = "CPU backend threads (0 = all cores).")
    public int threads = 0;

    /** Reads the current option of a plain line into these fields (QuickArgs); Unclear if it is not one of them. */
    void quick(QuickArgs a) throws QuickArgs.Unclear {
        switch (a.name()) {
            case "--model" -> model = a.path();
            case "--tokenizer" -> tokenizer = a.path();
            case "--backend" -> backend = a.string();
            case "--threads" -> threads = a.integer();
            case "--kernels" -> kernels = a.string();
            default -> throw new QuickArgs.Unclear();
        }
    }

    public ModelWeights loadWeights() {
        if (!Files.exists(model)) {
            throw new UserException("The model file " + model + " does not exist.");
        }
        return ModelLoader.load(model);
    }

    public Tokenizer loadTokenizer(ModelWeights weights) {
        if (tokenizer != null && !Files.exists(tokenizer)) {
            throw new UserException("The tokenizer file " + tokenizer + " does not exist.");
        }
        return Tokenizers.forModel(model, tokenizer, weights);
    }

    public Backend openBackend() {
        return JobSettings.BackendKind.parse(backend).open(0, threads, JobSettings.Kernels.parse(kernels));
    }

    /** Uploads the weights with a progress bar on stderr when the model is large enough to wait for. */
    public static LlamaModel upload(Backend backend, ModelWeights weights) {
        long params = 0;
        for (var t : weights.tensors().values()) {
            params += t.size();
        }
        if (params < 50_000_000) {
            return new LlamaModel(backend, weights, null);
        }
        try (ProgressBar bar = new ProgressBarBuilder().setTaskName("Loading model").setInitialMax(100)
                .setStyle(ProgressBarStyle.ASCII).setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(System.err)).build()) {
            DoubleConsumer progress = f -> bar.stepTo(Math.round(f * 100));
            return new LlamaModel(backend, weights, progress);
        }
    }
}
