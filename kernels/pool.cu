// pool.cu — max, average, adaptive and GeM pooling over NCHW planes, forward and backward.
//
// Layout: x (N, C, H, W) and y (N, C, OH, OW), C-contiguous; the kernels see N*C independent
// planes ("planes"). Element type T = float (_f32) or double (_f64); indices are int64, PyTorch's
// flat index y*W + x within the input plane. Index arithmetic is 32-bit when every offset of the
// launch is below GC_INDEX32_LIMIT (default 2^30), else 64-bit.
// Injected #defines: none in normal use; tests inject GC_INDEX32_LIMIT=0 to run the 64-bit path.
//
// Entry points (each in _f32 and _f64):
//   max_pool2d_forward       one thread per output (indices written only when write_indices != 0):
//                            the first maximum of the window in row-major tap order (the last NaN
//                            wins, as in PyTorch); padding is -inf. A window with no element inside
//                            the input (possible with dilation) gives -inf and the index of its
//                            first tap moved into the plane by whole dilation steps (PyTorch's rule).
//   max_pool2d_backward      gather, one thread per input element: sums dy over the windows that
//                            contain the element and chose it (indices == its flat index).
//   avg_pool2d_forward       one thread per output; PyTorch's divisor rule (count_include_pad counts
//                            padding inside H+2*pad but not the ceil_mode overhang; divisor > 0
//                            overrides).
//   avg_pool2d_backward      gather over the windows containing each input element.
//   adaptive_avg_pool2d_forward / _backward, adaptive_max_pool2d_forward / _backward
//                            bins floor(i*H/OH) .. ceil((i+1)*H/OH); backward is a gather over the
//                            bins that contain each input element.
//   gem_forward              y = mean_window(max(x, eps)^p)^(1/p), windows without padding (global
//                            GeM: one H x W window). p is read from a one-element device array, so a
//                            learnable p never needs a host sync.
//   gem_backward_coef        one thread per output (grid-stride, fixed grid): coef = dy*y/(m*K) for
//                            dx, and the output's contribution to dp, summed per block by a fixed
//                            shared-memory tree into partial[blockIdx.x] (no atomics: deterministic).
//   gem_backward_dx          gather: dx = c^(p-1) * [x >= eps] * sum of coef over the windows.
//   sum_reduce               one block: out[0] = sum(partial[0..n)), fixed tree (the dp total).
#include "common.cuh"

namespace {

template <typename T> struct Lim;
template <> struct Lim<float> {
    __device__ static float neg_inf() { return -__int_as_float(0x7f800000); }
};
template <> struct Lim<double> {
    __device__ static double neg_inf() { return -__longlong_as_double(0x7ff0000000000000LL); }
};

__device__ __forceinline__ float gc_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double gc_pow(double a, double b) { return pow(a, b); }
// max(v, eps) that keeps NaN, as PyTorch's clamp does (fmax would turn NaN into eps).
template <typename T>
__device__ __forceinline__ T clamp_min(T v, T eps) { return v < eps ? eps : v; }
__device__ __forceinline__ float gc_log(float a) { return logf(a); }
__device__ __forceinline__ double gc_log(double a) { return log(a); }

// Range of window starts o (o*s - pad .. + (k-1)*d) that contain position v at some tap, as
// [lo, hi] with the tap test left to the caller: o*s = v + pad - i*d for some tap i.
__device__ __forceinline__ int ceil_div_nonneg(int a, int b) { return a <= 0 ? 0 : (a + b - 1) / b; }

__device__ __forceinline__ int bin_start(int i, int size, int out) { return (int)(((long long)i * size) / out); }
__device__ __forceinline__ int bin_end(int i, int size, int out) {
    return (int)(((long long)(i + 1) * size + out - 1) / out);
}

constexpr int kReduceBlock = 256;  // block size of the tree reductions (a power of two)

}  // namespace

// Index arithmetic in 32 bits when every offset fits (much cheaper division on a GPU), else 64.
// Below 2^30 elements, i + blockDim.x * gridDim.x (at most 2^24 more) cannot overflow an int.
#ifndef GC_INDEX32_LIMIT
#define GC_INDEX32_LIMIT (1LL << 30)
#endif
#define GC_INDEX_LOOP(I, i, n) \
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (I)blockDim.x * gridDim.x)
#define GC_DISPATCH_INDEX(fn, T, planes, height, width, oh, ow, ...)                                  \
    do {                                                                                          \
        if ((planes) * max((long long)(height) * (width), (long long)(oh) * (ow)) < (GC_INDEX32_LIMIT))  \
            fn<T, int>(__VA_ARGS__);                                                              \
        else                                                                                      \
            fn<T, long long>(__VA_ARGS__);                                                        \
    } while (0)

