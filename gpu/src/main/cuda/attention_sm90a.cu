// Prefill attention for Hopper (sm_90a), head size 64, in the manner of FlashAttention-3: the two products of
// every key tile on the asynchronous warpgroup tensor cores (wgmma), K/V loads by a warpgroup of their own.
//
// One block per (query head, tile of 64 * NC query rows of one sequence), NC + 1 warpgroups; the GQA-packed
// forms (GP = 4) take one block per (KV head, tile of 64 * NC / GP positions), the GP query heads of that KV head
// in its rows, so that each K/V tile loaded serves all of them:
//   warpgroup 0, the producer: copies K/V tiles of 128 keys (paged pool or compact K/V, addressed as in
//     attention.cu) into a ring of STAGES shared-memory slots with cp.async; each thread's copies signal the
//     slot's "full" mbarrier when they land (cp.async.mbarrier.arrive.noinc, 128 arrivals a slot);
//   warpgroups 1 .. NC, the consumers: 64 query rows each. Per key tile: S[64 x 128] = Q K^T by four
//     m64n128k16 wgmmas (Q and K from shared memory), the masked online softmax in registers, then
//     O[64 x 64] += P V by eight m64n64k16 wgmmas with P from registers (the S accumulator layout is the A
//     fragment layout: no shuffles) and V read N-major where it lies. Each warp releases the slot ("empty",
//     4 NC arrivals) when its products are done.
// The consumer warpgroups are not forced into step: while one runs its softmax the tensor cores run the
// others' products (NC = 3, as FlashAttention-3 uses for head size 64: two warpgroups' products can cover a
// third one's softmax, whose exponentials at d = 64 take as long as its products at the tensor cores' peak).
// EXB: the exponentials two at a time in bf16 (ex2.bf16x2: half the special-function work, P comes out packed)
// and O rescaled only when a row max grew by more than 8 (log2): the stale max keeps p <= 2^8, exact after the
// final division; the row sums add the bf16 p that the P V product uses.
// GP > 1 (GQA packing, GP = query heads per KV head): a block serves the GP query heads of one KV head, its rows
// being BQ / GP positions of each head (row r: head g GP + r / (BQ / GP), position r % (BQ / GP)), so that every K/V
// tile loaded serves GP heads: a quarter of the K/V traffic and of the producer's work per product at GQA 32/8.
// Blocks take the tiles in CudaPrepared's order: the ones with the most keys start first.
// Same arguments and outputs as attn_prefill (attention.cu): out, and the natural-log lse of the scaled scores.
#include "attention.cuh"
#include "hopper.cuh"

