// batchnorm.cu — 2-D batch normalization over NCHW: statistics, normalization, backward.
//
// Layout: x, y, dy, dx (N, C, H, W) C-contiguous, hw = H*W < 2^31 (the launcher checks); per-channel
// vectors (C,). Element type T = float (_f32) or double (_f64), accumulation in T. Offsets of a
// plane are 64-bit once per plane, 32-bit inside it. No #defines injected.
//
// Reductions are two-level and deterministic: the logical range k = n*hw + i of channel c (count =
// N*hw elements) is cut into `splits` chunks of `chunk` elements (a multiple of the vector lanes
// when vec != 0); block (split, c) = (blockIdx.x, blockIdx.y) reduces its chunk into partial[c,
// split]. With splits > 1, the block that finishes last for its channel (a per-channel ticket,
// counter[c], taken after a __threadfence) merges the channel's partials with a fixed tree and
// resets counter[c] to 0 for the next launch: the finalize costs no launch of its own, and the
// merge order, hence every bit of the result, never depends on which block came last.
//
// Entry points (each in _f32 and _f64; stamped out at the end of this file from one line per kernel by
// entry_points.cuh's GC_ENTRY_F):
//   batch_norm_stats           per-thread sums of d = x - pivot and d^2 (pivot = x[n=0,c,0]: shifting
//                              by a sample of the channel keeps float32 exact where E[x^2] - E[x]^2
//                              would cancel catastrophically, mean 1e4 and std 1), turned into
//                              (count, mean, M2) and merged pairwise (Chan et al.) by a fixed tree;
//                              the finalizing block writes save_mean, save_invstd = 1/sqrt(biased
//                              var + eps) and, when update_running != 0, r = (1 - momentum)*r +
//                              momentum*stat with the unbiased variance into running_var.
//   batch_norm_affine          y = (x - mean[c]) * inv[c] * weight[c] + bias[c]; inv is src[c]
//                              (training: save_invstd) or 1/sqrt(src[c] + eps) when src_is_var (eval:
//                              running_var). Subtracting the mean before scaling keeps precision when
//                              |mean| >> std.
//   batch_norm_backward_reduce per-chunk sums of dy and dy*(x - mean), then (finalizing block)
//                              sum_dy[c] and sum_dy_xhat[c] = invstd[c] * sum of dy*(x - mean).
//   batch_norm_backward_dx     dx = w*invstd*(dy - sum_dy/count - xhat*sum_dy_xhat/count) (training),
//                              or w*invstd*dy (eval: statistics are constants).
//   batch_norm_train_fused     one block per channel (the launcher's choice when a channel gets one
//                              reduction block anyway: small tensors, where launches dominate):
//                              batch_norm_stats, then the same block normalizes its channel as
//                              batch_norm_affine would (same expressions, same bits): one launch.
//   batch_norm_backward_fused  likewise batch_norm_backward_reduce then batch_norm_backward_dx
//                              (training) for the block's channel: one launch.
// Elementwise kernels (affine, backward_dx): `ppb` planes per block of blockDim.x threads, each
// plane served by blockDim.x/ppb threads (a warp or two for a 7x7 plane, not a block), the chunks
// of a plane spread over grid.y when ppb == 1. vec != 0: 16-byte loads/stores (float4 / double2),
// which the launcher allows when hw is a multiple of the lanes and every array is 16-byte aligned.
// has_weight / has_bias = 0 mean weight 1 / bias 0 (the pointer is then any array, unread).
//
// nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v (registers; no spills, no stack frame in any):
//   batch_norm_stats        f32 40 / f64 52      batch_norm_backward_reduce f32 34 / f64 38
//   batch_norm_affine       f32 32 / f64 32      batch_norm_backward_dx     f32 40 / f64 48
//   batch_norm_train_fused  f32 47 / f64 60      batch_norm_backward_fused  f32 56 / f64 56
//   (the fused kernels' normalizing pass reads its inputs as 16-byte vectors since 2026-11-26: 45/60
//   and 40/46 before, when it read them element by element: 4x the sectors per warp request)
// 64-bit division (PTX div/rem.s64): one per thread, none per element (k0 / hw of a reduction
// block; plane % channels of an elementwise thread).
#include "common.cuh"

namespace {

constexpr int kBlock = 256;  // block size of every reduction kernel (a power of two)

__device__ __forceinline__ float gc_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double gc_sqrt(double v) { return sqrt(v); }

using gc::Vec16;  // 16 bytes of T (float4 / double2) for vectorized loads and stores

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
    __syncthreads();  // the buffers may be reused right after
}

