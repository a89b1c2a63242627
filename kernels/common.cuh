// common.cuh — helpers shared by every kernels/*.cu file.
//
// Compiled by NVRTC (cupy backend) and by g++ with kernels/emu/cuda_emu.h (emulated backend), so
// it uses only what both provide. The loaders put kernels/ on the include path.
#pragma once

#include "entry_points.cuh"  // GC_ENTRY*: the extern "C" entry points of each kernel file

// Grid-stride loop over [0, n) with a 64-bit index: correct for any grid size and for tensors with
// more than 2^31 elements.
#define GC_GRID_STRIDE_LOOP(i, n)                                                     \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);     \
         i += (long long)blockDim.x * gridDim.x)

namespace gc {

// Floor division for a possibly negative numerator and a positive denominator.
__device__ __forceinline__ long long floor_div(long long a, long long b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Floor division in 32 bits, for a possibly negative numerator and a positive denominator.
__device__ __forceinline__ int floor_div_int(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// 16 bytes of T (float4 / double2) for vectorized loads and stores, and how many T that is.
template <typename T> struct Vec16;
template <> struct Vec16<float> {
    typedef float4 type;
    static constexpr int lanes = 4;
};
template <> struct Vec16<double> {
    typedef double2 type;
    static constexpr int lanes = 2;
};

// Sums v over a block of kBlock threads (a power of two) with a fixed tree in `shared` (kBlock
// elements), so the order of additions does not depend on the order threads run in: results are
// the same on every run and under every emulator schedule. Every thread of the block must call
// it, and every thread gets the total.
template <int kBlock, typename T>
__device__ T block_sum(T v, T* shared) {
    const int t = threadIdx.x;
    shared[t] = v;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half >>= 1) {
        if (t < half) shared[t] += shared[t + half];
        __syncthreads();
    }
    const T total = shared[0];
    __syncthreads();  // callers may reuse the buffer right after
    return total;
}

}  // namespace gc
