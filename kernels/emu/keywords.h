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
// In the sanitizer build, assigning a vector type checks that both addresses are aligned to its
// size (a misaligned float4 store faults on a GPU; GCC splits the copy into scalar accesses,
// so the access hooks alone would not see it).
#ifdef EMU_SANITIZER
namespace emu {
void check_vector_assignment(const void* dst, const void* src, unsigned size, uintptr_t pc);
}
#define EMU_VECTOR_ASSIGN(T)                                                                           \
    __attribute__((noinline)) EMU_NOSAN T& operator=(const T& o) {                                      \
        ::emu::check_vector_assignment(this, &o, sizeof(T),                                            \
                                       reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1);  \
        std::memcpy(static_cast<void*>(this), &o, sizeof(T));                                           \
        return *this;                                                                                   \
    }
#else
#define EMU_VECTOR_ASSIGN(T)
#endif
struct __attribute__((aligned(8))) float2 { float x, y; EMU_VECTOR_ASSIGN(float2) };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; EMU_VECTOR_ASSIGN(float4) };
struct __attribute__((aligned(16))) double2 { double x, y; EMU_VECTOR_ASSIGN(double2) };
struct __attribute__((aligned(8))) int2 { int x, y; EMU_VECTOR_ASSIGN(int2) };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; EMU_VECTOR_ASSIGN(int4) };
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
