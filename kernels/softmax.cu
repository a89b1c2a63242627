// softmax.cu — softmax and log-softmax along one axis, forward and backward.
//
// Layout: C-contiguous arrays viewed as (outer, classes, inner): the axis has `classes` elements at
// stride `inner`; one row per (o, s), rows = outer * inner. Element type T = float (_f32) or
// double (_f64); the row's maximum, log-sum-exp and sums are computed in double and each result is
// rounded to T once. Who handles a row (kernels/rows.cuh; the launcher picks by layout and length):
//   softmax_<direction>_<f32|f64>        a thread per row, for inner > 1 (rows are coalesced
//                                         across threads; one 64-bit division per row, none per
//                                         element).
//   softmax_<direction>_warp_<f32|f64>   a warp per row, for inner == 1 and short rows: lanes read
//                                         consecutive elements, shuffle reductions.
//   softmax_<direction>_block_<f32|f64>  a block per row, for inner == 1 and wide rows (1000
//                                         classes): shuffle reductions per warp, then the warps'
//                                         partials in warp order through 32 doubles of shared memory.
// Every reduction has a fixed order: the results are the same on every run (not bit for bit those
// of another schedule). The forward reads its row twice and writes it once, the backward reads dy
// (and for softmax y) twice and writes dx once; the second reads mostly hit the caches.
//
// Entry points (_f32, _f64; _warp and _block take the same arguments; stamped out at the end of this
// file from one line per kernel by entry_points.cuh's GC_ENTRY_F):
//   softmax_forward(x, y, rows, classes, inner, log)
//       log == 0: y = exp(x - max) / sum(exp(x - max)); log != 0: y = x - max - log(sum(exp(x - max))).
//       NaN in a row makes the row NaN.
//   softmax_backward(dy, y, dx, rows, classes, inner, log)
//       log == 0: dx = y * (dy - sum(dy * y)); log != 0: dx = dy - exp(y) * sum(dy), y the forward's output.
// The launcher runs _warp and _block with 256 threads per block. No #defines are injected.
//
// nvcc 13.0 -cubin -arch=sm_90 -std=c++17 -Xptxas -v, registers f32 / f64: forward 64 / 64,
// backward 72 / 72; _warp forward 56 / 58, backward 56 / 56; _block forward 62 / 64, backward
// 56 / 54 (256 bytes of shared memory, 1 barrier); no spills. (With __launch_bounds__(256) ptxas
// capped _block at 40 registers and spilled; without it, 256 threads fit anyway.)
#include "common.cuh"
#include "rows.cuh"

template <typename T, typename S>
__device__ void softmax_forward(S g, const T* __restrict__ x, T* __restrict__ y, long long rows, int classes,
                                long long inner, int log_softmax) {
    const long long e = g.stride(inner);
    for (long long r = g.first_row(); r < rows; r += g.row_step()) {
        const long long base = g.base(r, classes, inner);
        const T* __restrict__ xr = x + base;
        T* __restrict__ yr = y + base;
        double m = gc::rows::neg_inf();
        for (int c = g.lane(); c < classes; c += g.size()) m = gc::rows::MaxNan()(m, (double)xr[c * e]);
        m = g.reduce(m, gc::rows::MaxNan());
        double sum = 0.0;
        for (int c = g.lane(); c < classes; c += g.size()) sum += exp((double)xr[c * e] - m);
        sum = g.reduce(sum, gc::rows::Sum());
        if (log_softmax) {
            const double shift = m + log(sum);
            for (int c = g.lane(); c < classes; c += g.size()) yr[c * e] = (T)((double)xr[c * e] - shift);
        } else {
            for (int c = g.lane(); c < classes; c += g.size()) yr[c * e] = (T)(exp((double)xr[c * e] - m) / sum);
        }
    }
}

template <typename T, typename S>
__device__ void softmax_backward(S g, const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                                 long long rows, int classes, long long inner, int log_softmax) {
    const long long e = g.stride(inner);
    for (long long r = g.first_row(); r < rows; r += g.row_step()) {
        const long long base = g.base(r, classes, inner);
        const T* __restrict__ dyr = dy + base;
        const T* __restrict__ yr = y + base;
        T* __restrict__ dxr = dx + base;
        double sum = 0.0;
        if (log_softmax) {
            for (int c = g.lane(); c < classes; c += g.size()) sum += (double)dyr[c * e];
            sum = g.reduce(sum, gc::rows::Sum());
            for (int c = g.lane(); c < classes; c += g.size())
                dxr[c * e] = (T)((double)dyr[c * e] - exp((double)yr[c * e]) * sum);
        } else {
            for (int c = g.lane(); c < classes; c += g.size()) sum += (double)dyr[c * e] * (double)yr[c * e];
            sum = g.reduce(sum, gc::rows::Sum());
            for (int c = g.lane(); c < classes; c += g.size())
                dxr[c * e] = (T)((double)yr[c * e] * ((double)dyr[c * e] - sum));
        }
    }
}

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
GC_ENTRY_F(softmax_forward,
        (const T* __restrict__ x, T* __restrict__ y, long long rows, int classes, long long inner, int log_softmax),
        softmax_forward<T>(gc::rows::ThreadPerRow(), x, y, rows, classes, inner, log_softmax))
GC_ENTRY_F(softmax_backward,
        (const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long rows, int classes,
         long long inner, int log_softmax),
        softmax_backward<T>(gc::rows::ThreadPerRow(), dy, y, dx, rows, classes, inner, log_softmax))
GC_ENTRY_F(softmax_forward_warp,
        (const T* __restrict__ x, T* __restrict__ y, long long rows, int classes, long long inner, int log_softmax),
        softmax_forward<T>(gc::rows::WarpPerRow(), x, y, rows, classes, inner, log_softmax))
GC_ENTRY_F(softmax_backward_warp,
        (const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long rows, int classes,
         long long inner, int log_softmax),
        softmax_backward<T>(gc::rows::WarpPerRow(), dy, y, dx, rows, classes, inner, log_softmax))
GC_ENTRY_F(softmax_forward_block,
        (const T* __restrict__ x, T* __restrict__ y, long long rows, int classes, long long inner, int log_softmax),
        __shared__ double partial[32]; softmax_forward<T>(gc::rows::BlockPerRow{partial}, x, y, rows, classes, inner,
            log_softmax))
GC_ENTRY_F(softmax_backward_block,
        (const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx, long long rows, int classes,
         long long inner, int log_softmax),
        __shared__ double partial[32]; softmax_backward<T>(gc::rows::BlockPerRow{partial}, dy, y, dx, rows, classes,
            inner, log_softmax))
