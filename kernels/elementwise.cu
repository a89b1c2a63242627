// elementwise.cu — fused elementwise kernels: ReLU and leaky ReLU forward and backward.
//
// Layout: flat contiguous arrays of n elements (any shape). Element type T = float (_f32) or
// double (_f64). No index division anywhere: a grid-stride loop over 16-byte vectors (vec != 0: the
// launcher checked every array is 16-byte aligned) and a scalar loop over the tail. No #defines.
//
// Entry points (each in _f32 and _f64), one launch per call (today's CuPy path took one to three):
//   relu_forward          y = max(x, 0), NaN stays NaN (as numpy.maximum / torch.relu).
//   relu_backward         dx = dy * [x > 0] (a NaN or inf dy times 0 gives NaN, as dy * mask does).
//   leaky_relu_forward    y = x > 0 ? x : x * slope.
//   leaky_relu_backward   dx = x > 0 ? dy : dy * slope.
//
// nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v: 32-34 registers in every entry, no spills, no stack
// frame; the only 64-bit division is n / lanes (a constant power of two) once per thread.
#include "common.cuh"

namespace {

template <typename T> struct Vec16;
template <> struct Vec16<float> {
    typedef float4 type;
    static constexpr int lanes = 4;
};
template <> struct Vec16<double> {
    typedef double2 type;
    static constexpr int lanes = 2;
};

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

}  // namespace

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

// ---- entry points --------------------------------------------------------------------------------
extern "C" __global__ void relu_forward_f32(const float* __restrict__ x, float* __restrict__ y, long long n,
                                            int vec) {
    relu_forward<float>(x, y, n, vec);
}
extern "C" __global__ void relu_forward_f64(const double* __restrict__ x, double* __restrict__ y, long long n,
                                            int vec) {
    relu_forward<double>(x, y, n, vec);
}
extern "C" __global__ void relu_backward_f32(const float* __restrict__ dy, const float* __restrict__ x,
                                             float* __restrict__ dx, long long n, int vec) {
    relu_backward<float>(dy, x, dx, n, vec);
}
extern "C" __global__ void relu_backward_f64(const double* __restrict__ dy, const double* __restrict__ x,
                                             double* __restrict__ dx, long long n, int vec) {
    relu_backward<double>(dy, x, dx, n, vec);
}
extern "C" __global__ void leaky_relu_forward_f32(const float* __restrict__ x, float* __restrict__ y, long long n,
                                                  float slope, int vec) {
    leaky_relu_forward<float>(x, y, n, slope, vec);
}
extern "C" __global__ void leaky_relu_forward_f64(const double* __restrict__ x, double* __restrict__ y, long long n,
                                                  double slope, int vec) {
    leaky_relu_forward<double>(x, y, n, slope, vec);
}
extern "C" __global__ void leaky_relu_backward_f32(const float* __restrict__ dy, const float* __restrict__ x,
                                                   float* __restrict__ dx, long long n, float slope, int vec) {
    leaky_relu_backward<float>(dy, x, dx, n, slope, vec);
}
extern "C" __global__ void leaky_relu_backward_f64(const double* __restrict__ dy, const double* __restrict__ x,
                                                   double* __restrict__ dx, long long n, double slope, int vec) {
    leaky_relu_backward<double>(dy, x, dx, n, slope, vec);
}
