// elementwise.cu — fused elementwise kernels: ReLU and leaky ReLU forward and backward.
//
// Layout: flat contiguous arrays of n elements (any shape). Element type T = float (_f32) or
// double (_f64). No index division anywhere: a grid-stride loop over 16-byte vectors (vec != 0: the
// launcher checked every array is 16-byte aligned) and a scalar loop over the tail. No #defines.
//
// Entry points (each in _f32 and _f64, stamped out at the end of this file from one line per kernel by
// entry_points.cuh's GC_ENTRY_F, or GC_ENTRY_I_F with the _i32/_i64 index twins), one launch per call
// (today's CuPy path took one to three):
//   relu_forward          y = max(x, 0), NaN stays NaN (as numpy.maximum / torch.relu).
//   relu_backward         dx = dy * [x > 0] (a NaN or inf dy times 0 gives NaN, as dy * mask does).
//   leaky_relu_forward    y = x > 0 ? x : x * slope.
//   leaky_relu_backward   dx = x > 0 ? dy : dy * slope.
//   dropout_forward       keep = u >= p (u: float32 uniforms in [0, 1) drawn on the device);
//                         mask = keep, y = x * (keep ? scale : 0) (x * 0 keeps NaN, as x * mask does).
//   dropout_apply         y = x * (mask ? scale : 0): dropout from a given mask, and its backward.
//   add                   out = a + b (residual sums and their gradients).
//   accumulate            a += b in place (gradient accumulation into Parameter.grad).
//   fill                  a = value (zero_grad(set_to_none=False), a loss's default gradient).
//   bias_add_rows         y (rows, cols) += bias[col] in place (Linear's bias after its GEMM); a 2-D
//                         grid-stride loop (x over columns, y over rows): no index division.
//   count_step_i64        counter[0] += 1 on an int64 counter (BatchNorm's num_batches_tracked).
//   copy_strided_{i32,i64}
//                         dst (C-contiguous, shape (d0, d1, d2, d3)) = src, a view with element
//                         strides (s0, s1, s2, s3): a transpose or any other strided view made
//                         contiguous. A thread per destination element (coalesced writes); three
//                         divisions per element, in 32 bits for _i32 (the launcher checked that
//                         every index and source offset is below 2^31).
//   copy_transpose_{i32,i64}
//                         dst (C-contiguous, shape (batches, rows, cols)) = src, a batch of 2-D
//                         transposes: dst[b, r, c] = src[b0 * sb0 + b1 * sb1 + r + c * scol] with
//                         (b0, b1) = (b / batch1, b % batch1). A 32x32 tile per block (32x8 threads,
//                         grid-stride over (col tiles, row tiles, batches)) through shared memory
//                         padded to 33 columns: loads walk r (src stride 1) and stores walk c (dst
//                         stride 1), so both coalesce, and neither the tile's writes (along a row)
//                         nor its reads (down a column, 33 words apart) have bank conflicts. One
//                         division per tile (32-bit for _i32), none per element; 32-bit offsets for _i32.
//   sgd_step, adam_step, rmsprop_step, adagrad_step
//                         multi-tensor optimizer updates: ONE launch updates every parameter of a
//                         parameter group (of one dtype) in place. `table` (int64) holds a row of
//                         kRow entries per tensor: [param, grad, state0, state1, state2 (device
//                         addresses), numel, flags, scalar0, scalar1 (float64 bits: per-tensor
//                         numbers, e.g. Adam's bias corrections)], then a (tensor, first element)
//                         pair per block: block b updates elements [first, first + chunk) of its
//                         tensor. The arithmetic is the optimizers' NumPy code operation for
//                         operation, in T, with the host's scalars rounded to T as NumPy rounds a
//                         Python float, and products and sums rounded separately (__fmul_rn /
//                         __fadd_rn: no FMA contraction), so results match the NumPy path bit for
//                         bit on the emulator and to the last bit of IEEE division/sqrt on a GPU.
//
// nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v: 32-34 registers in every entry, no spills, no stack
// frame; the only 64-bit division is n / lanes (a constant power of two) once per thread.
// add 40 / 40, accumulate 32 / 30, fill 32 / 30, bias_add_rows 32, copy_strided i32 22, i64 40,
// copy_transpose 31-32 (4224 / 8448 bytes of shared memory for f32 / f64), count_step_i64 8; no spills.
// Optimizer steps, f32 / f64 registers: sgd 30 / 32, adam 32 / 40, rmsprop 30 / 38, adagrad 32 / 38,
// no spills; their only 64-bit division is the compiler's trip count of a thread's chunk loop
// (once per thread, with a 32-bit fast path).
#include "common.cuh"

