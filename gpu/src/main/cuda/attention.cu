// Attention over the paged KV pool (causal, bottom-right aligned, grouped-query heads) and over
// per-head gathered keys (CompactKv, unmasked). Both write the output and the natural-log
// log-sum-exp of the scaled scores. Scores are kept in the log2 domain (scaled by log2(e)).
//
// Key addressing: paged (tables != null): token t of sequence s lives in slot
//   tables[tableOff[s] + t / bs] * bs + t % bs, K row = slot * rowStride + g * D;
// compact (tables == null): token t of KV head g is row g * maxLen + t, K row = row * rowStride.
#include "attention.cuh"

// 2^x on the FMA pipe (prefill variant "poly"): x = n + f with n an integer and f in [-0.5, 0.5]; 2^f by a
// degree-3 polynomial (relative error 1.2e-4, far under bf16's 3.9e-3), n added to the exponent bits.
// x <= -127 gives a denormal-sized value instead of 0; callers only use it where that is harmless.
__device__ __forceinline__ float poly_exp2(float x) {
    x = fmaxf(x, -127.f);
    float t = x + 12582912.f;  // 1.5 * 2^23: the low mantissa bits of t now hold round(x)
    float f = x - (t - 12582912.f);
    float p = fmaf(fmaf(fmaf(0.05459282f, f, 0.24221784f), f, 0.6933686f), f, 1.f);
    return __int_as_float(__float_as_int(p) + (__float_as_int(t) << 23));
}

