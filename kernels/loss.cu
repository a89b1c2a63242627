// loss.cu — softmax cross entropy over integer class targets, forward and backward, and the
// classification count of fit()'s accuracy.
//
// Layout: logits C-contiguous, viewed as (n, classes, inner) (inner = d1*d2*... for (N, C, d1, ...),
// 1 for (N, C) and (C,)); one row per target: row r = (b, s) with b = r / inner, s = r % inner, its
// class scores at b*classes*inner + s + c*inner. Targets: the row's class index, int32 (_i32) or
// int64 (_i64), C-contiguous, one per row. Element type T = float (_f32) or double (_f64); sums,
// the log-sum-exp and the final reductions are computed in double for both and rounded to T.
// No atomics: every reduction has a fixed order, so results are the same on every run.
// Who handles a row in the row kernels (kernels/rows.cuh; the launcher picks by layout and length):
// <name>_<i32|i64>_<f32|f64> a thread per row (for inner > 1: rows coalesced across threads),
// <name>_warp_... a warp per row and <name>_block_... a block per row (inner == 1: the lanes read
// consecutive classes), each with the same arguments.
//
// Entry points (<name>_<i32|i64>_<f32|f64> unless said otherwise; stamped out at the end of this file
// from one line per kernel by entry_points.cuh's GC_ENTRY_I_F, GC_ENTRY_F and GC_ENTRY_I, or their
// _BOUNDED forms):
//   check_targets_<i32|i64>(target, rows, classes, ignore_index, first_bad)
//       One block: first_bad[0] = the smallest row whose target is neither in [0, classes) nor
//       ignore_index, or -1.
//   cross_entropy_rows[_warp|_block](logits, target, weight, has_weight, rows, classes, inner,
//                      ignore_index, eps, losses, weights)
//       Per row: lse = max + log(sum exp(x - max)); loss = -w[t] * (x[t] - lse), with label
//       smoothing eps > 0: (1 - eps) * loss + eps / C * sum_c -w[c] * (x[c] - lse), the sum taken
//       as -(sum_c w[c] * (x[c] - max) - log(sum exp(x - max)) * sum_c w[c]) (two sums of one sign:
//       no cancellation) in the pass that sums exp; weights[r] = w[t] (1 without class weights);
//       both 0 for an ignored row.
//   cross_entropy_reduce_<f32|f64>(losses, weights, rows, mean, out)
//       One block: out[0] = sum(losses) / sum(weights) (mean; 0/0 = NaN when every row is
//       ignored, as in PyTorch) or sum(losses).
//   cross_entropy_scale(target, weight, has_weight, rows, ignore_index, dloss, mean, scale)
//       One block: scale[0] = dloss[0] / sum of the non-ignored rows' w[t] (mean), or dloss[0].
//   cross_entropy_backward[_warp|_block](logits, target, weight, has_weight, rows, classes, inner,
//                          ignore_index, eps, scale, per_row, dlogits)
//       Per row: with q[c] = (1 - eps) * w[t] * [c == t] + eps / C * w[c] and Q = sum q,
//       dlogits[c] = s * (softmax[c] * Q - q[c]), s = scale[r] (per_row: reduction "none") or
//       scale[0]; exactly 0 for an ignored row.
//   accumulate_loss_<f32|f64>(loss, n, scale, total)
//       One block: total[0] (double) += scale * sum of the n values of loss (fit()'s running loss).
//   count_correct(outputs, target, rows, classes, count)
//       One block, a warp per row: count[0] += the number of rows of outputs (rows, classes) whose
//       first maximum (the first NaN, if any, as numpy.argmax) is at the target's index.
// _f32 / _f64 is the logits' type; NaN in a row propagates to its loss as in the NumPy code.
// The launcher runs the _warp and _block kernels with 256 threads per block. No #defines are injected.
//
// nvcc 13.0 -cubin -arch=sm_90 -std=c++17 -Xptxas -v, registers (f32 and f64, i32 and i64):
// cross_entropy_rows 68-69, _warp 62-64, _block 64; cross_entropy_backward 68-70, _warp 62-64,
// _block 70-72 (_block: 256 bytes of shared memory); count_correct 26-28; the other one-block
// kernels 30-32, check_targets 12; no spills but cross_entropy_scale_i32_f64's 4 bytes (a one-block
// kernel run once per backward).
#include "common.cuh"
#include "rows.cuh"

