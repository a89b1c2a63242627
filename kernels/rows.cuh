// rows.cuh — who handles a row in the kernels that reduce along rows (loss.cu, softmax.cu).
//
// A row is `classes` elements of an array viewed as (outer, classes, inner): row r = (o, s) starts
// at o * classes * inner + s and its elements are `inner` apart. Three schedules, one interface, so
// each kernel writes its per-row algorithm once:
//   ThreadPerRow  a thread per row, grid-stride over rows: for inner > 1, where neighbouring
//                 threads read neighbouring rows' elements (coalesced across rows); one 64-bit
//                 division per row.
//   WarpPerRow    a warp per contiguous row (inner == 1), grid-stride over rows; lane l reads
//                 elements l, l + 32, ... (coalesced), reductions by a shuffle butterfly.
//   BlockPerRow   a block per contiguous row (inner == 1, wide rows), grid-stride over rows; thread
//                 t reads t, t + blockDim.x, ...; reductions by a butterfly per warp, then the warps'
//                 partials combined in warp order through `partial` (32 doubles of shared memory).
// Every reduction has a fixed order (the lane's own elements in order, then the butterfly, then
// the warps in order), so results are the same on every run and under every emulator schedule,
// and every thread of the row gets the same value. The row loops are uniform over a warp
// (WarpPerRow) or a block (BlockPerRow), and so must be any branch around reduce() (a row's target
// is the same for all its threads): every thread reaches its shuffles and barriers.
// blockDim.x must be a multiple of 32 for WarpPerRow and BlockPerRow.
#pragma once

namespace gc {
namespace rows {

__device__ __forceinline__ double neg_inf() { return -(double)__int_as_float(0x7f800000); }

// max that propagates NaN (a NaN anywhere in a row makes its maximum NaN).
struct MaxNan {
    __device__ __forceinline__ double operator()(double a, double b) const {
        return a != a ? a : (b > a || b != b ? b : a);
    }
};
struct Sum {
    __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};

struct ThreadPerRow {
    __device__ __forceinline__ int lane() const { return 0; }
    __device__ __forceinline__ int size() const { return 1; }
    __device__ __forceinline__ bool leader() const { return true; }
    __device__ __forceinline__ long long first_row() const { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
    __device__ __forceinline__ long long row_step() const { return (long long)blockDim.x * gridDim.x; }
    __device__ __forceinline__ long long base(long long r, int classes, long long inner) const {
        const long long o = inner == 1 ? r : r / inner;
        return o * classes * inner + (r - o * inner);
    }
    __device__ __forceinline__ long long stride(long long inner) const { return inner; }
    template <typename Op>
    __device__ __forceinline__ double reduce(double v, Op) const { return v; }
};

struct WarpPerRow {
    __device__ __forceinline__ int lane() const { return (int)(threadIdx.x & 31u); }
    __device__ __forceinline__ int size() const { return 32; }
    __device__ __forceinline__ bool leader() const { return (threadIdx.x & 31u) == 0; }
    __device__ __forceinline__ long long first_row() const {
        return ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    }
    __device__ __forceinline__ long long row_step() const { return ((long long)blockDim.x * gridDim.x) >> 5; }
    __device__ __forceinline__ long long base(long long r, int classes, long long) const { return r * classes; }
    __device__ __forceinline__ long long stride(long long) const { return 1; }
    template <typename Op>
    __device__ __forceinline__ double reduce(double v, Op op) const {
        for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
        return v;
    }
};

struct BlockPerRow {
    double* partial;  // 32 doubles of shared memory
    __device__ __forceinline__ int lane() const { return (int)threadIdx.x; }
    __device__ __forceinline__ int size() const { return (int)blockDim.x; }
    __device__ __forceinline__ bool leader() const { return threadIdx.x == 0; }
    __device__ __forceinline__ long long first_row() const { return blockIdx.x; }
    __device__ __forceinline__ long long row_step() const { return gridDim.x; }
    __device__ __forceinline__ long long base(long long r, int classes, long long) const { return r * classes; }
    __device__ __forceinline__ long long stride(long long) const { return 1; }
    template <typename Op>
    __device__ __forceinline__ double reduce(double v, Op op) const {
        v = WarpPerRow().reduce(v, op);
        if ((threadIdx.x & 31u) == 0) partial[threadIdx.x >> 5] = v;
        __syncthreads();
        v = partial[0];
        const int warps = (int)(blockDim.x >> 5);
        for (int w = 1; w < warps; ++w) v = op(v, partial[w]);
        __syncthreads();  // the next reduce may overwrite partial
        return v;
    }
};

}  // namespace rows
}  // namespace gc