// ---------------------------------------------------------------------------------------------
// Row kernel: one block (4 warps) per (query row, KV head, key split); the G query heads of the KV
// head share every K/V load. Lanes are grouped L = D/8 per key (16 bytes each), so a warp covers
// 32/L keys per step. Used for decode (one query per sequence), short chunks, any head size.
// With gridDim.z > 1 the block writes a normalized partial (po, plse) for attn_merge_splits.
// ---------------------------------------------------------------------------------------------
template <int D, int G>
__device__ __forceinline__ void attn_rows(void* out, int odt, float* lse, float* po, float* plse, const void* q,
                                          int qdt, const int* wRow, const int* wSeq, const int* wLimit, int nWork,
                                          const bf16* kp, const bf16* vp, const int* tables, const int* tableOff,
                                          int bs, int rowStride, int maxLen, const int* lens, int nHeads, int chunk,
                                          float scaleLog2) {
    constexpr int L = D / 8;
    constexpr int KPW = 32 / L;
    const int w = blockIdx.x, g = blockIdx.y, z = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int sub = lane / L, part = lane % L;
    const int row = wRow ? wRow[w] : w;
    const int limit = wLimit ? wLimit[w] : lens[g];
    const int toff = tables ? tableOff[wSeq[w]] : 0;
    const int start = z * chunk;
    const int end = min(limit, start + chunk);

    float qf[G][8], acc[G][8], m[G], l[G];
#pragma unroll
    for (int gi = 0; gi < G; gi++) {
        long qb = (long)row * nHeads * D + (long)(g * G + gi) * D + part * 8;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            qf[gi][e] = ldf(q, qdt, qb + e) * scaleLog2;
            acc[gi][e] = 0.f;
        }
        m[gi] = -INFINITY;
        l[gi] = 0.f;
    }

    // U key groups per warp are loaded before any is used, so that U loads per lane are in flight.
    constexpr int U = 4;
    for (int t0 = start + warp * KPW; t0 < end; t0 += 4 * KPW * U) {
        uint4 kv[U], vv[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int t = t0 + u * 4 * KPW + sub;
            kv[u] = make_uint4(0, 0, 0, 0);
            vv[u] = make_uint4(0, 0, 0, 0);
            if (t < end) {
                long e = key_elem(tables, toff, bs, rowStride, maxLen, g, D, t) + part * 8;
                kv[u] = __ldg(reinterpret_cast<const uint4*>(kp + e));
                vv[u] = __ldg(reinterpret_cast<const uint4*>(vp + e));
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            bool valid = t0 + u * 4 * KPW + sub < end;
            float kf[8], vf[8];
            unpack8(kv[u], kf);
            unpack8(vv[u], vf);
            float s[G];
#pragma unroll
            for (int gi = 0; gi < G; gi++) {
                float d = 0.f;
#pragma unroll
                for (int e = 0; e < 8; e++) d = fmaf(qf[gi][e], kf[e], d);
#pragma unroll
                for (int o = 1; o < L; o <<= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                s[gi] = d;
            }
            if (valid) {
#pragma unroll
                for (int gi = 0; gi < G; gi++) {
                    float mn = fmaxf(m[gi], s[gi]);
                    float c = rescale(m[gi], mn);
                    float p = fast_exp2(s[gi] - mn);
                    l[gi] = l[gi] * c + p;
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[gi][e] = fmaf(p, vf[e], acc[gi][e] * c);
                    m[gi] = mn;
                }
            }
        }
    }

    // Combine the key slots of a warp (lanes part, part+L, part+2L, ...).
#pragma unroll
    for (int o = L; o < 32; o <<= 1) {
#pragma unroll
        for (int gi = 0; gi < G; gi++) {
            float mo = __shfl_xor_sync(0xffffffffu, m[gi], o);
            float lo = __shfl_xor_sync(0xffffffffu, l[gi], o);
            float mn = fmaxf(m[gi], mo);
            float ca = rescale(m[gi], mn), cb = rescale(mo, mn);
            l[gi] = l[gi] * ca + lo * cb;
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float ao = __shfl_xor_sync(0xffffffffu, acc[gi][e], o);
                acc[gi][e] = acc[gi][e] * ca + ao * cb;
            }
            m[gi] = mn;
        }
    }

    __shared__ float sm[4][G], sl[4][G], sacc[4][G][D];
    if (sub == 0) {
#pragma unroll
        for (int gi = 0; gi < G; gi++) {
#pragma unroll
            for (int e = 0; e < 8; e++) sacc[warp][gi][part * 8 + e] = acc[gi][e];
            if (part == 0) {
                sm[warp][gi] = m[gi];
                sl[warp][gi] = l[gi];
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * D; i += blockDim.x) {
        int gi = i / D, d = i % D;
        float mn = fmaxf(fmaxf(sm[0][gi], sm[1][gi]), fmaxf(sm[2][gi], sm[3][gi]));
        float ls = 0.f, a = 0.f;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float c = rescale(sm[k][gi], mn);
            ls += sl[k][gi] * c;
            a += sacc[k][gi][d] * c;
        }
        int h = g * G + gi;
        float o = ls > 0.f ? a / ls : 0.f;
        float ln = ls > 0.f ? (mn + log2f(ls)) * LN2 : -INFINITY;
        if (gridDim.z == 1) {
            stf(out, odt, (long)row * nHeads * D + (long)h * D + d, o);
            if (d == 0) lse[(long)row * nHeads + h] = ln;
        } else {
            long pw = (long)z * nWork + w;
            po[(pw * nHeads + h) * D + d] = o;
            if (d == 0) plse[pw * nHeads + h] = ln;
        }
    }
}

#define ROWS_KERNEL(D, G)                                                                                        \
    extern "C" __global__ void __launch_bounds__(128) attn_rows_d##D##_g##G(                                      \
        void* out, int odt, float* lse, float* po, float* plse, const void* q, int qdt, const int* wRow,          \
        const int* wSeq, const int* wLimit, int nWork, const bf16* kp, const bf16* vp, const int* tables,         \
        const int* tableOff, int bs, int rowStride, int maxLen, const int* lens, int nHeads, int chunk,           \
        float scaleLog2) {                                                                                       \
        attn_rows<D, G>(out, odt, lse, po, plse, q, qdt, wRow, wSeq, wLimit, nWork, kp, vp, tables, tableOff, bs, \
                        rowStride, maxLen, lens, nHeads, chunk, scaleLog2);                                      \
    }
#define ROWS_KERNELS(D) ROWS_KERNEL(D, 1) ROWS_KERNEL(D, 2) ROWS_KERNEL(D, 4) ROWS_KERNEL(D, 8)
ROWS_KERNELS(8)
ROWS_KERNELS(16)
ROWS_KERNELS(32)
ROWS_KERNELS(64)
ROWS_KERNELS(128)