// Calls run(plane_offset, begin, end) for each image's part [begin, end) of chunk blockIdx.x of
// channel c: one 64-bit division per block, none per element.
template <typename F>
__device__ __forceinline__ void for_each_run(int n_batch, int channels, int c, int hw, long long chunk, F run) {
    const long long count = (long long)n_batch * hw;
    const long long k0 = (long long)blockIdx.x * chunk;
    const long long k1 = min(k0 + chunk, count);
    long long n = k0 / hw;
    for (long long start = n * hw; start < k1; ++n, start += hw) {
        const int begin = (int)(max(k0, start) - start);
        const int end = (int)(min(k1, start + hw) - start);
        run((n * channels + c) * hw, begin, end);
    }
}

// Elements in chunk s of a channel with `count` elements.
__device__ __forceinline__ long long chunk_count(long long count, long long chunk, int s) {
    return min(chunk, count - (long long)s * chunk);
}

// Whether this block is the last of the channel's `splits` blocks to finish (all threads get the
// answer). Call after thread 0 wrote the block's partial results.
__device__ __forceinline__ bool last_block_of_channel(int* counter, int c, int splits, int* flag) {
    if (threadIdx.x == 0) {
        __threadfence();  // this block's partials are visible before its ticket is
        *flag = atomicAdd(&counter[c], 1) == splits - 1;
    }
    __syncthreads();
    const bool last = *flag != 0;
    if (last && threadIdx.x == 0) counter[c] = 0;  // ready for the next launch on this stream
    return last;
}

}  // namespace

template <typename T>
__device__ void batch_norm_stats(const T* __restrict__ x, T* partial, int* counter, T* __restrict__ save_mean,
                                 T* __restrict__ save_invstd, T* __restrict__ running_mean,
                                 T* __restrict__ running_var, int n_batch, int channels, int hw, long long chunk,
                                 T eps, T momentum, int update_running, int vec) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    __shared__ long long sn[kBlock];
    __shared__ T smean[kBlock];
    __shared__ T sm2[kBlock];
    __shared__ int flag;
    const int c = blockIdx.y;
    const int splits = gridDim.x;
    const T pivot = x[(long long)c * hw];
    T s = T(0), ss = T(0);
    int cnt = 0;
    for_each_run(n_batch, channels, c, hw, chunk, [&](long long base, int begin, int end) {
        const T* p = x + base;
        if (vec) {
            const V* pv = reinterpret_cast<const V*>(p);
            for (int i = begin / L + (int)threadIdx.x; i < end / L; i += kBlock) {
                const V v = pv[i];
                const T* e = reinterpret_cast<const T*>(&v);
                for (int l = 0; l < L; ++l) {
                    const T d = e[l] - pivot;
                    s += d;
                    ss += d * d;
                }
                cnt += L;
            }
        } else {
            for (int i = begin + (int)threadIdx.x; i < end; i += kBlock) {
                const T d = p[i] - pivot;
                s += d;
                ss += d * d;
                ++cnt;
            }
        }
    });
    // A thread's few elements, shifted by the pivot, hold no large common offset: ss - s*mean
    // loses nothing worth a per-element Welford division.
    long long n = cnt;
    T mean = cnt ? s / T(cnt) : T(0);
    T m2 = cnt ? max(ss - s * mean, T(0)) : T(0);
    block_merge(n, mean, m2, sn, smean, sm2);
    if (splits > 1) {
        if (threadIdx.x == 0) {
            partial[2 * ((long long)c * splits + blockIdx.x)] = mean;
            partial[2 * ((long long)c * splits + blockIdx.x) + 1] = m2;
        }
        if (!last_block_of_channel(counter, c, splits, &flag)) return;
        const long long count = (long long)n_batch * hw;
        const volatile T* vp = partial;  // written by other blocks: bypass the incoherent L1
        n = 0;
        mean = m2 = T(0);
        for (int b = threadIdx.x; b < splits; b += kBlock) {
            merge(n, mean, m2, chunk_count(count, chunk, b), (T)vp[2 * ((long long)c * splits + b)],
                  (T)vp[2 * ((long long)c * splits + b) + 1]);
        }
        block_merge(n, mean, m2, sn, smean, sm2);
    }
    if (threadIdx.x == 0) {
        const T batch_mean = pivot + mean;
        const T var = m2 / T(n);
        save_mean[c] = batch_mean;
        save_invstd[c] = T(1) / gc_sqrt(var + eps);
        if (update_running) {
            running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * batch_mean;
            running_var[c] = (T(1) - momentum) * running_var[c] + momentum * (m2 / T(n - 1));
        }
    }
}