namespace {

using gc::Vec16;  // 16 bytes of T (float4 / double2) for vectorized loads and stores

// out[i] = op(a[i], b[i]) for i < n (b may be unread by op); vectors first, then the tail.
template <typename T, typename Op>
__device__ __forceinline__ void map2(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                                     long long n, int vec, Op op) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)blockDim.x * gridDim.x;
    long long done = 0;
    if (vec) {
        const long long nv = n / L;
        for (long long i = first; i < nv; i += step) {
            V va = reinterpret_cast<const V*>(a)[i];
            const V vb = reinterpret_cast<const V*>(b)[i];
            T* ea = reinterpret_cast<T*>(&va);
            const T* eb = reinterpret_cast<const T*>(&vb);
            for (int l = 0; l < L; ++l) ea[l] = op(ea[l], eb[l]);
            reinterpret_cast<V*>(out)[i] = va;
        }
        done = nv * L;
    }
    for (long long i = done + first; i < n; i += step) out[i] = op(a[i], b[i]);
}

// a[i] += b[i] for i < n: a is read and written, so no __restrict__ on it.
template <typename T>
__device__ __forceinline__ void accumulate2(T* a, const T* __restrict__ b, long long n, int vec) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)blockDim.x * gridDim.x;
    long long done = 0;
    if (vec) {
        const long long nv = n / L;
        for (long long i = first; i < nv; i += step) {
            V va = reinterpret_cast<const V*>(a)[i];
            const V vb = reinterpret_cast<const V*>(b)[i];
            T* ea = reinterpret_cast<T*>(&va);
            const T* eb = reinterpret_cast<const T*>(&vb);
            for (int l = 0; l < L; ++l) ea[l] += eb[l];
            reinterpret_cast<V*>(a)[i] = va;
        }
        done = nv * L;
    }
    for (long long i = done + first; i < n; i += step) a[i] += b[i];
}

}  // namespace

// ---- arithmetic ----------------------------------------------------------------------------------
template <typename T>
__device__ void add(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, long long n, int vec) {
    map2<T>(a, b, out, n, vec, [](T u, T v) { return u + v; });
}

template <typename T>
__device__ void fill(T* __restrict__ a, long long n, T value, int vec) {
    typedef typename Vec16<T>::type V;
    constexpr int L = Vec16<T>::lanes;
    const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long step = (long long)blockDim.x * gridDim.x;
    long long done = 0;
    if (vec) {
        V v;
        T* ev = reinterpret_cast<T*>(&v);
        for (int l = 0; l < L; ++l) ev[l] = value;
        const long long nv = n / L;
        for (long long i = first; i < nv; i += step) reinterpret_cast<V*>(a)[i] = v;
        done = nv * L;
    }
    for (long long i = done + first; i < n; i += step) a[i] = value;
}

// Grid (x: columns, y: rows), both grid-stride; the launcher passes rows * cols < 2^31 (i32) or not.
template <typename T, typename I>
__device__ void bias_add_rows(T* __restrict__ y, const T* __restrict__ bias, int rows, int cols) {
    for (int r = (int)blockIdx.y; r < rows; r += (int)gridDim.y) {
        T* __restrict__ row = y + (I)r * cols;
        for (int c = (int)(blockIdx.x * blockDim.x + threadIdx.x); c < cols; c += (int)(gridDim.x * blockDim.x))
            row[c] += bias[c];
    }
}

