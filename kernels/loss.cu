// loss.cu — softmax cross entropy over integer class targets, forward and backward, and the
// classification count of fit()'s accuracy.
//
// Layout: logits C-contiguous, viewed as (n, classes, inner) (inner = d1*d2*... for (N, C, d1, ...),
// 1 for (N, C) and (C,)); one row per target: row r = (b, s) with b = r / inner, s = r % inner, its
// class scores at b*classes*inner + s + c*inner. Targets: the row's class index, int32 (_i32) or
// int64 (_i64), C-contiguous, one per row. Element type T = float (_f32) or double (_f64); sums,
// the log-sum-exp and the final reductions are computed in double for both and rounded to T.
// No atomics: every reduction has a fixed order, so results are the same on every run.
//
// Entry points (<name>_<i32|i64>_<f32|f64> unless said otherwise):
//   check_targets_<i32|i64>(target, rows, classes, ignore_index, first_bad)
//       One block: first_bad[0] = the smallest row whose target is neither in [0, classes) nor
//       ignore_index, or -1.
//   cross_entropy_rows(logits, target, weight, has_weight, rows, classes, inner, ignore_index,
//                      eps, losses, weights)
//       A thread per row (grid-stride): lse = max + log(sum exp(x - max)); loss = -w[t] * (x[t] - lse),
//       with label smoothing eps > 0: (1 - eps) * loss + eps / C * sum_c -w[c] * (x[c] - lse);
//       weights[r] = w[t] (1 without class weights); both 0 for an ignored row.
//   cross_entropy_reduce_<f32|f64>(losses, weights, rows, mean, out)
//       One block: out[0] = sum(losses) / sum(weights) (mean; 0/0 = NaN when every row is
//       ignored, as in PyTorch) or sum(losses).
//   cross_entropy_scale(target, weight, has_weight, rows, ignore_index, dloss, mean, scale)
//       One block: scale[0] = dloss[0] / sum of the non-ignored rows' w[t] (mean), or dloss[0].
//   cross_entropy_backward(logits, target, weight, has_weight, rows, classes, inner,
//                          ignore_index, eps, scale, per_row, dlogits)
//       A thread per row: with q[c] = (1 - eps) * w[t] * [c == t] + eps / C * w[c] and Q = sum q,
//       dlogits[c] = s * (softmax[c] * Q - q[c]), s = scale[r] (per_row: reduction "none") or
//       scale[0]; exactly 0 for an ignored row.
//   accumulate_loss_<f32|f64>(loss, n, scale, total)
//       One block: total[0] (double) += scale * sum of the n values of loss (fit()'s running loss).
//   count_correct(outputs, target, rows, classes, count)
//       One block: count[0] += the number of rows of outputs (rows, classes) whose first maximum
//       (the first NaN, if any, as numpy.argmax) is at the target's index.
// _f32 / _f64 is the logits' type; NaN in a row propagates to its loss as in the NumPy code.
// No #defines are injected.
//
// nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v, registers f32 / f64: cross_entropy_rows 72 / 64,
// cross_entropy_backward 72 / 72, the one-block kernels 29-32, check_targets 12; no spills but
// cross_entropy_scale_i32_f64's 4 bytes (a one-block kernel run once per backward).
#include "common.cuh"

