package sps2.gpu.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;

/**
 * TMA descriptors (CUtensorMap, 128 bytes) for the Hopper GEMM, through the JNI shim in src/main/native (the
 * build compiles it where nvcc and the CUDA headers are; JCuda 12.6 has no cuTensorMapEncodeTiled). A kernel
 * takes a descriptor by value as a 64-byte aligned parameter.
 */
final class TensorMaps {
    private static final String RESOURCE = "/sps2/gpu/cuda/native/libsps2tma.so";
    private static final String UNAVAILABLE = load();
    private static final Field NATIVE_POINTER = field(NativePointerObject.class, "nativePointer");
    private static final Field BYTE_OFFSET = field(Pointer.class, "byteOffset");

    private TensorMaps() {
    }

    /** Null when descriptors can be made, else why not. */
    static String unavailableReason() {
        return UNAVAILABLE;
    }

    /**
     * The descriptor of a row-major bf16 matrix [rows, cols] at {@code p}, copied in boxes of boxRows x boxCols
     * (boxCols * 2 bytes must be 128: one swizzle atom per row) with the 128-byte swizzle; out-of-range elements
     * read as zero.
     */
    static byte[] bf16Rows(CUdeviceptr p, long rows, long cols, int boxRows, int boxCols) {
        if (UNAVAILABLE != null) {
            throw new IllegalStateException("TMA descriptors are unavailable: " + UNAVAILABLE);
        }
        byte[] map = new byte[128];
        int r = encodeBf16Rows(map, address(p), rows, cols, boxRows, boxCols);
        if (r != 0) {
            throw new IllegalStateException("cuTensorMapEncodeTiled failed with CUresult " + r + " for a [" + rows + ", " + cols + "] bf16 matrix");
        }
        return map;
    }

    /** The device address a JCuda pointer stands for (its native value plus its byte offset). */
    static long address(CUdeviceptr p) {
        try {
            return NATIVE_POINTER.getLong(p) + BYTE_OFFSET.getLong(p);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException("Could not read the address of a JCuda pointer", e);
        }
    }

    private static native int encodeBf16Rows(byte[] out, long address, long rows, long cols, int boxRows, int boxCols);

    private static Field field(Class<?> c, String name) {
        try {
            Field f = c.getDeclaredField(name);
            f.setAccessible(true);
            return f;
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("This JCuda version has no field " + c.getSimpleName() + "." + name, e);
        }
    }

    private static String load() {
        try (InputStream in = TensorMaps.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                return "this build has no " + RESOURCE + " (built without nvcc and the CUDA headers)";
            }
            Path f = Files.createTempFile("sps2tma", ".so");
            f.toFile().deleteOnExit();
            Files.copy(in, f, StandardCopyOption.REPLACE_EXISTING);
            System.load(f.toAbsolutePath().toString());
            return null;
        } catch (IOException | UnsatisfiedLinkError e) {
            return "the JNI shim could not be loaded: " + e.getMessage();
        }
    }
}
