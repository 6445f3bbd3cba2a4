package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import jcuda.Pointer;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sps2.gpu.Tensor;
import sps2.model.HostTensor;

/**
 * The kernel modules of one device: src/main/cuda compiled at build time to PTX and to sm_90 machine code (both carried in the jar)
 * loaded into the device's context, their entry points by name, and {@link #launch}. The sm_90a module (wgmma
 * GEMM) loads only on compute capability 9.0 and is used only once {@link #checkGemms} has compared its kernels
 * with the portable ones.
 */
final class CudaKernels {
    private static final Logger LOG = LoggerFactory.getLogger(CudaKernels.class);
    private static final String[] MODULES = {"ops", "gemm", "attention", "exchange", "sample"};
    private static final String HOPPER_MODULE = "gemm_sm90a";
    /** The Hopper prefill attention kernels (CudaAttention.HOPPER_PREFILLS): loaded with the GEMM module, used by name only. */
    private static final String HOPPER_ATTENTION_MODULE = "attention_sm90a";
    private static final boolean DEBUG_SYNC = Boolean.getBoolean("sps2.cuda.syncEachLaunch");
    private static final CUdeviceptr NULL = new CUdeviceptr();

    private static volatile String unavailable;
    private static volatile boolean probed;

    private final CudaDevice device;
    private final List<CUmodule> modules = new ArrayList<>();
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final boolean hopperModule;

    // ---- availability ----

    /** Why the CUDA backend cannot run here (no kernels in the jar, no driver, no device), or null when it can. */
    static synchronized String unavailableReason() {
        if (!probed) {
            unavailable = probe();
            probed = true;
        }
        return unavailable;
    }

