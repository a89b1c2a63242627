// batchnorm.cu — 2-D batch normalization over NCHW: statistics, normalization, backward.
//
// Layout: x, y, dy, dx (N, C, H, W) C-contiguous, hw = H*W; per-channel vectors (C,). Element type
// T = float (_f32) or double (_f64), accumulation in T. Offsets are 64-bit. No #defines injected.
//
// Reductions are two-level and deterministic (no atomics): the logical range k = n*hw + i of
// channel c (count = N*hw elements) is cut into `splits` chunks of `chunk` elements; block
// (split, c) = (blockIdx.x, blockIdx.y) reduces its chunk, then one block per channel merges the
// splits. Every tree has a fixed shape, so the result does not depend on thread scheduling.
//
// Entry points (each in _f32 and _f64):
//   batch_norm_stats_partial    per-chunk Welford (count, mean, M2) of x - pivot, pivot = x[n=0,c,0]:
//                               shifting by a sample of the channel keeps float32 exact where
//                               E[x^2] - E[x]^2 would cancel catastrophically (mean 1e4, std 1).
//                               Threads run Welford over their elements, then merge pairwise
//                               (Chan et al.) in shared memory.
//   batch_norm_stats_finalize   merges the splits of channel c; writes save_mean, save_invstd =
//                               1/sqrt(biased var + eps) and, when update_running != 0, updates
//                               running_mean/var in place: r = (1 - momentum)*r + momentum*stat,
//                               with the unbiased variance (count/(count-1)) into running_var.
//   batch_norm_affine           fused y = (x - mean[c]) * inv[c] * weight[c] + bias[c]; inv is
//                               src[c] (training: save_invstd) or 1/sqrt(src[c] + eps) when src_is_var
//                               (eval: running_var). Subtracting the mean before scaling keeps
//                               precision when |mean| >> std. Grid (N*C planes, chunks of the plane);
//                               vec != 0: 16-byte loads/stores (float4 / double2), which the launcher
//                               allows when hw is a multiple of the lanes and the planes are aligned.
//   batch_norm_backward_partial per-chunk sums of dy and dy*(x - mean) (fixed-shape block trees).
//   batch_norm_backward_finalize one block per channel: sum_dy[c], sum_dy_xhat[c] = invstd * sum.
//   batch_norm_backward_dx      fused dx = w*invstd*(dy - sum_dy/count - xhat*sum_dy_xhat/count)
//                               (training), or w*invstd*dy (eval: statistics are constants); vec as
//                               in batch_norm_affine.
// has_weight / has_bias = 0 mean weight 1 / bias 0 (the pointer is then any array, unread).
#include "common.cuh"

namespace {

constexpr int kBlock = 256;  // block size of every reduction kernel (a power of two)

__device__ __forceinline__ float gc_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double gc_sqrt(double v) { return sqrt(v); }

// Welford/Chan merge of (nb, mb, m2b) into (na, ma, m2a).
template <typename T>
__device__ __forceinline__ void merge(long long& na, T& ma, T& m2a, long long nb, T mb, T m2b) {
    if (nb == 0) return;
    const long long n = na + nb;
    const T delta = mb - ma;
    const T fb = T(nb) / T(n);
    ma += delta * fb;
    m2a += m2b + delta * delta * T(na) * fb;
    na = n;
}

// Merges the block's per-thread (count, mean, M2) with a fixed tree; thread 0 ends with the total.
template <typename T>
__device__ void block_merge(long long& n, T& mean, T& m2, long long* sn, T* smean, T* sm2) {
    const int t = threadIdx.x;
    sn[t] = n;
    smean[t] = mean;
    sm2[t] = m2;
    __syncthreads();
    for (int half = kBlock / 2; half > 0; half >>= 1) {
        if (t < half) {
            long long a = sn[t];
            T ma = smean[t], m2a = sm2[t];
            merge(a, ma, m2a, sn[t + half], smean[t + half], sm2[t + half]);
            sn[t] = a;
            smean[t] = ma;
            sm2[t] = m2a;
        }
        __syncthreads();
    }
    n = sn[0];
    mean = smean[0];
    m2 = sm2[0];
}


}  // namespace

