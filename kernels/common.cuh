// common.cuh — helpers shared by every kernels/*.cu file.
//
// Compiled by NVRTC (cupy backend) and by g++ with kernels/emu/cuda_emu.h (emulated backend), so
// it uses only what both provide. The loaders put kernels/ on the include path.
#pragma once

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

}  // namespace gc