namespace {

constexpr int kBlock = 256;  // threads of the one-block reductions (a power of two)

template <typename T>
__device__ __forceinline__ double class_weight(const T* __restrict__ weight, int has_weight, long long c) {
    return has_weight ? (double)weight[c] : 1.0;
}

// Of two (value, index) candidates for a row's argmax, the one numpy.argmax returns: NaN beats
// numbers, then the larger value, then the smaller index. A total order, so the lanes' partial
// results combine to the row-major scan's answer in any grouping.
template <typename T>
__device__ __forceinline__ void better(T& v, int& i, T v2, int i2) {
    const bool nan = v != v, nan2 = v2 != v2;
    const bool take = nan ? (nan2 && i2 < i) : (nan2 || v2 > v || (v2 == v && i2 < i));
    if (take) {
        v = v2;
        i = i2;
    }
}

}  // namespace

template <typename Ti>
__device__ void check_targets(const Ti* __restrict__ target, long long rows, int classes, long long ignore_index,
                              long long* __restrict__ first_bad) {
    __shared__ long long first[kBlock];
    long long mine = -1;
    for (long long r = threadIdx.x; r < rows; r += kBlock) {
        const long long t = (long long)target[r];
        if (t != ignore_index && (t < 0 || t >= classes)) {
            mine = r;
            break;
        }
    }
    first[threadIdx.x] = mine;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) {
            const long long a = first[threadIdx.x], b = first[threadIdx.x + half];
            first[threadIdx.x] = a < 0 ? b : (b < 0 ? a : min(a, b));
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) first_bad[0] = first[0];
}

template <typename T, typename Ti, typename S>
__device__ void cross_entropy_rows(S g, const T* __restrict__ logits, const Ti* __restrict__ target,
                                   const T* __restrict__ weight, int has_weight, long long rows, int classes,
                                   long long inner, long long ignore_index, double eps, T* __restrict__ losses,
                                   T* __restrict__ weights) {
    const long long e = g.stride(inner);
    for (long long r = g.first_row(); r < rows; r += g.row_step()) {
        const long long t = (long long)target[r];
        if (t == ignore_index) {  // the same for the whole warp or block: no reduction is skipped by some
            if (g.leader()) {
                losses[r] = T(0);
                weights[r] = T(0);
            }
            continue;
        }
        const T* __restrict__ x = logits + g.base(r, classes, inner);
        double m = gc::rows::neg_inf();
        for (int c = g.lane(); c < classes; c += g.size()) m = gc::rows::MaxNan()(m, (double)x[c * e]);
        m = g.reduce(m, gc::rows::MaxNan());
        double sum = 0.0, weighted = 0.0, all = 0.0;  // sum exp(x - m), sum w (x - m), sum w
        for (int c = g.lane(); c < classes; c += g.size()) {
            const double v = (double)x[c * e] - m;
            sum += exp(v);
            if (eps > 0.0) {
                const double w = class_weight(weight, has_weight, c);
                weighted += w * v;
                all += w;
            }
        }
        sum = g.reduce(sum, gc::rows::Sum());
        if (eps > 0.0) {
            weighted = g.reduce(weighted, gc::rows::Sum());
            all = g.reduce(all, gc::rows::Sum());
        }
        if (g.leader()) {
            const double log_sum = log(sum);
            const double wt = class_weight(weight, has_weight, t);
            double loss = -wt * ((double)x[t * e] - m - log_sum);
            if (eps > 0.0) loss = (1.0 - eps) * loss - (weighted - log_sum * all) * (eps / classes);
            losses[r] = (T)loss;
            weights[r] = (T)wt;
        }
    }
}

template <typename T>
__device__ void cross_entropy_reduce(const T* __restrict__ losses, const T* __restrict__ weights, long long rows,
                                     int mean, T* __restrict__ out) {
    __shared__ double partial[kBlock];
    double loss = 0.0, weight = 0.0;
    for (long long r = threadIdx.x; r < rows; r += kBlock) {
        loss += (double)losses[r];
        weight += (double)weights[r];
    }
    const double total = gc::block_sum<kBlock>(loss, partial);
    const double total_weight = gc::block_sum<kBlock>(weight, partial);
    if (threadIdx.x == 0) out[0] = (T)(mean ? total / total_weight : total);
}

