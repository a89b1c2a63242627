// wmma_tf32.cuh — the subset of CUDA's WMMA API (nvcuda::wmma, <mma.h>) that the TF32 kernels use,
// for compilers without the CUDA headers.
//
// The NVRTC that gpuconv compiles with (the pip wheel, and the one that builds the shipped
// binaries) has no CUDA headers on its search path, so <mma.h> cannot be included (CUDA-NOTES.md).
// This header declares the same names with the same semantics, implemented with the PTX
// instructions <mma.h> itself compiles to (wmma.load / wmma.mma / wmma.store on .tf32, and
// cvt.rna.tf32.f32): fragment<matrix_a | matrix_b, 16, 16, 8, precision::tf32, row_major |
// col_major>, fragment<accumulator, 16, 16, 8, float>, fill_fragment, load_matrix_sync,
// mma_sync, store_matrix_sync, __float_to_tf32. As in CUDA, the element layout of a fragment is
// unspecified: kernels may only apply the same operation to every element of x[].
//
// The instructions need sm_80: for older targets the functions compile to nothing, and the
// launchers never run a TF32 kernel there. The emulated backend (g++, no __CUDACC__) gets these
// names from kernels/emu/wmma.h instead, with a deliberately scrambled element layout.
#pragma once

#if defined(__CUDACC__)
namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment;
template <class Layout>
struct fragment<matrix_a, 16, 16, 8, precision::tf32, Layout> {
    static constexpr int num_elements = 4;
    float x[4];
};
template <class Layout>
struct fragment<matrix_b, 16, 16, 8, precision::tf32, Layout> {
    static constexpr int num_elements = 4;
    float x[4];
};
template <>
struct fragment<accumulator, 16, 16, 8, float, void> {
    static constexpr int num_elements = 8;
    float x[8];
};

template <class Frag>
__device__ __forceinline__ void fill_fragment(Frag& f, float v) {
#pragma unroll
    for (int i = 0; i < Frag::num_elements; ++i) f.x[i] = v;
}

__device__ __forceinline__ float __float_to_tf32(float v) {
#if __CUDA_ARCH__ >= 800
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return __uint_as_float(r);
#else
    return v;
#endif
}

#if __CUDA_ARCH__ >= 800
#define GC_WMMA_LOAD_AB(op, layout)                                                                   \
    unsigned r0, r1, r2, r3;                                                                          \
    asm volatile("wmma.load." op ".sync.aligned." layout ".m16n16k8.tf32 {%0, %1, %2, %3}, [%4], %5;" \
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)                                             \
                 : "l"(p), "r"(ldm));                                                                 \
    f.x[0] = __uint_as_float(r0), f.x[1] = __uint_as_float(r1), f.x[2] = __uint_as_float(r2),        \
    f.x[3] = __uint_as_float(r3);
#else
#define GC_WMMA_LOAD_AB(op, layout) (void)f, (void)p, (void)ldm;
#endif

__device__ __forceinline__ void load_matrix_sync(fragment<matrix_a, 16, 16, 8, precision::tf32, row_major>& f,
                                                 const float* p, unsigned ldm) {
    GC_WMMA_LOAD_AB("a", "row")
}
__device__ __forceinline__ void load_matrix_sync(fragment<matrix_a, 16, 16, 8, precision::tf32, col_major>& f,
                                                 const float* p, unsigned ldm) {
    GC_WMMA_LOAD_AB("a", "col")
}
__device__ __forceinline__ void load_matrix_sync(fragment<matrix_b, 16, 16, 8, precision::tf32, row_major>& f,
                                                 const float* p, unsigned ldm) {
    GC_WMMA_LOAD_AB("b", "row")
}
__device__ __forceinline__ void load_matrix_sync(fragment<matrix_b, 16, 16, 8, precision::tf32, col_major>& f,
                                                 const float* p, unsigned ldm) {
    GC_WMMA_LOAD_AB("b", "col")
}
#undef GC_WMMA_LOAD_AB

