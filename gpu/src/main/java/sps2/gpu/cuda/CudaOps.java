package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static sps2.gpu.cuda.CudaChecks.need;
import static sps2.gpu.cuda.CudaChecks.t;
import static sps2.gpu.cuda.GemmPlanner.blocks;

import sps2.gpu.KvPool;
import sps2.gpu.Tensor;

/**
 * The element-wise kernels of the CUDA backend (ops.cu): row copies with type conversion, fill, embedding,
 * RMS norm, RoPE, SwiGLU, residual adds and the KV pool's writes and reads. Every one reads and writes bfloat16
 * or float32 tensors (the dtype code travels with each pointer).
 */
final class CudaOps {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final CudaKernels kernels;

    CudaOps(CudaBackend backend, CudaDevice device, CudaKernels kernels) {
        this.backend = backend;
        this.device = device;
        this.kernels = kernels;
    }

    void copyRows(Tensor dst, int dstRow, Tensor src, int srcRow, int rows) {
        CudaTensor d = t(dst);
        CudaTensor s = t(src);
        need(d.cols() == s.cols(), () -> "copyRows needs tensors of equal width, got " + d.cols() + " and " + s.cols());
        need(dstRow + rows <= d.rows() && srcRow + rows <= s.rows(), "copyRows out of range");
        if (rows == 0) {
            return;
        }
        if (d.dtype() == s.dtype()) {
            cuMemcpyDtoDAsync(d.at(dstRow), s.at(srcRow), (long) rows * d.cols() * d.dtype().bytes, device.stream());
        } else {
            long total = (long) rows * d.cols();
            kernels.launch("convert", blocks(total, 256), 1, 1, 256, 0, d.at(dstRow), d.dtype().code, s.at(srcRow), s.dtype().code, total);
        }
    }

    /** Sets every element of a float tensor to {@code value} (tests poison outputs with NaN). */
    void fill(Tensor dst, float value) {
        CudaTensor d = t(dst);
        need(!d.isInt(), "fill() takes float tensors");
        long total = (long) d.rows() * d.cols();
        kernels.launch("fill", blocks(total, 256), 1, 1, 256, 0, d.ptr(), d.dtype().code, total, value);
    }

    void embed(Tensor out, Tensor table, Tensor tokens, int n) {
        CudaTensor o = t(out), tb = t(table), tk = t(tokens);
        need(tk.isInt() && o.cols() == tb.cols(), "embed: out width must equal the table width and tokens be integers");
        if (n > 0) {
            kernels.launch("embed", n, 1, 1, 256, 0, o.ptr(), o.dtype().code, tb.ptr(), tb.dtype().code, tk.ptr(), tb.cols());
        }
    }

    void rmsnorm(Tensor out, Tensor x, Tensor weight, int n, float eps) {
        CudaTensor o = t(out), xx = t(x), w = t(weight);
        need(o.cols() == xx.cols() && w.rows() * w.cols() == xx.cols(), "rmsnorm: widths differ");
        if (n > 0) {
            kernels.launch("rmsnorm", n, 1, 1, 256, 0, o.ptr(), o.dtype().code, xx.ptr(), xx.dtype().code, w.ptr(), w.dtype().code, xx.cols(), eps);
        }
    }

    void rope(Tensor x, int heads, int headSize, Tensor positions, Tensor invFreq, int n) {
        CudaTensor xx = t(x), p = t(positions), f = t(invFreq);
        need(xx.cols() >= heads * headSize && headSize % 2 == 0, "rope: x is narrower than heads * headSize");
        need(xx.cols() == heads * headSize, "rope: x must be exactly [n, heads * headSize]");
        need(p.isInt(), "rope: positions must be integers");
        long total = (long) n * heads * headSize / 2;
        if (total > 0) {
            kernels.launch("rope", blocks(total, 256), 1, 1, 256, 0, xx.ptr(), xx.dtype().code, heads, headSize, p.ptr(), f.ptr(), f.dtype().code,
                    total);
        }
    }