    private static String probe() {
        for (String m : MODULES) {
            if (CudaKernels.class.getResource(ptxResource(m)) == null) {
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

    static String ptxResource(String module) {
        return "/sps2/gpu/cuda/ptx/" + module + ".ptx";
    }

    // ---- loading ----

    /**
     * Loads every portable module into {@code device}'s context (current on the calling thread), and the sm_90a
     * module on compute capability 9.0; sets the dynamic shared memory limits of the GEMM and prefill kernels.
     */
    CudaKernels(CudaDevice device) {
        this.device = device;
        for (String m : MODULES) {
            CUmodule module = load(m);
            for (String f : kernelNames(m)) {
                CUfunction fn = new CUfunction();
                cuModuleGetFunction(fn, module, f);
                functions.put(f, fn);
            }
        }
        for (GemmKernel g : Stream.concat(GemmPlanner.GEMMS.stream(), GemmPlanner.INVARIANT_TILES.stream()).toList()) {
            maxDynamicShared(g.name(), g.smem());
        }
        maxDynamicShared("sample_rows", CudaSampling.SAMPLE_SMEM);
        this.hopperModule = loadHopperModule();
        for (int d : new int[] {64, 128}) {
            for (CudaAttention.PrefillKernel k : CudaAttention.PREFILLS) {
                if (CudaAttention.hasPrefill(d, k)) {
                    maxDynamicShared(k.name(d), k.smem(d));
                }
            }
            for (CudaAttention.PrefillKernel k : CudaAttention.INVARIANT) {
                if (CudaAttention.hasPrefill(d, k)) {
                    maxDynamicShared(k.name(d), k.smem(d));
                }
            }
        }
        if (hopperModule) {
            loadHopperAttention();
        }
    }

    /** Loads attention_sm90a (when the build carries it); a failure leaves its kernels out, and the variants fall back to w8_all. */
    private void loadHopperAttention() {
        if (CudaKernels.class.getResource(ptxResource(HOPPER_ATTENTION_MODULE)) == null) {
            return;
        }
        try {
            CUmodule module = load(HOPPER_ATTENTION_MODULE);
            // each kernel is listed only once its shared-memory limit is set: a listed kernel is one that can launch
            for (CudaAttention.PrefillKernel k : CudaAttention.HOPPER_PREFILLS) {
                CUfunction fn = new CUfunction();
                cuModuleGetFunction(fn, module, k.name(64));
                cuFuncSetAttribute(fn, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, k.smem(64));
                functions.put(k.name(64), fn);
            }
        } catch (RuntimeException e) {
            LOG.warn("The Hopper attention kernels could not be loaded; their variants fall back to the portable ones.", e);
        }
    }

    /** Whether kernel {@code name} is loaded on this device. */
    boolean has(String name) {
        return functions.containsKey(name);
    }

    /** Every wgmma kernel of the sm_90a module: the ones in use on Hopper, then the optional ones. */
    private static List<GemmKernel> wgmmas() {
        return Stream.concat(GemmPlanner.WGMMAS.stream(), GemmPlanner.WGMMA_OPTIONAL.stream()).toList();
    }

    /** Loads the sm_90a module on compute capability 9.0 devices; any failure leaves the portable kernels in charge. */
    private boolean loadHopperModule() {
        int major = device.attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        if (major != 9 || CudaKernels.class.getResource(ptxResource(HOPPER_MODULE)) == null) {
            return false;
        }
        try {
            CUmodule module = load(HOPPER_MODULE);
            for (GemmKernel g : wgmmas()) {
                CUfunction fn = new CUfunction();
                cuModuleGetFunction(fn, module, g.name());
                cuFuncSetAttribute(fn, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, g.smem());
                functions.put(g.name(), fn);
            }
            return true;
        } catch (RuntimeException e) {
            LOG.warn("The Hopper (sm_90a) kernels could not be loaded; using the portable kernels.", e);
            return false;
        }
    }

    /**
     * What the GEMM planner may use on this device: with the sm_90a module loaded, each wgmma kernel is checked
     * once against the mma.sync kernel on random data (x [200, 320], w [384, 320]). A failing {@link
     * GemmPlanner#WGMMAS} kernel, or any error, leaves the portable kernels in charge; a failing optional kernel
     * is dropped alone. Runs while {@code be} is being constructed: it launches through {@link
     * CudaBackend#gemm}, with plans of a portable-only planner (forced kernels do not depend on the device).
     */
    GemmPlanner.Device checkGemms(CudaBackend be) {
        int sm = device.multiprocessors();
        if (!hopperModule) {
            return GemmPlanner.Device.portable(sm);
        }
        GemmPlanner forced = new GemmPlanner(GemmPlanner.Device.portable(sm));
        List<GemmKernel> passed = new ArrayList<>();
        try {
            Random r = new Random(1);
            int mm = 200, n = 384, k = 320;
            float[] x = new float[mm * k], w = new float[n * k];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) r.nextGaussian();
            }
            try (Tensor xt = be.allocate(mm, k); Tensor wt = be.upload(HostTensor.ofFloats("check", w, n, k)); Tensor ref = be.allocateFloat(mm, n);
                    Tensor got = be.allocateFloat(mm, n)) {
                be.write(xt, 0, x, 0, mm);
                be.gemm(ref, xt, wt, mm, forced.plan(new GemmPlanner.Product(mm, n, k, true, "gemm_128x128", 1)));
                float[] a = new float[mm * n], b = new float[mm * n];
                be.read(ref, 0, a, 0, mm);
                for (GemmKernel g : wgmmas()) {
                    if (g.tma() && TensorMaps.unavailableReason() != null) {
                        LOG.info("The TMA GEMM kernel stays unused: {}.", TensorMaps.unavailableReason());
                        continue;
                    }
                    be.fill(got, Float.NaN);
                    be.gemm(got, xt, wt, mm, forced.plan(new GemmPlanner.Product(mm, n, k, true, g.name(), 1)));
                    be.read(got, 0, b, 0, mm);
                    double num = 0, den = 0;
                    for (int i = 0; i < a.length; i++) {
                        num += (a[i] - b[i]) * (double) (a[i] - b[i]);
                        den += a[i] * (double) a[i];
                    }
                    if (GemmPlanner.WGMMA_OPTIONAL.contains(g)) {
                        if (num <= 1e-8 * den) {
                            passed.add(g);
                        } else {
                            LOG.warn("The GEMM kernel {} disagrees with the portable one (relative error {}); it stays unused.", g.name(),
                                    Math.sqrt(num / den));
                        }
                    } else if (!(num <= 1e-8 * den)) {
                        LOG.warn("The Hopper GEMM kernel {} disagrees with the portable one (relative error {}); using the portable kernels.",
                                g.name(), Math.sqrt(num / den));
                        return new GemmPlanner.Device(sm, false, passed);
                    }
                }
            }
            return new GemmPlanner.Device(sm, true, passed);
        } catch (RuntimeException e) {
            LOG.warn("The Hopper (sm_90a) kernels could not be loaded; using the portable kernels.", e);
            // As before the split: optional kernels that passed before the error stay listed (the planner's rules
            // for them do not look at hopper).
            return new GemmPlanner.Device(sm, false, passed);
        }
    }

    /**
     * Loads a module into the current context: its sm_90 machine code (the build's cubin) on a compute capability 9.0
     * device, else its PTX, which the driver compiles at load (about 20 s for all modules on an H200 in session 4's
     * measurement, paid by every process; with the cubins that compilation is gone). A cubin the driver refuses falls
     * back to the PTX.
     */
    private CUmodule load(String name) {
        CUmodule module = new CUmodule();
        byte[] cubin = sm90() ? readResource(cubinResource(name), false) : null;
        if (cubin != null) {
            try {
                cuModuleLoadData(module, cubin);
                modules.add(module);
                return module;
            } catch (RuntimeException e) {
                LOG.warn("The driver refused the machine code of kernel module {} ({}); compiling its PTX instead, which makes "
                        + "opening the backend slower.", name, e.getMessage());
            }
        }
        cuModuleLoadData(module, readPtx(name));
        modules.add(module);
        return module;
    }

    private boolean sm90() {
        return device.attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR) == 9
                && device.attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR) == 0
                && !Boolean.getBoolean("sps2.cuda.jitPtx");
    }

    /** Every module the build compiles: the portable ones, then the sm_90a ones. */
    static List<String> moduleNames() {
        return Stream.concat(Stream.of(MODULES), Stream.of(HOPPER_MODULE, HOPPER_ATTENTION_MODULE)).toList();
    }

    static String cubinResource(String module) {
        return "/sps2/gpu/cuda/cubin/" + module + ".cubin";
    }

    /** A resource's bytes, or null when the jar does not carry it and it is optional. */
    private static byte[] readResource(String path, boolean required) {
        try (InputStream in = CudaKernels.class.getResourceAsStream(path)) {
            if (in == null) {
                if (required) {
                    throw new IllegalStateException("The kernel module " + path + " is missing from the jar");
                }
                return null;
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("The kernel module " + path + " could not be read", e);
        }
    }

    private static byte[] readPtx(String module) {
        byte[] text = readResource(ptxResource(module), true);
        byte[] z = new byte[text.length + 1]; // the driver reads PTX as a NUL-terminated string
        System.arraycopy(text, 0, z, 0, text.length);
        return z;
    }

    /** The entry points of a module, read from the PTX text (".entry name("). */
    static List<String> kernelNames(String module) {
        String text = new String(readPtx(module), StandardCharsets.US_ASCII);
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

    // ---- launching ----

    /** Lets kernel {@code name} use up to {@code bytes} of dynamic shared memory. */
    void maxDynamicShared(String name, int bytes) {
        cuFuncSetAttribute(fn(name), CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
    }

    /**
     * Launches kernel {@code name} on the calling thread's stream: grid [gx, gy, gz], {@code block} threads,
     * {@code smem} dynamic shared bytes. Arguments: CUdeviceptr (null for a null pointer), Integer, Long, Float,
     * or byte[] (a by-value struct: a TMA descriptor), in the kernel's parameter order and types.
     */
    void launch(String name, int gx, int gy, int gz, int block, int smem, Object... args) {
        CUstream s = device.stream();
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

    /** close(): unloads the modules (after the streams are gone, before the context is released). */
    void close() {
        for (CUmodule m : modules) {
            cuModuleUnload(m);
        }
        modules.clear();
    }
}