// Folds the key splits of the row kernel: one warp per (work item, head).
extern "C" __global__ void attn_merge_splits(void* out, int odt, float* lse, const float* po, const float* plse,
                                             const int* wRow, int nWork, int nHeads, int D, int splits) {
    int wid = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (wid >= nWork * nHeads) return;
    int w = wid / nHeads, h = wid % nHeads;
    float mx = -INFINITY;
    for (int z = 0; z < splits; z++) mx = fmaxf(mx, plse[((long)z * nWork + w) * nHeads + h]);
    float den = 0.f;
    for (int z = 0; z < splits; z++) den += rescale(plse[((long)z * nWork + w) * nHeads + h] * 1.4426950408889634f,
                                                   mx * 1.4426950408889634f);
    int row = wRow ? wRow[w] : w;
    for (int d = lane; d < D; d += 32) {
        float a = 0.f;
        for (int z = 0; z < splits; z++) {
            long pw = (long)z * nWork + w;
            float c = rescale(plse[pw * nHeads + h] * 1.4426950408889634f, mx * 1.4426950408889634f);
            if (c > 0.f) a += c * po[(pw * nHeads + h) * D + d];
        }
        stf(out, odt, ((long)row * nHeads + h) * D + d, den > 0.f ? a / den : 0.f);
    }
    if (lane == 0) lse[(long)row * nHeads + h] = den > 0.f ? mx + logf(den) : -INFINITY;
}

// ---------------------------------------------------------------------------------------------
// Fixed key segments (deterministic kernels): keys are cut at absolute multiples of SEG, each segment's
// attention is normalized on its own (o_z, lse_z), and the segments are folded left to right with this one
// merge. The prefill kernel folds in registers as it crosses a boundary; decode computes every segment in its
// own block and attn_fold_segments folds them: the same partials and the same fold, so a row gets the same
// bits from one-shot prefill, a chunk, or decode. Folding into the empty state (lse -inf) copies the partial.
// ---------------------------------------------------------------------------------------------
// An empty side (lse -inf) leaves the other exactly as it is (weights 1 and 0, its lse unchanged), so a row's
// result does not depend on how many empty segments it passes: its tile mates may reach further than it does.
__device__ __forceinline__ void fold_weights(float a, float b, float& wa, float& wb, float& l) {
    if (b == -INFINITY) {
        wa = a == -INFINITY ? 0.f : 1.f;
        wb = 0.f;
        l = a;
    } else if (a == -INFINITY) {
        wa = 0.f;
        wb = 1.f;
        l = b;
    } else {
        float m = fmaxf(a, b);
        float ea = __expf(a - m), eb = __expf(b - m);
        float s = ea + eb;
        wa = ea / s;
        wb = eb / s;
        l = m + __logf(s);
    }
}

// Explicitly rounded products and sum: the compiler may not contract them into an FMA in one kernel and not in
// another, so the in-register fold and attn_fold_segments round alike.
__device__ __forceinline__ float fold_value(float acc, float wa, float p, float wb) {
    return __fadd_rn(wa == 0.f ? 0.f : __fmul_rn(acc, wa), wb == 0.f ? 0.f : __fmul_rn(p, wb));
}

// A segment's normalized output and natural-log lse from its running sums (m in log2 units).
__device__ __forceinline__ float seg_out(float o, float inv) { return __fmul_rn(o, inv); }
__device__ __forceinline__ float seg_lse(float m, float l) { return l > 0.f ? __fmul_rn(__fadd_rn(m, log2f(l)), LN2) : -INFINITY; }

// One warp per (row r of 16-row tile t, head): out/lse of that query row = the fold of its segments 0..segs-1,
// from po[row][z][h][d] and plse[row][z][h] (what the segment-per-block det_w1 launch wrote; row: the query row).
extern "C" __global__ void attn_fold_segments(void* out, int odt, float* lse, const float* po, const float* plse,
                                              const int* tSeq, const int* qStart, const int* qLen, int tiles, int nHeads,
                                              int D, int segs) {
    int wid = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (wid >= tiles * 16 * nHeads) return;
    const int t = wid / (16 * nHeads), r = (wid / nHeads) % 16, h = wid % nHeads;
    const int s = tSeq[t];
    if (r >= qLen[s]) return;
    const int row = qStart[s] + r;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};  // D <= 128: lane holds d = lane + 32 i
    float fl = -INFINITY;
    for (int z = 0; z < segs; z++) {
        long at = ((long)row * segs + z) * nHeads + h;
        float wa, wb, nl;
        fold_weights(fl, plse[at], wa, wb, nl);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int d = lane + 32 * i;
            if (d < D) acc[i] = fold_value(acc[i], wa, po[at * D + d], wb);
        }
        fl = nl;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int d = lane + 32 * i;
        if (d < D) stf(out, odt, ((long)row * nHeads + h) * D + d, acc[i]);
    }
    if (lane == 0) lse[(long)row * nHeads + h] = fl;
}

