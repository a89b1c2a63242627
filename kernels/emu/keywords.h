// keywords.h — CUDA keywords and vector types as plain C++ (part of cuda_emu.h).
#pragma once

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __constant__ static
#define __shared__ static __attribute__((section("emu_shared")))
// Emulator code that runs on a kernel thread but must not be instrumented by the sanitizer build.
#define EMU_NOSAN __attribute__((no_sanitize_thread))
#define EMU_EXTERN_SHARED(type, name) type* const name = ::emu::dynamic_shared<type>()
// The loader rewrites `__shared__ T name[N];` into this. Each thread that executes the declaration
// registers the array (emu::declare_shared): so it is poisoned before each block, counted against
// the shared-memory limit of the kernel that uses it (not of the whole module), and known by name
// to the sanitizer. The redzone after it catches an index past its end instead of letting it land
// in the next array. (GCC ignores the section attribute of statics in function templates, so the
// section alone would miss those.)
#define EMU_SHARED(attrs, type, name, dims)                          \
    static attrs ::emu::Redzoned<type dims> name##_emu_storage;     \
    static int name##_emu_id = -1;                                   \
    auto& name = ::emu::declare_shared(name##_emu_storage, name##_emu_id, #name, __func__)

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
// In the sanitizer build a copy of a vector type (construction or assignment) is one access of
// its width, as the GPU's 64/128-bit load and store instructions are: the copy goes through
// emu::vector_copy, which checks both addresses' alignment (a misaligned float4 faults on a GPU)
// and records one request of sizeof(T) bytes in the access profile. Without it GCC splits the copy
// into scalar accesses, which the hooks would see as 2-4 requests each. The price: in that build
// the types are not aggregates, so they get the constructors aggregate initialization offered.
#ifdef EMU_SANITIZER
namespace emu {
void vector_copy(void* dst, const void* src, unsigned size, uintptr_t pc);
}
#define EMU_VECTOR_COPY(T)                                                                         \
    T() = default;                                                                                 \
    __attribute__((noinline)) EMU_NOSAN T(const T& o) {                                            \
        ::emu::vector_copy(this, &o, sizeof(T), reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1); \
    }                                                                                              \
    __attribute__((noinline)) EMU_NOSAN T& operator=(const T& o) {                                 \
        ::emu::vector_copy(this, &o, sizeof(T), reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1); \
        return *this;                                                                              \
    }
#define EMU_VECTOR_INIT2(T, E) \
    EMU_VECTOR_COPY(T)         \
    constexpr T(E x_, E y_ = E()) : x(x_), y(y_) {}
#define EMU_VECTOR_INIT4(T, E) \
    EMU_VECTOR_COPY(T)         \
    constexpr T(E x_, E y_ = E(), E z_ = E(), E w_ = E()) : x(x_), y(y_), z(z_), w(w_) {}
#else
#define EMU_VECTOR_INIT2(T, E)
#define EMU_VECTOR_INIT4(T, E)
#endif
struct __attribute__((aligned(8))) float2 { float x, y; EMU_VECTOR_INIT2(float2, float) };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; EMU_VECTOR_INIT4(float4, float) };
struct __attribute__((aligned(16))) double2 { double x, y; EMU_VECTOR_INIT2(double2, double) };
struct __attribute__((aligned(8))) int2 { int x, y; EMU_VECTOR_INIT2(int2, int) };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; EMU_VECTOR_INIT4(int4, int) };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

static constexpr int warpSize = 32;

namespace emu {
constexpr unsigned kRedzoneBytes = 64;
template <class T>
struct Redzoned {
    T value;
    char redzone[kRedzoneBytes];
};
}  // namespace emu
