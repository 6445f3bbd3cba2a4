// Shared helpers of the sps2 kernels. Element types travel as a run-time code per tensor:
// 0 = bfloat16, 1 = float32 (see CudaTensor.DType). Accumulation is always float32.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

#define DT_BF16 0
#define DT_F32 1

__device__ __forceinline__ float ldf(const void* p, int dt, long i) {
    return dt == DT_F32 ? ((const float*)p)[i] : __bfloat162float(((const bf16*)p)[i]);
}

__device__ __forceinline__ void stf(void* p, int dt, long i, float v) {
    if (dt == DT_F32) {
        ((float*)p)[i] = v;
    } else {
        ((bf16*)p)[i] = __float2bfloat16(v);
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Eight bf16 values in a 16-byte word, unpacked to float.
__device__ __forceinline__ void unpack8(const uint4& u, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
}

// ---- tensor-core and async-copy primitives (sm_80+) ----

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global->shared copy; bytes beyond src_bytes (0 or 16) are zero-filled.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes);

// Two neighbouring outputs (row, col) and (row, col + 1) of a product C[M, N]: into the split-K workspace ws (slice
// blockIdx.z, float32) when it is given, else into C as a bf16 pair when N is even, else one by one; columns past N dropped.
__device__ __forceinline__ void store_out2(void* C, int cdt, float* ws, int M, int N, bool pairs, int row, int col, float v0, float v1) {
    long at = (long)row * N + col;
    if (ws != nullptr) {
        float* w = ws + (long)blockIdx.z * M * N;
        if (col < N) w[at] = v0;
        if (col + 1 < N) w[at + 1] = v1;
    } else if (cdt == DT_BF16 && pairs && col + 1 < N) {
        *reinterpret_cast<uint32_t*>(reinterpret_cast<bf16*>(C) + at) = pack_bf16x2(v0, v1);
    } else {
        if (col < N) stf(C, cdt, at, v0);
        if (col + 1 < N) stf(C, cdt, at + 1, v1);
    }
}

// Rows [row0, row0 + ROWS) x 64 columns from k0 of a row-major [rows, K] bf16 matrix into a shared tile whose 16-byte
// chunk c of row r lies at element swz(r, c): one cp.async per chunk, rows or columns out of range zero-filled.
template <int ROWS, int THREADS, typename Swizzle>
__device__ __forceinline__ void load_tile64(bf16* dst, const bf16* m, int row0, int rows, int K, int k0, int tid, Swizzle swz) {
#pragma unroll
    for (int i = tid; i < ROWS * 8; i += THREADS) {
        int r = i >> 3, c = i & 7;
        int gr = row0 + r, gk = k0 + c * 8;
        bool ok = gr < rows && gk < K;
        const bf16* src = ok ? m + (long)gr * K + gk : m;
        cp_async16(smem_u32(dst + swz(r, c)), src, ok ? 16 : 0);
    }
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

// D = A(16x16, row) * B(16x8, col) + D, bf16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_bf16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
