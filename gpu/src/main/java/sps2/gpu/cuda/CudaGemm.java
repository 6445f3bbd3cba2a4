package sps2.gpu.cuda;

import static sps2.gpu.cuda.CudaChecks.t;
import static sps2.gpu.cuda.GemmPlanner.blocks;

import sps2.gpu.Tensor;

/**
 * Launches the products that {@link GemmPlanner} plans (gemm.cu, gemm_sm90a.cu), with their split-K workspace,
 * and the multi-weight GEMV of decode steps.
 */
final class CudaGemm {
    private final CudaMemory memory;
    private final CudaDevice device;
    private final CudaKernels kernels;

    CudaGemm(CudaMemory memory, CudaDevice device, CudaKernels kernels) {
        this.memory = memory;
        this.device = device;
        this.kernels = kernels;
    }

    /** Launches {@code p} for out[n, nOut] = x[n, k] * w[nOut, k]^T (the shapes are checked by the caller). */
    void run(Tensor out, Tensor x, Tensor w, int n, GemmPlanner.Plan p) {
        CudaTensor o = t(out), xx = t(x), ww = t(w);
        int nOut = ww.rows(), k = ww.cols();
        switch (p.form()) {
            case SIMPLE -> kernels.launch(p.function(), p.gx(), p.gy(), p.gz(), p.threads(), p.smem(), o.ptr(), o.dtype().code, xx.ptr(),
                    xx.dtype().code, ww.ptr(), n, nOut, k);
            case GEMV -> kernels.launch(p.function(), p.gx(), p.gy(), p.gz(), p.threads(), p.smem(), o.ptr(), o.dtype().code, xx.ptr(),
                    ww.ptr(), n, nOut, k);
            case TMA -> {
                // cuTensorMapEncodeTiled needs this device's context current on the calling thread (CUresult 201 otherwise,
                // seen on a shard thread whose first device call was this product).
                device.stream();
                byte[] mapA = TensorMaps.bf16Rows(xx.ptr(), n, k, p.tile().bm(), 64);
                byte[] mapB = TensorMaps.bf16Rows(ww.ptr(), nOut, k, p.tile().bn(), 64);
                kernels.launch(p.function(), p.gx(), p.gy(), p.gz(), p.threads(), p.smem(), o.ptr(), o.dtype().code, mapA, mapB, n, nOut, k,
                        p.kTilesPerBlock());
            }
            case PAIR -> kernels.launch(p.function(), p.gx(), p.gy(), p.gz(), p.threads(), p.smem(), o.ptr(), o.dtype().code, null, xx.ptr(),
                    ww.ptr(), n, nOut, k, p.kTilesPerBlock());
            case TILED -> {
                int splits = p.splits();
                if (splits == 1) {
                    kernels.launch(p.function(), p.gx(), p.gy(), p.gz(), p.threads(), p.smem(), o.ptr(), o.dtype().code, null, xx.ptr(),
                            ww.ptr(), n, nOut, k, p.kTilesPerBlock());
                } else {
                    // float32 partial sums [splits, n * nOut], added into out by splitk_reduce
                    long mn = (long) n * nOut;
                    try (CudaTensor ws = memory.allocate(splits, (int) mn, CudaTensor.DType.F32)) {
                        kernels.launch(p.function(), p.gx(), p.gy(), p.gz(), p.threads(), p.smem(), o.ptr(), o.dtype().code, ws.ptr(),
                                xx.ptr(), ww.ptr(), n, nOut, k, p.kTilesPerBlock());
                        kernels.launch("splitk_reduce", blocks(mn, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, ws.ptr(), splits, mn);
                    }
                }
            }
            default -> throw new IllegalStateException("No launch for " + p.form());
        }
    }

    /**
     * Decode-sized products of one input x [n, k] (n at most 8, bf16, k % 8 == 0) with two or three weights of
     * width k in one gemv_multi launch; false (and nothing launched) when the products do not fit it.
     */
    boolean multi(Tensor[] outs, Tensor x, Tensor[] ws, int n) {
        CudaTensor xx = t(x);
        boolean one = outs.length >= 2 && outs.length <= 3 && n >= 1 && n <= 8 && xx.dtype() == CudaTensor.DType.BF16 && xx.cols() % 8 == 0;
        int total = 0;
        for (int i = 0; one && i < outs.length; i++) {
            CudaTensor o = t(outs[i]), w = t(ws[i]);
            one = w.dtype() == CudaTensor.DType.BF16 && w.cols() == xx.cols() && o.cols() == w.rows() && o.rows() >= n
                    && o.dtype() == t(outs[0]).dtype();
            total += w.rows();
        }
        if (!one) {
            return false;
        }
        int nb = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
        CudaTensor o0 = t(outs[0]), o1 = t(outs[1]), o2 = outs.length > 2 ? t(outs[2]) : null;
        CudaTensor w0 = t(ws[0]), w1 = t(ws[1]), w2 = outs.length > 2 ? t(ws[2]) : null;
        kernels.launch("gemv_multi_" + nb, blocks(total, 8), 1, 1, 256, 0, o0.ptr(), o1.ptr(), o2 == null ? null : o2.ptr(), o0.dtype().code,
                xx.ptr(), w0.ptr(), w1.ptr(), w2 == null ? null : w2.ptr(), n, w0.rows(), w1.rows(), w2 == null ? 0 : w2.rows(), xx.cols());
        return true;
    }
}
