// wmma.h — CUDA's WMMA API (nvcuda::wmma) on the emulator: TF32 m16n16k8, the shape and precision
// the kernels use (kernels/wmma_tf32.cuh declares the same subset for the GPU).
//
// - fragment<matrix_a, 16, 16, 8, precision::tf32, row_major | col_major> (4 floats per lane),
//   fragment<matrix_b, ...> (4), fragment<accumulator, 16, 16, 8, float> (8): each lane (fiber)
//   holds its own x[].
// - The element layout is deliberately scrambled (CUDA leaves it unspecified): element i of lane L
//   is matrix position p = ((L * num_elements + i) * 37 + 11) mod (rows * cols), row-major p. A
//   kernel that indexes x[] assuming some layout computes garbage here, as it would on some GPU.
// - load_matrix_sync, store_matrix_sync and mma_sync are warp-collective: every lane of the warp
//   must arrive (a warp barrier with the full mask; an exited lane or a partial warp is an error).
//   A load or store moves only the calling lane's elements, so reading what another lane stored
//   still needs __syncwarp (without it the reader sees the poisoned shared memory).
// - mma_sync: each lane publishes pointers to its A and B fragments, the warp syncs, each lane
//   computes its own D elements from everyone's fragments (float accumulation in k order,
//   starting from C), the warp syncs again (so no lane overwrites a fragment still being read),
//   then each lane writes its D. Inputs are read as TF32: their low 13 mantissa bits dropped,
//   which is what a kernel that forgets __float_to_tf32 gets from the tensor cores' TF32 read.
// - __float_to_tf32 rounds to nearest with ties away from zero (cvt.rna.tf32.f32), NaN and
//   infinity unchanged, bit for bit as gpuconv/backend/cuda/tf32.py round_to_tf32.
//
// Emulator internals used: emu::state.cur (->lane, ->warp), emu::state.warps (its size and
// .existing), emu::Fiber, emu::ShimScope, emu::warp_sync(mask, value, src, predicate, file, line), emu::fail, emu::site,
// emu::san::on_access (sanitizer build),
// emu::thread_name.
#pragma once

#include <vector>

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
    static constexpr int num_elements = 4, rows = 16, cols = 8;
    float x[4];
};
template <class Layout>
struct fragment<matrix_b, 16, 16, 8, precision::tf32, Layout> {
    static constexpr int num_elements = 4, rows = 8, cols = 16;
    float x[4];
};
template <>
struct fragment<accumulator, 16, 16, 8, float, void> {
    static constexpr int num_elements = 8, rows = 16, cols = 16;
    float x[8];
};
using accumulator_fragment = fragment<accumulator, 16, 16, 8, float, void>;

namespace detail {
constexpr unsigned kFullMask = 0xffffffffu;

// The scrambled layout: (row, col) of element i of lane `lane`.
template <class Frag>
EMU_NOSAN inline void position(unsigned lane, int i, int& row, int& col) {
    const unsigned p = ((lane * Frag::num_elements + unsigned(i)) * 37u + 11u) % unsigned(Frag::rows * Frag::cols);
    row = int(p) / Frag::cols;
    col = int(p) % Frag::cols;
}

// (lane, element) holding matrix position (row, col): the inverse of position().
template <class Frag>
EMU_NOSAN inline void holder(int row, int col, unsigned& lane, int& i) {
    static const std::vector<int> inverse = [] {
        std::vector<int> inv(Frag::rows * Frag::cols);
        for (unsigned l = 0; l < 32; ++l)
            for (int e = 0; e < Frag::num_elements; ++e) {
                int r, c;
                position<Frag>(l, e, r, c);
                inv[r * Frag::cols + c] = int(l) * Frag::num_elements + e;
            }
        return inv;
    }();
    const int e = inverse[row * Frag::cols + col];
    lane = unsigned(e / Frag::num_elements);
    i = e % Frag::num_elements;
}

// The warp barrier of a collective: all 32 lanes must take part (a partial warp, or a lane that
// has exited, is an error: undefined behaviour on a GPU).
EMU_NOSAN inline void arrive(const char* file, int line) {
    ::emu::ShimScope shim;  // building the message runs instrumented std::string code
    ::emu::Fiber* self = ::emu::state.cur;
    if (::emu::state.warps[self->warp].existing != kFullMask)
        ::emu::fail(::emu::site(file, line) + ": " + ::emu::thread_name(*self) +
                    ": a wmma operation needs all 32 lanes of the warp, and this warp is partial");
    ::emu::warp_sync(kFullMask, 0, -1, 1, file, line);  // a barrier of the whole warp
}

EMU_NOSAN inline bool is_row_major(row_major) { return true; }
EMU_NOSAN inline bool is_row_major(col_major) { return false; }

EMU_NOSAN inline float tf32_bits(float v) {  // the TF32 part of v: the low 13 mantissa bits dropped
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u &= ~0x1FFFu;
    std::memcpy(&v, &u, 4);
    return v;
}

// Per warp and lane: the fragments a lane offers to mma_sync while its warp computes.
struct Exchange {
    std::vector<const float*> a, b;
};
EMU_NOSAN inline Exchange& exchange() {
    static Exchange e;
    const size_t lanes = ::emu::state.warps.size() * 32;
    if (e.a.size() < lanes) {
        e.a.resize(lanes);
        e.b.resize(lanes);
    }
    return e;
}
}  // namespace detail

