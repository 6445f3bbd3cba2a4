// Packing of rows exchanged between shards: one gather into a contiguous buffer, so that a single
// device->host copy moves exactly the selected pieces (CudaBackend.readAsync).
#include <stdint.h>

// dst[p, :] = src[pieces[p], :] over pieces of `words` words of type W. One thread per word, so the
// threads of a warp read consecutive words of a piece (pieces of 128 bytes: 8 threads of uint4 each).
template <typename W>
__device__ __forceinline__ void gather_pieces(W* dst, const W* src, const int* pieces, long count, int words) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count * words) return;
    long p = i / words;
    int w = (int)(i - p * words);
    dst[i] = src[(long)pieces[p] * words + w];
}

extern "C" {

// grid (ceil(count * words / 256)), block 256; the word is 16, 8, 4 or 2 bytes, the largest that divides a piece
__global__ void exchange_gather16(uint4* dst, const uint4* src, const int* pieces, long count, int words) {
    gather_pieces(dst, src, pieces, count, words);
}

__global__ void exchange_gather8(uint2* dst, const uint2* src, const int* pieces, long count, int words) {
    gather_pieces(dst, src, pieces, count, words);
}

__global__ void exchange_gather4(uint32_t* dst, const uint32_t* src, const int* pieces, long count, int words) {
    gather_pieces(dst, src, pieces, count, words);
}

__global__ void exchange_gather2(uint16_t* dst, const uint16_t* src, const int* pieces, long count, int words) {
    gather_pieces(dst, src, pieces, count, words);
}

}