template <typename T>
__device__ void batch_norm_backward_reduce(const T* __restrict__ dy, const T* __restrict__ x,
                                           const T* __restrict__ mean, const T* __restrict__ invstd, T* partial,
                                           int* counter, T* __restrict__ sum_dy, T* __restrict__ sum_dy_xhat,
                                           int n_batch, int channels, int hw, long long chunk, int vec) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    __shared__ T shared[kBlock];
    __shared__ int flag;
    const int c = blockIdx.y;
    const int splits = gridDim.x;
    const T m = mean[c];
    T a = T(0), b = T(0);
    for_each_run(n_batch, channels, c, hw, chunk, [&](long long base, int begin, int end) {
        const T* g = dy + base;
        const T* p = x + base;
        if (vec) {
            for (int i = begin / L + (int)threadIdx.x; i < end / L; i += kBlock) {
                const V gv = reinterpret_cast<const V*>(g)[i];
                const V xv = reinterpret_cast<const V*>(p)[i];
                const T* ge = reinterpret_cast<const T*>(&gv);
                const T* xe = reinterpret_cast<const T*>(&xv);
                for (int l = 0; l < L; ++l) {
                    a += ge[l];
                    b += ge[l] * (xe[l] - m);
                }
            }
        } else {
            for (int i = begin + (int)threadIdx.x; i < end; i += kBlock) {
                a += g[i];
                b += g[i] * (p[i] - m);
            }
        }
    });
    a = gc::block_sum<kBlock>(a, shared);
    b = gc::block_sum<kBlock>(b, shared);
    if (splits > 1) {
        if (threadIdx.x == 0) {
            partial[2 * ((long long)c * splits + blockIdx.x)] = a;
            partial[2 * ((long long)c * splits + blockIdx.x) + 1] = b;
        }
        if (!last_block_of_channel(counter, c, splits, &flag)) return;
        const volatile T* vp = partial;  // written by other blocks: bypass the incoherent L1
        a = b = T(0);
        for (int s = threadIdx.x; s < splits; s += kBlock) {
            a += (T)vp[2 * ((long long)c * splits + s)];
            b += (T)vp[2 * ((long long)c * splits + s) + 1];
        }
        a = gc::block_sum<kBlock>(a, shared);
        b = gc::block_sum<kBlock>(b, shared);
    }
    if (threadIdx.x == 0) {
        sum_dy[c] = a;
        sum_dy_xhat[c] = b * invstd[c];
    }
}

// Writes out[o] = f(a[o], b[o]) for every element offset o of channel c (b[o] is 0 when kTwo is
// false and b is unread): the channel's images one after another, the block's threads striding over
// each plane. With vec, the inputs are read as 16-byte vectors too: a scalar read of element l of
// each lane's vector would make a warp's request span 4x (float) the sectors it needs.
template <typename T, bool kTwo, typename F>
__device__ __forceinline__ void map_channel(int n_batch, int channels, int c, int hw, int vec, T* __restrict__ out,
                                            const T* __restrict__ a, const T* __restrict__ b, F f) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    for (int n = 0; n < n_batch; ++n) {
        const long long base = ((long long)n * channels + c) * hw;
        if (vec) {
            const V* av = reinterpret_cast<const V*>(a + base);
            const V* bv = reinterpret_cast<const V*>(b + base);
            for (int i = threadIdx.x; i < hw / L; i += kBlock) {
                V v = av[i];
                V w;
                if (kTwo) w = bv[i];
                T* e = reinterpret_cast<T*>(&v);
                const T* g = reinterpret_cast<const T*>(&w);
                for (int l = 0; l < L; ++l) e[l] = f(e[l], kTwo ? g[l] : T(0));
                reinterpret_cast<V*>(out + base)[i] = v;
            }
        } else {
            for (int i = threadIdx.x; i < hw; i += kBlock) out[base + i] = f(a[base + i], kTwo ? b[base + i] : T(0));
        }
    }
}