template <typename T, typename Ti>
__device__ void cross_entropy_scale(const Ti* __restrict__ target, const T* __restrict__ weight, int has_weight,
                                    long long rows, long long ignore_index, const T* __restrict__ dloss, int mean,
                                    T* __restrict__ scale) {
    __shared__ double partial[kBlock];
    double sum = 0.0;
    if (mean) {
        for (long long r = threadIdx.x; r < rows; r += kBlock) {
            const long long t = (long long)target[r];
            if (t != ignore_index) sum += class_weight(weight, has_weight, t);
        }
    }
    const double total = gc::block_sum<kBlock>(sum, partial);
    if (threadIdx.x == 0) scale[0] = (T)(mean ? (double)dloss[0] / total : (double)dloss[0]);
}

template <typename T, typename Ti, typename S>
__device__ void cross_entropy_backward(S g, const T* __restrict__ logits, const Ti* __restrict__ target,
                                       const T* __restrict__ weight, int has_weight, long long rows, int classes,
                                       long long inner, long long ignore_index, double eps,
                                       const T* __restrict__ scale, int per_row, T* __restrict__ dlogits) {
    const long long e = g.stride(inner);
    for (long long r = g.first_row(); r < rows; r += g.row_step()) {
        const long long base = g.base(r, classes, inner);
        const T* __restrict__ x = logits + base;
        T* __restrict__ dx = dlogits + base;
        const long long t = (long long)target[r];
        if (t == ignore_index) {
            for (int c = g.lane(); c < classes; c += g.size()) dx[c * e] = T(0);
            continue;
        }
        double m = gc::rows::neg_inf();
        for (int c = g.lane(); c < classes; c += g.size()) m = gc::rows::MaxNan()(m, (double)x[c * e]);
        m = g.reduce(m, gc::rows::MaxNan());
        double sum = 0.0, all = 0.0;  // sum exp(x - m); sum of the class weights (the smoothing term's total)
        for (int c = g.lane(); c < classes; c += g.size()) {
            sum += exp((double)x[c * e] - m);
            if (eps > 0.0) all += class_weight(weight, has_weight, c);
        }
        sum = g.reduce(sum, gc::rows::Sum());
        if (eps > 0.0) all = g.reduce(all, gc::rows::Sum());
        const double lse = m + log(sum);
        const double wt = class_weight(weight, has_weight, t);
        const double q_total = (1.0 - eps) * wt + eps / classes * all;
        const double s = (double)scale[per_row ? r : 0];
        for (int c = g.lane(); c < classes; c += g.size()) {
            double q = eps > 0.0 ? eps / classes * class_weight(weight, has_weight, c) : 0.0;
            if (c == t) q += (1.0 - eps) * wt;
            const double p = exp((double)x[c * e] - lse);
            dx[c * e] = (T)(s * (p * q_total - q));
        }
    }
}

template <typename T, typename Ti>
__device__ void count_correct(const T* __restrict__ outputs, const Ti* __restrict__ target, long long rows,
                              int classes, long long* __restrict__ count) {
    __shared__ long long partial[kBlock];
    const int lane = (int)(threadIdx.x & 31u);
    long long correct = 0;
    for (long long r = threadIdx.x >> 5; r < rows; r += kBlock / 32) {
        const T* __restrict__ row = outputs + r * classes;
        T top = (T)gc::rows::neg_inf();
        int best = 0x7fffffff;  // a lane without classes loses to every class
        for (int c = lane; c < classes; c += 32) better(top, best, row[c], c);
        for (int offset = 16; offset > 0; offset >>= 1) {
            const T v = __shfl_xor_sync(0xffffffffu, top, offset);
            const int i = __shfl_xor_sync(0xffffffffu, best, offset);
            better(top, best, v, i);
        }
        if (lane == 0) correct += (long long)target[r] == best;
    }
    const long long total = gc::block_sum<kBlock>(correct, partial);
    if (threadIdx.x == 0) count[0] += total;
}

