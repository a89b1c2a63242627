// im2col.cu — im2col and its adjoint col2im, for convolution by GEMM and for F.unfold / F.fold.
//
// Entry points (float32 and float64; element type T, NCHW input, C-contiguous arrays):
//   im2col_forward_{f32,f64}   x (N,C,H,W) -> cols. One thread per element of cols (grid-stride
//                              loop): reads x at the window tap, or 0 in the padding.
//   im2col_backward_{f32,f64}  cols -> dx (N,C,H,W), i.e. col2im: the sum over every window tap
//                              that reads each input element. A gather (one thread per element of
//                              dx, looping over the KH*KW taps that can reach it), so it needs no
//                              atomics and is deterministic.
// Column layout: element (n, row, l) of the columns, row = (c*KH + i)*KW + j and
// l = oh*OW + ow, lives at row*row_stride + n*n_stride + l. The launcher picks the strides:
//   "nkl" (N, C*KH*KW, OH*OW), PyTorch's unfold: row_stride = OH*OW, n_stride = C*KH*KW*OH*OW
//   "knl" (C*KH*KW, N*OH*OW), one 2-D GEMM for a whole batch: row_stride = N*OH*OW, n_stride = OH*OW
// Padding is given as (top, left) together with the output size, so asymmetric padding (PyTorch's
// "same" for even kernels) needs nothing more. Offsets are 64-bit.
// No #defines are injected.
#include "common.cuh"

template <typename T>
__device__ void im2col_forward(const T* __restrict__ x, T* __restrict__ cols, int n_batch, int channels, int height,
                               int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh,
                               int ow, long long row_stride, long long n_stride) {
    const long long l_size = (long long)oh * ow;
    const long long rows = (long long)channels * kh * kw;
    const long long total = n_batch * rows * l_size;
    GC_GRID_STRIDE_LOOP(idx, total) {
        const long long l = idx % l_size;
        const long long rest = idx / l_size;
        const long long row = rest % rows;
        const long long n = rest / rows;
        const int j = (int)(row % kw);
        const int i = (int)((row / kw) % kh);
        const long long c = row / ((long long)kh * kw);
        const int y = (int)(l / ow) * sh - pt + i * dh;
        const int xx = (int)(l % ow) * sw - pl + j * dw;
        T v = T(0);
        if (y >= 0 && y < height && xx >= 0 && xx < width)
            v = x[((n * channels + c) * height + y) * width + xx];
        cols[row * row_stride + n * n_stride + l] = v;
    }
}

template <typename T>
__device__ void im2col_backward(const T* __restrict__ cols, T* __restrict__ dx, int n_batch, int channels,
                                int height, int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw,
                                int oh, int ow, long long row_stride, long long n_stride) {
    const long long total = (long long)n_batch * channels * height * width;
    GC_GRID_STRIDE_LOOP(idx, total) {
        const int xx = (int)(idx % width);
        const int y = (int)((idx / width) % height);
        const long long c = (idx / ((long long)width * height)) % channels;
        const long long n = idx / ((long long)width * height * channels);
        T acc = T(0);
        for (int i = 0; i < kh; ++i) {
            const int ty = y + pt - i * dh;  // = out_y * sh for the window that reads (y, x) at tap i
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int j = 0; j < kw; ++j) {
                const int tx = xx + pl - j * dw;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                const long long row = (c * kh + i) * kw + j;
                acc += cols[row * row_stride + n * n_stride + (long long)(ty / sh) * ow + tx / sw];
            }
        }
        dx[idx] = acc;
    }
}

#define IM2COL_ARGS n_batch, channels, height, width, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, row_stride, n_stride

extern "C" __global__ void im2col_forward_f32(const float* __restrict__ x, float* __restrict__ cols, int n_batch,
                                              int channels, int height, int width, int kh, int kw, int sh, int sw,
                                              int pt, int pl, int dh, int dw, int oh, int ow, long long row_stride,
                                              long long n_stride) {
    im2col_forward<float>(x, cols, IM2COL_ARGS);
}
extern "C" __global__ void im2col_forward_f64(const double* __restrict__ x, double* __restrict__ cols, int n_batch,
                                              int channels, int height, int width, int kh, int kw, int sh, int sw,
                                              int pt, int pl, int dh, int dw, int oh, int ow, long long row_stride,
                                              long long n_stride) {
    im2col_forward<double>(x, cols, IM2COL_ARGS);
}
extern "C" __global__ void im2col_backward_f32(const float* __restrict__ cols, float* __restrict__ dx, int n_batch,
                                               int channels, int height, int width, int kh, int kw, int sh, int sw,
                                               int pt, int pl, int dh, int dw, int oh, int ow, long long row_stride,
                                               long long n_stride) {
    im2col_backward<float>(cols, dx, IM2COL_ARGS);
}
extern "C" __global__ void im2col_backward_f64(const double* __restrict__ cols, double* __restrict__ dx, int n_batch,
                                               int channels, int height, int width, int kh, int kw, int sh, int sw,
                                               int pt, int pl, int dh, int dw, int oh, int ow, long long row_stride,
                                               long long n_stride) {
    im2col_backward<double>(cols, dx, IM2COL_ARGS);
}