// The load and store functions are emulator code (not instrumented), so each element they move is
// announced to the sanitizer as the kernel's access (memcheck, racecheck, initcheck, the profile),
// at the caller's code address: out of line in the instrumented build, so that the return address
// is the call in the kernel, whose line the report names.
#ifdef EMU_SANITIZER
#define EMU_WMMA_MEMORY __attribute__((noinline)) EMU_NOSAN
#define EMU_WMMA_PC uintptr_t(__builtin_return_address(0)) - 1
#else
#define EMU_WMMA_MEMORY inline
#define EMU_WMMA_PC 0
#endif

namespace detail {
EMU_NOSAN inline const float& element(const float* p, uintptr_t pc) {
#ifdef EMU_SANITIZER
    ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), sizeof(float), false, pc, true);
#endif
    (void)pc;
    return *p;
}
EMU_NOSAN inline float& element_for_write(float* p, uintptr_t pc) {
#ifdef EMU_SANITIZER
    ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), sizeof(float), true, pc, true);
#endif
    (void)pc;
    return *p;
}
}  // namespace detail

template <class Frag>
inline void fill_fragment(Frag& f, float v) {
    for (int i = 0; i < Frag::num_elements; ++i) f.x[i] = v;
}

inline float __float_to_tf32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7F800000u) != 0x7F800000u) u = (u + 0x1000u) & ~0x1FFFu;
    std::memcpy(&v, &u, 4);
    return v;
}

template <class Use, class Layout>
EMU_WMMA_MEMORY void load_matrix_sync(fragment<Use, 16, 16, 8, precision::tf32, Layout>& f, const float* p,
                                      unsigned ldm, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    using Frag = fragment<Use, 16, 16, 8, precision::tf32, Layout>;
    const uintptr_t pc = EMU_WMMA_PC;
    detail::arrive(file, line);
    const unsigned lane = ::emu::state.cur->lane;
    for (int i = 0; i < Frag::num_elements; ++i) {
        int r, c;
        detail::position<Frag>(lane, i, r, c);
        f.x[i] = detail::element(detail::is_row_major(Layout{}) ? p + size_t(r) * ldm + c : p + size_t(c) * ldm + r, pc);
    }
}

EMU_WMMA_MEMORY void load_matrix_sync(accumulator_fragment& f, const float* p, unsigned ldm, layout_t layout,
                                      const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    const uintptr_t pc = EMU_WMMA_PC;
    detail::arrive(file, line);
    const unsigned lane = ::emu::state.cur->lane;
    for (int i = 0; i < accumulator_fragment::num_elements; ++i) {
        int r, c;
        detail::position<accumulator_fragment>(lane, i, r, c);
        f.x[i] = detail::element(layout == mem_row_major ? p + size_t(r) * ldm + c : p + size_t(c) * ldm + r, pc);
    }
}

EMU_WMMA_MEMORY void store_matrix_sync(float* p, const accumulator_fragment& f, unsigned ldm, layout_t layout,
                                       const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    const uintptr_t pc = EMU_WMMA_PC;
    detail::arrive(file, line);
    const unsigned lane = ::emu::state.cur->lane;
    for (int i = 0; i < accumulator_fragment::num_elements; ++i) {
        int r, c;
        detail::position<accumulator_fragment>(lane, i, r, c);
        detail::element_for_write(layout == mem_row_major ? p + size_t(r) * ldm + c : p + size_t(c) * ldm + r, pc) = f.x[i];
    }
}

// Fragments are registers on a GPU: reading other lanes' fragments (on their fiber stacks) is
// emulator code, not a kernel access: the hooks ignore all of it.
template <class LayoutA, class LayoutB>
EMU_NOSAN inline void mma_sync(accumulator_fragment& d, const fragment<matrix_a, 16, 16, 8, precision::tf32, LayoutA>& a,
                     const fragment<matrix_b, 16, 16, 8, precision::tf32, LayoutB>& b, const accumulator_fragment& c,
                     const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    using FragA = fragment<matrix_a, 16, 16, 8, precision::tf32, LayoutA>;
    using FragB = fragment<matrix_b, 16, 16, 8, precision::tf32, LayoutB>;
    ::emu::ShimScope shim;  // also the std::vector code it calls out of line, which is instrumented
    detail::Exchange& ex = detail::exchange();
    const unsigned lane = ::emu::state.cur->lane, base = ::emu::state.cur->warp * 32;
    ex.a[base + lane] = a.x;
    ex.b[base + lane] = b.x;
    detail::arrive(file, line);
    float out[accumulator_fragment::num_elements];
    for (int i = 0; i < accumulator_fragment::num_elements; ++i) {
        int r, col;
        detail::position<accumulator_fragment>(lane, i, r, col);
        float sum = c.x[i];
        for (int k = 0; k < 8; ++k) {
            unsigned la, lb;
            int ia, ib;
            detail::holder<FragA>(r, k, la, ia);
            detail::holder<FragB>(k, col, lb, ib);
            sum = std::fma(detail::tf32_bits(ex.a[base + la][ia]), detail::tf32_bits(ex.b[base + lb][ib]), sum);
        }
        out[i] = sum;
    }
    detail::arrive(file, line);
    for (int i = 0; i < accumulator_fragment::num_elements; ++i) d.x[i] = out[i];
}

}  // namespace wmma
}  // namespace nvcuda

#undef EMU_WMMA_MEMORY
#undef EMU_WMMA_PC