// ---- max pooling ---------------------------------------------------------------------------------
template <typename T, typename I>
__device__ void max_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ indices,
                                   int write_indices, long long planes, int height, int width, int oh, int ow,
                                   int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    const I total = (I)planes * oh * ow;
    GC_INDEX_LOOP(I, idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const I plane = idx / ((I)ow * oh);
        const T* xp = x + plane * height * width;
        const int y0 = oy * sh - ph, x0 = ox * sw - pw;
        int fy = y0, fx = x0;  // first tap inside the plane (PyTorch's initial index)
        while (fy < 0) fy += dh;
        while (fx < 0) fx += dw;
        T best = Lim<T>::neg_inf();
        long long best_index = (long long)fy * width + fx;
        for (int i = 0; i < kh; ++i) {
            const int yy = y0 + i * dh;
            if (yy < 0 || yy >= height) continue;
            for (int j = 0; j < kw; ++j) {
                const int xx = x0 + j * dw;
                if (xx < 0 || xx >= width) continue;
                const T v = xp[(I)yy * width + xx];
                if (v > best || v != v) {
                    best = v;
                    best_index = (long long)yy * width + xx;
                }
            }
        }
        y[idx] = best;
        if (write_indices) indices[idx] = best_index;
    }
}

template <typename T, typename I>
__device__ void max_pool2d_backward(const T* __restrict__ dy, const long long* __restrict__ indices, T* __restrict__ dx,
                                    long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh,
                                    int sw, int ph, int pw, int dh, int dw) {
    const I total = (I)planes * height * width;
    GC_INDEX_LOOP(I, idx, total) {
        const int xx = (int)(idx % width);
        const int yy = (int)((idx / width) % height);
        const I plane = idx / ((I)width * height);
        const I self = (I)yy * width + xx;
        const I base = plane * oh * ow;
        T acc = T(0);
        for (int i = 0; i < kh; ++i) {
            const int ty = yy + ph - i * dh;  // = oy * sh for a window that reads (yy, xx) at tap row i
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int j = 0; j < kw; ++j) {
                const int tx = xx + pw - j * dw;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                const I o = base + (I)(ty / sh) * ow + tx / sw;
                if (indices[o] == self) acc += dy[o];
            }
        }
        dx[idx] = acc;
    }
}

// ---- average pooling -----------------------------------------------------------------------------
// PyTorch's divisor for window (oy, ox).
__device__ __forceinline__ int avg_divisor(int oy, int ox, int height, int width, int kh, int kw, int sh, int sw,
                                           int ph, int pw, int count_include_pad, int divisor_override) {
    if (divisor_override > 0) return divisor_override;
    int y0 = oy * sh - ph, x0 = ox * sw - pw;
    int y1 = min(y0 + kh, height + ph), x1 = min(x0 + kw, width + pw);
    if (count_include_pad) return (y1 - y0) * (x1 - x0);
    y0 = max(y0, 0);
    x0 = max(x0, 0);
    y1 = min(y1, height);
    x1 = min(x1, width);
    return (y1 - y0) * (x1 - x0);
}

template <typename T, typename I>
__device__ void avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width,
                                   int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                   int count_include_pad, int divisor_override) {
    const I total = (I)planes * oh * ow;
    GC_INDEX_LOOP(I, idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const T* xp = x + (idx / ((I)ow * oh)) * height * width;
        const int y0 = max(oy * sh - ph, 0), y1 = min(oy * sh - ph + kh, height);
        const int x0 = max(ox * sw - pw, 0), x1 = min(ox * sw - pw + kw, width);
        T acc = T(0);
        for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) acc += xp[(I)yy * width + xx];
        y[idx] = acc / T(avg_divisor(oy, ox, height, width, kh, kw, sh, sw, ph, pw, count_include_pad,
                                     divisor_override));
    }
}