// D[64 x 64] += A[64 x 16] * B[16 x 64]: A from registers (this thread's bf16 pairs, in the accumulator layout
// of a 64 x 16 slice of an m64nN product), B N-major in 128B-swizzled shared memory (V as it lies in the tile: one
// key's 64 values per 128-byte row; imm-trans-b = 1).
__device__ __forceinline__ void wgmma_m64n64_rs(float* d, const uint32_t* a, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

__device__ __forceinline__ int wa_swz(int row, int chunk) { return row * 64 + ((chunk ^ (row & 7)) << 3); }

__device__ __forceinline__ void named_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// The thread's earlier cp.async copies arrive on the mbarrier when they complete (no extra arrival is counted).
__device__ __forceinline__ void cp_async_arrive(uint64_t* bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

// The position of tile row r (GQA packing: rows are PB positions of each of GP heads in turn).
template <int GP, int PB>
__device__ __forceinline__ int row_pos(int r) {
    if constexpr (GP > 1) {
        return r % PB;
    } else {
        return r;
    }
}

template <int NC, int STAGES, bool PIPE, bool EXB, int GP>
__device__ __forceinline__ void attn_wg(void* out, int odt, float* lse, const bf16* q, const int* tSeq, const int* tQ0,
                                        const int* qStart, const int* qLen, const int* kvLen, const bf16* kp, const bf16* vp,
                                        const int* tables, const int* tableOff, int bs, int rowStride, int maxLen, const int* lens,
                                        int nHeads, int nKvHeads, float scaleLog2) {
    static_assert(!(PIPE && EXB), "the pipelined form reads P while the next softmax runs: EXB writes P there");
    constexpr int D = 64, BQ = 64 * NC, BKV = 128, TILE = BKV * D;  // TILE: elements of one K or V slot
    constexpr int PB = BQ / GP;  // positions per tile
    static_assert(GP == 1 || (PB % 16 == 0 && PB <= 64), "a warp's 16 rows are positions of one head; each warpgroup sees every position");
    // Registers: with PIPE or three consumer warpgroups the producer gives most of its registers to the consumers
    // (128 x 40 + 128 NC x CREG <= 64K; at NC = 3 the launch grants 128 a thread, so 40 + 3 x 152 <= 4 x 128).
    constexpr bool SHIFT_REGS = PIPE || NC > 2;
    constexpr int CREG = NC > 2 ? 152 : 232;
    extern __shared__ __align__(1024) unsigned char wa_smem[];
    bf16* sQ = reinterpret_cast<bf16*>(wa_smem);  // [BQ][D]
    bf16* sK = sQ + BQ * D;                       // [STAGES][BKV][D]
    bf16* sV = sK + STAGES * TILE;                // [STAGES][BKV][D]
    uint64_t* full = reinterpret_cast<uint64_t*>(sV + STAGES * TILE);
    uint64_t* empty = full + STAGES;

    const int tile = blockIdx.y;  // CudaPrepared orders the tiles by key count, most first
    // GP == 1: blockIdx.x is the query head; GP > 1: the KV head, whose GP query heads the rows hold
    const int h = blockIdx.x;  // GP == 1: the query head
    const int g = GP > 1 ? h : h / (nHeads / nKvHeads);
#define ROW_POS(r) row_pos<GP, PB>(r)
#define ROW_HEAD(r) (GP > 1 ? g * GP + (r) / PB : h)
    const int tid = threadIdx.x, wg = tid >> 7, wtid = tid & 127;
    const int s = tSeq[tile], q0 = tQ0[tile];
    const bool causal = tables != nullptr;
    const int ql = qLen[s];
    const int kl = causal ? kvLen[s] : lens[g];
    const int posValid = min(PB, ql - q0);  // positions of the tile inside the sequence's query rows
    const int offset = kl - ql;  // query row j sees keys <= offset + j (causal)
    const int nKeys = causal ? offset + q0 + posValid : kl;
    const int toff = causal ? tableOff[s] : 0;
    const long qRow0 = (long)qStart[s] + q0;
    const int qStride = nHeads * D;
    const int nT = (nKeys + BKV - 1) / BKV;

    if (tid == 0) {
        for (int i = 0; i < STAGES; i++) {
            mbar_init(&full[i], 128);
            mbar_init(&empty[i], 4 * NC);  // one arrival per consumer warp
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        if constexpr (SHIFT_REGS) asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        // Producer: slot j % STAGES takes tile j once the consumers released tile j - STAGES.
        for (int j = 0; j < nT; j++) {
            const int st = j % STAGES;
            if (j >= STAGES) mbar_wait<true>(&empty[st], ((j / STAGES) - 1) & 1);
            bf16* dk = sK + st * TILE;
            bf16* dv = sV + st * TILE;
#pragma unroll
            for (int u = 0; u < BKV * 8 / 128; u++) {
                const int i = wtid + u * 128, r = i >> 3, c = i & 7;
                const int t = j * BKV + r;
                const bool ok = t < nKeys;
                const long e = ok ? key_elem(tables, toff, bs, rowStride, maxLen, g, D, t) + c * 8 : 0;
                cp_async16(smem_u32(dk + wa_swz(r, c)), kp + e, ok ? 16 : 0);
                cp_async16(smem_u32(dv + wa_swz(r, c)), vp + e, ok ? 16 : 0);
            }
            cp_async_arrive(&full[st]);
        }
        asm volatile("cp.async.wait_all;\n" ::: "memory");
        return;
    }

    // The consumers hold S, P and O at once: they take the registers the producer gave back.
    if constexpr (SHIFT_REGS) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(CREG) : "memory");
    // Consumers: rows cw * 64 .. cw * 64 + 63 of the tile; this thread's rows are rowBase and rowBase + 8.
    const int cw = wg - 1, warp = wtid >> 5, lane = tid & 31;
    const int rowBase = cw * 64 + warp * 16 + (lane >> 2);
    bf16* myQ = sQ + cw * 64 * D;
    for (int i = wtid; i < 64 * 8; i += 128) {
        const int r = i >> 3, c = i & 7, rr = cw * 64 + r;
        const bool ok = ROW_POS(rr) < posValid;
        const bf16* src = ok ? q + (qRow0 + ROW_POS(rr)) * qStride + (long)ROW_HEAD(rr) * D + c * 8 : q;
        cp_async16(smem_u32(myQ + wa_swz(r, c)), src, ok ? 16 : 0);
    }
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();  // the Q rows, written through the generic proxy, are read by wgmma
    named_sync(1 + cw, 128);
    const uint64_t dq = smem_desc(myQ);

    // Tiles 0 .. nC-1 hold keys that some valid row of this warpgroup sees (causal: the later ones only wait and release).
    // (GP > 1: a warpgroup's 64 rows cover every position of the tile)
    const int lastKey = offset + q0 + (GP > 1 ? posValid - 1 : min(cw * 64 + 63, posValid - 1));
    const int nC = GP == 1 && cw * 64 >= posValid ? 0 : causal ? min(nT, lastKey / BKV + 1) : nT;
    float o[32], sc[64], m[2], l[2];
    uint32_t pa[BKV / 16][4];  // P as bf16 A fragments: keys 16 kk .. 16 kk + 15 are S's n8 blocks 2 kk and 2 kk + 1
#pragma unroll
    for (int i = 0; i < 32; i++) o[i] = 0.f;
#pragma unroll
    for (int i = 0; i < 64; i++) sc[i] = 0.f;
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.f;

    // GQA packing: the last key that this thread's first row sees (causal), worked out once; its second row, 8 rows
    // on inside the same warp's 16 rows of one head, sees 8 more (PB % 16 == 0)
    [[maybe_unused]] int seenPacked = 0;
    if constexpr (GP > 1) {
        seenPacked = offset + q0 + ROW_POS(rowBase);
    }

    // S = Q K^T (raw scores) of tile j, issued (not waited for)
    auto issue_s = [&](int j) {
        mbar_wait<true>(&full[j % STAGES], (j / STAGES) & 1);
        fence_proxy_async();
        const uint64_t dk = smem_desc(sK + (j % STAGES) * TILE);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) wgmma_m64n128(sc, dq + 2 * kk, dk + 2 * kk, kk > 0);
        wg_commit();
    };
    // O += P V of tile j, issued
    auto issue_pv = [&](int j) {
        const uint64_t dv = smem_desc(sV + (j % STAGES) * TILE);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BKV / 16; kk++) wgmma_m64n64_rs(o, pa[kk], dv + 128 * kk);  // 16 rows = 2048 bytes
        wg_commit();
    };
    auto release = [&](int j) {
        if (lane == 0) mbar_arrive(&empty[j % STAGES]);
    };
    // The masked online softmax of tile j's scores in sc: p = 2^(s * scale - max) in place, the row max and sum
    // updated; returns the factors by which O's two rows must be rescaled (not applied: O may be in flight).
    auto softmax = [&](int j, float* c) {
        const int kBase = j * BKV;
        int firstSeen;  // the last key that the warp's first row sees (causal)
        if constexpr (GP > 1) {
            firstSeen = seenPacked - (lane >> 2);
        } else {
            firstSeen = offset + q0 + cw * 64 + warp * 16;
        }
        const bool needMask = causal ? kBase + BKV - 1 > firstSeen : kBase + BKV > kl;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            int lim = kl - 1;  // the last key this row sees
            if (causal) {
                if constexpr (GP > 1) {
                    lim = seenPacked + 8 * hh;
                } else {
                    lim = offset + q0 + rowBase + 8 * hh;
                }
            }
            float mx = -INFINITY;
#pragma unroll
            for (int jn = 0; jn < BKV / 8; jn++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float v = sc[4 * jn + 2 * hh + e];
                    if (needMask && kBase + 8 * jn + 2 * (lane & 3) + e > lim) v = -INFINITY;
                    sc[4 * jn + 2 * hh + e] = v;
                    mx = fmaxf(mx, v);
                }
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mn;
            if constexpr (EXB) {
                const float cand = mx * scaleLog2;
                mn = cand > m[hh] + 8.f ? cand : m[hh];  // the stale max stays unless the new one is 2^8 above it
                c[hh] = mn == m[hh] ? 1.f : rescale(m[hh], mn);
            } else {
                mn = fmaxf(m[hh], mx * scaleLog2);
                c[hh] = rescale(m[hh], mn);
            }
            m[hh] = mn;
            const float base = mn == -INFINITY ? 0.f : mn;
            float sum = 0.f;
            if constexpr (EXB) {
                // scores 4 jn + 2 hh and + 1 are keys 8 jn + 2 (lane & 3) and + 1 of this row: P's A fragment
                // pa[jn / 2][2 (jn % 2) + hh] (see rescale_pack)
#pragma unroll
                for (int jn = 0; jn < BKV / 8; jn++) {
                    const float x0 = fmaf(sc[4 * jn + 2 * hh], scaleLog2, -base);
                    const float x1 = fmaf(sc[4 * jn + 2 * hh + 1], scaleLog2, -base);
                    const uint32_t p2 = ex2_bf16x2(pack_bf16x2(x0, x1));
                    pa[jn >> 1][2 * (jn & 1) + hh] = p2;
                    sum += __uint_as_float(p2 << 16) + __uint_as_float(p2 & 0xffff0000u);
                }
            } else {
#pragma unroll
                for (int jn = 0; jn < BKV / 8; jn++) {
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const float p = fast_exp2(fmaf(sc[4 * jn + 2 * hh + e], scaleLog2, -base));
                        sc[4 * jn + 2 * hh + e] = p;
                        sum += p;
                    }
                }
            }
            l[hh] = l[hh] * c[hh] + sum;
        }
    };
    // O's rows rescaled, P packed for the P V product (EXB: packed by the softmax; O rescaled only if a row's max moved)
    auto rescale_pack = [&](const float* c) {
        if (!EXB || __any_sync(0xffffffffu, c[0] != 1.f || c[1] != 1.f)) {
#pragma unroll
            for (int jd = 0; jd < D / 8; jd++) {
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    o[4 * jd + 2 * hh] *= c[hh];
                    o[4 * jd + 2 * hh + 1] *= c[hh];
                }
            }
        }
        if constexpr (!EXB) {
#pragma unroll
            for (int kk = 0; kk < BKV / 16; kk++) {
#pragma unroll
                for (int r = 0; r < 4; r++) pa[kk][r] = pack_bf16x2(sc[8 * kk + 2 * r], sc[8 * kk + 2 * r + 1]);
            }
        }
    };
    auto fence_s = [&]() {
#pragma unroll
        for (int i = 0; i < 64; i++) reg_fence(sc[i]);
    };
    auto fence_o = [&]() {
#pragma unroll
        for (int i = 0; i < 32; i++) reg_fence(o[i]);
    };

    if constexpr (!PIPE) {
        // S, softmax, P V in turn; the other consumer warpgroup fills the tensor cores meanwhile
        for (int j = 0; j < nC; j++) {
            float c[2];
            issue_s(j);
            wg_wait<0>();
            fence_s();
            softmax(j, c);
            rescale_pack(c);
            issue_pv(j);
            wg_wait<0>();
            fence_o();
            release(j);
        }
    } else {
        // FA3's intra-warpgroup pipeline: the softmax of tile j runs while P V of tile j - 1 is on the tensor cores.
        //   S(j+1) issued, then P V(j) issued; waiting for all but one group leaves P V(j) running into the next
        //   iteration's softmax, and O is rescaled only after it completes.
        // The last tile is peeled off the loop: a wgmma issued under a condition serializes them all (ptxas C7518).
        if (nC > 0) {
            issue_s(0);
            wg_wait<0>();
            fence_s();
            for (int j = 0; j + 1 < nC; j++) {
                float c[2];
                softmax(j, c);  // P V(j - 1) may still be running: it reads pa and writes o, neither touched here
                wg_wait<0>();   // P V(j - 1) done
                fence_o();
                if (j > 0) release(j - 1);
                rescale_pack(c);
                issue_s(j + 1);  // sc is free: P(j) is in pa
                issue_pv(j);
                wg_wait<1>();  // S(j + 1) done (committed first); P V(j) may run on
                fence_s();
            }
            float c[2];
            softmax(nC - 1, c);
            wg_wait<0>();
            fence_o();
            if (nC > 1) release(nC - 2);
            rescale_pack(c);
            issue_pv(nC - 1);
            wg_wait<0>();
            fence_o();
            release(nC - 1);
        }
    }
    for (int j = nC; j < nT; j++) {  // tiles past every row of this warpgroup: wait for them, then free the slot
        mbar_wait<true>(&full[j % STAGES], (j / STAGES) & 1);
        __syncwarp();  // every lane has seen the phase before lane 0 lets the producer refill the slot
        release(j);
    }

    float lt[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        lt[hh] = l[hh];
        lt[hh] += __shfl_xor_sync(0xffffffffu, lt[hh], 1);
        lt[hh] += __shfl_xor_sync(0xffffffffu, lt[hh], 2);
    }
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const int r = rowBase + 8 * hh, hd = ROW_HEAD(r);
        if (ROW_POS(r) >= posValid) continue;
        const long row = qRow0 + ROW_POS(r);
        const float inv = lt[hh] > 0.f ? 1.f / lt[hh] : 0.f;