template <typename T>
__device__ void accumulate_loss(const T* __restrict__ loss, long long n, double scale, double* __restrict__ total) {
    __shared__ double partial[kBlock];
    double sum = 0.0;
    for (long long i = threadIdx.x; i < n; i += kBlock) sum += (double)loss[i];
    const double all = gc::block_sum<kBlock>(sum, partial);
    if (threadIdx.x == 0) total[0] += scale * all;
}

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
GC_ENTRY_I_BOUNDED((kBlock), check_targets,
        (const I* __restrict__ target, long long rows, int classes, long long ignore_index,
         long long* __restrict__ first_bad),
        check_targets<I>(target, rows, classes, ignore_index, first_bad))
GC_ENTRY_I_F_BOUNDED((kBlock), cross_entropy_scale,
        (const I* __restrict__ target, const T* __restrict__ weight, int has_weight, long long rows,
         long long ignore_index, const T* __restrict__ dloss, int mean, T* __restrict__ scale),
        cross_entropy_scale<T, I>(target, weight, has_weight, rows, ignore_index, dloss, mean, scale))
GC_ENTRY_I_F_BOUNDED((kBlock), count_correct,
        (const T* __restrict__ outputs, const I* __restrict__ target, long long rows, int classes,
         long long* __restrict__ count),
        count_correct<T, I>(outputs, target, rows, classes, count))
GC_ENTRY_F_BOUNDED((kBlock), cross_entropy_reduce,
        (const T* __restrict__ losses, const T* __restrict__ weights, long long rows, int mean, T* __restrict__ out),
        cross_entropy_reduce<T>(losses, weights, rows, mean, out))
GC_ENTRY_F_BOUNDED((kBlock), accumulate_loss,
        (const T* __restrict__ loss, long long n, double scale, double* __restrict__ total),
        accumulate_loss<T>(loss, n, scale, total))
GC_ENTRY_I_F(cross_entropy_rows,
        (const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight, int has_weight,
         long long rows, int classes, long long inner, long long ignore_index, double eps, T* __restrict__ losses,
         T* __restrict__ weights),
        cross_entropy_rows<T, I>(gc::rows::ThreadPerRow(), logits, target, weight, has_weight, rows, classes, inner,
            ignore_index, eps, losses, weights))
GC_ENTRY_I_F(cross_entropy_backward,
        (const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight, int has_weight,
         long long rows, int classes, long long inner, long long ignore_index, double eps, const T* __restrict__ scale,
         int per_row, T* __restrict__ dlogits),
        cross_entropy_backward<T, I>(gc::rows::ThreadPerRow(), logits, target, weight, has_weight, rows, classes, inner,
            ignore_index, eps, scale, per_row, dlogits))
GC_ENTRY_I_F(cross_entropy_rows_warp,
        (const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight, int has_weight,
         long long rows, int classes, long long inner, long long ignore_index, double eps, T* __restrict__ losses,
         T* __restrict__ weights),
        cross_entropy_rows<T, I>(gc::rows::WarpPerRow(), logits, target, weight, has_weight, rows, classes, inner,
            ignore_index, eps, losses, weights))
GC_ENTRY_I_F(cross_entropy_backward_warp,
        (const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight, int has_weight,
         long long rows, int classes, long long inner, long long ignore_index, double eps, const T* __restrict__ scale,
         int per_row, T* __restrict__ dlogits),
        cross_entropy_backward<T, I>(gc::rows::WarpPerRow(), logits, target, weight, has_weight, rows, classes, inner,
            ignore_index, eps, scale, per_row, dlogits))
GC_ENTRY_I_F(cross_entropy_rows_block,
        (const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight, int has_weight,
         long long rows, int classes, long long inner, long long ignore_index, double eps, T* __restrict__ losses,
         T* __restrict__ weights),
        __shared__ double partial[32]; cross_entropy_rows<T, I>(gc::rows::BlockPerRow{partial}, logits, target, weight,
            has_weight, rows, classes, inner, ignore_index, eps, losses, weights))
GC_ENTRY_I_F(cross_entropy_backward_block,
        (const T* __restrict__ logits, const I* __restrict__ target, const T* __restrict__ weight, int has_weight,
         long long rows, int classes, long long inner, long long ignore_index, double eps, const T* __restrict__ scale,
         int per_row, T* __restrict__ dlogits),
        __shared__ double partial[32]; cross_entropy_backward<T, I>(gc::rows::BlockPerRow{partial}, logits, target,
            weight, has_weight, rows, classes, inner, ignore_index, eps, scale, per_row, dlogits))
