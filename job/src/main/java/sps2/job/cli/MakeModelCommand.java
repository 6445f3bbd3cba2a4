package sps2.job.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sps2.job.UserException;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.llama2c.Llama2cWriter;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomWeights;
import sps2.model.shapes.RandomCheckpointWriter;

/** Writes a random-weight checkpoint of a real model shape, for performance work. */
@Command(name = "make-model", mixinStandardHelpOptions = true,
        description = "Write a random-weight checkpoint of a named model shape: safetensors + config.json, or a llama2.c file for the peers of bench-cpu.")
public final class MakeModelCommand implements Callable<Integer> {
    @Option(names = "--shape", required = true, description = "Model shape: ${COMPLETION-CANDIDATES}.", completionCandidates = Shapes.class)
    String shape;

    @Option(names = "--out", required = true, description = "Output directory.")
    Path out;

    @Option(names = "--dtype", description = "bf16 or f32 (default: ${DEFAULT-VALUE}).")
    String dtype = "bf16";

    @Option(names = "--seed", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed = 1;

    @Option(names = "--format", description = "safetensors, or llama2c: a legacy llama2.c fp32 file"
            + " (model.bin, for llama2.c's run.c and llama.cpp's llama-convert-llama2c-to-ggml; small shapes) (default: ${DEFAULT-VALUE}).")
    String format = "safetensors";

    /** This command from a plain line without picocli, or null when picocli must parse it (QuickArgs). */
    public static MakeModelCommand quick(String[] args) {
        MakeModelCommand c = new MakeModelCommand();
        QuickArgs a = new QuickArgs(args);
        try {
            while (a.next()) {
                switch (a.name()) {
                    case "--shape" -> c.shape = a.string();
                    case "--out" -> c.out = a.path();
                    case "--dtype" -> c.dtype = a.string();
                    case "--seed" -> c.seed = a.longValue();
                    case "--format" -> c.format = a.string();
                    default -> throw new QuickArgs.Unclear();
                }
            }
            QuickArgs.required(c.shape);
            QuickArgs.required(c.out);
            return c;
        } catch (QuickArgs.Unclear e) {
            return null;
        }
    }

    static final class Shapes extends java.util.ArrayList<String> {
        Shapes() {
            super(ModelShapes.names());
        }
    }

    @Override
    public Integer call() {
        if (!ModelShapes.names().contains(shape)) {
            throw new UserException("Unknown shape '" + shape + "'; known shapes: " + String.join(", ", ModelShapes.names()) + ".");
        }
        DType type = switch (dtype.toLowerCase()) {
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new UserException("Unknown dtype '" + dtype + "': use bf16 or f32.");
        };
        ModelConfig config = ModelShapes.get(shape);
        if (format.equals("llama2c")) {
            return writeLlama2c(config);
        }
        if (!format.equals("safetensors")) {
            throw new UserException("Unknown format '" + format + "': use safetensors or llama2c.");
        }
        Path file;
        try (ProgressBar bar = new ProgressBarBuilder().setTaskName("Writing " + shape).setUnit(" MB", 1 << 20).setInitialMax(1)
                .setStyle(ProgressBarStyle.ASCII).setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(System.err)).build()) {
            file = RandomCheckpointWriter.write(config, shape, out, type, seed, (done, total) -> {
                bar.maxHint(total);
                bar.stepTo(done);
            });
        }
        System.err.println("Wrote a random " + shape + " checkpoint (" + dtype + ", seed " + seed + ") to " + file.getParent() + ".");
        return 0;
    }

    /** The same weights as the safetensors checkpoint of this seed, in llama2.c's legacy fp32 layout. */
    private int writeLlama2c(ModelConfig config) {
        if (config.ropeScaling() != null || config.ropeTheta() != 10000f || (long) config.vocabSize() * config.dim() * config.nLayers() > 1L << 28) {
            throw new UserException("The llama2c format is for llama2.c-style shapes (RoPE theta 10000, no scaling, small); " + shape + " is not one.");
        }
        try {
            java.nio.file.Files.createDirectories(out);
        } catch (java.io.IOException e) {
            throw new UserException("Cannot create " + out + ": " + e.getMessage());
        }
        Path file = out.resolve("model.bin");
        Llama2cWriter.writeV0(RandomWeights.generate(config, DType.F32, seed), file);
        System.err.println("Wrote a random " + shape + " llama2.c checkpoint (f32, seed " + seed + ") to " + file + ".");
        return 0;
    }
}
