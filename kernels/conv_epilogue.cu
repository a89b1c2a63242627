// conv_epilogue.cu — the one pass after a convolution's GEMM: bias, then an optional activation.
//
// conv2d_bias_act_{i32,i64}_{f32,f64}(y, bias, has_bias, planes, channels, plane_size, activation)
//   In place on y (N, C, H, W), NCHW, C-contiguous, element type T = float or double:
//   y = act(y + bias[c]) (bias skipped when has_bias == 0; its pointer is then ignored).
//   activation: 0 = none, 1 = ReLU (the hook for fusing an activation into the convolution).
//   Grid (x over a plane's pixels, y over the N*C planes, both grid-stride), so the channel is
//   plane % C once per plane for the whole row of threads, and every access is coalesced. _i32
//   computes offsets in int (the launcher checks y has fewer than 2^31 elements), _i64 in long long.
// No #defines are injected. The four entry points are stamped out from one line by entry_points.cuh's
// GC_ENTRY_I_F (I = int for _i32, long long for _i64).
//
// Registers per thread (nvcc 13.0, `nvcc -cubin -arch=sm_90 -Xptxas -v -I kernels`), 0 bytes of
// stack frame and 0 bytes of spill stores/loads for every entry point:
//   i32  f32 14, f64 18          i64  f32 32, f64 34
#include "common.cuh"

template <typename T, typename I>
__device__ void conv2d_bias_act(T* __restrict__ y, const T* __restrict__ bias, int has_bias, int planes, int channels,
                                long long plane_size, int activation) {
    const I size = (I)plane_size;
    for (int plane = (int)blockIdx.y; plane < planes; plane += (int)gridDim.y) {
        const T b = has_bias ? bias[plane % channels] : T(0);
        T* __restrict__ row = y + (I)plane * size;
        for (I p = (I)(blockIdx.x * blockDim.x + threadIdx.x); p < size; p += (I)gridDim.x * blockDim.x) {
            T v = row[p] + b;
            if (activation == 1) v = v > T(0) ? v : T(0);
            row[p] = v;
        }
    }
}

GC_ENTRY_I_F(conv2d_bias_act,
        (T* __restrict__ y, const T* __restrict__ bias, int has_bias, int planes, int channels, long long plane_size,
         int activation),
        conv2d_bias_act<T, I>(y, bias, has_bias, planes, channels, plane_size, activation))