    void rope(Tensor q, int qHeads, Tensor k, int kHeads, int headSize, Tensor positions, Tensor invFreq, int n) {
        CudaTensor qq = t(q), kk = t(k), p = t(positions), f = t(invFreq);
        need(qq.cols() == qHeads * headSize && kk.cols() == kHeads * headSize && headSize % 2 == 0,
                "rope: q and k must be exactly [n, heads * headSize] with an even head size");
        need(p.isInt(), "rope: positions must be integers");
        long totalQ = (long) n * qHeads * headSize / 2;
        long totalK = (long) n * kHeads * headSize / 2;
        if (totalQ + totalK > 0) {
            kernels.launch("rope2", blocks(totalQ + totalK, 256), 1, 1, 256, 0, qq.ptr(), qq.dtype().code, qHeads, kk.ptr(), kk.dtype().code, kHeads,
                    headSize, p.ptr(), f.ptr(), f.dtype().code, totalQ, totalK);
        }
    }

    void addRmsnorm(Tensor out, Tensor x, Tensor y, Tensor weight, int n, float eps) {
        CudaTensor o = t(out), xx = t(x), yy = t(y), w = t(weight);
        need(o.cols() == xx.cols() && yy.cols() == xx.cols() && w.rows() * w.cols() == xx.cols(), "addRmsnorm: widths differ");
        if (n > 0) {
            kernels.launch("add_rmsnorm", n, 1, 1, 256, 0, o.ptr(), o.dtype().code, xx.ptr(), xx.dtype().code, yy.ptr(), yy.dtype().code, w.ptr(),
                    w.dtype().code, xx.cols(), eps);
        }
    }

    void swiglu(Tensor out, Tensor gate, Tensor up, int n) {
        CudaTensor o = t(out), g = t(gate), u = t(up);
        need(o.cols() == g.cols() && g.cols() == u.cols(), "swiglu: widths differ");
        long total = (long) n * o.cols();
        if (total > 0) {
            kernels.launch("swiglu", blocks(total, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, g.ptr(), g.dtype().code, u.ptr(), u.dtype().code, total);
        }
    }

    void add(Tensor x, Tensor y, int n) {
        CudaTensor a = t(x), b = t(y);
        need(a.cols() == b.cols(), "add: widths differ");
        long total = (long) n * a.cols();
        if (total > 0) {
            kernels.launch("add", blocks(total, 256), 1, 1, 256, 0, a.ptr(), a.dtype().code, b.ptr(), b.dtype().code, total);
        }
    }

    void kvWrite(KvPool pool, int layer, Tensor k, Tensor v, Tensor slots, int n) {
        CudaKvPool p = backend.kv(pool);
        CudaTensor kk = t(k), vv = t(v), s = t(slots);
        need(kk.cols() == p.kvDim() && vv.cols() == p.kvDim() && s.isInt(), "kvWrite: k and v must be [n, kvDim], slots integers");
        if (n > 0) {
            kernels.launch("kv_write", n, 1, 1, 128, 0, p.k(layer), p.v(layer), kk.ptr(), kk.dtype().code, vv.ptr(), vv.dtype().code, s.ptr(), p.kvDim());
        }
    }

    void kvRead(KvPool pool, int layer, Tensor slots, Tensor k, Tensor v, int n) {
        CudaKvPool p = backend.kv(pool);
        CudaTensor kk = t(k), vv = t(v), s = t(slots);
        need(kk.cols() == p.kvDim() && vv.cols() == p.kvDim() && s.isInt(), "kvRead: k and v must be [n, kvDim], slots integers");
        if (n > 0) {
            kernels.launch("kv_read", n, 1, 1, 128, 0, p.k(layer), p.v(layer), kk.ptr(), kk.dtype().code, vv.ptr(), vv.dtype().code, s.ptr(), p.kvDim());
        }
    }
}