// ---------------------------------------------------------------------------------------------
// Prefill kernel (flash-attention style, tensor cores): one block of NW warps per (head, tile of
// BQ = 16*NW query rows of one sequence); each warp owns 16 query rows. K/V tiles of 64 keys are
// double-buffered through cp.async; S = Q K^T and O += P V run on mma.sync m16n8k16 with the
// probabilities kept in registers. q must be bf16.
// ---------------------------------------------------------------------------------------------
template <int D>
__device__ __forceinline__ int aswz(int row, int chunk) { return row * D + ((chunk ^ (row & 7)) << 3); }

// Softmax variants (docs/gpu-notes.md, v6): RS = when O and l are rescaled: 0 every tile, 1 only when some
// row max of the warp moved, 2 only when some row max of the warp grew by more than 8 (log2 units; otherwise
// the stale max stays, so p <= 2^8, still exact after the final division). EX = how p is made: 0 ex2.f32 per
// score, 1 every second score by poly_exp2 on the FMA pipe, 2 ex2.bf16x2 per pair of scores (p comes out
// packed for the P.V product; the row sums l come from one more MMA of P against a ones matrix).
// SK = a warp skips (causal) key tiles that lie wholly after its last row. RS = 3: RS 2's threshold decided
// per row instead of per warp, so that a row's bits never depend on the rows beside it.
// SEG > 0: fixed key segments of SEG keys (see fold_weights). With gridDim.z > 1 block z covers segment z only
// and writes its normalized partial to po/plse (indexed [query row][segment z][head]) for attn_fold_segments;
// otherwise the block folds its segments in registers.
template <int D, int NW, int BKV, int MT, int KST, int RS = 0, int EX = 0, bool SK = false, int SEG = 0>
__device__ __forceinline__ void attn_prefill(void* out, int odt, float* lse, const bf16* q, const int* tSeq,
                                             const int* tQ0, const int* qStart, const int* qLen, const int* kvLen,
                                             const bf16* kp, const bf16* vp, const int* tables, const int* tableOff,
                                             int bs, int rowStride, int maxLen, const int* lens, int nHeads,
                                             int nKvHeads, float scaleLog2, float* po = nullptr,
                                             float* plse = nullptr) {
    static_assert(SEG % BKV == 0, "segments are whole key tiles");
    // Each warp owns MT x 16 query rows; every K/V fragment read from shared memory feeds MT row tiles.
    constexpr int WR = 16 * MT, BQ = WR * NW, CH = D / 8, THREADS = NW * 32, NT8 = BKV / 8;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
    bf16* sK = sQ + BQ * D;        // [KST][BKV][D]
    bf16* sV = sK + KST * BKV * D;  // [KST][BKV][D]

    const int h = blockIdx.x, tile = blockIdx.y;
    const int g = h / (nHeads / nKvHeads);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int s = tSeq[tile], q0 = tQ0[tile];
    const bool causal = tables != nullptr;
    const int ql = qLen[s];
    const int kl = causal ? kvLen[s] : lens[g];
    const int rowsValid = min(BQ, ql - q0);
    const int offset = kl - ql;  // query j sees keys <= offset + j (causal)
    const int nKeys = causal ? offset + q0 + rowsValid : kl;
    const int toff = causal ? tableOff[s] : 0;
    const long qRow0 = (long)qStart[s] + q0;
    const int qStride = nHeads * D;

    // Q tile
    for (int i = tid; i < BQ * CH; i += THREADS) {
        int r = i / CH, c = i % CH;
        bool ok = r < rowsValid;
        const bf16* src = ok ? q + (qRow0 + r) * qStride + (long)h * D + c * 8 : q;
        cp_async16(smem_u32(sQ + aswz<D>(r, c)), src, ok ? 16 : 0);
    }
    auto load_kv = [&](int buf, int j) {
        bf16* dk = sK + buf * BKV * D;
        bf16* dv = sV + buf * BKV * D;
        for (int i = tid; i < BKV * CH; i += THREADS) {
            int r = i / CH, c = i % CH;
            int t = j * BKV + r;
            bool ok = t < nKeys;
            long e = ok ? key_elem(tables, toff, bs, rowStride, maxLen, g, D, t) + c * 8 : 0;
            cp_async16(smem_u32(dk + aswz<D>(r, c)), kp + e, ok ? 16 : 0);
            cp_async16(smem_u32(dv + aswz<D>(r, c)), vp + e, ok ? 16 : 0);
        }
    };
    // A warp whose rows all lie past the sequence's end still takes part in loads and barriers.
    // KST-stage pipeline: commit group i holds K/V tile i (group 0 also the Q tile).
    const int nTall = (nKeys + BKV - 1) / BKV;
    const bool partial = SEG > 0 && gridDim.z > 1;
    const int jBegin = partial ? min(nTall, (int)blockIdx.z * (SEG / BKV)) : 0;
    const int nT = partial ? min(nTall, jBegin + SEG / BKV) : nTall;  // tiles jBegin .. nT-1
#pragma unroll
    for (int st = 0; st < KST - 1; st++) {
        if (jBegin + st < nT) load_kv(st, jBegin + st);
        cp_async_commit();
    }

    uint32_t qf[MT][D / 16][4];
    float o[MT][D / 8][4];
    float mrow[MT][2], lrow[MT][2];
    float lacc[MT][4];  // EX == 2: row sums from the tensor cores (every column of the n8 tile holds the sum)
    const uint32_t ONES = 0x3F803F80u;  // bf16x2 (1, 1)
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int i = 0; i < D / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) o[mt][i][e] = 0.f;
#pragma unroll
        for (int e = 0; e < 4; e++) lacc[mt][e] = 0.f;
        mrow[mt][0] = mrow[mt][1] = -INFINITY;
        lrow[mt][0] = lrow[mt][1] = 0.f;
    }
    const int wrow = warp * WR;  // first row of this warp within the tile
    // SEG > 0: the fold of the finished segments (fo, flse) and the running segment's row sums, normalized
    // (the row sum l of a row over its quad, or the tensor-core sum when EX == 2).
    float fo[SEG > 0 ? MT : 1][SEG > 0 ? D / 8 : 1][4];
    float flse[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        flse[mt][0] = flse[mt][1] = -INFINITY;
        if constexpr (SEG > 0) {
#pragma unroll
            for (int i = 0; i < D / 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) fo[mt][i][e] = 0.f;
        }
    }
    auto row_sum = [&](int mt, int hh) {
        float l = lrow[mt][hh];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        if constexpr (EX == 2) l = lacc[mt][2 * hh];
        return l;
    };
    // Closes the running segment: fold its normalized output into (fo, flse), start the next one empty.
    auto fold_segment = [&]() {
        if constexpr (SEG > 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    float l = row_sum(mt, hh);
                    float inv = l > 0.f ? 1.f / l : 0.f;
                    float pl = seg_lse(mrow[mt][hh], l);
                    float wa, wb, nl;
                    fold_weights(flse[mt][hh], pl, wa, wb, nl);
#pragma unroll
                    for (int dn = 0; dn < D / 8; dn++) {
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            float& f = fo[mt][dn][2 * hh + e];
                            f = fold_value(f, wa, seg_out(o[mt][dn][2 * hh + e], inv), wb);
                            o[mt][dn][2 * hh + e] = 0.f;
                        }
                    }
                    flse[mt][hh] = nl;
                    mrow[mt][hh] = -INFINITY;
                    lrow[mt][hh] = 0.f;
                    lacc[mt][2 * hh] = lacc[mt][2 * hh + 1] = 0.f;
                }
            }
        }
    };

    for (int j = jBegin; j < nT; j++) {
        const int jj = j - jBegin;
        cp_async_wait<KST - 2>();  // tile j has landed
        __syncthreads();           // ... for every thread, and every thread is done with tile j - 1
        if (j + KST - 1 < nT) load_kv((jj + KST - 1) % KST, j + KST - 1);
        cp_async_commit();
        if (SEG > 0 && !partial && j > 0 && (j * BKV) % (SEG > 0 ? SEG : 1) == 0) fold_segment();
        if (jj == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    int r = wrow + mt * 16 + (lane & 15);
                    ldmatrix_x4(smem_u32(sQ + aswz<D>(r, kk * 2 + (lane >> 4))), qf[mt][kk][0], qf[mt][kk][1],
                                qf[mt][kk][2], qf[mt][kk][3]);
                }
        }
        const bf16* cK = sK + (jj % KST) * BKV * D;
        const bf16* cV = sV + (jj % KST) * BKV * D;
        const int kBase = j * BKV;
        // Every key of this tile is after the warp's last row: nothing to do but the loads and barriers.
        if (SK && causal && kBase > offset + q0 + wrow + WR - 1) continue;

        float sc[MT][NT8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < NT8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) sc[mt][n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int n2 = 0; n2 < NT8 / 2; n2++) {
                uint32_t b0, b1, b2, b3;
                int r = n2 * 16 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(smem_u32(cK + aswz<D>(r, kk * 2 + ((lane >> 3) & 1))), b0, b1, b2, b3);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16(sc[mt][2 * n2], qf[mt][kk], b0, b1);
                    mma_bf16(sc[mt][2 * n2 + 1], qf[mt][kk], b2, b3);
                }
            }
        }

        // mask, online softmax: max over raw scores (the scale is positive), p = 2^(s * scale - max)
        float mxs[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int rt = wrow + mt * 16;  // first row of this 16-row tile
            const bool needMask = causal ? (kBase + BKV - 1 > offset + q0 + rt) : (kBase + BKV > kl);
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int lim = causal ? offset + q0 + rt + (lane >> 2) + hh * 8 : kl - 1;  // last visible key
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < NT8; n++) {
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float v = sc[mt][n][2 * hh + e];
                        if (needMask && kBase + n * 8 + (lane & 3) * 2 + e > lim) v = -INFINITY;
                        sc[mt][n][2 * hh + e] = v;
                        mx = fmaxf(mx, v);
                    }
                }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                mxs[mt][hh] = mx * scaleLog2;
            }
        }
        bool moved = RS == 0;
        bool grows[MT][2];  // RS == 3: this row's own decision
        if (RS != 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    grows[mt][hh] = mxs[mt][hh] > mrow[mt][hh] + (RS >= 2 ? 8.f : 0.f);
                    moved |= grows[mt][hh];
                }
            moved = __any_sync(0xffffffffu, moved);  // warp-uniform branch
        }
        if (moved) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    if (RS == 3 && !grows[mt][hh]) continue;
                    float mn = fmaxf(mrow[mt][hh], mxs[mt][hh]);
                    float c = rescale(mrow[mt][hh], mn);
                    mrow[mt][hh] = mn;
                    lrow[mt][hh] *= c;
                    lacc[mt][2 * hh] *= c;
                    lacc[mt][2 * hh + 1] *= c;
