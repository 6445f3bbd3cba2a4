package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyPeerAsync;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;
import static sps2.gpu.cuda.CudaChecks.need;
import static sps2.gpu.cuda.CudaChecks.t;
import static sps2.gpu.cuda.GemmPlanner.blocks;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.function.Consumer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import sps2.gpu.Fence;
import sps2.gpu.PendingRead;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;

/**
 * The exchange between shards through page-locked host memory. {@link #readAsync} packs the selected pieces
 * with one gather on the calling thread's stream, then a copy stream of the same thread (waiting on an event
 * recorded after the gather) moves them to a page-locked buffer while the compute stream goes on. {@link #write}
 * stages host bytes in a page-locked buffer and copies them in on the compute stream. Both move the device's own
 * element type (WireType).
 */
final class CudaExchange {
    private final CudaBackend backend;
    private final CudaDevice device;
    private final CudaKernels kernels;
    private final PinnedPool pinned = new PinnedPool();
    private final ArrayDeque<CUevent> spareEvents = new ArrayDeque<>();

    CudaExchange(CudaBackend backend, CudaDevice device, CudaKernels kernels) {
        this.backend = backend;
        this.device = device;
        this.kernels = kernels;
    }

    // ---- hand-off between shards of one host: events and peer copies ----

    /** An event recorded on the calling thread's stream. */
    Fence fence() {
        CUstream stream = device.stream(); // first: it makes the device's context current on this thread
        CUevent e = new CUevent();
        cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        cuEventRecord(e, stream);
        return new CudaFence(e, backend);
    }

    /** The calling thread's stream waits for {@code fence} (a {@link CudaFence}, or {@link Fence#DONE}). */
    void await(Fence fence) {
        if (fence instanceof CudaFence f) {
            cuStreamWaitEvent(device.stream(), f.event, 0);
        } else if (fence != Fence.DONE) {
            throw new IllegalArgumentException("The CUDA backend cannot wait for " + fence);
        }
    }

    /** A copy on this device of another device's tensor, by peer access where the devices have it. */
    Tensor copyFrom(Tensor src) {
        CudaTensor s = t(src);
        if (s.owner() == backend) {
            throw new IllegalArgumentException("copyFrom: the tensor is already on " + backend.name());
        }
        CudaDevice from = s.owner().device();
        CUstream st = device.stream();
        device.enablePeerAccess(from);
        CudaTensor d = backend.allocate(s.rows(), s.cols(), s.dtype());
        cuMemcpyPeerAsync(d.ptr(), device.context, s.ptr(), from.context, s.bytes(), st);
        return d;
    }

    // ---- through page-locked host memory ----

    static CudaTensor.DType dtypeOf(WireType w) {
        return w == WireType.BF16 ? CudaTensor.DType.BF16 : CudaTensor.DType.F32;
    }

    PendingRead readAsync(Tensor[] sources, int width, int[] pieces) {
        need(sources.length > 0 && width > 0, "readAsync needs at least one source and a positive piece width");
        CudaTensor.DType dt = t(sources[0]).dtype();
        WireType type = backend.wireType(sources[0]);
        long total = (long) width * dt.bytes * pieces.length * sources.length;
        need(total <= Integer.MAX_VALUE - 8, () -> "readAsync: " + total + " bytes do not fit one host array");
        CudaTensor packed = pack(sources, width, pieces);
        CUstream s = device.stream();
        CUevent ready = event();
        cuEventRecord(ready, s);
        CUstream copy = device.copyStream();
        cuStreamWaitEvent(copy, ready, 0);
        spare(ready);
        PinnedPool.Buffer host = pinned.acquire(Math.max(total, 1));
        if (total > 0) {
            cuMemcpyDtoHAsync(host.ptr, packed.ptr(), total, copy);
        }
        CUevent done = event();
        cuEventRecord(done, copy);
        return new CudaRead(backend, type, (int) total, packed, host, done);
    }