__device__ __forceinline__ void load_matrix_sync(fragment<accumulator, 16, 16, 8, float>& f, const float* p,
                                                 unsigned ldm, layout_t layout) {
#if __CUDA_ARCH__ >= 800
    if (layout == mem_row_major)
        asm volatile("wmma.load.c.sync.aligned.row.m16n16k8.f32 {%0, %1, %2, %3, %4, %5, %6, %7}, [%8], %9;"
                     : "=f"(f.x[0]), "=f"(f.x[1]), "=f"(f.x[2]), "=f"(f.x[3]), "=f"(f.x[4]), "=f"(f.x[5]),
                       "=f"(f.x[6]), "=f"(f.x[7])
                     : "l"(p), "r"(ldm));
    else
        asm volatile("wmma.load.c.sync.aligned.col.m16n16k8.f32 {%0, %1, %2, %3, %4, %5, %6, %7}, [%8], %9;"
                     : "=f"(f.x[0]), "=f"(f.x[1]), "=f"(f.x[2]), "=f"(f.x[3]), "=f"(f.x[4]), "=f"(f.x[5]),
                       "=f"(f.x[6]), "=f"(f.x[7])
                     : "l"(p), "r"(ldm));
#else
    (void)f, (void)p, (void)ldm, (void)layout;
#endif
}

__device__ __forceinline__ void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 8, float>& f,
                                                  unsigned ldm, layout_t layout) {
#if __CUDA_ARCH__ >= 800
    if (layout == mem_row_major)
        asm volatile("wmma.store.d.sync.aligned.row.m16n16k8.f32 [%0], {%1, %2, %3, %4, %5, %6, %7, %8}, %9;"
                     ::"l"(p), "f"(f.x[0]), "f"(f.x[1]), "f"(f.x[2]), "f"(f.x[3]), "f"(f.x[4]), "f"(f.x[5]),
                       "f"(f.x[6]), "f"(f.x[7]), "r"(ldm)
                     : "memory");
    else
        asm volatile("wmma.store.d.sync.aligned.col.m16n16k8.f32 [%0], {%1, %2, %3, %4, %5, %6, %7, %8}, %9;"
                     ::"l"(p), "f"(f.x[0]), "f"(f.x[1]), "f"(f.x[2]), "f"(f.x[3]), "f"(f.x[4]), "f"(f.x[5]),
                       "f"(f.x[6]), "f"(f.x[7]), "r"(ldm)
                     : "memory");
#else
    (void)p, (void)f, (void)ldm, (void)layout;
#endif
}

#if __CUDA_ARCH__ >= 800
#define GC_WMMA_MMA(al, bl)                                                                                   \
    asm volatile("wmma.mma.sync.aligned." al "." bl ".m16n16k8.f32.tf32.tf32.f32 "                            \
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, {%12, %13, %14, %15}, "                \
                 "{%16, %17, %18, %19, %20, %21, %22, %23};"                                                   \
                 : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3]), "=f"(d.x[4]), "=f"(d.x[5]),         \
                   "=f"(d.x[6]), "=f"(d.x[7])                                                                  \
                 : "r"(__float_as_uint(a.x[0])), "r"(__float_as_uint(a.x[1])), "r"(__float_as_uint(a.x[2])),   \
                   "r"(__float_as_uint(a.x[3])), "r"(__float_as_uint(b.x[0])), "r"(__float_as_uint(b.x[1])),   \
                   "r"(__float_as_uint(b.x[2])), "r"(__float_as_uint(b.x[3])), "f"(c.x[0]), "f"(c.x[1]),       \
                   "f"(c.x[2]), "f"(c.x[3]), "f"(c.x[4]), "f"(c.x[5]), "f"(c.x[6]), "f"(c.x[7]));
#else
#define GC_WMMA_MMA(al, bl) (void)d, (void)a, (void)b, (void)c;
#endif

#define GC_WMMA_MMA_OVERLOAD(AL, BL, al, bl)                                                               \
    __device__ __forceinline__ void mma_sync(fragment<accumulator, 16, 16, 8, float>& d,                    \
                                             const fragment<matrix_a, 16, 16, 8, precision::tf32, AL>& a,    \
                                             const fragment<matrix_b, 16, 16, 8, precision::tf32, BL>& b,    \
                                             const fragment<accumulator, 16, 16, 8, float>& c) {             \
        GC_WMMA_MMA(al, bl)                                                                                  \
    }
GC_WMMA_MMA_OVERLOAD(row_major, row_major, "row", "row")
GC_WMMA_MMA_OVERLOAD(row_major, col_major, "row", "col")
GC_WMMA_MMA_OVERLOAD(col_major, row_major, "col", "row")
GC_WMMA_MMA_OVERLOAD(col_major, col_major, "col", "col")
#undef GC_WMMA_MMA_OVERLOAD
#undef GC_WMMA_MMA

}  // namespace wmma
}  // namespace nvcuda
#endif  // __CUDACC__