template <typename T, typename I>
__device__ void copy_strided(const T* __restrict__ src, T* __restrict__ dst, long long n, int d1, int d2, int d3,
                             long long s0, long long s1, long long s2, long long s3) {
    const I count = (I)n;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (I)blockDim.x * gridDim.x) {
        I r = i;
        const I i3 = r % d3;
        r /= d3;
        const I i2 = r % d2;
        r /= d2;
        const I i1 = r % d1;
        const I i0 = r / d1;
        dst[i] = src[i0 * (I)s0 + i1 * (I)s1 + i2 * (I)s2 + i3 * (I)s3];
    }
}

template <typename T, typename I>
__device__ void copy_transpose(const T* __restrict__ src, T* __restrict__ dst, long long batches, int batch1, int rows,
                               int cols, long long sb0, long long sb1, long long scol) {
    constexpr int kTile = 32, kRowsPerPass = 8;  // blockDim = (kTile, kRowsPerPass)
    __shared__ T tile[kTile][kTile + 1];        // [c - c0][r - r0]; the pad puts a column's words in distinct banks
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y;
    for (long long b = blockIdx.z; b < batches; b += gridDim.z) {
        const I b0 = (I)b / batch1, b1 = (I)b - b0 * batch1;  // I: 32-bit for _i32 (b < batches < 2^31)
        const T* __restrict__ from = src + b0 * (I)sb0 + b1 * (I)sb1;
        T* __restrict__ to = dst + (I)b * rows * cols;
        for (int r0 = (int)blockIdx.y * kTile; r0 < rows; r0 += (int)gridDim.y * kTile) {
            for (int c0 = (int)blockIdx.x * kTile; c0 < cols; c0 += (int)gridDim.x * kTile) {
                const int r = r0 + tx;
                for (int j = ty; j < kTile; j += kRowsPerPass) {
                    const int c = c0 + j;
                    if (r < rows && c < cols) tile[j][tx] = from[(I)r + (I)c * (I)scol];
                }
                __syncthreads();
                const int c = c0 + tx;
                for (int j = ty; j < kTile; j += kRowsPerPass) {
                    const int rr = r0 + j;
                    if (rr < rows && c < cols) to[(I)rr * cols + c] = tile[tx][j];
                }
                __syncthreads();  // the next tile overwrites this one
            }
        }
    }
}

template <typename T>
__device__ void relu_forward(const T* __restrict__ x, T* __restrict__ y, long long n, int vec) {
    map2<T>(x, x, y, n, vec, [](T v, T) { return v > T(0) || v != v ? v : T(0); });
}

template <typename T>
__device__ void relu_backward(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx, long long n,
                              int vec) {
    map2<T>(dy, x, dx, n, vec, [](T g, T v) { return g * (v > T(0) ? T(1) : T(0)); });
}

template <typename T>
__device__ void leaky_relu_forward(const T* __restrict__ x, T* __restrict__ y, long long n, T slope, int vec) {
    map2<T>(x, x, y, n, vec, [slope](T v, T) { return v > T(0) ? v : v * slope; });
}

template <typename T>
__device__ void leaky_relu_backward(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx,
                                    long long n, T slope, int vec) {
    map2<T>(dy, x, dx, n, vec, [slope](T g, T v) { return v > T(0) ? g : g * slope; });
}

// ---- dropout -------------------------------------------------------------------------------------
template <typename T>
__device__ void dropout_forward(const T* __restrict__ x, const float* __restrict__ u, T* __restrict__ y,
                                bool* __restrict__ mask, long long n, float p, T scale) {
    GC_GRID_STRIDE_LOOP(i, n) {
        const bool keep = u[i] >= p;
        mask[i] = keep;
        y[i] = x[i] * (keep ? scale : T(0));
    }
}

template <typename T>
__device__ void dropout_apply(const T* __restrict__ x, const bool* __restrict__ mask, T* __restrict__ y, long long n,
                              T scale) {
    GC_GRID_STRIDE_LOOP(i, n) { y[i] = x[i] * (mask[i] ? scale : T(0)); }
}