#pragma unroll
                    for (int dn = 0; dn < D / 8; dn++) {
                        o[mt][dn][2 * hh] *= c;
                        o[mt][dn][2 * hh + 1] *= c;
                    }
                }
            }
        }
        uint32_t pk[MT][NT8][2];  // EX == 2: p as bf16 pairs, already in the A-fragment order of P.V
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const float base = mrow[mt][hh] == -INFINITY ? 0.f : mrow[mt][hh];
                float sum = 0.f;
#pragma unroll
                for (int n = 0; n < NT8; n++) {
                    float x0 = fmaf(sc[mt][n][2 * hh], scaleLog2, -base);
                    float x1 = fmaf(sc[mt][n][2 * hh + 1], scaleLog2, -base);
                    if constexpr (EX == 2) {
                        pk[mt][n][hh] = ex2_bf16x2(pack_bf16x2(x0, x1));
                    } else {
                        float p0 = fast_exp2(x0);
                        float p1 = EX == 1 ? poly_exp2(x1) : fast_exp2(x1);
                        sc[mt][n][2 * hh] = p0;
                        sc[mt][n][2 * hh + 1] = p1;
                        sum += p0 + p1;
                    }
                }
                if constexpr (EX != 2) lrow[mt][hh] += sum;
            }
        }

        // O += P V
