package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxGetStreamPriorityRange;
import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceCanAccessPeer;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamCreateWithPriority;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamGetPriority;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One CUDA device of a {@link CudaBackend}: its primary context, made current on every calling thread, and
 * the threads' streams. Each thread gets its own non-blocking compute stream, and a copy stream for exchange
 * copies; a latency-critical thread's streams get the device's greatest priority ({@link #preferLatency}).
 */
final class CudaDevice {
    private static final Logger LOG = LoggerFactory.getLogger(CudaDevice.class);
    private static final ThreadLocal<CUcontext> CURRENT = new ThreadLocal<>();

    final int ordinal;
    final CUdevice device = new CUdevice();
    final CUcontext context = new CUcontext();
    private final String name;
    private final int multiprocessors;
    private final List<CUstream> streams = new ArrayList<>();
    private final ThreadLocal<CUstream> threadStream = new ThreadLocal<>();
    private final ThreadLocal<CUstream> copyStreams = new ThreadLocal<>();
    private final ThreadLocal<Boolean> latencyCritical = ThreadLocal.withInitial(() -> false);
    /** Peers whose memory this context may read directly (cuCtxEnablePeerAccess done), by device ordinal. */
    private final Set<Integer> peers = Collections.synchronizedSet(new HashSet<>());
    private volatile boolean closed;

    /** Retains the primary context of device {@code ordinal} and makes it current on the calling thread. */
    CudaDevice(int ordinal) {
        this.ordinal = ordinal;
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        CURRENT.set(context);
        byte[] text = new byte[256];
        cuDeviceGetName(text, text.length, device);
        int end = 0;
        while (end < text.length && text[end] != 0) {
            end++;
        }
        this.name = new String(text, 0, end, StandardCharsets.US_ASCII);
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    }

    /** The device's marketing name ("NVIDIA H100 80GB HBM3"). */
    String name() {
        return name;
    }

    int multiprocessors() {
        return multiprocessors;
    }

    /** A CU_DEVICE_ATTRIBUTE_* of this device. */
    int attribute(int attribute) {
        int[] v = {0};
        cuDeviceGetAttribute(v, attribute, device);
        return v[0];
    }

    boolean closed() {
        return closed;
    }

    /** The calling thread's stream, with the context made current on first use. */
    CUstream stream() {
        if (closed) {
            throw new IllegalStateException("The CUDA backend was used after close()");
        }
        if (CURRENT.get() != context) {
            cuCtxSetCurrent(context);
            CURRENT.set(context);
        }
        CUstream s = threadStream.get();
        if (s == null) {
            s = newStream();
            threadStream.set(s);
        }
        return s;
    }

    /** The calling thread's copy stream (device-to-host exchange copies), made on first use. */
    CUstream copyStream() {
        stream();
        CUstream s = copyStreams.get();
        if (s == null) {
            s = newStream();
            copyStreams.set(s);
        }
        return s;
    }

    /** A stream for the calling thread: the device's greatest priority for latency-critical threads ({@link #preferLatency}). */
    private CUstream newStream() {
        CUstream s = new CUstream();
        if (latencyCritical.get()) {
            int[] least = {0};
            int[] greatest = {0};
            cuCtxGetStreamPriorityRange(least, greatest);
            cuStreamCreateWithPriority(s, CUstream_flags.CU_STREAM_NON_BLOCKING, greatest[0]);
        } else {
            cuStreamCreate(s, CUstream_flags.CU_STREAM_NON_BLOCKING);
        }
        synchronized (streams) {
            streams.add(s);
        }
        return s;
    }

    /**
     * The calling thread's work is latency-critical (decode steps): its streams get the device's greatest
     * priority, so when a long prefill runs on another thread's stream of the same GPU, the block scheduler
     * starts this thread's kernels' blocks first. Work already issued by this thread is finished first.
     */
    void preferLatency() {
        if (latencyCritical.get()) {
            return;
        }
        latencyCritical.set(true);
        CUstream old = threadStream.get();
        if (old != null) {
            cuStreamSynchronize(old);
            threadStream.remove();
        }
        CUstream oldCopy = copyStreams.get();
        if (oldCopy != null) {
            cuStreamSynchronize(oldCopy);
            copyStreams.remove();
        }
        int[] priority = {0};
        cuStreamGetPriority(stream(), priority);
        LOG.info("Thread {} issues latency-critical work on CUDA device {}: its stream has priority {}.", Thread.currentThread().getName(),
                ordinal, priority[0]);
    }

    /** The priority of the calling thread's stream (lower numbers run first). */
    int streamPriority() {
        int[] priority = {0};
        cuStreamGetPriority(stream(), priority);
        return priority[0];
    }

    /** Waits for the calling thread's stream. */
    void sync() {
        cuStreamSynchronize(stream());
    }

    /** Lets this context read {@code from}'s memory directly where the two devices can (once per peer). */
    void enablePeerAccess(CudaDevice from) {
        if (!peers.add(from.ordinal)) {
            return;
        }
        int[] can = {0};
        cuDeviceCanAccessPeer(can, device, from.device);
        if (can[0] == 1) {
            int r = JCudaDriver.cuCtxEnablePeerAccess(from.context, 0);
            if (r != CUresult.CUDA_SUCCESS && r != CUresult.CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) {
                throw new IllegalStateException("cuCtxEnablePeerAccess from device " + ordinal + " to " + from.ordinal + " failed: "
                        + CUresult.stringFor(r));
            }
            LOG.info("CUDA device {} reads device {}'s memory directly (peer access).", ordinal, from.ordinal);
        } else {
            LOG.warn("CUDA devices {} and {} have no peer access: the driver copies between them by another route.", ordinal,
                    from.ordinal);
        }
    }

    /** close(), first: waits for every stream of every thread; afterwards {@link #stream()} refuses. */
    void drain() {
        stream();
        synchronized (streams) {
            for (CUstream s : streams) {
                cuStreamSynchronize(s);
            }
        }
        closed = true;
    }

    /** close(), once the memory is freed: destroys the streams. */
    void destroyStreams() {
        synchronized (streams) {
            for (CUstream s : streams) {
                cuStreamDestroy(s);
            }
            streams.clear();
        }
    }

    /** close(), last (after the modules are unloaded): releases the primary context. */
    void release() {
        closed = true; // also when drain() failed: a second close() must not release the context again
        cuDevicePrimaryCtxRelease(device);
        CURRENT.remove();
    }
}
