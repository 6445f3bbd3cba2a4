package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;

/**
 * Recycles device memory by size class so that steady-state steps never call cuMemAlloc. A size class
 * is the request rounded up to a quarter of its power of two (at most 25% waste). A freed block remembers
 * the stream it was freed on and an event recorded there: reuse on the same stream is ordered by the
 * stream itself, reuse on another stream first makes that stream wait for the event.
 */
final class DevicePool {

    private record Block(CUdeviceptr ptr, CUstream freedOn, CUevent freedAt) {
    }

    private final Map<Long, ArrayDeque<Block>> free = new HashMap<>();
    private final List<CUdeviceptr> all = new ArrayList<>();
    private final ArrayDeque<CUevent> events = new ArrayDeque<>();
    private long reserved;

    static long sizeClass(long bytes) {
        long b = Math.max(bytes, 256);
        long p = Long.highestOneBit(b);
        if (p == b) {
            return b;
        }
        long quarter = Math.max(p / 4, 1);
        return (b + quarter - 1) / quarter * quarter;
    }

    synchronized CUdeviceptr alloc(long bytes, CUstream stream) {
        long cls = sizeClass(bytes);
        ArrayDeque<Block> q = free.get(cls);
        if (q != null && !q.isEmpty()) {
            Block b = q.pop();
            if (b.freedOn != stream) {
                cuStreamWaitEvent(stream, b.freedAt, 0);
            }
            events.push(b.freedAt);
            return b.ptr;
        }
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, cls);
        all.add(p);
        reserved += cls;
        return p;
    }

    synchronized void release(CUdeviceptr ptr, long bytes, CUstream stream) {
        CUevent e = events.poll();
        if (e == null) {
            e = new CUevent();
            cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }
        cuEventRecord(e, stream);
        free.computeIfAbsent(sizeClass(bytes), k -> new ArrayDeque<>()).push(new Block(ptr, stream, e));
    }

    synchronized long reservedBytes() {
        return reserved;
    }

    synchronized void close() {
        for (CUdeviceptr p : all) {
            cuMemFree(p);
        }
        for (ArrayDeque<Block> q : free.values()) {
            for (Block b : q) {
                cuEventDestroy(b.freedAt);
            }
        }
        for (CUevent e : events) {
            cuEventDestroy(e);
        }
        all.clear();
        free.clear();
        events.clear();
        reserved = 0;
    }
}