template <typename T, typename I>
__device__ void avg_pool2d_backward(const T* __restrict__ dy, T* __restrict__ dx, long long planes, int height,
                                    int width, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                    int count_include_pad, int divisor_override) {
    const I total = (I)planes * height * width;
    GC_INDEX_LOOP(I, idx, total) {
        const int xx = (int)(idx % width);
        const int yy = (int)((idx / width) % height);
        const T* dyp = dy + (idx / ((I)width * height)) * oh * ow;
        // Windows oy with oy*sh - ph <= yy < oy*sh - ph + kh.
        const int oy0 = ceil_div_nonneg(yy + ph - kh + 1, sh), oy1 = min((yy + ph) / sh, oh - 1);
        const int ox0 = ceil_div_nonneg(xx + pw - kw + 1, sw), ox1 = min((xx + pw) / sw, ow - 1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox)
                acc += dyp[(I)oy * ow + ox] /
                       T(avg_divisor(oy, ox, height, width, kh, kw, sh, sw, ph, pw, count_include_pad,
                                     divisor_override));
        dx[idx] = acc;
    }
}

// ---- adaptive pooling ----------------------------------------------------------------------------
template <typename T, typename I>
__device__ void adaptive_avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, long long planes, int height,
                                            int width, int oh, int ow) {
    const I total = (I)planes * oh * ow;
    GC_INDEX_LOOP(I, idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const T* xp = x + (idx / ((I)ow * oh)) * height * width;
        const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
        const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
        T acc = T(0);
        for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) acc += xp[(I)yy * width + xx];
        y[idx] = acc / T((y1 - y0) * (x1 - x0));
    }
}

template <typename T, typename I>
__device__ void adaptive_avg_pool2d_backward(const T* __restrict__ dy, T* __restrict__ dx, long long planes,
                                             int height, int width, int oh, int ow) {
    const I total = (I)planes * height * width;
    GC_INDEX_LOOP(I, idx, total) {
        const int xx = (int)(idx % width);
        const int yy = (int)((idx / width) % height);
        const T* dyp = dy + (idx / ((I)width * height)) * oh * ow;
        // Bins containing yy: floor(yy*OH/H) .. ceil((yy+1)*OH/H) - 1 (checked exactly below).
        const int oy0 = (int)(((long long)yy * oh) / height);
        const int oy1 = min((int)(((long long)(yy + 1) * oh + height - 1) / height) - 1, oh - 1);
        const int ox0 = (int)(((long long)xx * ow) / width);
        const int ox1 = min((int)(((long long)(xx + 1) * ow + width - 1) / width) - 1, ow - 1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
            if (yy < y0 || yy >= y1) continue;
            for (int ox = ox0; ox <= ox1; ++ox) {
                const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
                if (xx < x0 || xx >= x1) continue;
                acc += dyp[(I)oy * ow + ox] / T((y1 - y0) * (x1 - x0));
            }
        }
        dx[idx] = acc;
    }
}

template <typename T, typename I>
__device__ void adaptive_max_pool2d_forward(const T* __restrict__ x, T* __restrict__ y,
                                            long long* __restrict__ indices, long long planes, int height, int width,
                                            int oh, int ow) {
    const I total = (I)planes * oh * ow;
    GC_INDEX_LOOP(I, idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const T* xp = x + (idx / ((I)ow * oh)) * height * width;
        const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
        const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
        T best = Lim<T>::neg_inf();
        long long best_index = (long long)y0 * width + x0;
        for (int yy = y0; yy < y1; ++yy) {
            for (int xx = x0; xx < x1; ++xx) {
                const T v = xp[(I)yy * width + xx];
                if (v > best || v != v) {
                    best = v;
                    best_index = (long long)yy * width + xx;
                }
            }
        }
        y[idx] = best;
        indices[idx] = best_index;
    }
}

template <typename T, typename I>
__device__ void adaptive_max_pool2d_backward(const T* __restrict__ dy, const long long* __restrict__ indices,
                                             T* __restrict__ dx, long long planes, int height, int width, int oh,
                                             int ow) {
    const I total = (I)planes * height * width;
    GC_INDEX_LOOP(I, idx, total) {
        const int xx = (int)(idx % width);
        const int yy = (int)((idx / width) % height);
        const I base = (idx / ((I)width * height)) * oh * ow;
        const I self = (I)yy * width + xx;
        const int oy0 = (int)(((long long)yy * oh) / height);
        const int oy1 = min((int)(((long long)(yy + 1) * oh + height - 1) / height) - 1, oh - 1);
        const int ox0 = (int)(((long long)xx * ow) / width);
        const int ox1 = min((int)(((long long)(xx + 1) * ow + width - 1) / width) - 1, ow - 1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) {
                const I o = base + (I)oy * ow + ox;
                if (indices[o] == self) acc += dy[o];
            }
        dx[idx] = acc;
    }
}