// Calls body(offset) for every element of chunk `split` of channel c, thread-strided within each
// image's contiguous run of the channel (no per-element division).
#define BN_FOR_CHUNK(offset, body)                                                      \
    {                                                                                   \
        const long long count_ = (long long)n_batch * hw;                               \
        const long long k0_ = (long long)blockIdx.x * chunk;                            \
        const long long k1_ = min(k0_ + chunk, count_);                                 \
        for (long long n_ = k0_ / hw; n_ * hw < k1_; ++n_) {                            \
            const long long begin_ = max(k0_, n_ * hw) - n_ * hw;                       \
            const long long end_ = min(k1_, (n_ + 1) * hw) - n_ * hw;                   \
            const long long base_ = (n_ * channels + c) * hw;                           \
            for (long long i_ = begin_ + threadIdx.x; i_ < end_; i_ += kBlock) {        \
                const long long offset = base_ + i_;                                    \
                body;                                                                   \
            }                                                                           \
        }                                                                               \
    }

template <typename T>
__device__ void batch_norm_stats_partial(const T* __restrict__ x, long long* __restrict__ pcount,
                                         T* __restrict__ pmean, T* __restrict__ pm2, int n_batch, int channels,
                                         long long hw, long long chunk) {
    __shared__ long long sn[kBlock];
    __shared__ T smean[kBlock];
    __shared__ T sm2[kBlock];
    const int c = blockIdx.y;
    const T pivot = x[(long long)c * hw];
    long long n = 0;
    T mean = T(0), m2 = T(0);
    BN_FOR_CHUNK(offset, {
        const T v = x[offset] - pivot;
        ++n;
        const T delta = v - mean;
        mean += delta / T(n);
        m2 += delta * (v - mean);
    })
    block_merge(n, mean, m2, sn, smean, sm2);
    if (threadIdx.x == 0) {
        const long long slot = (long long)c * gridDim.x + blockIdx.x;
        pcount[slot] = n;
        pmean[slot] = mean;
        pm2[slot] = m2;
    }
}

template <typename T>
__device__ void batch_norm_stats_finalize(const T* __restrict__ x, const long long* __restrict__ pcount,
                                          const T* __restrict__ pmean, const T* __restrict__ pm2,
                                          T* __restrict__ save_mean, T* __restrict__ save_invstd,
                                          T* __restrict__ running_mean, T* __restrict__ running_var, long long hw,
                                          int splits, T eps, T momentum, int update_running) {
    __shared__ long long sn[kBlock];
    __shared__ T smean[kBlock];
    __shared__ T sm2[kBlock];
    const int c = blockIdx.x;
    long long n = 0;
    T mean = T(0), m2 = T(0);
    for (int s = threadIdx.x; s < splits; s += kBlock) {
        const long long slot = (long long)c * splits + s;
        merge(n, mean, m2, pcount[slot], pmean[slot], pm2[slot]);
    }
    block_merge(n, mean, m2, sn, smean, sm2);
    if (threadIdx.x == 0) {
        const T batch_mean = x[(long long)c * hw] + mean;
        const T var = m2 / T(n);
        save_mean[c] = batch_mean;
        save_invstd[c] = T(1) / gc_sqrt(var + eps);
        if (update_running) {
            running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * batch_mean;
            running_var[c] = (T(1) - momentum) * running_var[c] + momentum * (m2 / T(n - 1));
        }
    }
}

// 16 bytes of T, for vectorized loads and stores in the elementwise kernels.
template <typename T> struct Vec16;
template <> struct Vec16<float> {
    typedef float4 type;
    static constexpr int lanes = 4;
};
template <> struct Vec16<double> {
    typedef double2 type;
    static constexpr int lanes = 2;
};

