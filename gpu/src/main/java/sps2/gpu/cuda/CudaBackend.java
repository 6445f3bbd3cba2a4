package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceCanAccessPeer;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuMemcpyPeerAsync;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;
import static jcuda.driver.JCudaDriver.cuCtxGetStreamPriorityRange;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamCreateWithPriority;
import static jcuda.driver.JCudaDriver.cuStreamGetPriority;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUresult;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.Fence;
import sps2.gpu.HostSampling;
import sps2.gpu.KvPool;
import sps2.gpu.PendingRead;
import sps2.gpu.StepGraph;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.DType;
import sps2.model.HostTensor;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * The CUDA backend: our own kernels (src/main/cuda, compiled to PTX at build time and loaded from the
 * jar) launched through the JCuda driver API. Activations are bfloat16 with float32 accumulation inside
 * every kernel; {@link #allocateFloat} gives float32 tensors (the attention lse, or a float32 residual
 * stream: every element-wise kernel reads and writes either type). Weight matrices are stored as
 * bfloat16, vectors (norm weights, RoPE frequencies) as float32.
 *
 * <p>Threads: the backend retains the device's primary context and makes it current on every calling
 * thread; each thread gets its own non-blocking stream, and all work a thread issues is ordered on it.
 * {@link #sync()} waits for the calling thread's stream only. A tensor written on one thread and read on
 * another therefore needs the writer's {@link #sync()} in between (an operator syncs before handing a
 * device handle downstream). Scratch memory comes from a pool by size class that makes reuse across
 * streams wait on an event; no call keeps shared scratch, so threads never share buffers by accident.
 */