// ---- GeM -----------------------------------------------------------------------------------------
// Window mean of max(x, eps)^p (and, when log_sum is not null, of max(x, eps)^p * log(max(x, eps))).
template <typename T>
__device__ __forceinline__ T gem_window(const T* xp, int width, int y0, int x0, int kh, int kw, T p, T eps,
                                        T* log_sum) {
    T acc = T(0), acc_log = T(0);
    for (int i = 0; i < kh; ++i)
        for (int j = 0; j < kw; ++j) {
            const T c = clamp_min(xp[(long long)(y0 + i) * width + x0 + j], eps);
            const T cp = gc_pow(c, p);
            acc += cp;
            if (log_sum) acc_log += cp * gc_log(c);
        }
    if (log_sum) *log_sum = acc_log;
    return acc / T(kh * kw);
}

template <typename T, typename I>
__device__ void gem_forward(const T* __restrict__ x, const T* __restrict__ p_ptr, T* __restrict__ y, long long planes,
                            int height, int width, int oh, int ow, int kh, int kw, int sh, int sw, T eps) {
    const T p = p_ptr[0];
    const I total = (I)planes * oh * ow;
    GC_INDEX_LOOP(I, idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const T* xp = x + (idx / ((I)ow * oh)) * height * width;
        const T m = gem_window<T>(xp, width, oy * sh, ox * sw, kh, kw, p, eps, nullptr);
        y[idx] = gc_pow(m, T(1) / p);
    }
}

// dy/dm = y/(p*m) and dm/dx = p*c^(p-1)/K, so dx = c^(p-1) * sum over windows of dy*y/(m*K).
// dy/dp = y * (-log(m)/p^2 + S/(K*p*m)) with S = sum over the window of c^p*log(c).
template <typename T>
__device__ void gem_backward_coef(const T* __restrict__ x, const T* __restrict__ p_ptr, const T* __restrict__ dy,
                                  T* __restrict__ coef, T* __restrict__ partial, long long planes, int height,
                                  int width, int oh, int ow, int kh, int kw, int sh, int sw, T eps) {
    __shared__ T shared[kReduceBlock];
    const T p = p_ptr[0];
    const T k = T(kh * kw);
    const long long total = planes * oh * ow;
    T dp = T(0);
    GC_GRID_STRIDE_LOOP(idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const T* xp = x + (idx / ((long long)ow * oh)) * height * width;
        T log_sum;
        const T m = gem_window<T>(xp, width, oy * sh, ox * sw, kh, kw, p, eps, &log_sum);
        const T yv = gc_pow(m, T(1) / p);
        const T g = dy[idx] * yv;
        coef[idx] = g / (m * k);
        dp += g * (log_sum / (k * p * m) - gc_log(m) / (p * p));
    }
    const T block_total = gc::block_sum<kReduceBlock>(dp, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = block_total;
}

template <typename T, typename I>
__device__ void gem_backward_dx(const T* __restrict__ x, const T* __restrict__ p_ptr, const T* __restrict__ coef,
                                T* __restrict__ dx, long long planes, int height, int width, int oh, int ow, int kh,
                                int kw, int sh, int sw, T eps) {
    const T p = p_ptr[0];
    const I total = (I)planes * height * width;
    GC_INDEX_LOOP(I, idx, total) {
        const int xx = (int)(idx % width);
        const int yy = (int)((idx / width) % height);
        const T* cp = coef + (idx / ((I)width * height)) * oh * ow;
        const T v = x[idx];
        T result = T(0);
        if (v >= eps) {
            const int oy0 = ceil_div_nonneg(yy - kh + 1, sh), oy1 = min(yy / sh, oh - 1);
            const int ox0 = ceil_div_nonneg(xx - kw + 1, sw), ox1 = min(xx / sw, ow - 1);
            T acc = T(0);
            for (int oy = oy0; oy <= oy1; ++oy)
                for (int ox = ox0; ox <= ox1; ++ox) acc += cp[(I)oy * ow + ox];
            result = acc * gc_pow(v, p - T(1));
        }
        dx[idx] = result;
    }
}

template <typename T>
__device__ void sum_reduce(const T* __restrict__ partial, T* __restrict__ out, int n) {
    __shared__ T shared[kReduceBlock];
    T acc = T(0);
    for (int i = threadIdx.x; i < n; i += kReduceBlock) acc += partial[i];
    const T total = gc::block_sum<kReduceBlock>(acc, shared);
    if (threadIdx.x == 0) out[0] = total;
}

// ---- entry points --------------------------------------------------------------------------------
#define MAXPOOL_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw
#define AVGPOOL_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override
#define GEM_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, eps

extern "C" __global__ void max_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y,
                                                  long long* __restrict__ indices, int write_indices, long long planes,
                                                  int height, int width, int oh, int ow, int kh, int kw, int sh,
                                                  int sw, int ph, int pw, int dh, int dw) {
    GC_DISPATCH_INDEX(max_pool2d_forward, float, planes, height, width, oh, ow,
                      x, y, indices, write_indices, MAXPOOL_ARGS);
}
extern "C" __global__ void max_pool2d_forward_f64(const double* __restrict__ x, double* __restrict__ y,
                                                  long long* __restrict__ indices, int write_indices, long long planes,
                                                  int height, int width, int oh, int ow, int kh, int kw, int sh,
                                                  int sw, int ph, int pw, int dh, int dw) {
    GC_DISPATCH_INDEX(max_pool2d_forward, double, planes, height, width, oh, ow,
                      x, y, indices, write_indices, MAXPOOL_ARGS);
}
extern "C" __global__ void max_pool2d_backward_f32(const float* __restrict__ dy, const long long* __restrict__ indices,
                                                   float* __restrict__ dx, long long planes, int height, int width,
                                                   int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                                   int dh, int dw) {
    GC_DISPATCH_INDEX(max_pool2d_backward, float, planes, height, width, oh, ow, dy, indices, dx, MAXPOOL_ARGS);
}
extern "C" __global__ void max_pool2d_backward_f64(const double* __restrict__ dy,
                                                   const long long* __restrict__ indices, double* __restrict__ dx,
                                                   long long planes, int height, int width, int oh, int ow, int kh,
                                                   int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    GC_DISPATCH_INDEX(max_pool2d_backward, double, planes, height, width, oh, ow, dy, indices, dx, MAXPOOL_ARGS);
}