// Runs body_vec for each 16-byte vector v_ of the plane (vec != 0; the launcher guarantees
// hw % lanes == 0 and 16-byte aligned planes) or body_scalar for each element i_, the threads of
// the grid's chunks (grid.y) striding over the plane. (No #pragma in the bodies: a directive inside
// macro arguments is undefined; the lane loops have a constant trip count and unroll anyway.)
#define BN_PLANE_LOOP(T, body_scalar, body_vec)                                                    \
    {                                                                                              \
        const long long step_ = (long long)gridDim.y * blockDim.x;                                 \
        const long long first_ = (long long)blockIdx.y * blockDim.x + threadIdx.x;                 \
        if (vec) {                                                                                 \
            for (long long v_ = first_; v_ < hw / Vec16<T>::lanes; v_ += step_) { body_vec; }      \
        } else {                                                                                   \
            for (long long i_ = first_; i_ < hw; i_ += step_) { body_scalar; }                     \
        }                                                                                          \
    }

template <typename T>
__device__ void batch_norm_affine(const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ mean,
                                  const T* __restrict__ src, const T* __restrict__ weight,
                                  const T* __restrict__ bias, int channels, long long hw, int has_weight,
                                  int has_bias, int src_is_var, T eps, int vec) {
    typedef typename Vec16<T>::type V;
    const long long plane = blockIdx.x;
    const int c = (int)(plane % channels);
    const T m = mean[c];
    const T inv = src_is_var ? T(1) / gc_sqrt(src[c] + eps) : src[c];
    const T scale = has_weight ? inv * weight[c] : inv;
    const T shift = has_bias ? bias[c] : T(0);
    const T* xp = x + plane * hw;
    T* yp = y + plane * hw;
    BN_PLANE_LOOP(T, yp[i_] = (xp[i_] - m) * scale + shift, {
        V v = reinterpret_cast<const V*>(xp)[v_];
        T* e = reinterpret_cast<T*>(&v);
        for (int l = 0; l < Vec16<T>::lanes; ++l) e[l] = (e[l] - m) * scale + shift;
        reinterpret_cast<V*>(yp)[v_] = v;
    })
}

template <typename T>
__device__ void batch_norm_backward_partial(const T* __restrict__ dy, const T* __restrict__ x,
                                            const T* __restrict__ mean, T* __restrict__ psum_dy,
                                            T* __restrict__ psum_dyx, int n_batch, int channels, long long hw,
                                            long long chunk) {
    __shared__ T shared[kBlock];
    const int c = blockIdx.y;
    const T m = mean[c];
    T sum_dy = T(0), sum_dyx = T(0);
    BN_FOR_CHUNK(offset, {
        const T g = dy[offset];
        sum_dy += g;
        sum_dyx += g * (x[offset] - m);
    })
    sum_dy = gc::block_sum<kBlock>(sum_dy, shared);
    sum_dyx = gc::block_sum<kBlock>(sum_dyx, shared);
    if (threadIdx.x == 0) {
        const long long slot = (long long)c * gridDim.x + blockIdx.x;
        psum_dy[slot] = sum_dy;
        psum_dyx[slot] = sum_dyx;
    }
}

template <typename T>
__device__ void batch_norm_backward_finalize(const T* __restrict__ psum_dy, const T* __restrict__ psum_dyx,
                                             const T* __restrict__ invstd, T* __restrict__ sum_dy,
                                             T* __restrict__ sum_dy_xhat, int splits) {
    __shared__ T shared[kBlock];
    const int c = blockIdx.x;
    T a = T(0), b = T(0);
    for (int s = threadIdx.x; s < splits; s += kBlock) {
        a += psum_dy[(long long)c * splits + s];
        b += psum_dyx[(long long)c * splits + s];
    }
    a = gc::block_sum<kBlock>(a, shared);
    b = gc::block_sum<kBlock>(b, shared);
    if (threadIdx.x == 0) {
        sum_dy[c] = a;
        sum_dy_xhat[c] = b * invstd[c];
    }
}

