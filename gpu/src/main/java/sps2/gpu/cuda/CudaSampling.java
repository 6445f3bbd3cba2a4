package sps2.gpu.cuda;

import static sps2.gpu.cuda.CudaChecks.need;
import static sps2.gpu.cuda.CudaChecks.t;

import java.util.concurrent.atomic.LongAdder;
import sps2.gpu.HostSampling;
import sps2.gpu.Tensor;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * Sampling on the device (sample.cu): argmax, and sample_rows, which draws each row's token as the Sampler does
 * and leaves to the host Sampler the rows it cannot be sure of, so that the tokens, and the exception for a bad
 * row, are always the Sampler's.
 */
final class CudaSampling {
    /** What sample_rows writes for a row it leaves to the host: invalid logits (the Sampler raises), or undecided. */
    static final int SAMPLE_INVALID = -1;
    static final int SAMPLE_UNDECIDED = -2;
    /** sample_rows' dynamic shared memory: histogram counts and mantissa sums (2048 bins), 8192 candidate keys. */
    static final int SAMPLE_SMEM = 2048 * (4 + 8) + 8192 * 8;

    private final CudaBackend backend;
    private final CudaKernels kernels;
    private final LongAdder hostSampledRows = new LongAdder();

    CudaSampling(CudaBackend backend, CudaKernels kernels) {
        this.backend = backend;
        this.kernels = kernels;
    }

    /** ids[i] = argmax of logits row i (lowest index on ties), on the device. */
    void argmax(Tensor ids, Tensor logits, int n) {
        CudaTensor id = t(ids), lg = t(logits);
        need(id.isInt() && id.rows() * id.cols() >= n, "argmax: ids must be an integer tensor of at least n values");
        if (n > 0) {
            kernels.launch("argmax_rows", n, 1, 1, 1024, 0, id.ptr(), lg.ptr(), lg.dtype().code, lg.cols());
        }
    }

    /** {@link CudaBackend#sample} with the kernel's comparison margin scaled (tests: 0 and +infinity). */
    int[] sample(Tensor logits, int n, SamplingParams[] params, int[] positions, float marginScale) {
        return onHost(sampleCodes(logits, n, params, positions, marginScale), logits, n, params, positions);
    }

    /** The tokens of a recorded sample_rows launch ({@link #sampleOnDevice}) in {@code ids}. */
    int[] takeSampled(Tensor ids, Tensor logits, int n, SamplingParams[] params, int[] positions) {
        return onHost(backend.readInts(ids, n), logits, n, params, positions);
    }

    /** Rows the kernel left to the host (or with a negative position) sampled by the Sampler, in place. */
    private int[] onHost(int[] ids, Tensor logits, int n, SamplingParams[] params, int[] positions) {
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || positions[i] < 0) {
                hostSampledRows.increment();
                ids[i] = HostSampling.sampleRow(backend, logits, i, params[i], positions[i]);
            }
        }
        return ids;
    }

    long hostSampledRows() {
        return hostSampledRows.sum();
    }

    /**
     * The kernel's answer per row: a token id, {@link #SAMPLE_INVALID} or {@link #SAMPLE_UNDECIDED}. A negative
     * position is sampled as position 0 here (the caller raises the Sampler's error for it).
     */
    int[] sampleCodes(Tensor logits, int n, SamplingParams[] params, int[] positions, float marginScale) {
        HostSampling.check(logits, n, params, positions);
        CudaTensor lg = t(logits);
        if (n == 0) {
            return new int[0];
        }
        try (CudaTensor packed = (CudaTensor) backend.upload(sampleParams(n, params, positions));
                CudaTensor ids = backend.allocate(1, n, CudaTensor.DType.I32)) {
            sampleOnDevice(ids, lg, n, packed, marginScale);
            return backend.readInts(ids, n);
        }
    }

    /**
     * sample_rows' parameters, 6 ints per row: bits of 1/T as the Sampler computes it in float (+infinity when
     * greedy), top-k, bits of top-p, bits of min-p, and the draw u = Sampler.uniform(seed, position) as a double
     * (low word first).
     */
    static int[] sampleParams(int n, SamplingParams[] params, int[] positions) {
        int[] packed = new int[6 * n];
        for (int i = 0; i < n; i++) {
            SamplingParams p = params[i];
            float invT = p.isGreedy() ? Float.POSITIVE_INFINITY : 1f / p.temperature();
            long u = Double.doubleToRawLongBits(Sampler.uniform(p.seed(), Math.max(0, positions[i])));
            packed[6 * i] = Float.floatToRawIntBits(invT);
            packed[6 * i + 1] = p.topK();
            packed[6 * i + 2] = Float.floatToRawIntBits(p.topP());
            packed[6 * i + 3] = Float.floatToRawIntBits(p.minP());
            packed[6 * i + 4] = (int) u;
            packed[6 * i + 5] = (int) (u >>> 32);
        }
        return packed;
    }

    /** Launches sample_rows: ids[i] = the kernel's answer for logits row i, with {@link #sampleParams} in {@code params}. */
    void sampleOnDevice(CudaTensor ids, CudaTensor logits, int n, CudaTensor params, float marginScale) {
        need(ids.isInt() && ids.rows() * ids.cols() >= n, "sample: ids must be an integer tensor of at least n values");
        need(!logits.isInt() && params.isInt() && params.rows() * params.cols() >= 6 * n, "sample: float logits and 6 parameter ints per row");
        if (n > 0) {
            kernels.launch("sample_rows", n, 1, 1, 1024, SAMPLE_SMEM, ids.ptr(), logits.ptr(), logits.dtype().code, logits.cols(), params.ptr(),
                    marginScale);
        }
    }
}
