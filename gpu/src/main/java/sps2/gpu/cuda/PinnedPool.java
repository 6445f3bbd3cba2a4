package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventQuery;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;

/**
 * Page-locked host buffers for the exchange copies, recycled by size class (page-locking is slow: a few ms
 * per tens of MB). Copies from and to page-locked memory run on the copy engines while kernels run, and at
 * full link speed. A buffer given back while a copy from it is still queued remembers an event recorded
 * after that copy; it is handed out again only once the event has passed. When every buffer of a class is
 * busy a new one is made, up to {@link #BUSY_LIMIT} per class, and past that the oldest is waited for.
 */
final class PinnedPool {
    private static final long MIN_BYTES = 64 << 10;
    private static final int BUSY_LIMIT = 8;
    private static final String NOT_READY = CUresult.stringFor(CUresult.CUDA_ERROR_NOT_READY);

    /** One page-locked allocation; {@code bytes} is a little-endian view of all of it. */
    static final class Buffer {
        final Pointer ptr;
        final ByteBuffer bytes;
        final long capacity;
        final CUevent lastUse = new CUevent();
        boolean queued;

        Buffer(Pointer ptr, long capacity) {
            this.ptr = ptr;
            this.capacity = capacity;
            this.bytes = ptr.getByteBuffer(0, capacity).order(ByteOrder.LITTLE_ENDIAN);
            cuEventCreate(lastUse, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }
    }

    private final Map<Long, ArrayDeque<Buffer>> free = new HashMap<>();
    private final List<Buffer> all = new ArrayList<>();
    private long reserved;

    /** A buffer of at least {@code bytes} whose earlier copies have all finished. */
    synchronized Buffer acquire(long bytes) {
        if (bytes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("An exchange copy of " + bytes + " bytes is larger than one host buffer can hold");
        }
        long cls = Math.min(DevicePool.sizeClass(Math.max(bytes, MIN_BYTES)), Integer.MAX_VALUE - 8);
        ArrayDeque<Buffer> q = free.computeIfAbsent(cls, k -> new ArrayDeque<>());
        for (Iterator<Buffer> it = q.iterator(); it.hasNext();) {
            Buffer b = it.next();
            if (!b.queued || passed(b.lastUse)) {
                it.remove();
                b.queued = false;
                return b;
            }
        }
        if (q.size() >= BUSY_LIMIT) {
            Buffer oldest = q.pollLast();
            cuEventSynchronize(oldest.lastUse);
            oldest.queued = false;
            return oldest;
        }
        Pointer p = new Pointer();
        cuMemHostAlloc(p, cls, 0);
        Buffer b = new Buffer(p, cls);
        all.add(b);
        reserved += cls;
        return b;
    }

    /**
     * Gives a buffer back. {@code queuedOn}: the stream where a copy from or to it may still be queued (an
     * event recorded there now marks when the buffer is free), or null if no copy is pending.
     */
    synchronized void release(Buffer b, CUstream queuedOn) {
        if (queuedOn != null) {
            cuEventRecord(b.lastUse, queuedOn);
        }
        b.queued = queuedOn != null;
        free.computeIfAbsent(b.capacity, k -> new ArrayDeque<>()).push(b);
    }

    private static boolean passed(CUevent e) {
        try {
            cuEventQuery(e);
            return true;
        } catch (CudaException ex) {
            if (NOT_READY.equals(ex.getMessage())) {
                return false;
            }
            throw ex;
        }
    }

    /** Page-locked bytes held (for tests and logs). */
    synchronized long reservedBytes() {
        return reserved;
    }

    /** Frees every buffer; the caller has synchronised all streams. */
    synchronized void close() {
        for (Buffer b : all) {
            cuEventDestroy(b.lastUse);
            cuMemFreeHost(b.ptr);
        }
        all.clear();
        free.clear();
        reserved = 0;
    }
}