template <typename T>
__device__ void batch_norm_backward_dx(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean,
                                       const T* __restrict__ invstd, const T* __restrict__ weight,
                                       const T* __restrict__ sum_dy, const T* __restrict__ sum_dy_xhat,
                                       T* __restrict__ dx, int channels, long long hw, long long count,
                                       int has_weight, int training, int vec) {
    typedef typename Vec16<T>::type V;
    const long long plane = blockIdx.x;
    const int c = (int)(plane % channels);
    const T inv = invstd[c];
    const T scale = has_weight ? inv * weight[c] : inv;
    const T* dyp = dy + plane * hw;
    T* dxp = dx + plane * hw;
    if (training) {
        const T m = mean[c];
        const T mean_dy = sum_dy[c] / T(count);
        const T k = sum_dy_xhat[c] / T(count) * inv;  // xhat * mean(dy*xhat) = (x - m) * k
        const T* xp = x + plane * hw;
        BN_PLANE_LOOP(T, dxp[i_] = (dyp[i_] - mean_dy - (xp[i_] - m) * k) * scale, {
            V g = reinterpret_cast<const V*>(dyp)[v_];
            const V xv = reinterpret_cast<const V*>(xp)[v_];
            T* e = reinterpret_cast<T*>(&g);
            const T* xe = reinterpret_cast<const T*>(&xv);
            for (int l = 0; l < Vec16<T>::lanes; ++l) e[l] = (e[l] - mean_dy - (xe[l] - m) * k) * scale;
            reinterpret_cast<V*>(dxp)[v_] = g;
        })
    } else {
        BN_PLANE_LOOP(T, dxp[i_] = dyp[i_] * scale, {
            V g = reinterpret_cast<const V*>(dyp)[v_];
            T* e = reinterpret_cast<T*>(&g);
            for (int l = 0; l < Vec16<T>::lanes; ++l) e[l] *= scale;
            reinterpret_cast<V*>(dxp)[v_] = g;
        })
    }
}