#pragma unroll
        for (int jd = 0; jd < D / 8; jd++) {
            const long at = row * qStride + hd * D + 8 * jd + 2 * (lane & 3);
            const float v0 = o[4 * jd + 2 * hh] * inv, v1 = o[4 * jd + 2 * hh + 1] * inv;
            if (odt == DT_BF16) {
                *reinterpret_cast<uint32_t*>(reinterpret_cast<bf16*>(out) + at) = pack_bf16x2(v0, v1);
            } else {
                reinterpret_cast<float*>(out)[at] = v0;
                reinterpret_cast<float*>(out)[at + 1] = v1;
            }
        }
        if ((lane & 3) == 0) lse[row * nHeads + hd] = lt[hh] > 0.f ? (m[hh] + log2f(lt[hh])) * LN2 : -INFINITY;
    }
}

#undef ROW_POS
#undef ROW_HEAD

// name: attn_prefill_d64_wg<K/V slots>[p: the intra-warpgroup pipeline][c3: three consumer warpgroups][x: EXB]
// [g4: GQA packing of 4 query heads]; 128 (NC + 1) threads, dynamic shared memory
// (64 NC * 64 + 2 * STAGES * 128 * 64) * 2 + 16 * STAGES bytes; grid (query heads / GP, tiles of 64 NC / GP positions).
#define WG_KERNEL(NC, STAGES, PIPE, EXB, GP, NAME)                                                                 \
    extern "C" __global__ void __launch_bounds__(128 * (NC + 1), 1) NAME(                                          \
        void* out, int odt, float* lse, const bf16* q, const int* tSeq, const int* tQ0, const int* qStart,         \
        const int* qLen, const int* kvLen, const bf16* kp, const bf16* vp, const int* tables, const int* tableOff, \
        int bs, int rowStride, int maxLen, const int* lens, int nHeads, int nKvHeads, float scaleLog2) {           \
        attn_wg<NC, STAGES, PIPE, EXB, GP>(out, odt, lse, q, tSeq, tQ0, qStart, qLen, kvLen, kp, vp, tables, tableOff, bs,      \
                              rowStride, maxLen, lens, nHeads, nKvHeads, scaleLog2);                               \
    }
WG_KERNEL(2, 2, false, false, 1, attn_prefill_d64_wg2)
WG_KERNEL(2, 3, false, false, 1, attn_prefill_d64_wg3)
WG_KERNEL(2, 2, true, false, 1, attn_prefill_d64_wg2p)
WG_KERNEL(2, 3, true, false, 1, attn_prefill_d64_wg3p)
WG_KERNEL(2, 3, false, true, 1, attn_prefill_d64_wg3x)
WG_KERNEL(3, 2, false, false, 1, attn_prefill_d64_wg2c3)
WG_KERNEL(3, 3, false, false, 1, attn_prefill_d64_wg3c3)
WG_KERNEL(3, 2, false, true, 1, attn_prefill_d64_wg2c3x)
WG_KERNEL(3, 3, false, true, 1, attn_prefill_d64_wg3c3x)
WG_KERNEL(2, 3, false, false, 4, attn_prefill_d64_wg3g4)
WG_KERNEL(2, 3, false, true, 4, attn_prefill_d64_wg3xg4)
WG_KERNEL(3, 3, false, true, 4, attn_prefill_d64_wg3c3xg4)