// ---- multi-tensor optimizer updates --------------------------------------------------------------
namespace {

constexpr int kRow = 9;  // entries per tensor in the table (see the header)
enum { kParam, kGrad, kState0, kState1, kState2, kNumel, kFlags, kScalar0, kScalar1 };

// Products and sums rounded one at a time, as NumPy's separate array operations round them.
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float gc_sqrt(float a) { return sqrtf(a); }
__device__ __forceinline__ double gc_sqrt(double a) { return sqrt(a); }
// numpy.maximum: NaN in either operand gives NaN.
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) { return a > b || a != a ? a : b; }

// lerp_ of optimizer.py: a + (b - a) * w for w < 0.5, else b - (b - a) * (1 - w).
template <typename T>
__device__ __forceinline__ T lerp(T a, T b, T w, T one_minus_w, int small) {
    return small ? add(a, mul(add(b, -a), w)) : add(b, -mul(add(b, -a), one_minus_w));
}

template <typename T>
__device__ __forceinline__ T* tensor_ptr(const long long* row, int slot) {
    return reinterpret_cast<T*>(static_cast<unsigned long long>(row[slot]));
}

// Calls update(row, i) for every element i of this block's chunk of its tensor.
template <typename F>
__device__ __forceinline__ void for_chunk(const long long* __restrict__ table, int ntensors, int chunk, F update) {
    const long long* blocks = table + (long long)ntensors * kRow;
    const long long* row = table + blocks[2 * (long long)blockIdx.x] * kRow;
    const long long first = blocks[2 * (long long)blockIdx.x + 1];
    const long long end = min(first + chunk, row[kNumel]);
    for (long long i = first + threadIdx.x; i < end; i += blockDim.x) update(row, i);
}

}  // namespace

// SGD: state0 = momentum buffer; flags bit 0: the buffer holds a previous step (else it starts as g).
template <typename T>
__device__ void sgd_step(const long long* __restrict__ table, int ntensors, int chunk, T neg_lr, T momentum,
                         T one_minus_dampening, T weight_decay, int use_momentum, int use_weight_decay,
                         int nesterov, int maximize) {
    for_chunk(table, ntensors, chunk, [&](const long long* row, long long i) {
        T* p = tensor_ptr<T>(row, kParam);
        T g = tensor_ptr<const T>(row, kGrad)[i];
        if (maximize) g = -g;
        if (use_weight_decay) g = add(g, mul(p[i], weight_decay));
        if (use_momentum) {
            T* buf = tensor_ptr<T>(row, kState0);
            const T b = row[kFlags] & 1 ? add(mul(buf[i], momentum), mul(g, one_minus_dampening)) : g;
            buf[i] = b;
            g = nesterov ? add(g, mul(b, momentum)) : b;
        }
        p[i] = add(p[i], mul(g, neg_lr));
    });
}

// Adam / AdamW: state0 = exp_avg, state1 = exp_avg_sq, state2 = max_exp_avg_sq (amsgrad);
// scalar0 = -lr / (1 - beta1^t), scalar1 = sqrt(1 - beta2^t) of the tensor's own step t.
template <typename T>
__device__ void adam_step(const long long* __restrict__ table, int ntensors, int chunk, T w1, T one_minus_w1,
                          int w1_small, T beta2, T one_minus_beta2, T eps, T weight_decay, T decay_factor,
                          int use_weight_decay, int decoupled, int amsgrad, int maximize) {
    for_chunk(table, ntensors, chunk, [&](const long long* row, long long i) {
        T* p = tensor_ptr<T>(row, kParam);
        T* exp_avg = tensor_ptr<T>(row, kState0);
        T* exp_avg_sq = tensor_ptr<T>(row, kState1);
        const T neg_step_size = (T)__longlong_as_double(row[kScalar0]);
        const T bias_correction2_sqrt = (T)__longlong_as_double(row[kScalar1]);
        T g = tensor_ptr<const T>(row, kGrad)[i];
        if (maximize) g = -g;
        T pv = p[i];
        if (use_weight_decay) {
            if (decoupled) pv = mul(pv, decay_factor);
            else g = add(g, mul(pv, weight_decay));
        }
        const T m = lerp(exp_avg[i], g, w1, one_minus_w1, w1_small);
        exp_avg[i] = m;
        const T v = add(mul(exp_avg_sq[i], beta2), mul(mul(g, one_minus_beta2), g));
        exp_avg_sq[i] = v;
        T top = v;
        if (amsgrad) {
            T* max_sq = tensor_ptr<T>(row, kState2);
            top = nan_max(max_sq[i], v);
            max_sq[i] = top;
        }
        const T denom = add(gc_sqrt(top) / bias_correction2_sqrt, eps);
        p[i] = add(pv, mul(m, neg_step_size) / denom);
    });
}