public final class CudaBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);
    private static final String[] MODULES = {"ops", "gemm", "attention", "exchange", "sample"};
    private static final boolean DEBUG_SYNC = Boolean.getBoolean("sps2.cuda.syncEachLaunch");
    private static final ThreadLocal<CUcontext> CURRENT = new ThreadLocal<>();
    private static final CUdeviceptr NULL = new CUdeviceptr();

    /** Tensor-core GEMM kernels: name, tile rows, tile cols, threads, dynamic shared bytes. */
    record GemmKernel(String name, int bm, int bn, int threads, int smem) {
        boolean hopper() {
            return name.startsWith("wgmma");
        }
    }

    /** wgmma kernels (sm_90a module), used only where that module loads and passes the start-up check. */
    static final List<GemmKernel> WGMMAS = List.of(
            new GemmKernel("wgmma_128x256", 128, 256, 256, 4 * (128 + 256) * 128),
            new GemmKernel("wgmma_128x128", 128, 128, 256, 5 * (128 + 128) * 128));

    /**
     * The 128x256 wgmma tile with K split over a cluster of two blocks that sum through distributed shared
     * memory: for prefill products with too few tiles to fill the SMs (M=4096, 2048->512: 64 tiles).
     */
    static final GemmKernel WGMMA_PAIR = new GemmKernel("wgmma_128x256_pair", 128, 256, 256, 4 * (128 + 256) * 128);

    /**
     * wgmma kernels that are checked at start-up like the others, each dropped alone if it fails, and used only
     * where chosen by name or by a rule: {@link #WGMMA_PAIR} for products with few tiles. Variants under
     * measurement go here too, so that the tests and the benchmark cover them.
     */
    static final GemmKernel WGMMA_TMA = new GemmKernel("wgmma_tma_128x256", 128, 256, 384, 4 * (128 + 256) * 128 + 64);
    static final GemmKernel WGMMA_TMA_PAIR = new GemmKernel("wgmma_tma_128x256_pair", 128, 256, 384, 4 * (128 + 256) * 128 + 64);
    static final List<GemmKernel> WGMMA_OPTIONAL = List.of(WGMMA_PAIR, WGMMA_TMA, WGMMA_TMA_PAIR);

    static final List<GemmKernel> GEMMS = List.of(
            new GemmKernel("gemm_128x256", 128, 256, 256, 3 * (128 + 256) * 128),
            new GemmKernel("gemm_256x128", 256, 128, 256, 3 * (256 + 128) * 128),
            new GemmKernel("gemm_128x128", 128, 128, 256, 4 * (128 + 128) * 128),
            new GemmKernel("gemm_64x128", 64, 128, 256, 4 * (64 + 128) * 128),
            new GemmKernel("gemm_64x64", 64, 64, 128, 4 * (64 + 64) * 128),
            new GemmKernel("gemm_32x64", 32, 64, 128, 4 * (32 + 64) * 128));

    private static volatile String unavailable;
    private static volatile boolean probed;

    private final int ordinal;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final String deviceName;
    private final int smCount;
    private final List<CUmodule> modules = new ArrayList<>();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final DevicePool pool = new DevicePool();
    private final Set<CUdeviceptr> exact = Collections.newSetFromMap(new IdentityHashMap<>());
    private final List<CUstream> streams = new ArrayList<>();
    private final ThreadLocal<CUstream> threadStream = new ThreadLocal<>();
    private final ThreadLocal<Boolean> latencyCritical = ThreadLocal.withInitial(() -> false);
    private volatile boolean closed;
    private final boolean hopper;
    private final List<GemmKernel> optionalGemms = new ArrayList<>();

    // ---- availability ----

    /** Whether a CUDA device, the driver library and the kernels in this jar are all there. */
    public static boolean isAvailable() {
        return unavailableReason() == null;
    }

    /** Why {@link #isAvailable()} is false, or null when it is true. */
    public static synchronized String unavailableReason() {
        if (!probed) {
            unavailable = probe();
            probed = true;
        }
        return unavailable;
    }

    private static String probe() {
        for (String m : MODULES) {
            if (CudaBackend.class.getResource(ptxResource(m)) == null) {
                return "This build carries no CUDA kernels (" + ptxResource(m) + " is missing: nvcc was not found when the jar was built)";
            }
        }
        try {
            JCudaDriver.setExceptionsEnabled(true);
            cuInit(0);
            int[] count = {0};
            cuDeviceGetCount(count);
            if (count[0] == 0) {
                return "The CUDA driver found no device";
            }
            return null;
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            return "The CUDA driver library could not be loaded (" + e.getMessage() + ")";
        } catch (RuntimeException e) {
            return "The CUDA driver could not be initialised (" + e.getMessage() + ")";
        }
    }

    private static String ptxResource(String module) {
        return "/sps2/gpu/cuda/ptx/" + module + ".ptx";
    }

    // ---- life cycle ----

    public CudaBackend() {
        this(0);
    }

    public CudaBackend(int ordinal) {
        String why = unavailableReason();
        if (why != null) {
            throw new IllegalStateException("The CUDA backend is unavailable: " + why);
        }
        this.ordinal = ordinal;
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        CURRENT.set(context);
        byte[] name = new byte[256];
        cuDeviceGetName(name, name.length, device);
        int end = 0;
        while (end < name.length && name[end] != 0) {
            end++;
        }
        this.deviceName = new String(name, 0, end, java.nio.charset.StandardCharsets.US_ASCII);
        int[] v = {0};
        cuDeviceGetAttribute(v, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device);
        this.smCount = v[0];
        long t0 = System.nanoTime();
        for (String m : MODULES) {
            CUmodule module = new CUmodule();
            cuModuleLoadData(module, readPtx(m));
            modules.add(module);
            for (String f : kernelNames(m)) {
                CUfunction fn = new CUfunction();
                cuModuleGetFunction(fn, module, f);
                functions.put(f, fn);
            }
        }
        for (GemmKernel g : GEMMS) {
            cuFuncSetAttribute(fn(g.name()), CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, g.smem());
        }
        this.hopper = loadHopperKernels();
        for (int d : new int[] {64, 128}) {
            for (PrefillKernel k : PREFILLS) {
                if (hasPrefill(d, k)) {
                    cuFuncSetAttribute(fn(k.name(d)), CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, k.smem(d));
                }
            }
        }
        LOG.info("Opened CUDA device {} ({}, {} multiprocessors); loading the kernels took {} ms.", ordinal, deviceName, smCount,
                (System.nanoTime() - t0) / 1_000_000);
    }

    /**
     * Loads the sm_90a module (wgmma GEMM) on compute capability 9.0 devices and checks it once against the
     * mma.sync kernel on random data; any failure leaves the portable kernels in charge.
     */
    private boolean loadHopperKernels() {
        int[] major = {0};
        cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
        String m = "gemm_sm90a";
        if (major[0] != 9 || CudaBackend.class.getResource(ptxResource(m)) == null) {
            return false;
        }
        try {
            CUmodule module = new CUmodule();
            cuModuleLoadData(module, readPtx(m));
            modules.add(module);
            for (GemmKernel g : java.util.stream.Stream.concat(WGMMAS.stream(), WGMMA_OPTIONAL.stream()).toList()) {
                CUfunction fn = new CUfunction();
                cuModuleGetFunction(fn, module, g.name());
                cuFuncSetAttribute(fn, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, g.smem());
                functions.put(g.name(), fn);
            }
            java.util.Random r = new java.util.Random(1);
            int mm = 200, n = 384, k = 320;
            float[] x = new float[mm * k], w = new float[n * k];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) r.nextGaussian();
            }
            try (Tensor xt = allocate(mm, k); Tensor wt = upload(HostTensor.ofFloats("check", w, n, k)); Tensor ref = allocateFloat(mm, n);
                    Tensor got = allocateFloat(mm, n)) {
                write(xt, 0, x, 0, mm);
                matmul(ref, xt, wt, mm, "gemm_128x128", 1);
                float[] a = new float[mm * n], b = new float[mm * n];
                read(ref, 0, a, 0, mm);
                for (GemmKernel g : java.util.stream.Stream.concat(WGMMAS.stream(), WGMMA_OPTIONAL.stream()).toList()) {
                    if (g.name().contains("_tma") && TensorMaps.unavailableReason() != null) {
                        LOG.info("The TMA GEMM kernel stays unused: {}.", TensorMaps.unavailableReason());
                        continue;
                    }
                    fill(got, Float.NaN);
                    matmul(got, xt, wt, mm, g.name(), 1);
                    read(got, 0, b, 0, mm);
                    double num = 0, den = 0;
                    for (int i = 0; i < a.length; i++) {
                        num += (a[i] - b[i]) * (double) (a[i] - b[i]);
                        den += a[i] * (double) a[i];
                    }
                    if (WGMMA_OPTIONAL.contains(g)) {
                        if (num <= 1e-8 * den) {
                            optionalGemms.add(g);
                        } else {
                            LOG.warn("The GEMM kernel {} disagrees with the portable one (relative error {}); it stays unused.", g.name(),
                                    Math.sqrt(num / den));
                        }
                    } else if (!(num <= 1e-8 * den)) {
                        LOG.warn("The Hopper GEMM kernel {} disagrees with the portable one (relative error {}); using the portable kernels.",
                                g.name(), Math.sqrt(num / den));
                        return false;
                    }
                }
            }
            return true;
        } catch (RuntimeException e) {
            LOG.warn("The Hopper (sm_90a) kernels could not be loaded; using the portable kernels.", e);
            return false;
        }
    }

    /** The number of multiprocessors of this device. */
    int smCount() {
        return smCount;
    }

    /** Whether the cluster split-K GEMM passed its start-up check (it is chosen for prefill products with few tiles). */
    boolean pairGemm() {
        return optionalGemms.contains(WGMMA_PAIR);
    }

    /** The optional wgmma kernels that passed the start-up check (for the benchmark's sweep). */
    List<GemmKernel> optionalGemms() {
        return List.copyOf(optionalGemms);
    }

    /** Whether the wgmma GEMM kernels are in use. */
    public boolean hopperKernels() {
        return hopper;
    }

    /** The tensor-core GEMM kernels this device runs. */
    List<GemmKernel> gemmKernels() {
        List<GemmKernel> all = new ArrayList<>(GEMMS);
        if (hopper) {
            all.addAll(WGMMAS);
        }
        if (hopper) {
            all.addAll(optionalGemms);
        }
        return all;
    }

    private static byte[] readPtx(String module) {
        try (InputStream in = CudaBackend.class.getResourceAsStream(ptxResource(module))) {
            byte[] text = in.readAllBytes();
            byte[] z = new byte[text.length + 1];
            System.arraycopy(text, 0, z, 0, text.length);
            return z;
        } catch (IOException e) {
            throw new IllegalStateException("The kernel module " + ptxResource(module) + " could not be read", e);
        }
    }

    /** The entry points of a module, read from the PTX text (".entry name("). */
    private static List<String> kernelNames(String module) {
        String text = new String(readPtx(module), java.nio.charset.StandardCharsets.US_ASCII);
        List<String> names = new ArrayList<>();
        int at = 0;
        while ((at = text.indexOf(".entry ", at)) >= 0) {
            int s = at + 7;
            int e = s;
            while (e < text.length() && (Character.isLetterOrDigit(text.charAt(e)) || text.charAt(e) == '_')) {
                e++;
            }
            names.add(text.substring(s, e));
            at = e;
        }
        return names;
    }

    @Override
    public String name() {
        return "cuda:" + ordinal + " (" + deviceName + ")";
    }

    public int multiprocessors() {
        return smCount;
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
    @Override
    public void preferLatency() {
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

    @Override
    public void sync() {
        cuStreamSynchronize(stream());
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        stream();
        synchronized (streams) {
            for (CUstream s : streams) {
                cuStreamSynchronize(s);
            }
        }
        closed = true;
        pool.close();
        closeExchange();
        synchronized (exact) {
            for (CUdeviceptr p : exact) {
                cuMemFree(p);
            }
            exact.clear();
        }
        synchronized (streams) {
            for (CUstream s : streams) {
                cuStreamDestroy(s);
            }
            streams.clear();
        }
        for (CUmodule m : modules) {
            cuModuleUnload(m);
        }
        modules.clear();
        cuDevicePrimaryCtxRelease(device);
        CURRENT.remove();
        LOG.info("Closed CUDA device {}.", ordinal);
    }

    // ---- memory ----

    CudaTensor allocate(int rows, int cols, CudaTensor.DType dtype) {
        long bytes = Math.max((long) rows * cols * dtype.bytes, 1);
        List<CUdeviceptr> arena = capturing.get();
        if (arena != null) {
            // Recording a graph: the memory belongs to the graph, whose replays write it (CudaStepGraph frees it).
            CUdeviceptr p = new CUdeviceptr();
            cuMemAlloc(p, bytes);
            arena.add(p);
            return new CudaTensor(this, p, rows, cols, dtype, bytes, CudaTensor.GRAPH_OWNED);
        }
        CUdeviceptr p = pool.alloc(bytes, stream());
        return new CudaTensor(this, p, rows, cols, dtype, bytes, true);
    }

    /** While the calling thread records a graph ({@link #capture}): the scratch memory allocated for it. */
    private final ThreadLocal<List<CUdeviceptr>> capturing = new ThreadLocal<>();

    @Override
    public StepGraph capture(Runnable work) {
        CUstream s = stream();
        List<CUdeviceptr> arena = new ArrayList<>();
        CUgraph graph = new CUgraph();
        capturing.set(arena);
        cuStreamBeginCapture(s, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED);
        boolean ended = false;
        try {
            work.run();
            cuStreamEndCapture(s, graph);
            ended = true;
            CUgraphExec exec = new CUgraphExec();
            cuGraphInstantiate(exec, graph, 0);
            return new CudaStepGraph(this, graph, exec, arena);
        } catch (RuntimeException e) {
            if (!ended) {
                try {
                    cuStreamEndCapture(s, graph);
                } catch (RuntimeException ignored) {
                    // the capture was already invalidated; the error that did it is the one to report
                }
            }
            for (CUdeviceptr p : arena) {
                cuMemFree(p);
            }
            throw e;
        } finally {
            capturing.remove();
        }
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        return allocate(rows, cols, CudaTensor.DType.BF16);
    }

    @Override
    public Tensor allocateFloat(int rows, int cols) {
        return allocate(rows, cols, CudaTensor.DType.F32);
    }

    /** Device memory reserved by the scratch pool (for tests and logs). */
    public long pooledBytes() {
        return pool.reservedBytes();
    }

    void free(CUdeviceptr p, long capacity, boolean pooled) {
        if (closed || p == null) {
            return;
        }
        if (pooled) {
            pool.release(p, capacity, stream());
        } else {
            freeExact(p);
        }
    }

    void freeExact(CUdeviceptr p) {
        if (closed) {
            return;
        }
        stream();
        synchronized (exact) {
            if (exact.remove(p)) {
                sync();
                cuMemFree(p);
            }
        }
    }

    private CUdeviceptr allocExact(long bytes) {
        stream();
        CUdeviceptr p = new CUdeviceptr();
        cuMemAlloc(p, Math.max(bytes, 1));
        synchronized (exact) {
            exact.add(p);
        }
        return p;
    }

    @Override
    public Tensor upload(HostTensor weight) {
        int rows = weight.rows();
        int cols = weight.cols();
        boolean vector = weight.shape().length == 1 || rows == 1;
        if (weight.dtype() == DType.I32) {
            throw new IllegalArgumentException("Tensor " + weight.name() + " holds integers; upload them with upload(int[])");
        }
        CudaTensor.DType dt = vector ? CudaTensor.DType.F32 : CudaTensor.DType.BF16;
        long bytes = (long) rows * cols * dt.bytes;
        CudaTensor t = new CudaTensor(this, allocExact(bytes), rows, cols, dt, bytes, false);
        if (dt == CudaTensor.DType.BF16 && weight.dtype() == DType.BF16) {
            ByteBuffer src = weight.data().duplicate();
            src.limit(src.position() + (int) bytes);
            copyIn(t.ptr(), src);
        } else if (dt == CudaTensor.DType.BF16 && weight.dtype() == DType.F32) {
            // Row chunks straight from the (often memory-mapped) F32 data, without a full float[] copy.
            int chunkRows = Math.max(1, (32 << 20) / (cols * 2));
            ByteBuffer src = weight.data();
            for (int r0 = 0; r0 < rows; r0 += chunkRows) {
                int nr = Math.min(chunkRows, rows - r0);
                ByteBuffer buf = ByteBuffer.allocateDirect(nr * cols * 2).order(ByteOrder.LITTLE_ENDIAN);
                int base = src.position() + r0 * cols * 4;
                for (int i = 0; i < nr * cols; i++) {
                    buf.putShort(HostTensor.toBf16(src.getFloat(base + 4 * i)));
                }
                buf.flip();
                copyIn(t.at(r0), buf);
            }
        } else {
            float[] f = weight.toFloats();
            write(t, 0, f, 0, rows);
        }
        return t;
    }

    @Override
    public Tensor upload(int[] values) {
        CudaTensor t = allocate(1, Math.max(values.length, 1), CudaTensor.DType.I32);
        if (values.length > 0) {
            ByteBuffer buf = ByteBuffer.allocateDirect(values.length * 4).order(ByteOrder.nativeOrder());
            buf.asIntBuffer().put(values);
            copyIn(t.ptr(), buf);
        }
        return t;
    }

    private void copyIn(CUdeviceptr dst, ByteBuffer direct) {
        ByteBuffer b = direct.isDirect() ? direct : ByteBuffer.allocateDirect(direct.remaining()).put(direct.duplicate()).flip();
        CUstream s = stream();
        cuMemcpyHtoDAsync(dst, Pointer.to(b.slice()), b.remaining(), s);
        cuStreamSynchronize(s);
    }

    private ByteBuffer copyOut(CUdeviceptr src, long bytes) {
        ByteBuffer b = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
        CUstream s = stream();
        cuMemcpyDtoHAsync(Pointer.to(b), src, bytes, s);
        cuStreamSynchronize(s);
        return b;
    }

    private static CudaTensor t(Tensor t) {
        if (!(t instanceof CudaTensor c)) {
            throw new IllegalArgumentException("The CUDA backend was given a tensor of another backend: " + t);
        }
        return c;
    }

    private static void need(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }

    @Override
    public void write(Tensor dst, int dstRow, float[] src, int srcOffset, int rows) {
        CudaTensor d = t(dst);
        need(!d.isInt(), "write() takes float tensors; upload integers with upload(int[])");
        need(dstRow + rows <= d.rows(), "Writing rows " + dstRow + ".." + (dstRow + rows) + " into a tensor of " + d.rows() + " rows");
        int n = rows * d.cols();
        ByteBuffer b = ByteBuffer.allocateDirect(n * d.dtype().bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (d.dtype() == CudaTensor.DType.F32) {
            b.asFloatBuffer().put(src, srcOffset, n);
        } else {
            for (int i = 0; i < n; i++) {
                b.putShort(HostTensor.toBf16(src[srcOffset + i]));
            }
            b.flip();
        }
        copyIn(d.at(dstRow), b);
    }

    @Override
    public void read(Tensor src, int srcRow, float[] dst, int dstOffset, int rows) {
        CudaTensor s = t(src);
        need(!s.isInt(), "read() takes float tensors; use readInts()");
        need(srcRow + rows <= s.rows(), "Reading rows " + srcRow + ".." + (srcRow + rows) + " of a tensor of " + s.rows() + " rows");
        int n = rows * s.cols();
        ByteBuffer b = copyOut(s.at(srcRow), (long) n * s.dtype().bytes);
        if (s.dtype() == CudaTensor.DType.F32) {
            b.asFloatBuffer().get(dst, dstOffset, n);
        } else {
            for (int i = 0; i < n; i++) {
                dst[dstOffset + i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xffff) << 16);
            }
        }
    }

    /** Copies an integer tensor's values to the host. */
    public int[] readInts(Tensor src, int n) {
        CudaTensor s = t(src);
        need(s.isInt(), "readInts() takes an integer tensor");
        ByteBuffer b = copyOut(s.ptr(), 4L * n);
        int[] out = new int[n];
        b.order(ByteOrder.nativeOrder()).asIntBuffer().get(out);
        return out;
    }

    @Override
    public void copyRows(Tensor dst, int dstRow, Tensor src, int srcRow, int rows) {
        CudaTensor d = t(dst);
        CudaTensor s = t(src);
        need(d.cols() == s.cols(), "copyRows needs tensors of equal width, got " + d.cols() + " and " + s.cols());
        need(dstRow + rows <= d.rows() && srcRow + rows <= s.rows(), "copyRows out of range");
        if (rows == 0) {
            return;
        }
        if (d.dtype() == s.dtype()) {
            cuMemcpyDtoDAsync(d.at(dstRow), s.at(srcRow), (long) rows * d.cols() * d.dtype().bytes, stream());
        } else {
            long total = (long) rows * d.cols();
            launch("convert", blocks(total, 256), 1, 1, 256, 0, d.at(dstRow), d.dtype().code, s.at(srcRow), s.dtype().code, total);
        }
    }

    /** Sets every element of a float tensor to {@code value} (tests poison outputs with NaN). */
    @Override
    public void fill(Tensor dst, float value) {
        CudaTensor d = t(dst);
        need(!d.isInt(), "fill() takes float tensors");
        long total = (long) d.rows() * d.cols();
        launch("fill", blocks(total, 256), 1, 1, 256, 0, d.ptr(), d.dtype().code, total, value);
    }

    @Override
    public KvPool allocateKvPool(int layers, int kvDim, int blocks, int blockSize) {
        need(kvDim % 8 == 0, "The CUDA KV pool needs kvDim to be a multiple of 8, got " + kvDim);
        long bytes = 2L * layers * blocks * blockSize * kvDim * 2;
        return new CudaKvPool(this, allocExact(bytes), layers, kvDim, blocks, blockSize);
    }

    @Override
    public AttentionBatch.Prepared prepare(AttentionBatch batch) {
        return new CudaPrepared(this, batch);
    }

    @Override
    public AttentionBatch.Prepared prepare(AttentionBatch batch, AttentionBatch.Prepared reuse) {
        if (reuse instanceof CudaPrepared p && p.owner() == this && p.update(batch)) {
            return p;
        }
        if (reuse != null) {
            reuse.close();
        }
        return prepare(batch);
    }

    @Override
    public void writeInts(Tensor dst, int[] values) {
        CudaTensor d = t(dst);
        need(d.isInt() && (long) d.rows() * d.cols() >= values.length, "writeInts needs an integer tensor with room for " + values.length
                + " values");
        if (values.length > 0) {
            stageIn(d.ptr(), 4L * values.length, b -> b.order(ByteOrder.nativeOrder()).asIntBuffer().put(values));
        }
    }

    // ---- hand-off between shards of one host: events, device gathers, peer copies ----

    @Override
    public Fence fence() {
        CUevent e = new CUevent();
        cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        cuEventRecord(e, stream());
        return new CudaFence(e, this);
    }

    @Override
    public void await(Fence fence) {
        if (fence instanceof CudaFence f) {
            cuStreamWaitEvent(stream(), f.event, 0);
        } else if (fence != Fence.DONE) {
            throw new IllegalArgumentException("The CUDA backend cannot wait for " + fence);
        }
    }

    @Override
    public boolean holds(Tensor t) {
        return t instanceof CudaTensor c && c.owner() == this;
    }

    @Override
    public Tensor gather(Tensor src, int width, int[] pieces) {
        return pack(new Tensor[] {src}, width, pieces);
    }

    /** Peers whose memory this context may read directly (cuCtxEnablePeerAccess done), by device ordinal. */
    private final Set<Integer> peers = Collections.synchronizedSet(new java.util.HashSet<>());

    @Override
    public Tensor copyFrom(Tensor src) {
        CudaTensor s = t(src);
        if (s.owner() == this) {
            throw new IllegalArgumentException("copyFrom: the tensor is already on " + name());
        }
        CudaBackend from = s.owner();
        CUstream st = stream();
        if (peers.add(from.ordinal)) {
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
        CudaTensor d = allocate(s.rows(), s.cols(), s.dtype());
        cuMemcpyPeerAsync(d.ptr(), context, s.ptr(), from.context, s.bytes(), st);
        return d;
    }

    // ---- exchange between shards ----
    //
    // readAsync packs the selected pieces with one gather on the calling thread's stream, then a copy stream of
    // the same thread (waiting on an event recorded after the gather) moves them to a page-locked buffer while
    // the compute stream goes on. write stages host bytes in a page-locked buffer and copies them in on the
    // compute stream. Both move the device's own element type (WireType).

    private final PinnedPool pinned = new PinnedPool();
    private final ThreadLocal<CUstream> copyStreams = new ThreadLocal<>();
    private final java.util.ArrayDeque<CUevent> spareEvents = new java.util.ArrayDeque<>();

    @Override
    public WireType wireType(Tensor t) {
        return switch (t(t).dtype()) {
            case BF16 -> WireType.BF16;
            case F32 -> WireType.F32;
            case I32 -> throw new IllegalArgumentException("Integer tensors are not exchanged between shards");
        };
    }

    private static CudaTensor.DType dtypeOf(WireType w) {
        return w == WireType.BF16 ? CudaTensor.DType.BF16 : CudaTensor.DType.F32;
    }

    @Override
    public PendingRead readAsync(Tensor[] sources, int width, int[] pieces) {
        need(sources.length > 0 && width > 0, "readAsync needs at least one source and a positive piece width");
        CudaTensor.DType dt = t(sources[0]).dtype();
        WireType type = wireType(sources[0]);
        long total = (long) width * dt.bytes * pieces.length * sources.length;
        need(total <= Integer.MAX_VALUE - 8, "readAsync: " + total + " bytes do not fit one host array");
        CudaTensor packed = pack(sources, width, pieces);
        CUstream s = stream();
        CUevent ready = event();
        cuEventRecord(ready, s);
        CUstream copy = copyStream();
        cuStreamWaitEvent(copy, ready, 0);
        spare(ready);
        PinnedPool.Buffer host = pinned.acquire(Math.max(total, 1));
        if (total > 0) {
            cuMemcpyDtoHAsync(host.ptr, packed.ptr(), total, copy);
        }
        CUevent done = event();
        cuEventRecord(done, copy);
        return new CudaRead(this, type, (int) total, packed, host, done);
    }

    /**
     * Pieces {@code pieces} (of {@code width} elements) of each source, one after the other, gathered on this
     * thread's stream into a new tensor [sources.length * pieces.length, width].
     */
    private CudaTensor pack(Tensor[] sources, int width, int[] pieces) {
        CudaTensor.DType dt = t(sources[0]).dtype();
        int lo = Integer.MAX_VALUE;
        int hi = Integer.MIN_VALUE;
        for (int p : pieces) {
            lo = Math.min(lo, p);
            hi = Math.max(hi, p);
        }
        for (Tensor src : sources) {
            CudaTensor c = t(src);
            need(c.dtype() == dt, "gather: the sources hold different element types (" + dt + " and " + c.dtype() + ")");
            long count = (long) c.rows() * c.cols() / width;
            if (pieces.length > 0 && (lo < 0 || hi >= count)) {
                throw new IllegalArgumentException("gather: piece " + (lo < 0 ? lo : hi) + " of width " + width + " is outside a [" + c.rows()
                        + ", " + c.cols() + "] tensor");
            }
        }
        long pieceBytes = (long) width * dt.bytes;
        long perSource = pieces.length * pieceBytes;
        long total = perSource * sources.length;
        CUstream s = stream();
        CudaTensor packed = allocate(Math.max(1, sources.length * pieces.length), width, dt);
        if (total > 0) {
            boolean run = true;
            for (int i = 1; i < pieces.length && run; i++) {
                run = pieces[i] == pieces[0] + i;
            }
            CudaTensor index = null;
            if (!run) {
                index = allocate(1, pieces.length, CudaTensor.DType.I32);
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
                    launch("exchange_gather" + word, blocks(words, 256), 1, 1, 256, 0, to, src.ptr(), index.ptr(), (long) pieces.length,
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
        stream();
        pinned.release(host, null);
        packed.close();
        spare(done);
    }

    @Override
    public void write(Tensor dst, int dstRow, WireType type, byte[] src, int srcOffset, int rows) {
        CudaTensor d = t(dst);
        need(!d.isInt(), "write() takes float tensors; upload integers with upload(int[])");
        need(dstRow >= 0 && rows >= 0 && dstRow + rows <= d.rows(), "Writing rows " + dstRow + ".." + (dstRow + rows) + " into a tensor of "
                + d.rows() + " rows");
        long bytes = (long) rows * d.cols() * type.bytes();
        need(srcOffset >= 0 && srcOffset + bytes <= src.length, "write: " + rows + " rows of " + d.cols() + " " + type + " values need " + bytes
                + " bytes from offset " + srcOffset + ", but the payload holds " + src.length);
        if (rows == 0) {
            return;
        }
        if (dtypeOf(type) == d.dtype()) {
            stageIn(d.at(dstRow), bytes, b -> b.put(src, srcOffset, (int) bytes));
        } else {
            try (CudaTensor wire = allocate(rows, d.cols(), dtypeOf(type))) {
                stageIn(wire.ptr(), bytes, b -> b.put(src, srcOffset, (int) bytes));
                copyRows(d, dstRow, wire, 0, rows);
            }
        }
    }

    /** Copies {@code bytes} bytes, written by {@code fill} into a page-locked buffer, to {@code dst} on this thread's stream. */
    private void stageIn(CUdeviceptr dst, long bytes, java.util.function.Consumer<ByteBuffer> fill) {
        CUstream s = stream();
        PinnedPool.Buffer b = pinned.acquire(bytes);
        ByteBuffer view = b.bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        fill.accept(view);
        cuMemcpyHtoDAsync(dst, b.ptr, bytes, s);
        pinned.release(b, s);
    }

    /** Page-locked host memory held for exchange copies (for tests and logs). */
    public long pinnedBytes() {
        return pinned.reservedBytes();
    }

    /** The calling thread's copy stream (device-to-host exchange copies), made on first use. */
    private CUstream copyStream() {
        stream();
        CUstream s = copyStreams.get();
        if (s == null) {
            s = newStream();
            copyStreams.set(s);
        }
        return s;
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
    private void closeExchange() {
        pinned.close();
        synchronized (spareEvents) {
            for (CUevent e : spareEvents) {
                cuEventDestroy(e);
            }
            spareEvents.clear();
        }
    }

    // ---- launching ----

    private static int blocks(long total, int per) {
        return (int) ((total + per - 1) / per);
    }

    void launch(String name, int gx, int gy, int gz, int block, int smem, Object... args) {
        CUstream s = stream();
        Pointer[] ps = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a == null) {
                ps[i] = Pointer.to(NULL);
            } else if (a instanceof CUdeviceptr p) {
                ps[i] = Pointer.to(p);
            } else if (a instanceof Integer v) {
                ps[i] = Pointer.to(new int[] {v});
            } else if (a instanceof Long v) {
                ps[i] = Pointer.to(new long[] {v});
            } else if (a instanceof Float v) {
                ps[i] = Pointer.to(new float[] {v});
            } else if (a instanceof byte[] v) {
                ps[i] = Pointer.to(v); // a by-value struct parameter (a TMA descriptor)
            } else {
                throw new IllegalArgumentException("Kernel argument of type " + a.getClass());
            }
        }
        cuLaunchKernel(fn(name), gx, gy, gz, block, 1, 1, smem, s, Pointer.to(ps), null);
        if (DEBUG_SYNC) {
            cuStreamSynchronize(s);
        }
    }

    private CUfunction fn(String name) {
        CUfunction f = functions.get(name);
        if (f == null) {
            throw new IllegalStateException("The kernel " + name + " is not in this build's PTX");
        }
        return f;
    }

    // ---- model math ----

    @Override
    public void embed(Tensor out, Tensor table, Tensor tokens, int n) {
        CudaTensor o = t(out), tb = t(table), tk = t(tokens);
        need(tk.isInt() && o.cols() == tb.cols(), "embed: out width must equal the table width and tokens be integers");
        if (n > 0) {
            launch("embed", n, 1, 1, 256, 0, o.ptr(), o.dtype().code, tb.ptr(), tb.dtype().code, tk.ptr(), tb.cols());
        }
    }

    @Override
    public void rmsnorm(Tensor out, Tensor x, Tensor weight, int n, float eps) {
        CudaTensor o = t(out), xx = t(x), w = t(weight);
        need(o.cols() == xx.cols() && w.rows() * w.cols() == xx.cols(), "rmsnorm: widths differ");
        if (n > 0) {
            launch("rmsnorm", n, 1, 1, 256, 0, o.ptr(), o.dtype().code, xx.ptr(), xx.dtype().code, w.ptr(), w.dtype().code, xx.cols(), eps);
        }
    }

    @Override
    public void matmul(Tensor out, Tensor x, Tensor w, int n) {
        matmul(out, x, w, n, null, 0);
    }

    /**
     * {@link #matmul(Tensor, Tensor, Tensor, int)} with the kernel forced (benchmarks): {@code kernel} is a
     * {@link #GEMMS} name, "gemv", "simple", or null for the default choice; {@code splits} > 0 forces split-K.
     */
    public void matmul(Tensor out, Tensor x, Tensor w, int n, String kernel, int splits) {
        CudaTensor o = t(out), xx = t(x), ww = t(w);
        int nOut = ww.rows(), k = ww.cols();
        need(xx.cols() == k && o.cols() == nOut, "matmul: x is [" + xx.rows() + ", " + xx.cols() + "], w is [" + nOut + ", " + k
                + "], out is [" + o.rows() + ", " + o.cols() + "]");
        need(ww.dtype() == CudaTensor.DType.BF16, "matmul: weights must be bfloat16 matrices");
        if (n == 0) {
            return;
        }
        boolean tensorCores = xx.dtype() == CudaTensor.DType.BF16 && k % 8 == 0;
        if (kernel == null) {
            if (!tensorCores) {
                kernel = "simple";
            } else if (n <= 8) {
                kernel = "gemv";
            } else {
                GemmKernel g = chooseGemm(n, nOut);
                kernel = g.name();
                if (splits == 0) {
                    splits = chooseSplits(g, n, nOut, k);
                }
            }
        }
        if (kernel.equals("simple")) {
            launch("gemm_simple", blocks(nOut, 128), n, 1, 128, 0, o.ptr(), o.dtype().code, xx.ptr(), xx.dtype().code, ww.ptr(), n, nOut, k);
            return;
        }
        need(tensorCores, "matmul: the " + kernel + " kernel needs bf16 activations and K % 8 == 0");
        if (kernel.equals("gemv")) {
            need(n <= 8, "gemv takes at most 8 rows");
            int nb = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
            launch("gemv_" + nb, blocks(nOut, 8), 1, 1, 256, 0, o.ptr(), o.dtype().code, xx.ptr(), ww.ptr(), n, nOut, k);
            return;
        }
        GemmKernel g = gemmKernel(kernel);
        int kTiles = (k + 63) / 64;
        if (g.name().contains("_tma")) {
            // cuTensorMapEncodeTiled needs this device's context current on the calling thread (CUresult 201 otherwise,
            // seen on a shard thread whose first device call was this product).
            stream();
            byte[] mapA = TensorMaps.bf16Rows(xx.ptr(), n, k, g.bm(), 64);
            byte[] mapB = TensorMaps.bf16Rows(ww.ptr(), nOut, k, g.bn(), 64);
            int halves = g.name().contains("_pair") ? 2 : 1;
            launch(g.name(), blocks(nOut, g.bn()), blocks(n, g.bm()), halves, g.threads(), g.smem(), o.ptr(), o.dtype().code, mapA, mapB, n, nOut, k,
                    (kTiles + halves - 1) / halves);
            return;
        }
        if (g.name().contains("_pair")) {
            launch(g.name(), blocks(nOut, g.bn()), blocks(n, g.bm()), 2, g.threads(), g.smem(), o.ptr(), o.dtype().code, null, xx.ptr(), ww.ptr(),
                    n, nOut, k, (kTiles + 1) / 2);
            return;
        }
        splits = Math.max(1, Math.min(splits, kTiles));
        int ktPer = (kTiles + splits - 1) / splits;
        splits = (kTiles + ktPer - 1) / ktPer;
        int gx = blocks(nOut, g.bn()), gy = blocks(n, g.bm());
        if (splits == 1) {
            launch(g.name(), gx, gy, 1, g.threads(), g.smem(), o.ptr(), o.dtype().code, null, xx.ptr(), ww.ptr(), n, nOut, k, ktPer);
        } else {
            long mn = (long) n * nOut;
            try (CudaTensor ws = allocate(splits, (int) mn, CudaTensor.DType.F32)) {
                launch(g.name(), gx, gy, splits, g.threads(), g.smem(), o.ptr(), o.dtype().code, ws.ptr(), xx.ptr(), ww.ptr(), n, nOut, k,
                        ktPer);
                launch("splitk_reduce", blocks(mn, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, ws.ptr(), splits, mn);
            }
        }
    }

    /** Decode-sized products of one input (at most 8 rows, up to three weights of one width) in one GEMV launch. */
    @Override
    public void matmul(Tensor[] outs, Tensor x, Tensor[] ws, int n) {
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
            Backend.super.matmul(outs, x, ws, n);
            return;
        }
        int nb = n <= 1 ? 1 : n <= 2 ? 2 : n <= 4 ? 4 : 8;
        CudaTensor o0 = t(outs[0]), o1 = t(outs[1]), o2 = outs.length > 2 ? t(outs[2]) : null;
        CudaTensor w0 = t(ws[0]), w1 = t(ws[1]), w2 = outs.length > 2 ? t(ws[2]) : null;
        launch("gemv_multi_" + nb, blocks(total, 8), 1, 1, 256, 0, o0.ptr(), o1.ptr(), o2 == null ? null : o2.ptr(), o0.dtype().code, xx.ptr(),
                w0.ptr(), w1.ptr(), w2 == null ? null : w2.ptr(), n, w0.rows(), w1.rows(), w2 == null ? 0 : w2.rows(), xx.cols());
    }

    static GemmKernel gemmKernel(String name) {
        for (GemmKernel g : java.util.stream.Stream.of(GEMMS, WGMMAS, WGMMA_OPTIONAL).flatMap(List::stream).toList()) {
            if (g.name().equals(name)) {
                return g;
            }
        }
        throw new IllegalArgumentException("No GEMM kernel " + name);
    }

    /**
     * Prefill-sized products: the tile with the least estimated time, counted as waves of blocks over the
     * multiprocessors times the tile area (larger tile first on ties). Decode-sized products (m <= 128):
     * small tiles plus split-K ({@link #chooseSplits}).
     */
    GemmKernel chooseGemm(int m, int n) {
        boolean fewTiles = 2L * blocks(m, WGMMA_TMA.bm()) * blocks(n, WGMMA_TMA.bn()) <= smCount;
        if (m > 128 && optionalGemms.contains(WGMMA_TMA_PAIR) && fewTiles) {
            return WGMMA_TMA_PAIR; // too few 128x256 tiles to fill the SMs: two blocks per tile, each half of K
        }
        if (m > 128 && optionalGemms.contains(WGMMA_TMA)) {
            return WGMMA_TMA; // TMA loads and a producer warp: 71-93% of cuBLAS where the others reach 57-68% (notes v10)
        }
        if (m > 128 && pairGemm() && 2L * blocks(m, WGMMA_PAIR.bm()) * blocks(n, WGMMA_PAIR.bn()) <= smCount) {
            return WGMMA_PAIR; // too few 128x256 tiles to fill the SMs: two blocks per tile, each half of K
        }
        if (m > 128) {
            List<GemmKernel> order = hopper ? WGMMAS : List.of(GEMMS.get(0), GEMMS.get(2), GEMMS.get(3));
            GemmKernel best = null;
            double bestCost = Double.MAX_VALUE;
            for (GemmKernel g : order) {
                long b = (long) blocks(m, g.bm()) * blocks(n, g.bn());
                // Measured on the H100: a 128x128 tile runs about 1.25x slower per element than 128x256.
                double cost = (double) ((b + smCount - 1) / smCount) * g.bm() * g.bn() * (g.bm() * g.bn() < 32768 ? 1.25 : 1.0);
                if (cost < bestCost) {
                    best = g;
                    bestCost = cost;
                }
            }
            return best;
        }
        if (m > 64) {
            return hopper ? WGMMAS.get(1) : GEMMS.get(3);
        }
        for (GemmKernel g : List.of(GEMMS.get(3), GEMMS.get(4))) {
            long b = (long) blocks(m, g.bm()) * blocks(n, g.bn());
            if (b >= smCount) {
                return g;
            }
        }
        return m <= 32 ? GEMMS.get(5) : GEMMS.get(4);
    }

    /** Split-K for skinny products that leave multiprocessors idle (decode batches against tall weights). */
    int chooseSplits(GemmKernel g, int m, int n, int k) {
        long b = (long) blocks(m, g.bm()) * blocks(n, g.bn());
        if (m > 128 || b >= smCount) {
            return 1;
        }
        int kTiles = (k + 63) / 64;
        // wgmma tiles: one wave of blocks; mma.sync tiles: about two (measured best on the H100).
        long target = g.hopper() ? smCount : 2L * smCount;
        int want = (int) Math.max(1, g.hopper() ? target / b : (target + b - 1) / b);
        return Math.max(1, Math.min(want, kTiles / 4));
    }

    @Override
    public void rope(Tensor x, int heads, int headSize, Tensor positions, Tensor invFreq, int n) {
        CudaTensor xx = t(x), p = t(positions), f = t(invFreq);
        need(xx.cols() >= heads * headSize && headSize % 2 == 0, "rope: x is narrower than heads * headSize");
        need(xx.cols() == heads * headSize, "rope: x must be exactly [n, heads * headSize]");
        need(p.isInt(), "rope: positions must be integers");
        long total = (long) n * heads * headSize / 2;
        if (total > 0) {
            launch("rope", blocks(total, 256), 1, 1, 256, 0, xx.ptr(), xx.dtype().code, heads, headSize, p.ptr(), f.ptr(), f.dtype().code,
                    total);
        }
    }

    @Override
    public void rope(Tensor q, int qHeads, Tensor k, int kHeads, int headSize, Tensor positions, Tensor invFreq, int n) {
        CudaTensor qq = t(q), kk = t(k), p = t(positions), f = t(invFreq);
        need(qq.cols() == qHeads * headSize && kk.cols() == kHeads * headSize && headSize % 2 == 0,
                "rope: q and k must be exactly [n, heads * headSize] with an even head size");
        need(p.isInt(), "rope: positions must be integers");
        long totalQ = (long) n * qHeads * headSize / 2;
        long totalK = (long) n * kHeads * headSize / 2;
        if (totalQ + totalK > 0) {
            launch("rope2", blocks(totalQ + totalK, 256), 1, 1, 256, 0, qq.ptr(), qq.dtype().code, qHeads, kk.ptr(), kk.dtype().code, kHeads,
                    headSize, p.ptr(), f.ptr(), f.dtype().code, totalQ, totalK);
        }
    }

    @Override
    public void addRmsnorm(Tensor out, Tensor x, Tensor y, Tensor weight, int n, float eps) {
        CudaTensor o = t(out), xx = t(x), yy = t(y), w = t(weight);
        need(o.cols() == xx.cols() && yy.cols() == xx.cols() && w.rows() * w.cols() == xx.cols(), "addRmsnorm: widths differ");
        if (n > 0) {
            launch("add_rmsnorm", n, 1, 1, 256, 0, o.ptr(), o.dtype().code, xx.ptr(), xx.dtype().code, yy.ptr(), yy.dtype().code, w.ptr(),
                    w.dtype().code, xx.cols(), eps);
        }
    }

    @Override
    public void swiglu(Tensor out, Tensor gate, Tensor up, int n) {
        CudaTensor o = t(out), g = t(gate), u = t(up);
        need(o.cols() == g.cols() && g.cols() == u.cols(), "swiglu: widths differ");
        long total = (long) n * o.cols();
        if (total > 0) {
            launch("swiglu", blocks(total, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, g.ptr(), g.dtype().code, u.ptr(), u.dtype().code, total);
        }
    }

    @Override
    public void add(Tensor x, Tensor y, int n) {
        CudaTensor a = t(x), b = t(y);
        need(a.cols() == b.cols(), "add: widths differ");
        long total = (long) n * a.cols();
        if (total > 0) {
            launch("add", blocks(total, 256), 1, 1, 256, 0, a.ptr(), a.dtype().code, b.ptr(), b.dtype().code, total);
        }
    }

    @Override
    public void kvWrite(KvPool pool, int layer, Tensor k, Tensor v, Tensor slots, int n) {
        CudaKvPool p = kv(pool);
        CudaTensor kk = t(k), vv = t(v), s = t(slots);
        need(kk.cols() == p.kvDim() && vv.cols() == p.kvDim() && s.isInt(), "kvWrite: k and v must be [n, kvDim], slots integers");
        if (n > 0) {
            launch("kv_write", n, 1, 1, 128, 0, p.k(layer), p.v(layer), kk.ptr(), kk.dtype().code, vv.ptr(), vv.dtype().code, s.ptr(), p.kvDim());
        }
    }

    @Override
    public void kvRead(KvPool pool, int layer, Tensor slots, Tensor k, Tensor v, int n) {
        CudaKvPool p = kv(pool);
        CudaTensor kk = t(k), vv = t(v), s = t(slots);
        need(kk.cols() == p.kvDim() && vv.cols() == p.kvDim() && s.isInt(), "kvRead: k and v must be [n, kvDim], slots integers");
        if (n > 0) {
            launch("kv_read", n, 1, 1, 128, 0, p.k(layer), p.v(layer), kk.ptr(), kk.dtype().code, vv.ptr(), vv.dtype().code, s.ptr(), p.kvDim());
        }
    }

    private CudaKvPool kv(KvPool pool) {
        if (!(pool instanceof CudaKvPool p) || p.owner() != this) {
            throw new IllegalArgumentException("The KV pool belongs to another backend");
        }
        return p;
    }

    // ---- attention ----

    /** A prefill attention kernel: name suffix, warps (16 query rows each), K/V pipeline stages (64-key tiles). */
    record PrefillKernel(String variant, int warps, int stages) {
        String name(int d) {
            return "attn_prefill_d" + d + "_" + variant;
        }

        int rows() {
            return 16 * warps;
        }

        int smem(int d) {
            return (rows() * d + 2 * stages * 64 * d) * 2;
        }
    }

    /**
     * Every prefill kernel in attention.cu. Suffixes after the warps/stages part name the softmax variant
     * (docs/gpu-notes.md, v6): _sk skips key tiles wholly after a warp's rows, _rs1 / _rs8 rescale O only when a
     * row max moved / grew by more than 8 (log2), _poly makes every second exp on the FMA pipe, _bx2 makes two
     * exps per ex2.bf16x2 with the row sums on the tensor cores, _all = _rs8 + _bx2 + _sk.
     */
    static final List<PrefillKernel> PREFILLS = List.of(new PrefillKernel("w4", 4, 2), new PrefillKernel("w8", 8, 2),
            new PrefillKernel("w4_s3", 4, 3), new PrefillKernel("w8_s3", 8, 3), new PrefillKernel("w8_s4", 8, 4),
            new PrefillKernel("w8_sk", 8, 2), new PrefillKernel("w8_rs1", 8, 2), new PrefillKernel("w8_rs8", 8, 2),
            new PrefillKernel("w8_poly", 8, 2), new PrefillKernel("w8_bx2", 8, 2), new PrefillKernel("w8_all", 8, 2),
            new PrefillKernel("w4_all", 4, 2), new PrefillKernel("w8_s3_all", 8, 3), new PrefillKernel("w8_poly_all", 8, 2),
            new PrefillKernel("w8_s3_sk", 8, 3), new PrefillKernel("w8_s4_all", 8, 4));

    /** Head size 128 has only these (head size 64 has every one of {@link #PREFILLS}). */
    private static final java.util.Set<String> PREFILLS_D128 = java.util.Set.of("w4", "w8", "w8_s3", "w8_all", "w4_all", "w8_s3_all");

    static boolean hasPrefill(int d, PrefillKernel k) {
        return d == 64 || (d == 128 && PREFILLS_D128.contains(k.variant()));
    }

    /**
     * The prefill kernel variant in use ({@link #PREFILLS}); the benchmark and tests switch it. w8_all: the
     * fastest on the H100 at 8K and 32K once the paged K/V address lost its division (session 2, notes v12:
     * 53.5% and 51.3% of torch SDPA, two-round means; w8_s3_all 52.2% / 49.7%).
     */
    volatile String prefillVariant = "w8_all";

    private PrefillKernel prefillKernel(int d) {
        for (PrefillKernel k : PREFILLS) {
            if (k.variant().equals(prefillVariant) && hasPrefill(d, k)) {
                return k;
            }
        }
        return PREFILLS.get(1);
    }

    private static final int[] ROW_HEAD_SIZES = {8, 16, 32, 64, 128};

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, KvPool pool, int layer, AttentionBatch.Prepared batch, int nHeads,
            int nKvHeads, int headSize) {
        CudaKvPool p = kv(pool);
        if (!(batch instanceof CudaPrepared b) || b.owner() != this) {
            throw new IllegalArgumentException("The attention batch was prepared by another backend");
        }
        CudaTensor o = t(out), l = t(lse), qq = t(q);
        checkAttention(o, l, qq, nHeads, nKvHeads, headSize);
        need(p.kvDim() == nKvHeads * headSize, "attention: the KV pool holds " + p.kvDim() + " values per slot, not nKvHeads * headSize");
        boolean fast = (headSize == 64 || headSize == 128) && qq.dtype() == CudaTensor.DType.BF16;
        PrefillKernel pk = prefillKernel(headSize);
        int kind = CudaPrepared.tileKind(pk.rows());
        if (fast && b.tiles(kind) > 0) {
            launch(pk.name(headSize), nHeads, b.tiles(kind), 1, 32 * pk.warps(), pk.smem(headSize),
                    o.ptr(), o.dtype().code, l.ptr(), qq.ptr(), b.tSeq(kind), b.tQ0(kind), b.qStart(), b.qLen(), b.kvLen(), p.k(layer), p.v(layer),
                    b.tables(), b.tableOff(), p.blockSize(), p.kvDim(), 0, null, nHeads, nKvHeads, scaleLog2(headSize));
        }
        int work = fast ? b.shortRows : b.rows;
        int maxLimit = fast ? b.maxShortLimit : b.maxLimit;
        if (work > 0) {
            rowsAttention(o, l, qq, work, maxLimit, b.wRow(), b.wSeq(), b.wLimit(), p.k(layer), p.v(layer), b.tables(), b.tableOff(),
                    p.blockSize(), p.kvDim(), 0, null, nHeads, nKvHeads, headSize);
        }
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, int n, CompactKv kv, int nHeads, int nKvHeads, int headSize) {
        CudaTensor o = t(out), l = t(lse), qq = t(q), k = t(kv.k()), v = t(kv.v());
        checkAttention(o, l, qq, nHeads, nKvHeads, headSize);
        need(k.cols() == headSize && v.cols() == headSize && k.rows() >= nKvHeads * kv.maxLen(),
                "attention: compact K and V must be [nKvHeads * maxLen, headSize]");
        need(kv.lens().length == nKvHeads, "attention: compact KV needs one length per KV head");
        if (n == 0) {
            return;
        }
        CudaTensor kb = k, vb = v;
        if (k.dtype() != CudaTensor.DType.BF16 || v.dtype() != CudaTensor.DType.BF16) {
            kb = allocate(k.rows(), k.cols(), CudaTensor.DType.BF16);
            vb = allocate(v.rows(), v.cols(), CudaTensor.DType.BF16);
            copyRows(kb, 0, k, 0, k.rows());
            copyRows(vb, 0, v, 0, v.rows());
        }
        int maxLen = 0;
        for (int len : kv.lens()) {
            need(len >= 0 && len <= kv.maxLen(), "attention: a compact KV length is outside 0..maxLen");
            maxLen = Math.max(maxLen, len);
        }
        boolean fast = (headSize == 64 || headSize == 128) && qq.dtype() == CudaTensor.DType.BF16 && n >= CudaPrepared.TILE_MIN_ROWS;
        PrefillKernel pk = prefillKernel(headSize);
        int bq = pk.rows();
        int tiles = fast ? (n + bq - 1) / bq : 0;
        // ints: lens[nKv] qStart[1] qLen[1] tSeq[tiles] tQ0[tiles]
        int[] ints = new int[nKvHeads + 2 + 2 * tiles];
        System.arraycopy(kv.lens(), 0, ints, 0, nKvHeads);
        ints[nKvHeads + 1] = n;
        for (int i = 0; i < tiles; i++) {
            ints[nKvHeads + 2 + tiles + i] = i * bq;
        }
        try (CudaTensor dev = (CudaTensor) upload(ints)) {
            CUdeviceptr lens = dev.ptr();
            if (fast) {
                CUdeviceptr base = dev.ptr();
                launch(pk.name(headSize), nHeads, tiles, 1, 32 * pk.warps(), pk.smem(headSize), o.ptr(),
                        o.dtype().code, l.ptr(), qq.ptr(), base.withByteOffset(4L * (nKvHeads + 2)),
                        base.withByteOffset(4L * (nKvHeads + 2 + tiles)), base.withByteOffset(4L * nKvHeads),
                        base.withByteOffset(4L * (nKvHeads + 1)), lens, kb.ptr(), vb.ptr(), null, null, 0, headSize, kv.maxLen(), lens, nHeads,
                        nKvHeads, scaleLog2(headSize));
            } else {
                rowsAttention(o, l, qq, n, maxLen, null, null, null, kb.ptr(), vb.ptr(), null, null, 0, headSize, kv.maxLen(), lens, nHeads,
                        nKvHeads, headSize);
            }
        } finally {
            if (kb != k) {
                kb.close();
                vb.close();
            }
        }
    }

    private void checkAttention(CudaTensor o, CudaTensor l, CudaTensor q, int nHeads, int nKvHeads, int headSize) {
        need(l.dtype() == CudaTensor.DType.F32, "attention: lse must be a float32 tensor (allocate it with allocateFloat)");
        need(o.dtype() != CudaTensor.DType.I32 && q.dtype() != CudaTensor.DType.I32, "attention: q and out must be float tensors");
        need(nKvHeads > 0 && nHeads % nKvHeads == 0, "attention: nHeads must be a multiple of nKvHeads");
        need(q.cols() == nHeads * headSize && o.cols() == nHeads * headSize && l.cols() == nHeads,
                "attention: q and out must be [n, nHeads * headSize] and lse [n, nHeads]");
    }

    private static float scaleLog2(int headSize) {
        return (float) (1.0 / Math.sqrt(headSize) / Math.log(2));
    }

    private void rowsAttention(CudaTensor o, CudaTensor l, CudaTensor q, int work, int maxLimit, CUdeviceptr wRow, CUdeviceptr wSeq,
            CUdeviceptr wLimit, CUdeviceptr k, CUdeviceptr v, CUdeviceptr tables, CUdeviceptr tableOff, int bs, int rowStride, int maxLen,
            CUdeviceptr lens, int nHeads, int nKvHeads, int headSize) {
        int g = nHeads / nKvHeads;
        need(java.util.Arrays.stream(ROW_HEAD_SIZES).anyMatch(d -> d == headSize) && (g == 1 || g == 2 || g == 4 || g == 8),
                "attention: the CUDA backend supports head sizes 8, 16, 32, 64, 128 and 1, 2, 4 or 8 query heads per KV head; got "
                        + headSize + " and " + g);
        String name = "attn_rows_d" + headSize + "_g" + g;
        long base = (long) work * nKvHeads;
        int splits = 1;
        int chunk = Math.max(maxLimit, 1);
        if (base < 2L * smCount && maxLimit > 128) {
            int want = (int) ((2L * smCount + base - 1) / base);
            chunk = Math.max(64, (maxLimit + want - 1) / want);
            chunk = (chunk + 63) / 64 * 64;
            splits = (maxLimit + chunk - 1) / chunk;
        }
        float sl = scaleLog2(headSize);
        if (splits == 1) {
            launch(name, work, nKvHeads, 1, 128, 0, o.ptr(), o.dtype().code, l.ptr(), null, null, q.ptr(), q.dtype().code, wRow, wSeq, wLimit,
                    work, k, v, tables, tableOff, bs, rowStride, maxLen, lens, nHeads, chunk, sl);
            return;
        }
        try (CudaTensor po = allocate(splits, work * nHeads * headSize, CudaTensor.DType.F32);
                CudaTensor pl = allocate(splits, work * nHeads, CudaTensor.DType.F32)) {
            launch(name, work, nKvHeads, splits, 128, 0, o.ptr(), o.dtype().code, l.ptr(), po.ptr(), pl.ptr(), q.ptr(), q.dtype().code, wRow,
                    wSeq, wLimit, work, k, v, tables, tableOff, bs, rowStride, maxLen, lens, nHeads, chunk, sl);
            launch("attn_merge_splits", blocks((long) work * nHeads * 32, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, l.ptr(), po.ptr(),
                    pl.ptr(), wRow, work, nHeads, headSize, splits);
        }
    }

    @Override
    public void mergeAttention(Tensor out, Tensor lse, Tensor out2, Tensor lse2, int n, int nHeads, int headSize) {
        CudaTensor o = t(out), l = t(lse), o2 = t(out2), l2 = t(lse2);
        need(l.dtype() == CudaTensor.DType.F32 && l2.dtype() == CudaTensor.DType.F32, "mergeAttention: lse tensors must be float32");
        need(o.cols() == nHeads * headSize && o2.cols() == nHeads * headSize, "mergeAttention: outputs must be [n, nHeads * headSize]");
        long warps = (long) n * nHeads;
        if (warps > 0) {
            launch("merge_attention", blocks(warps * 32, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, l.ptr(), o2.ptr(), o2.dtype().code,
                    l2.ptr(), (int) warps, headSize);
        }
    }

    // ---- sampling ----

    /** ids[i] = argmax of logits row i (lowest index on ties), on the device. */
    public void argmax(Tensor ids, Tensor logits, int n) {
        CudaTensor id = t(ids), lg = t(logits);
        need(id.isInt() && id.rows() * id.cols() >= n, "argmax: ids must be an integer tensor of at least n values");
        if (n > 0) {
            launch("argmax_rows", n, 1, 1, 1024, 0, id.ptr(), lg.ptr(), lg.dtype().code, lg.cols());
        }
    }

    /** Greedy tokens of the first n rows of logits. */
    public int[] argmax(Tensor logits, int n) {
        try (CudaTensor ids = allocate(1, Math.max(n, 1), CudaTensor.DType.I32)) {
            argmax(ids, logits, n);
            return readInts(ids, n);
        }
    }

    /** What sample_rows writes for a row it leaves to the host: invalid logits (the Sampler raises), or undecided. */
    static final int SAMPLE_INVALID = -1;
    static final int SAMPLE_UNDECIDED = -2;
    /** sample_rows' dynamic shared memory: histogram counts and mantissa sums (2048 bins), 8192 candidate keys. */
    private static final int SAMPLE_SMEM = 2048 * (4 + 8) + 8192 * 8;
    private volatile boolean sampleSmemSet;
    private final java.util.concurrent.atomic.LongAdder hostSampledRows = new java.util.concurrent.atomic.LongAdder();

    /**
     * Samples on the device (kernel sample_rows, one block per row) and reads back only the ids. A row the kernel
     * leaves to the host -- invalid logits, or sums too close to a decision boundary for the device to be sure of
     * the Sampler's rounding (rare; see sample.cu) -- is read and sampled by the Sampler here, so the tokens, and the
     * exception for a bad row, are always the Sampler's.
     */
    @Override
    public int[] sample(Tensor logits, int n, SamplingParams[] params, int[] positions) {
        return sample(logits, n, params, positions, 1f);
    }

    /** {@link #sample} with the kernel's comparison margin scaled (tests: 0 and +infinity). */
    int[] sample(Tensor logits, int n, SamplingParams[] params, int[] positions, float marginScale) {
        int[] ids = sampleCodes(logits, n, params, positions, marginScale);
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || positions[i] < 0) {
                hostSampledRows.increment();
                ids[i] = HostSampling.sampleRow(this, logits, i, params[i], positions[i]);
            }
        }
        return ids;
    }

    @Override
    public Tensor allocateSampling(int rows) {
        return allocate(1, 6 * Math.max(rows, 1), CudaTensor.DType.I32);
    }

    @Override
    public void writeSampling(Tensor dst, SamplingParams[] params, int[] positions, int n) {
        writeInts(dst, sampleParams(n, params, positions));
    }

    @Override
    public void sampleRecorded(Tensor ids, Tensor logits, int n, Tensor sampling) {
        sampleOnDevice(t(ids), t(logits), n, t(sampling), 1f);
    }

    @Override
    public int[] takeSampled(Tensor ids, Tensor logits, int n, SamplingParams[] params, int[] positions) {
        int[] out = readInts(ids, n);
        for (int i = 0; i < n; i++) {
            if (out[i] < 0 || positions[i] < 0) {
                hostSampledRows.increment();
                out[i] = HostSampling.sampleRow(this, logits, i, params[i], positions[i]);
            }
        }
        return out;
    }

    /** Rows that {@link #sample} handed to the host Sampler since this backend opened (logs and benchmarks). */
    public long hostSampledRows() {
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
        try (CudaTensor packed = (CudaTensor) upload(sampleParams(n, params, positions));
                CudaTensor ids = allocate(1, n, CudaTensor.DType.I32)) {
            sampleOnDevice(ids, lg, n, packed, marginScale);
            return readInts(ids, n);
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
        if (!sampleSmemSet) {
            cuFuncSetAttribute(fn("sample_rows"), CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, SAMPLE_SMEM);
            sampleSmemSet = true;
        }
        if (n > 0) {
            launch("sample_rows", n, 1, 1, 1024, SAMPLE_SMEM, ids.ptr(), logits.ptr(), logits.dtype().code, logits.cols(), params.ptr(),
                    marginScale);
        }
    }
}