#pragma unroll
        for (int kk = 0; kk < BKV / 16; kk++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if constexpr (EX == 2) {
                    a[mt][0] = pk[mt][2 * kk][0];
                    a[mt][1] = pk[mt][2 * kk][1];
                    a[mt][2] = pk[mt][2 * kk + 1][0];
                    a[mt][3] = pk[mt][2 * kk + 1][1];
                    mma_bf16(lacc[mt], a[mt], ONES, ONES);
                } else {
                    a[mt][0] = pack_bf16x2(sc[mt][2 * kk][0], sc[mt][2 * kk][1]);
                    a[mt][1] = pack_bf16x2(sc[mt][2 * kk][2], sc[mt][2 * kk][3]);
                    a[mt][2] = pack_bf16x2(sc[mt][2 * kk + 1][0], sc[mt][2 * kk + 1][1]);
                    a[mt][3] = pack_bf16x2(sc[mt][2 * kk + 1][2], sc[mt][2 * kk + 1][3]);
                }
            }
#pragma unroll
            for (int dn2 = 0; dn2 < D / 16; dn2++) {
                uint32_t b0, b1, b2, b3;
                int r = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
                ldmatrix_x4_trans(smem_u32(cV + aswz<D>(r, dn2 * 2 + (lane >> 4))), b0, b1, b2, b3);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16(o[mt][2 * dn2], a[mt], b0, b1);
                    mma_bf16(o[mt][2 * dn2 + 1], a[mt], b2, b3);
                }
            }
        }
    }
    cp_async_wait<0>();
    if (SEG > 0 && !partial) fold_segment();