    /**
     * Pieces {@code pieces} (of {@code width} elements) of each source, one after the other, gathered on this
     * thread's stream into a new tensor [sources.length * pieces.length, width].
     */
    CudaTensor pack(Tensor[] sources, int width, int[] pieces) {
        CudaTensor.DType dt = t(sources[0]).dtype();
        int lo = Integer.MAX_VALUE;
        int hi = Integer.MIN_VALUE;
        for (int p : pieces) {
            lo = Math.min(lo, p);
            hi = Math.max(hi, p);
        }
        for (Tensor src : sources) {
            CudaTensor c = t(src);
            need(c.dtype() == dt, () -> "gather: the sources hold different element types (" + dt + " and " + c.dtype() + ")");
            long count = (long) c.rows() * c.cols() / width;
            if (pieces.length > 0 && (lo < 0 || hi >= count)) {
                throw new IllegalArgumentException("gather: piece " + (lo < 0 ? lo : hi) + " of width " + width + " is outside a [" + c.rows()
                        + ", " + c.cols() + "] tensor");
            }
        }
        long pieceBytes = (long) width * dt.bytes;
        long perSource = pieces.length * pieceBytes;
        long total = perSource * sources.length;
        CUstream s = device.stream();
        CudaTensor packed = backend.allocate(Math.max(1, sources.length * pieces.length), width, dt);
        if (total > 0) {
            boolean run = true;
            for (int i = 1; i < pieces.length && run; i++) {
                run = pieces[i] == pieces[0] + i;
            }
            CudaTensor index = null;
            if (!run) {
                index = backend.allocate(1, pieces.length, CudaTensor.DType.I32);
                stageIn(index.ptr(), 4L * pieces.length, b -> b.order(ByteOrder.nativeOrder()).asIntBuffer().put(pieces));
            }
            int word = pieceBytes % 16 == 0 ? 16 : pieceBytes % 8 == 0 ? 8 : pieceBytes % 4 == 0 ? 4 : 2;
            long words = pieces.length * (pieceBytes / word);
            for (int i = 0; i < sources.length; i++) {
                CudaTensor src = t(sources[i]);
                CUdeviceptr to = packed.ptr().withByteOffset(i * perSource);
                if (run) {
                    cuMemcpyDtoDAsync(to, src.ptr().withByteOffset(pieces[0] * pieceBytes), perSource, s);
                } else {
                    kernels.launch("exchange_gather" + word, blocks(words, 256), 1, 1, 256, 0, to, src.ptr(), index.ptr(), (long) pieces.length,
                            (int) (pieceBytes / word));
                }
            }
            if (index != null) {
                index.close();
            }
        }
        return packed;
    }

    /** A {@link CudaRead} has landed: its device buffer, host buffer and event are free. */
    void readFinished(CudaTensor packed, PinnedPool.Buffer host, CUevent done) {
        device.stream();
        pinned.release(host, null);
        packed.close();
        spare(done);
    }

    /** Rows [dstRow, dstRow + rows) of dst from {@code src} bytes of {@code type}, converted on the device if dst's type differs. */
    void write(Tensor dst, int dstRow, WireType type, byte[] src, int srcOffset, int rows) {
        CudaTensor d = t(dst);
        need(!d.isInt(), "write() takes float tensors; upload integers with upload(int[])");
        need(dstRow >= 0 && rows >= 0 && dstRow + rows <= d.rows(), () -> "Writing rows " + dstRow + ".." + (dstRow + rows)
                + " into a tensor of " + d.rows() + " rows");
        long bytes = (long) rows * d.cols() * type.bytes();
        need(srcOffset >= 0 && srcOffset + bytes <= src.length, () -> "write: " + rows + " rows of " + d.cols() + " " + type + " values need "
                + bytes + " bytes from offset " + srcOffset + ", but the payload holds " + src.length);
        if (rows == 0) {
            return;
        }
        if (dtypeOf(type) == d.dtype()) {
            stageIn(d.at(dstRow), bytes, b -> b.put(src, srcOffset, (int) bytes));
        } else {
            try (CudaTensor wire = backend.allocate(rows, d.cols(), dtypeOf(type))) {
                stageIn(wire.ptr(), bytes, b -> b.put(src, srcOffset, (int) bytes));
                backend.copyRows(d, dstRow, wire, 0, rows);
            }
        }
    }

    /** Copies {@code bytes} bytes, written by {@code fill} into a page-locked buffer, to {@code dst} on this thread's stream. */
    void stageIn(CUdeviceptr dst, long bytes, Consumer<ByteBuffer> fill) {
        CUstream s = device.stream();
        PinnedPool.Buffer b = pinned.acquire(bytes);
        ByteBuffer view = b.bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        fill.accept(view);
        cuMemcpyHtoDAsync(dst, b.ptr, bytes, s);
        pinned.release(b, s);
    }

    /** Page-locked host memory held for exchange copies. */
    long pinnedBytes() {
        return pinned.reservedBytes();
    }

    private CUevent event() {
        synchronized (spareEvents) {
            CUevent e = spareEvents.poll();
            if (e != null) {
                return e;
            }
        }
        CUevent e = new CUevent();
        cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        return e;
    }

    private void spare(CUevent e) {
        synchronized (spareEvents) {
            spareEvents.push(e);
        }
    }

    /** close(): after every stream has been synchronised. */
    void close() {
        pinned.close();
        synchronized (spareEvents) {
            for (CUevent e : spareEvents) {
                cuEventDestroy(e);
            }
            spareEvents.clear();
        }
    }
}