// RMSprop: state0 = square_avg, state1 = momentum buffer (momentum > 0), state2 = grad_avg (centered).
template <typename T>
__device__ void rmsprop_step(const long long* __restrict__ table, int ntensors, int chunk, T neg_lr, T alpha,
                             T one_minus_alpha, T w, T one_minus_w, int w_small, T eps, T weight_decay, T momentum,
                             int use_weight_decay, int use_momentum, int centered, int maximize) {
    for_chunk(table, ntensors, chunk, [&](const long long* row, long long i) {
        T* p = tensor_ptr<T>(row, kParam);
        T* square_avg = tensor_ptr<T>(row, kState0);
        T g = tensor_ptr<const T>(row, kGrad)[i];
        if (maximize) g = -g;
        if (use_weight_decay) g = add(g, mul(p[i], weight_decay));
        const T sq = add(mul(square_avg[i], alpha), mul(mul(g, one_minus_alpha), g));
        square_avg[i] = sq;
        T avg;
        if (centered) {
            T* grad_avg = tensor_ptr<T>(row, kState2);
            const T ga = lerp(grad_avg[i], g, w, one_minus_w, w_small);
            grad_avg[i] = ga;
            avg = gc_sqrt(add(sq, mul(mul(ga, T(-1)), ga)));
        } else {
            avg = gc_sqrt(sq);
        }
        avg = add(avg, eps);
        if (use_momentum) {
            T* buf = tensor_ptr<T>(row, kState1);
            const T b = add(mul(buf[i], momentum), g / avg);
            buf[i] = b;
            p[i] = add(p[i], mul(b, neg_lr));
        } else {
            p[i] = add(p[i], mul(g, neg_lr) / avg);
        }
    });
}

// Adagrad: state0 = sum; scalar0 = -clr of the tensor's own step.
template <typename T>
__device__ void adagrad_step(const long long* __restrict__ table, int ntensors, int chunk, T eps, T weight_decay,
                             int use_weight_decay, int maximize) {
    for_chunk(table, ntensors, chunk, [&](const long long* row, long long i) {
        T* p = tensor_ptr<T>(row, kParam);
        T* sum = tensor_ptr<T>(row, kState0);
        const T neg_clr = (T)__longlong_as_double(row[kScalar0]);
        T g = tensor_ptr<const T>(row, kGrad)[i];
        if (maximize) g = -g;
        if (use_weight_decay) g = add(g, mul(p[i], weight_decay));
        const T s = add(sum[i], mul(mul(g, T(1)), g));
        sum[i] = s;
        p[i] = add(p[i], mul(g, neg_clr) / add(gc_sqrt(s), eps));
    });
}

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
GC_ENTRY_F(relu_forward,
        (const T* __restrict__ x, T* __restrict__ y, long long n, int vec),
        relu_forward<T>(x, y, n, vec))
GC_ENTRY_F(relu_backward,
        (const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx, long long n, int vec),
        relu_backward<T>(dy, x, dx, n, vec))
GC_ENTRY_F(leaky_relu_forward,
        (const T* __restrict__ x, T* __restrict__ y, long long n, T slope, int vec),
        leaky_relu_forward<T>(x, y, n, slope, vec))
