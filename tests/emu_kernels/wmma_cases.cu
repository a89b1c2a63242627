// Test kernels for the emulator's nvcuda::wmma (kernels/emu/wmma.h); on the GPU they compile
// against kernels/wmma_tf32.cuh (checked with NVRTC by tests/test_nvrtc.py). One warp each.
#include "wmma_tf32.cuh"

namespace wmma = nvcuda::wmma;

// d (16x16) = a (16x8) b (8x16) + c, all row-major (_rr) or all column-major (_cc); with
// `round`, the A and B fragments go through __float_to_tf32 first.
template <bool Row>
struct Pick {
    typedef wmma::row_major type;
};
template <>
struct Pick<false> {
    typedef wmma::col_major type;
};

template <bool row>
__device__ void mma_case(const float* a, const float* b, const float* c, float* d, int round) {
    typedef typename Pick<row>::type Layout;
    const wmma::layout_t mem = row ? wmma::mem_row_major : wmma::mem_col_major;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, Layout> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, Layout> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::load_matrix_sync(fa, a, row ? 8 : 16);
    wmma::load_matrix_sync(fb, b, row ? 16 : 8);
    wmma::load_matrix_sync(acc, c, 16, mem);
    if (round) {
        for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
        for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    }
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(d, acc, 16, mem);
}

extern "C" __global__ void wmma_mma_rr(const float* a, const float* b, const float* c, float* d, int round) {
    mma_case<true>(a, b, c, d, round);
}

extern "C" __global__ void wmma_mma_cc(const float* a, const float* b, const float* c, float* d, int round) {
    mma_case<false>(a, b, c, d, round);
}

extern "C" __global__ void wmma_round(const float* x, float* y, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = wmma::__float_to_tf32(x[i]);
}

// out[lane * 4 + i] = element i of the lane's A fragment loaded from a (16x8, row-major).
extern "C" __global__ void wmma_layout(const float* a, float* out) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::load_matrix_sync(fa, a, 8);
    for (int i = 0; i < fa.num_elements; ++i) out[threadIdx.x * fa.num_elements + i] = fa.x[i];
}

// Stores a fragment to shared memory, then each lane reads the row-major element 255 - lane, which
// another lane stored: correct only with the __syncwarp (`sync` = 1).
extern "C" __global__ void wmma_store_then_read(const float* c, float* out, int sync) {
    __shared__ __align__(32) float tile[256];
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::load_matrix_sync(acc, c, 16, wmma::mem_row_major);
    wmma::store_matrix_sync(tile, acc, 16, wmma::mem_row_major);
    if (sync) __syncwarp();
    out[threadIdx.x] = tile[255 - threadIdx.x];
}