template <typename T>
__device__ void batch_norm_train_fused(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ save_mean,
                                       T* __restrict__ save_invstd, T* __restrict__ running_mean,
                                       T* __restrict__ running_var, const T* __restrict__ weight,
                                       const T* __restrict__ bias, int n_batch, int channels, int hw, T eps,
                                       T momentum, int update_running, int has_weight, int has_bias, int vec) {
    // gridDim.x == 1: the statistics kernel's single-split path; then its outputs are visible to the
    // whole block after a barrier (they are this block's own global writes).
    batch_norm_stats<T>(x, nullptr, nullptr, save_mean, save_invstd, running_mean, running_var, n_batch, channels,
                        hw, (long long)n_batch * hw, eps, momentum, update_running, vec);
    __syncthreads();
    const int c = blockIdx.y;
    const T m = save_mean[c];
    const T inv = save_invstd[c];
    const T scale = has_weight ? inv * weight[c] : inv;
    const T shift = has_bias ? bias[c] : T(0);
    map_channel<T, false>(n_batch, channels, c, hw, vec, y, x, x, [&](T xv, T) { return (xv - m) * scale + shift; });
}

template <typename T>
__device__ void batch_norm_backward_fused(const T* __restrict__ dy, const T* __restrict__ x,
                                          const T* __restrict__ mean, const T* __restrict__ invstd,
                                          const T* __restrict__ weight, T* __restrict__ sum_dy,
                                          T* __restrict__ sum_dy_xhat, T* __restrict__ dx, int n_batch, int channels,
                                          int hw, int has_weight, int vec) {
    batch_norm_backward_reduce<T>(dy, x, mean, invstd, nullptr, nullptr, sum_dy, sum_dy_xhat, n_batch, channels, hw,
                                  (long long)n_batch * hw, vec);
    __syncthreads();
    const int c = blockIdx.y;
    const T count = T((long long)n_batch * hw);
    const T inv = invstd[c];
    const T scale = has_weight ? inv * weight[c] : inv;
    const T m = mean[c];
    const T mean_dy = sum_dy[c] / count;
    const T k = sum_dy_xhat[c] / count * inv;
    map_channel<T, true>(n_batch, channels, c, hw, vec, dx, dy, x,
                         [&](T g, T xv) { return (g - mean_dy - (xv - m) * k) * scale; });
}

// The plane this thread serves and its first index and stride in it (in vectors when vec), for
// the elementwise kernels; false for a thread past the last plane.
struct PlaneSlot {
    long long plane;
    int first, step;
};
__device__ __forceinline__ bool plane_slot(long long planes, int ppb, PlaneSlot& slot) {
    const int tpp = blockDim.x / ppb;  // threads per plane
    slot.plane = (long long)blockIdx.x * ppb + threadIdx.x / tpp;
    slot.first = blockIdx.y * tpp + threadIdx.x % tpp;
    slot.step = gridDim.y * tpp;
    return slot.plane < planes;
}

template <typename T>
__device__ void batch_norm_affine(const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ mean,
                                  const T* __restrict__ src, const T* __restrict__ weight,
                                  const T* __restrict__ bias, long long planes, int channels, int hw, int ppb,
                                  int has_weight, int has_bias, int src_is_var, T eps, int vec) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    PlaneSlot slot;
    if (!plane_slot(planes, ppb, slot)) return;
    const int c = (int)(slot.plane % channels);
    const T m = mean[c];
    const T inv = src_is_var ? T(1) / gc_sqrt(src[c] + eps) : src[c];
    const T scale = has_weight ? inv * weight[c] : inv;
    const T shift = has_bias ? bias[c] : T(0);
    const T* xp = x + slot.plane * hw;
    T* yp = y + slot.plane * hw;
    if (vec) {
        for (int i = slot.first; i < hw / L; i += slot.step) {
            V v = reinterpret_cast<const V*>(xp)[i];
            T* e = reinterpret_cast<T*>(&v);
            for (int l = 0; l < L; ++l) e[l] = (e[l] - m) * scale + shift;
            reinterpret_cast<V*>(yp)[i] = v;
        }
    } else {
        for (int i = slot.first; i < hw; i += slot.step) yp[i] = (xp[i] - m) * scale + shift;
    }
}