#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            float l = row_sum(mt, hh);
            int r = wrow + mt * 16 + (lane >> 2) + hh * 8;
            if (r >= rowsValid) continue;
            long row = qRow0 + r;
            float inv = l > 0.f ? 1.f / l : 0.f;
            if (partial) {  // segment blockIdx.z of this row, normalized, for attn_fold_segments
                long at = (row * gridDim.z + blockIdx.z) * nHeads + h;
#pragma unroll
                for (int dn = 0; dn < D / 8; dn++) {
                    int d = dn * 8 + (lane & 3) * 2;
                    po[at * D + d] = seg_out(o[mt][dn][2 * hh], inv);
                    po[at * D + d + 1] = seg_out(o[mt][dn][2 * hh + 1], inv);
                }
                if ((lane & 3) == 0) plse[at] = seg_lse(mrow[mt][hh], l);
                continue;
            }
#pragma unroll
            for (int dn = 0; dn < D / 8; dn++) {
                int col = h * D + dn * 8 + (lane & 3) * 2;
                float v0 = o[mt][dn][2 * hh] * inv, v1 = o[mt][dn][2 * hh + 1] * inv;
                if constexpr (SEG > 0) {
                    v0 = fo[mt][dn][2 * hh];
                    v1 = fo[mt][dn][2 * hh + 1];
                }
                long at = row * qStride + col;
                if (odt == DT_BF16) {
                    *reinterpret_cast<uint32_t*>(reinterpret_cast<bf16*>(out) + at) = pack_bf16x2(v0, v1);
                } else {
                    reinterpret_cast<float*>(out)[at] = v0;
                    reinterpret_cast<float*>(out)[at + 1] = v1;
                }
            }
            if ((lane & 3) == 0) {
                lse[row * nHeads + h] = SEG > 0 ? flse[mt][hh] : l > 0.f ? (mrow[mt][hh] + log2f(l)) * LN2 : -INFINITY;
            }
        }
    }
}

// LB: the launch bounds; (256, 2) / (128, 4) hold a d=64 kernel to 128 registers, so that 16 warps fit per SM.
#define PREFILL_KERNEL_V(D, NW, BKV, MT, KST, RS, EX, SK, LB, NAME)                                            \
    extern "C" __global__ void __launch_bounds__ LB NAME(                                                  \
        void* out, int odt, float* lse, const bf16* q, const int* tSeq, const int* tQ0, const int* qStart,       \
        const int* qLen, const int* kvLen, const bf16* kp, const bf16* vp, const int* tables,                    \
        const int* tableOff, int bs, int rowStride, int maxLen, const int* lens, int nHeads, int nKvHeads,       \
        float scaleLog2) {                                                                                       \
        attn_prefill<D, NW, BKV, MT, KST, RS, EX, SK>(out, odt, lse, q, tSeq, tQ0, qStart, qLen, kvLen, kp, vp,  \
                                                      tables, tableOff, bs, rowStride, maxLen, lens, nHeads,     \
                                                      nKvHeads, scaleLog2);                                      \
    }