extern "C" __global__ void avg_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y, long long planes,
                                                  int height, int width, int oh, int ow, int kh, int kw, int sh,
                                                  int sw, int ph, int pw, int count_include_pad,
                                                  int divisor_override) {
    GC_DISPATCH_INDEX(avg_pool2d_forward, float, planes, height, width, oh, ow, x, y, AVGPOOL_ARGS);
}
extern "C" __global__ void avg_pool2d_forward_f64(const double* __restrict__ x, double* __restrict__ y,
                                                  long long planes, int height, int width, int oh, int ow, int kh,
                                                  int kw, int sh, int sw, int ph, int pw, int count_include_pad,
                                                  int divisor_override) {
    GC_DISPATCH_INDEX(avg_pool2d_forward, double, planes, height, width, oh, ow, x, y, AVGPOOL_ARGS);
}
extern "C" __global__ void avg_pool2d_backward_f32(const float* __restrict__ dy, float* __restrict__ dx,
                                                   long long planes, int height, int width, int oh, int ow, int kh,
                                                   int kw, int sh, int sw, int ph, int pw, int count_include_pad,
                                                   int divisor_override) {
    GC_DISPATCH_INDEX(avg_pool2d_backward, float, planes, height, width, oh, ow, dy, dx, AVGPOOL_ARGS);
}
extern "C" __global__ void avg_pool2d_backward_f64(const double* __restrict__ dy, double* __restrict__ dx,
                                                   long long planes, int height, int width, int oh, int ow, int kh,
                                                   int kw, int sh, int sw, int ph, int pw, int count_include_pad,
                                                   int divisor_override) {
    GC_DISPATCH_INDEX(avg_pool2d_backward, double, planes, height, width, oh, ow, dy, dx, AVGPOOL_ARGS);
}

extern "C" __global__ void adaptive_avg_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y,
                                                           long long planes, int height, int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_avg_pool2d_forward, float, planes, height, width, oh, ow,
                      x, y, planes, height, width, oh, ow);
}
extern "C" __global__ void adaptive_avg_pool2d_forward_f64(const double* __restrict__ x, double* __restrict__ y,
                                                           long long planes, int height, int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_avg_pool2d_forward, double, planes, height, width, oh, ow,
                      x, y, planes, height, width, oh, ow);
}
extern "C" __global__ void adaptive_avg_pool2d_backward_f32(const float* __restrict__ dy, float* __restrict__ dx,
                                                            long long planes, int height, int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_avg_pool2d_backward, float, planes, height, width, oh, ow,
                      dy, dx, planes, height, width, oh, ow);
}
extern "C" __global__ void adaptive_avg_pool2d_backward_f64(const double* __restrict__ dy, double* __restrict__ dx,
                                                            long long planes, int height, int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_avg_pool2d_backward, double, planes, height, width, oh, ow,
                      dy, dx, planes, height, width, oh, ow);
}