template <typename T>
__device__ void batch_norm_backward_dx(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean,
                                       const T* __restrict__ invstd, const T* __restrict__ weight,
                                       const T* __restrict__ sum_dy, const T* __restrict__ sum_dy_xhat,
                                       T* __restrict__ dx, long long planes, int channels, int hw, int ppb,
                                       long long count, int has_weight, int training, int vec) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    PlaneSlot slot;
    if (!plane_slot(planes, ppb, slot)) return;
    const int c = (int)(slot.plane % channels);
    const T inv = invstd[c];
    const T scale = has_weight ? inv * weight[c] : inv;
    // Eval: the statistics are constants, dx = dy * scale (mean_dy = k = 0, x unread).
    const T m = training ? mean[c] : T(0);
    const T mean_dy = training ? sum_dy[c] / T(count) : T(0);
    const T k = training ? sum_dy_xhat[c] / T(count) * inv : T(0);  // xhat * mean(dy*xhat) = (x - m) * k
    const T* dyp = dy + slot.plane * hw;
    const T* xp = x + slot.plane * hw;
    T* dxp = dx + slot.plane * hw;
    if (vec) {
        for (int i = slot.first; i < hw / L; i += slot.step) {
            V g = reinterpret_cast<const V*>(dyp)[i];
            T* e = reinterpret_cast<T*>(&g);
            if (training) {
                const V xv = reinterpret_cast<const V*>(xp)[i];
                const T* xe = reinterpret_cast<const T*>(&xv);
                for (int l = 0; l < L; ++l) e[l] = (e[l] - mean_dy - (xe[l] - m) * k) * scale;
            } else {
                for (int l = 0; l < L; ++l) e[l] *= scale;
            }
            reinterpret_cast<V*>(dxp)[i] = g;
        }
    } else if (training) {
        for (int i = slot.first; i < hw; i += slot.step) dxp[i] = (dyp[i] - mean_dy - (xp[i] - m) * k) * scale;
    } else {
        for (int i = slot.first; i < hw; i += slot.step) dxp[i] = dyp[i] * scale;
    }
}

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
GC_ENTRY_F(batch_norm_stats,
        (const T* __restrict__ x, T* partial, int* counter, T* __restrict__ save_mean, T* __restrict__ save_invstd,
         T* __restrict__ running_mean, T* __restrict__ running_var, int n_batch, int channels, int hw, long long chunk,
         T eps, T momentum, int update_running, int vec),
        batch_norm_stats<T>(x, partial, counter, save_mean, save_invstd, running_mean, running_var, n_batch, channels,
            hw, chunk, eps, momentum, update_running, vec))
GC_ENTRY_F(batch_norm_affine,
        (const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ mean, const T* __restrict__ src,
         const T* __restrict__ weight, const T* __restrict__ bias, long long planes, int channels, int hw, int ppb,
         int has_weight, int has_bias, int src_is_var, T eps, int vec),
        batch_norm_affine<T>(x, y, mean, src, weight, bias, planes, channels, hw, ppb, has_weight, has_bias, src_is_var,
            eps, vec))
GC_ENTRY_F(batch_norm_backward_reduce,
        (const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ invstd,
         T* partial, int* counter, T* __restrict__ sum_dy, T* __restrict__ sum_dy_xhat, int n_batch, int channels,
         int hw, long long chunk, int vec),
        batch_norm_backward_reduce<T>(dy, x, mean, invstd, partial, counter, sum_dy, sum_dy_xhat, n_batch, channels, hw,
            chunk, vec))
GC_ENTRY_F(batch_norm_backward_dx,
        (const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ invstd,
         const T* __restrict__ weight, const T* __restrict__ sum_dy, const T* __restrict__ sum_dy_xhat,
         T* __restrict__ dx, long long planes, int channels, int hw, int ppb, long long count, int has_weight,
         int training, int vec),
        batch_norm_backward_dx<T>(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, dx, planes, channels, hw, ppb,
            count, has_weight, training, vec))
GC_ENTRY_F(batch_norm_train_fused,
        (const T* __restrict__ x, T* __restrict__ y, T* __restrict__ save_mean, T* __restrict__ save_invstd,
         T* __restrict__ running_mean, T* __restrict__ running_var, const T* __restrict__ weight,
         const T* __restrict__ bias, int n_batch, int channels, int hw, T eps, T momentum, int update_running,
         int has_weight, int has_bias, int vec),
        batch_norm_train_fused<T>(x, y, save_mean, save_invstd, running_mean, running_var, weight, bias, n_batch,
            channels, hw, eps, momentum, update_running, has_weight, has_bias, vec))
GC_ENTRY_F(batch_norm_backward_fused,
        (const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ mean, const T* __restrict__ invstd,
         const T* __restrict__ weight, T* __restrict__ sum_dy, T* __restrict__ sum_dy_xhat, T* __restrict__ dx,
         int n_batch, int channels, int hw, int has_weight, int vec),
        batch_norm_backward_fused<T>(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, dx, n_batch, channels, hw,
            has_weight, vec))
