// reduce.cu — sums per channel: the bias gradient of Conv2d (dy summed over N, H, W) and of Linear
// (dy summed over its rows).
//
// channel_sum_{i32,i64}_{f32,f64}(x, out, outer, channels, inner)
//   x: C-contiguous, viewed as (outer, channels, inner); out[c] = sum of x[o, c, i] over o and i.
//   Element type T = float or double; the sum is accumulated in double for both and rounded to T
//   once. One block of kBlock threads per channel (grid-stride over channels): thread t adds the
//   elements j = t, t + kBlock, ... of the channel's flat (outer, inner) index, then the block adds
//   the thread sums with a fixed tree (gc::block_sum). No atomics: the order of the additions is
//   fixed, so the result is the same on every run. _i32: the launcher checked that
//   outer * channels * inner < 2^31 (32-bit index arithmetic, one 32-bit division per element);
//   _i64 otherwise.
// The four entry points are stamped out from one line by entry_points.cuh's GC_ENTRY_I_F_BOUNDED (I =
// int for _i32, long long for _i64).
// No #defines are injected. nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v: 31-32 registers, no spills.
#include "common.cuh"

namespace {
constexpr int kBlock = 256;
}

template <typename T, typename I>
__device__ void channel_sum(const T* __restrict__ x, T* __restrict__ out, long long outer, int channels,
                            long long inner) {
    __shared__ double partial[kBlock];
    const I per_channel = (I)outer * (I)inner;
    const I inner_i = (I)inner;
    const I stride = (I)channels * inner_i;
    for (int c = (int)blockIdx.x; c < channels; c += (int)gridDim.x) {
        const T* __restrict__ base = x + (I)c * inner_i;
        double sum = 0.0;
        for (I j = (I)threadIdx.x; j < per_channel; j += kBlock) {
            const I o = j / inner_i;
            sum += (double)base[o * stride + (j - o * inner_i)];
        }
        const double total = gc::block_sum<kBlock>(sum, partial);
        if (threadIdx.x == 0) out[c] = (T)total;
    }
}

GC_ENTRY_I_F_BOUNDED((kBlock), channel_sum,
        (const T* __restrict__ x, T* __restrict__ out, long long outer, int channels, long long inner),
        channel_sum<T, I>(x, out, outer, channels, inner))