// ---- entry points --------------------------------------------------------------------------------
extern "C" __global__ void batch_norm_stats_partial_f32(const float* __restrict__ x, long long* __restrict__ pcount,
                                                        float* __restrict__ pmean, float* __restrict__ pm2,
                                                        int n_batch, int channels, long long hw, long long chunk) {
    batch_norm_stats_partial<float>(x, pcount, pmean, pm2, n_batch, channels, hw, chunk);
}
extern "C" __global__ void batch_norm_stats_partial_f64(const double* __restrict__ x, long long* __restrict__ pcount,
                                                        double* __restrict__ pmean, double* __restrict__ pm2,
                                                        int n_batch, int channels, long long hw, long long chunk) {
    batch_norm_stats_partial<double>(x, pcount, pmean, pm2, n_batch, channels, hw, chunk);
}
extern "C" __global__ void batch_norm_stats_finalize_f32(const float* __restrict__ x,
                                                         const long long* __restrict__ pcount,
                                                         const float* __restrict__ pmean,
                                                         const float* __restrict__ pm2, float* __restrict__ save_mean,
                                                         float* __restrict__ save_invstd,
                                                         float* __restrict__ running_mean,
                                                         float* __restrict__ running_var, long long hw, int splits,
                                                         float eps, float momentum, int update_running) {
    batch_norm_stats_finalize<float>(x, pcount, pmean, pm2, save_mean, save_invstd, running_mean, running_var, hw,
                                     splits, eps, momentum, update_running);
}
extern "C" __global__ void batch_norm_stats_finalize_f64(const double* __restrict__ x,
                                                         const long long* __restrict__ pcount,
                                                         const double* __restrict__ pmean,
                                                         const double* __restrict__ pm2,
                                                         double* __restrict__ save_mean,
                                                         double* __restrict__ save_invstd,
                                                         double* __restrict__ running_mean,
                                                         double* __restrict__ running_var, long long hw, int splits,
                                                         double eps, double momentum, int update_running) {
    batch_norm_stats_finalize<double>(x, pcount, pmean, pm2, save_mean, save_invstd, running_mean, running_var, hw,
                                      splits, eps, momentum, update_running);
}
extern "C" __global__ void batch_norm_affine_f32(const float* __restrict__ x, float* __restrict__ y,
                                                 const float* __restrict__ mean, const float* __restrict__ src,
                                                 const float* __restrict__ weight, const float* __restrict__ bias,
                                                 int channels, long long hw, int has_weight, int has_bias,
                                                 int src_is_var, float eps, int vec) {
    batch_norm_affine<float>(x, y, mean, src, weight, bias, channels, hw, has_weight, has_bias, src_is_var, eps,
                             vec);
}
extern "C" __global__ void batch_norm_affine_f64(const double* __restrict__ x, double* __restrict__ y,
                                                 const double* __restrict__ mean, const double* __restrict__ src,
                                                 const double* __restrict__ weight, const double* __restrict__ bias,
                                                 int channels, long long hw, int has_weight, int has_bias,
                                                 int src_is_var, double eps, int vec) {
    batch_norm_affine<double>(x, y, mean, src, weight, bias, channels, hw, has_weight, has_bias, src_is_var, eps,
                              vec);
}
extern "C" __global__ void batch_norm_backward_partial_f32(const float* __restrict__ dy, const float* __restrict__ x,
                                                           const float* __restrict__ mean,
                                                           float* __restrict__ psum_dy, float* __restrict__ psum_dyx,
                                                           int n_batch, int channels, long long hw, long long chunk) {
    batch_norm_backward_partial<float>(dy, x, mean, psum_dy, psum_dyx, n_batch, channels, hw, chunk);
}
extern "C" __global__ void batch_norm_backward_partial_f64(const double* __restrict__ dy,
                                                           const double* __restrict__ x,
                                                           const double* __restrict__ mean,
                                                           double* __restrict__ psum_dy,
                                                           double* __restrict__ psum_dyx, int n_batch, int channels,
                                                           long long hw, long long chunk) {
    batch_norm_backward_partial<double>(dy, x, mean, psum_dy, psum_dyx, n_batch, channels, hw, chunk);
}
extern "C" __global__ void batch_norm_backward_finalize_f32(const float* __restrict__ psum_dy,
                                                            const float* __restrict__ psum_dyx,
                                                            const float* __restrict__ invstd,
                                                            float* __restrict__ sum_dy,
                                                            float* __restrict__ sum_dy_xhat, int splits) {
    batch_norm_backward_finalize<float>(psum_dy, psum_dyx, invstd, sum_dy, sum_dy_xhat, splits);
}
extern "C" __global__ void batch_norm_backward_finalize_f64(const double* __restrict__ psum_dy,
                                                            const double* __restrict__ psum_dyx,
                                                            const double* __restrict__ invstd,
                                                            double* __restrict__ sum_dy,
                                                            double* __restrict__ sum_dy_xhat, int splits) {
    batch_norm_backward_finalize<double>(psum_dy, psum_dyx, invstd, sum_dy, sum_dy_xhat, splits);
}
extern "C" __global__ void batch_norm_backward_dx_f32(const float* __restrict__ dy, const float* __restrict__ x,
                                                      const float* __restrict__ mean, const float* __restrict__ invstd,
                                                      const float* __restrict__ weight,
                                                      const float* __restrict__ sum_dy,
                                                      const float* __restrict__ sum_dy_xhat, float* __restrict__ dx,
                                                      int channels, long long hw, long long count, int has_weight,
                                                      int training, int vec) {
    batch_norm_backward_dx<float>(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, dx, channels, hw, count,
                                  has_weight, training, vec);
}
extern "C" __global__ void batch_norm_backward_dx_f64(const double* __restrict__ dy, const double* __restrict__ x,
                                                      const double* __restrict__ mean,
                                                      const double* __restrict__ invstd,
                                                      const double* __restrict__ weight,
                                                      const double* __restrict__ sum_dy,
                                                      const double* __restrict__ sum_dy_xhat,
                                                      double* __restrict__ dx, int channels, long long hw,
                                                      long long count, int has_weight, int training, int vec) {
    batch_norm_backward_dx<double>(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, dx, channels, hw, count,
                                   has_weight, training, vec);
}