extern "C" __global__ void adaptive_max_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y,
                                                           long long* __restrict__ indices, long long planes,
                                                           int height, int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_max_pool2d_forward, float, planes, height, width, oh, ow,
                      x, y, indices, planes, height, width, oh, ow);
}
extern "C" __global__ void adaptive_max_pool2d_forward_f64(const double* __restrict__ x, double* __restrict__ y,
                                                           long long* __restrict__ indices, long long planes,
                                                           int height, int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_max_pool2d_forward, double, planes, height, width, oh, ow,
                      x, y, indices, planes, height, width, oh, ow);
}
extern "C" __global__ void adaptive_max_pool2d_backward_f32(const float* __restrict__ dy,
                                                            const long long* __restrict__ indices,
                                                            float* __restrict__ dx, long long planes, int height,
                                                            int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_max_pool2d_backward, float, planes, height, width, oh, ow,
                      dy, indices, dx, planes, height, width, oh, ow);
}
extern "C" __global__ void adaptive_max_pool2d_backward_f64(const double* __restrict__ dy,
                                                            const long long* __restrict__ indices,
                                                            double* __restrict__ dx, long long planes, int height,
                                                            int width, int oh, int ow) {
    GC_DISPATCH_INDEX(adaptive_max_pool2d_backward, double, planes, height, width, oh, ow,
                      dy, indices, dx, planes, height, width, oh, ow);
}

extern "C" __global__ void gem_forward_f32(const float* __restrict__ x, const float* __restrict__ p,
                                           float* __restrict__ y, long long planes, int height, int width, int oh,
                                           int ow, int kh, int kw, int sh, int sw, float eps) {
    GC_DISPATCH_INDEX(gem_forward, float, planes, height, width, oh, ow, x, p, y, GEM_ARGS);
}
extern "C" __global__ void gem_forward_f64(const double* __restrict__ x, const double* __restrict__ p,
                                           double* __restrict__ y, long long planes, int height, int width, int oh,
                                           int ow, int kh, int kw, int sh, int sw, double eps) {
    GC_DISPATCH_INDEX(gem_forward, double, planes, height, width, oh, ow, x, p, y, GEM_ARGS);
}
extern "C" __global__ void gem_backward_coef_f32(const float* __restrict__ x, const float* __restrict__ p,
                                                 const float* __restrict__ dy, float* __restrict__ coef,
                                                 float* __restrict__ partial, long long planes, int height, int width,
                                                 int oh, int ow, int kh, int kw, int sh, int sw, float eps) {
    gem_backward_coef<float>(x, p, dy, coef, partial, GEM_ARGS);
}
extern "C" __global__ void gem_backward_coef_f64(const double* __restrict__ x, const double* __restrict__ p,
                                                 const double* __restrict__ dy, double* __restrict__ coef,
                                                 double* __restrict__ partial, long long planes, int height, int width,
                                                 int oh, int ow, int kh, int kw, int sh, int sw, double eps) {
    gem_backward_coef<double>(x, p, dy, coef, partial, GEM_ARGS);
}
extern "C" __global__ void gem_backward_dx_f32(const float* __restrict__ x, const float* __restrict__ p,
                                               const float* __restrict__ coef, float* __restrict__ dx,
                                               long long planes, int height, int width, int oh, int ow, int kh,
                                               int kw, int sh, int sw, float eps) {
    GC_DISPATCH_INDEX(gem_backward_dx, float, planes, height, width, oh, ow, x, p, coef, dx, GEM_ARGS);
}
extern "C" __global__ void gem_backward_dx_f64(const double* __restrict__ x, const double* __restrict__ p,
                                               const double* __restrict__ coef, double* __restrict__ dx,
                                               long long planes, int height, int width, int oh, int ow, int kh,
                                               int kw, int sh, int sw, double eps) {
    GC_DISPATCH_INDEX(gem_backward_dx, double, planes, height, width, oh, ow, x, p, coef, dx, GEM_ARGS);
}
extern "C" __global__ void sum_reduce_f32(const float* __restrict__ partial, float* __restrict__ out, int n) {
    sum_reduce<float>(partial, out, n);
}
extern "C" __global__ void sum_reduce_f64(const double* __restrict__ partial, double* __restrict__ out, int n) {
    sum_reduce<double>(partial, out, n);
}
