// What the attention kernels (attention.cu, attention_sm90a.cu) share: the key address in the paged pool or
// in compact K/V, and the exponentials of the online softmax (scores in the log2 domain).
#pragma once
#include "common.cuh"

#define LN2 0.6931471805599453f

__device__ __forceinline__ long key_elem(const int* tables, int toff, int bs, int rowStride, int maxLen, int g, int D,
                                         int t) {
    if (tables != nullptr) {
        // Block sizes are powers of two in practice: a shift and a mask instead of an integer division (the
        // division cost every thread ~25 instructions per 16-byte chunk it loads).
        int blk, within;
        if ((bs & (bs - 1)) == 0) {
            blk = t >> (__ffs(bs) - 1);
            within = t & (bs - 1);
        } else {
            blk = t / bs;
            within = t - blk * bs;
        }
        long slot = (long)tables[toff + blk] * bs + within;
        return slot * rowStride + (long)g * D;
    }
    return ((long)g * maxLen + t) * rowStride;
}

// 2^x on the special-function unit (flushes denormals; 2^-inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Two 2^x at once on the special-function unit, bf16 in and out (sm_90).
__device__ __forceinline__ uint32_t ex2_bf16x2(uint32_t x) {
    uint32_t y;
    asm("ex2.approx.ftz.bf16x2 %0, %1;" : "=r"(y) : "r"(x));
    return y;
}

__device__ __forceinline__ float rescale(float m, float mn) { return m == -INFINITY ? 0.f : fast_exp2(m - mn); }