namespace {

constexpr int kBlock = 256;  // threads of the one-block reductions (a power of two)

template <typename T>
__device__ __forceinline__ double class_weight(const T* __restrict__ weight, int has_weight, long long c) {
    return has_weight ? (double)weight[c] : 1.0;
}

// (max, log(sum exp(x - max))) of a row whose class scores are x[c * inner]; NaN propagates.
template <typename T>
__device__ __forceinline__ double row_logsumexp(const T* __restrict__ x, int classes, long long inner, double* top) {
    double m = (double)x[0];
    for (int c = 1; c < classes; ++c) {
        const double v = (double)x[c * inner];
        if (v > m || v != v) m = v;
        if (m != m) break;
    }
    double sum = 0.0;
    for (int c = 0; c < classes; ++c) sum += exp((double)x[c * inner] - m);
    *top = m;
    return log(sum);
}

__device__ __forceinline__ long long row_base(long long r, int classes, long long inner) {
    const long long b = inner == 1 ? r : r / inner;
    return b * classes * inner + (r - b * inner);
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

template <typename T, typename Ti>
__device__ void cross_entropy_rows(const T* __restrict__ logits, const Ti* __restrict__ target,
                                   const T* __restrict__ weight, int has_weight, long long rows, int classes,
                                   long long inner, long long ignore_index, double eps, T* __restrict__ losses,
                                   T* __restrict__ weights) {
    GC_GRID_STRIDE_LOOP(r, rows) {
        const long long t = (long long)target[r];
        if (t == ignore_index) {
            losses[r] = T(0);
            weights[r] = T(0);
            continue;
        }
        const T* __restrict__ x = logits + row_base(r, classes, inner);
        double m;
        const double lse = row_logsumexp(x, classes, inner, &m) + m;
        const double wt = class_weight(weight, has_weight, t);
        double loss = -wt * ((double)x[t * inner] - lse);
        if (eps > 0.0) {
            double smooth = 0.0;
            for (int c = 0; c < classes; ++c) smooth -= class_weight(weight, has_weight, c) * ((double)x[c * inner] - lse);
            loss = (1.0 - eps) * loss + smooth * (eps / classes);
        }
        losses[r] = (T)loss;
        weights[r] = (T)wt;
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

template <typename T, typename Ti>
__device__ void cross_entropy_backward(const T* __restrict__ logits, const Ti* __restrict__ target,
                                       const T* __restrict__ weight, int has_weight, long long rows, int classes,
                                       long long inner, long long ignore_index, double eps,
                                       const T* __restrict__ scale, int per_row, T* __restrict__ dlogits) {
    GC_GRID_STRIDE_LOOP(r, rows) {
        const long long base = row_base(r, classes, inner);
        const T* __restrict__ x = logits + base;
        T* __restrict__ dx = dlogits + base;
        const long long t = (long long)target[r];
        if (t == ignore_index) {
            for (int c = 0; c < classes; ++c) dx[c * inner] = T(0);
            continue;
        }
        double m;
        const double lse = row_logsumexp(x, classes, inner, &m) + m;
        const double wt = class_weight(weight, has_weight, t);
        double all = 0.0;  // sum of the class weights (the smoothing term's total)
        if (eps > 0.0) {
            for (int c = 0; c < classes; ++c) all += class_weight(weight, has_weight, c);
        }
        const double q_total = (1.0 - eps) * wt + eps / classes * all;
        const double s = (double)scale[per_row ? r : 0];
        for (int c = 0; c < classes; ++c) {
            double q = eps > 0.0 ? eps / classes * class_weight(weight, has_weight, c) : 0.0;
            if (c == t) q += (1.0 - eps) * wt;
            const double p = exp((double)x[c * inner] - lse);
            dx[c * inner] = (T)(s * (p * q_total - q));
        }
    }
}

template <typename T, typename Ti>
__device__ void count_correct(const T* __restrict__ outputs, const Ti* __restrict__ target, long long rows,
                              int classes, long long* __restrict__ count) {
    __shared__ long long partial[kBlock];
    long long correct = 0;
    for (long long r = threadIdx.x; r < rows; r += kBlock) {
        const T* __restrict__ row = outputs + r * classes;
        int best = 0;
        T top = row[0];
        for (int c = 1; c < classes && top == top; ++c) {
            const T v = row[c];
            if (v > top || v != v) {
                top = v;
                best = c;
            }
        }
        correct += (long long)target[r] == best;
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

// ---- entry points --------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(kBlock) check_targets_i32(const int* __restrict__ target, long long rows,
                                                                    int classes, long long ignore_index,
                                                                    long long* __restrict__ first_bad) {
    check_targets<int>(target, rows, classes, ignore_index, first_bad);
}
extern "C" __global__ void __launch_bounds__(kBlock) check_targets_i64(const long long* __restrict__ target, long long rows,
                                                                    int classes, long long ignore_index,
                                                                    long long* __restrict__ first_bad) {
    check_targets<long long>(target, rows, classes, ignore_index, first_bad);
}
extern "C" __global__ void cross_entropy_rows_i32_f32(const float* __restrict__ logits, const int* __restrict__ target,
                                                   const float* __restrict__ weight, int has_weight, long long rows,
                                                   int classes, long long inner, long long ignore_index, double eps,
                                                   float* __restrict__ losses, float* __restrict__ weights) {
    cross_entropy_rows<float, int>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, losses,
                                 weights);
}
extern "C" __global__ void __launch_bounds__(kBlock) cross_entropy_scale_i32_f32(const int* __restrict__ target,
                                                                         const float* __restrict__ weight, int has_weight,
                                                                         long long rows, long long ignore_index,
                                                                         const float* __restrict__ dloss, int mean,
                                                                         float* __restrict__ scale) {
    cross_entropy_scale<float, int>(target, weight, has_weight, rows, ignore_index, dloss, mean, scale);
}
extern "C" __global__ void cross_entropy_backward_i32_f32(const float* __restrict__ logits, const int* __restrict__ target,
                                                       const float* __restrict__ weight, int has_weight, long long rows,
                                                       int classes, long long inner, long long ignore_index,
                                                       double eps, const float* __restrict__ scale, int per_row,
                                                       float* __restrict__ dlogits) {
    cross_entropy_backward<float, int>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, scale,
                                     per_row, dlogits);
}
extern "C" __global__ void __launch_bounds__(kBlock) count_correct_i32_f32(const float* __restrict__ outputs,
                                                                   const int* __restrict__ target, long long rows,
                                                                   int classes, long long* __restrict__ count) {
    count_correct<float, int>(outputs, target, rows, classes, count);
}
extern "C" __global__ void cross_entropy_rows_i64_f32(const float* __restrict__ logits, const long long* __restrict__ target,
                                                   const float* __restrict__ weight, int has_weight, long long rows,
                                                   int classes, long long inner, long long ignore_index, double eps,
                                                   float* __restrict__ losses, float* __restrict__ weights) {
    cross_entropy_rows<float, long long>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, losses,
                                 weights);
}
extern "C" __global__ void __launch_bounds__(kBlock) cross_entropy_scale_i64_f32(const long long* __restrict__ target,
                                                                         const float* __restrict__ weight, int has_weight,
                                                                         long long rows, long long ignore_index,
                                                                         const float* __restrict__ dloss, int mean,
                                                                         float* __restrict__ scale) {
    cross_entropy_scale<float, long long>(target, weight, has_weight, rows, ignore_index, dloss, mean, scale);
}
extern "C" __global__ void cross_entropy_backward_i64_f32(const float* __restrict__ logits, const long long* __restrict__ target,
                                                       const float* __restrict__ weight, int has_weight, long long rows,
                                                       int classes, long long inner, long long ignore_index,
                                                       double eps, const float* __restrict__ scale, int per_row,
                                                       float* __restrict__ dlogits) {
    cross_entropy_backward<float, long long>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, scale,
                                     per_row, dlogits);
}
extern "C" __global__ void __launch_bounds__(kBlock) count_correct_i64_f32(const float* __restrict__ outputs,
                                                                   const long long* __restrict__ target, long long rows,
                                                                   int classes, long long* __restrict__ count) {
    count_correct<float, long long>(outputs, target, rows, classes, count);
}
extern "C" __global__ void cross_entropy_rows_i32_f64(const double* __restrict__ logits, const int* __restrict__ target,
                                                   const double* __restrict__ weight, int has_weight, long long rows,
                                                   int classes, long long inner, long long ignore_index, double eps,
                                                   double* __restrict__ losses, double* __restrict__ weights) {
    cross_entropy_rows<double, int>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, losses,
                                 weights);
}
extern "C" __global__ void __launch_bounds__(kBlock) cross_entropy_scale_i32_f64(const int* __restrict__ target,
                                                                         const double* __restrict__ weight, int has_weight,
                                                                         long long rows, long long ignore_index,
                                                                         const double* __restrict__ dloss, int mean,
                                                                         double* __restrict__ scale) {
    cross_entropy_scale<double, int>(target, weight, has_weight, rows, ignore_index, dloss, mean, scale);
}
extern "C" __global__ void cross_entropy_backward_i32_f64(const double* __restrict__ logits, const int* __restrict__ target,
                                                       const double* __restrict__ weight, int has_weight, long long rows,
                                                       int classes, long long inner, long long ignore_index,
                                                       double eps, const double* __restrict__ scale, int per_row,
                                                       double* __restrict__ dlogits) {
    cross_entropy_backward<double, int>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, scale,
                                     per_row, dlogits);
}
extern "C" __global__ void __launch_bounds__(kBlock) count_correct_i32_f64(const double* __restrict__ outputs,
                                                                   const int* __restrict__ target, long long rows,
                                                                   int classes, long long* __restrict__ count) {
    count_correct<double, int>(outputs, target, rows, classes, count);
}
extern "C" __global__ void cross_entropy_rows_i64_f64(const double* __restrict__ logits, const long long* __restrict__ target,
                                                   const double* __restrict__ weight, int has_weight, long long rows,
                                                   int classes, long long inner, long long ignore_index, double eps,
                                                   double* __restrict__ losses, double* __restrict__ weights) {
    cross_entropy_rows<double, long long>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, losses,
                                 weights);
}
extern "C" __global__ void __launch_bounds__(kBlock) cross_entropy_scale_i64_f64(const long long* __restrict__ target,
                                                                         const double* __restrict__ weight, int has_weight,
                                                                         long long rows, long long ignore_index,
                                                                         const double* __restrict__ dloss, int mean,
                                                                         double* __restrict__ scale) {
    cross_entropy_scale<double, long long>(target, weight, has_weight, rows, ignore_index, dloss, mean, scale);
}
extern "C" __global__ void cross_entropy_backward_i64_f64(const double* __restrict__ logits, const long long* __restrict__ target,
                                                       const double* __restrict__ weight, int has_weight, long long rows,
                                                       int classes, long long inner, long long ignore_index,
                                                       double eps, const double* __restrict__ scale, int per_row,
                                                       double* __restrict__ dlogits) {
    cross_entropy_backward<double, long long>(logits, target, weight, has_weight, rows, classes, inner, ignore_index, eps, scale,
                                     per_row, dlogits);
}
extern "C" __global__ void __launch_bounds__(kBlock) count_correct_i64_f64(const double* __restrict__ outputs,
                                                                   const long long* __restrict__ target, long long rows,
                                                                   int classes, long long* __restrict__ count) {
    count_correct<double, long long>(outputs, target, rows, classes, count);
}
extern "C" __global__ void __launch_bounds__(kBlock) cross_entropy_reduce_f32(
    const float* __restrict__ losses, const float* __restrict__ weights, long long rows, int mean,
    float* __restrict__ out) {
    cross_entropy_reduce<float>(losses, weights, rows, mean, out);
}
extern "C" __global__ void __launch_bounds__(kBlock) cross_entropy_reduce_f64(
    const double* __restrict__ losses, const double* __restrict__ weights, long long rows, int mean,
    double* __restrict__ out) {
    cross_entropy_reduce<double>(losses, weights, rows, mean, out);
}
extern "C" __global__ void __launch_bounds__(kBlock) accumulate_loss_f32(const float* __restrict__ loss, long long n,
                                                                         double scale, double* __restrict__ total) {
    accumulate_loss<float>(loss, n, scale, total);
}
extern "C" __global__ void __launch_bounds__(kBlock) accumulate_loss_f64(const double* __restrict__ loss, long long n,
                                                                         double scale, double* __restrict__ total) {
    accumulate_loss<double>(loss, n, scale, total);
}
