/*
 * JNI shim for the one CUDA driver call that JCuda 12.6 does not expose: cuTensorMapEncodeTiled, which builds
 * the descriptors that Hopper's tensor memory accelerator (TMA) copies tiles with. The function is looked up in
 * the driver library the process has loaded already (JCuda's), so this library links against nothing but libdl.
 */
#include <jni.h>
#include <dlfcn.h>
#include <stdint.h>
#include <cuda.h>

typedef CUresult (*encode_tiled_fn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                    const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                    CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

static encode_tiled_fn encode_tiled(void) {
    static encode_tiled_fn fn = 0;
    if (fn == 0) {
        void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
        if (driver != 0) {
            fn = (encode_tiled_fn) dlsym(driver, "cuTensorMapEncodeTiled");
        }
    }
    return fn;
}

/*
 * A descriptor of a row-major bf16 matrix [rows, cols] at a device address, copied in boxes of boxRows x boxCols
 * with the 128-byte swizzle (the layout the wgmma kernels read); out-of-range elements read as zero. Writes the
 * 128 descriptor bytes into out; returns the CUresult, or -1 when the driver has no such function.
 */
JNIEXPORT jint JNICALL Java_sps2_gpu_cuda_TensorMaps_encodeBf16Rows(JNIEnv* env, jclass cls, jbyteArray out, jlong address, jlong rows,
                                                                   jlong cols, jint boxRows, jint boxCols) {
    (void) cls;
    encode_tiled_fn fn = encode_tiled();
    if (fn == 0) {
        return -1;
    }
    CUtensorMap map;
    cuuint64_t dims[2] = {(cuuint64_t) cols, (cuuint64_t) rows};
    cuuint64_t strides[1] = {(cuuint64_t) cols * 2};
    cuuint32_t box[2] = {(cuuint32_t) boxCols, (cuuint32_t) boxRows};
    cuuint32_t elementStrides[2] = {1, 1};
    CUresult r = fn(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void*) (uintptr_t) address, dims, strides, box, elementStrides,
                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r == CUDA_SUCCESS) {
        (*env)->SetByteArrayRegion(env, out, 0, (jsize) sizeof(map), (const jbyte*) &map);
    }
    return (jint) r;
}