#define PREFILL_KERNEL(D, NW, BKV, MT, KST, NAME) PREFILL_KERNEL_V(D, NW, BKV, MT, KST, 0, 0, false, (NW * 32), NAME)
// name: w<warps>[_s<K/V pipeline stages, 2 if absent>][softmax variant]. Also measured and dropped
// (docs/gpu-notes.md): 128-key tiles and two 16-row tiles per warp, both slower on the H100.
PREFILL_KERNEL(64, 4, 64, 1, 2, attn_prefill_d64_w4)
PREFILL_KERNEL(64, 8, 64, 1, 2, attn_prefill_d64_w8)
PREFILL_KERNEL(64, 4, 64, 1, 3, attn_prefill_d64_w4_s3)
PREFILL_KERNEL(64, 8, 64, 1, 3, attn_prefill_d64_w8_s3)
PREFILL_KERNEL(64, 8, 64, 1, 4, attn_prefill_d64_w8_s4)
PREFILL_KERNEL(128, 4, 64, 1, 2, attn_prefill_d128_w4)
PREFILL_KERNEL(128, 8, 64, 1, 2, attn_prefill_d128_w8)
PREFILL_KERNEL(128, 8, 64, 1, 3, attn_prefill_d128_w8_s3)
// v6 softmax variants, one idea each on top of w8, then all together (_all = rs8 + bx2 + sk).
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 0, 0, true, (256, 2), attn_prefill_d64_w8_sk)
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 1, 0, false, (256, 2), attn_prefill_d64_w8_rs1)
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 2, 0, false, (256, 2), attn_prefill_d64_w8_rs8)
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 0, 1, false, (256, 2), attn_prefill_d64_w8_poly)
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 0, 2, false, (256, 2), attn_prefill_d64_w8_bx2)
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 2, 2, true, (256, 2), attn_prefill_d64_w8_all)
PREFILL_KERNEL_V(64, 4, 64, 1, 2, 2, 2, true, (128, 4), attn_prefill_d64_w4_all)
PREFILL_KERNEL_V(64, 8, 64, 1, 3, 2, 2, true, (256, 2), attn_prefill_d64_w8_s3_all)
PREFILL_KERNEL_V(64, 8, 64, 1, 2, 2, 1, true, (256, 2), attn_prefill_d64_w8_poly_all)
// after device call 8: which part of w8_s3_all matters (sk alone gave most of it), and one more stage.
PREFILL_KERNEL_V(64, 8, 64, 1, 3, 0, 0, true, (256, 2), attn_prefill_d64_w8_s3_sk)
PREFILL_KERNEL_V(64, 8, 64, 1, 4, 2, 2, true, (256, 2), attn_prefill_d64_w8_s4_all)
PREFILL_KERNEL_V(128, 8, 64, 1, 2, 2, 2, true, (256), attn_prefill_d128_w8_all)
PREFILL_KERNEL_V(128, 4, 64, 1, 2, 2, 2, true, (128), attn_prefill_d128_w4_all)
PREFILL_KERNEL_V(128, 8, 64, 1, 3, 2, 2, true, (256), attn_prefill_d128_w8_s3_all)

// Deterministic kernels (batch-invariant): per-row lazy rescale (RS 3), bf16x2 exps with tensor-core row sums,
// causal tile skipping, fixed 1,024-key segments. det_w8 for prefill tiles, det_w1 (16 rows, one warp) for
// decode rows and short chunks; every segment of a det_w1 launch in its own block (gridDim.z) when asked.
#define DET_SEG 1024
#define DET_KERNEL(D, NW, LB, NAME)                                                                                \
    extern "C" __global__ void __launch_bounds__ LB NAME(                                                      \
        void* out, int odt, float* lse, const bf16* q, const int* tSeq, const int* tQ0, const int* qStart,       \
        const int* qLen, const int* kvLen, const bf16* kp, const bf16* vp, const int* tables,                    \
        const int* tableOff, int bs, int rowStride, int maxLen, const int* lens, int nHeads, int nKvHeads,       \
        float scaleLog2, float* po, float* plse) {                                                               \
        attn_prefill<D, NW, 64, 1, 2, 3, 2, true, DET_SEG>(out, odt, lse, q, tSeq, tQ0, qStart, qLen, kvLen, kp, \
                                                           vp, tables, tableOff, bs, rowStride, maxLen, lens,    \
                                                           nHeads, nKvHeads, scaleLog2, po, plse);               \
    }
DET_KERNEL(64, 8, (256, 2), attn_prefill_d64_det_w8)
DET_KERNEL(64, 8, (256), attn_prefill_d64_det_w8_lb1)  // one block per SM, no spills: measured against det_w8
DET_KERNEL(64, 1, (32), attn_prefill_d64_det_w1)
DET_KERNEL(128, 8, (256), attn_prefill_d128_det_w8)
DET_KERNEL(128, 1, (32), attn_prefill_d128_det_w1)