GC_ENTRY_F(leaky_relu_backward,
        (const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx, long long n, T slope, int vec),
        leaky_relu_backward<T>(dy, x, dx, n, slope, vec))
GC_ENTRY_F(sgd_step,
        (const long long* __restrict__ table, int ntensors, int chunk, T neg_lr, T momentum, T one_minus_dampening,
         T weight_decay, int use_momentum, int use_weight_decay, int nesterov, int maximize),
        sgd_step<T>(table, ntensors, chunk, neg_lr, momentum, one_minus_dampening, weight_decay, use_momentum,
            use_weight_decay, nesterov, maximize))
GC_ENTRY_F(adam_step,
        (const long long* __restrict__ table, int ntensors, int chunk, T w1, T one_minus_w1, int w1_small, T beta2,
         T one_minus_beta2, T eps, T weight_decay, T decay_factor, int use_weight_decay, int decoupled, int amsgrad,
         int maximize),
        adam_step<T>(table, ntensors, chunk, w1, one_minus_w1, w1_small, beta2, one_minus_beta2, eps, weight_decay,
            decay_factor, use_weight_decay, decoupled, amsgrad, maximize))
GC_ENTRY_F(rmsprop_step,
        (const long long* __restrict__ table, int ntensors, int chunk, T neg_lr, T alpha, T one_minus_alpha, T w,
         T one_minus_w, int w_small, T eps, T weight_decay, T momentum, int use_weight_decay, int use_momentum,
         int centered, int maximize),
        rmsprop_step<T>(table, ntensors, chunk, neg_lr, alpha, one_minus_alpha, w, one_minus_w, w_small, eps,
            weight_decay, momentum, use_weight_decay, use_momentum, centered, maximize))
GC_ENTRY_F(adagrad_step,
        (const long long* __restrict__ table, int ntensors, int chunk, T eps, T weight_decay, int use_weight_decay,
         int maximize),
        adagrad_step<T>(table, ntensors, chunk, eps, weight_decay, use_weight_decay, maximize))
GC_ENTRY_F(dropout_forward,
        (const T* __restrict__ x, const float* __restrict__ u, T* __restrict__ y, bool* __restrict__ mask, long long n,
         float p, T scale),
        dropout_forward<T>(x, u, y, mask, n, p, scale))
GC_ENTRY_F(dropout_apply,
        (const T* __restrict__ x, const bool* __restrict__ mask, T* __restrict__ y, long long n, T scale),
        dropout_apply<T>(x, mask, y, n, scale))

GC_ENTRY_F(add,
        (const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, long long n, int vec),
        add<T>(a, b, out, n, vec))
GC_ENTRY_F(accumulate,
        (T* a, const T* __restrict__ b, long long n, int vec),
        accumulate2<T>(a, b, n, vec))
GC_ENTRY_F(fill,
        (T* __restrict__ a, long long n, T value, int vec),
        fill<T>(a, n, value, vec))
GC_ENTRY_I_F(bias_add_rows,
        (T* __restrict__ y, const T* __restrict__ bias, int rows, int cols),
        bias_add_rows<T, I>(y, bias, rows, cols))
GC_ENTRY(i64, count_step,
        (I* counter),
        if (blockIdx.x == 0 && threadIdx.x == 0) counter[0] += 1)
GC_ENTRY_I_F(copy_strided,
        (const T* __restrict__ src, T* __restrict__ dst, long long n, int d1, int d2, int d3, long long s0,
         long long s1, long long s2, long long s3),
        copy_strided<T, I>(src, dst, n, d1, d2, d3, s0, s1, s2, s3))

GC_ENTRY_I_F(copy_transpose,
        (const T* __restrict__ src, T* __restrict__ dst, long long batches, int batch1, int rows, int cols,
         long long sb0, long long sb1, long long scol),
        copy_transpose<T, I>(src, dst, batches, batch1, rows, cols, sb0, sb1, scol))
