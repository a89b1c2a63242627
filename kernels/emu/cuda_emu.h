// cuda_emu.h — runs our CUDA kernels on the CPU, for tests.
//
// The emulated loader (gpuconv/backend/emulated_loader.py) compiles a kernels/*.cu file with g++
// as C++20, with this header force-included (-include) and one generated launch wrapper per
// `extern "C" __global__` entry point appended. Python calls the wrapper through ctypes with the
// launch configuration and an array of pointers to the arguments.
//
// Execution model (DESIGN.md §4):
// - A launch runs its blocks one after another on the calling OS thread; the Python side holds a
//   lock per module, because the scheduler state below is per module.
// - A block's threads run as plain calls, one after another, inside a "runner" fiber. When a
//   thread waits at a barrier (__syncthreads, or a warp-level sync: shuffles, ballots,
//   __syncwarp), it keeps the runner's stack as its own fiber and a new runner carries on with
//   the next thread. So a kernel without barriers costs one function call per thread, and only
//   threads that stop at a barrier hold a stack (from a pool, reused by every block).
// - Barriers count arrivals; exited threads count as arrived at __syncthreads. Live threads that
//   wait at __syncthreads on different source lines, or at a block barrier while others wait in
//   a warp sync, are reported as an error naming file:line. A lane named in a warp-sync mask that
//   has exited is an error too (undefined behaviour on a GPU).
// - Static __shared__ variables live in the ELF section "emu_shared"; dynamic shared memory
//   (extern __shared__, which the loader rewrites to EMU_EXTERN_SHARED) in a buffer sized by the
//   launch's shared_mem. Both are poisoned with 0xFF bytes (NaN, -1) before each block, so a read
//   of shared memory that no thread wrote shows up in the results.
// - The schedule (forward, reverse, shuffled) orders the runnable threads between barriers. A
//   kernel whose results depend on it has a race.
#pragma once

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <math.h>
#include <string>
#include <sys/mman.h>
#include <type_traits>
#include <utility>
#include <vector>

// ---- CUDA keywords -----------------------------------------------------------------------------
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
#define EMU_EXTERN_SHARED(type, name) type* const name = ::emu::dynamic_shared<type>()

// ---- vector types ------------------------------------------------------------------------------
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

namespace emu {

enum ThreadState : int { NOT_STARTED, RUNNING, READY, AT_BLOCK_BARRIER, AT_WARP_SYNC, EXITED };
enum Schedule : int { FORWARD = 0, REVERSE = 1, SHUFFLED = 2 };

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr size_t kMaxSharedBytes = 48 * 1024;  // CUDA's limit without an opt-in attribute

struct Fiber {
    void* sp = nullptr;          // saved stack pointer while waiting at a barrier
    ThreadState state = NOT_STARTED;
    uint3 tid{0, 0, 0};
    unsigned lane = 0, warp = 0;
    const char* site_file = "";  // where it waits
    int site_line = 0;
};

struct Warp {
    unsigned existing = 0;  // lanes that exist in this block (a last warp may be partial)
    unsigned arrived = 0;   // lanes waiting at the current warp sync
    unsigned mask = 0;      // the mask the first arrival named
    unsigned gen = 0;       // completed warp syncs; parity selects the exchange buffer
    const char* site_file = "";
    int site_line = 0;
    uint64_t slot[2][32];
    int pred[2][32];
};

struct State {
    dim3 grid_dim, block_dim;
    uint3 block_idx{0, 0, 0};
    Fiber* cur = nullptr;
    void* scheduler_sp = nullptr;
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    std::vector<char*> all_stacks;   // every stack this module allocated
    std::vector<char*> free_stacks;  // those no thread or runner of the current block holds
    std::vector<unsigned> order;
    unsigned next_start = 0;         // position in `order` of the next thread to start
    char* finished_runner = nullptr; // stack of a runner that ran out of threads to start
    void (*body)(void*) = nullptr;
    void* body_ctx = nullptr;
    char* dyn_shared = nullptr;
    size_t dyn_shared_bytes = 0, dyn_shared_capacity = 0;
    unsigned block_gen = 0;
    int block_acc[2] = {0, 0};  // __syncthreads_count / _and / _or accumulators, by parity
    Schedule schedule = FORWARD;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    bool failed = false;
    std::string error;
};

static State state;

}  // namespace emu

// ---- built-in variables ------------------------------------------------------------------------
namespace emu {
inline const uint3& thread_idx() { return state.cur->tid; }
inline const uint3& block_idx() { return state.block_idx; }
inline const dim3& block_dim() { return state.block_dim; }
inline const dim3& grid_dim() { return state.grid_dim; }
}  // namespace emu
#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())
static constexpr int warpSize = 32;

// ---- fibers: a hand-written x86-64 context switch; ucontext elsewhere (or with EMU_USE_UCONTEXT) --------------------------
#if defined(__x86_64__) && !defined(EMU_USE_UCONTEXT)
extern "C" void emu_switch_context(void** save_sp, void* load_sp);
extern "C" void emu_fiber_trampoline();
// Saves the callee-saved registers of the current context on its stack, stores its stack pointer
// in *save_sp and resumes the context whose stack pointer is load_sp.
// NOTE: the SSE and x87 control words are not switched: every fiber starts from the launching
// thread's, and kernels never change rounding modes; saving them only cost time.
asm(R"(
    .text
    .p2align 4
    .hidden emu_switch_context
    .type emu_switch_context, @function
emu_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch_context, .-emu_switch_context

    .p2align 4
    .hidden emu_fiber_trampoline
    .type emu_fiber_trampoline, @function
emu_fiber_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size emu_fiber_trampoline, .-emu_fiber_trampoline
)");

namespace emu {
// A new fiber's stack holds the frame emu_switch_context pops: six registers
// (r12 = argument, r13 = entry function) and a return address into the trampoline, laid out so
// that the trampoline's call happens with a 16-byte aligned stack, as the ABI requires.
inline void* fiber_initial_sp(char* stack, void (*entry)(char*), char* arg) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + kStackBytes) & ~uintptr_t(15);
    uint64_t* sp = reinterpret_cast<uint64_t*>(top - 16);
    *--sp = reinterpret_cast<uint64_t>(&emu_fiber_trampoline);
    *--sp = 0;                                       // rbp
    *--sp = 0;                                       // rbx
    *--sp = reinterpret_cast<uint64_t>(arg);         // r12
    *--sp = reinterpret_cast<uint64_t>(entry);       // r13
    *--sp = 0;                                       // r14
    *--sp = 0;                                       // r15
    return sp;
}
inline void switch_context(void** save_sp, void* load_sp) { emu_switch_context(save_sp, load_sp); }
}  // namespace emu
#else
#include <ucontext.h>
namespace emu {
// Portable fallback. A fresh fiber's context sits at the top of its stack, out of the part the
// fiber runs on; a switched-out context is saved in a local of switch_context, on the stack of
// the context it describes (as the x86-64 version saves registers).
inline void* fiber_initial_sp(char* stack, void (*entry)(char*), char* arg) {
    auto* ctx = reinterpret_cast<ucontext_t*>(stack + kStackBytes - sizeof(ucontext_t) - 64);
    getcontext(ctx);
    ctx->uc_stack.ss_sp = stack;
    ctx->uc_stack.ss_size = kStackBytes - sizeof(ucontext_t) - 128;
    ctx->uc_link = nullptr;
    makecontext(ctx, reinterpret_cast<void (*)()>(entry), 1, arg);
    return ctx;
}
inline void switch_context(void** save_sp, void* load_sp) {
    ucontext_t self;
    *save_sp = &self;
    swapcontext(&self, static_cast<ucontext_t*>(load_sp));
}
}  // namespace emu
#endif

namespace emu {

inline char* take_stack() {
    if (!state.free_stacks.empty()) {
        char* s = state.free_stacks.back();
        state.free_stacks.pop_back();
        return s;
    }
    void* m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, kGuardBytes, PROT_NONE);  // a stack overflow faults instead of corrupting memory
    state.all_stacks.push_back(static_cast<char*>(m) + kGuardBytes);
    return state.all_stacks.back();
}

// Called on a fiber: records the error and leaves the block for good.
[[noreturn]] inline void fail(const std::string& message) {
    state.failed = true;
    if (state.error.empty()) state.error = message;
    Fiber* self = state.cur;
    switch_context(&self->sp, state.scheduler_sp);
    __builtin_unreachable();
}

// NOTE: the memory clobbers stop the compiler from keeping shared-memory values in registers
// across a barrier; the loader also turns off the IPA analysis that could prove a static
// __shared__ variable untouched by the (opaque) context switch.
inline void yield_to_scheduler() {
    Fiber* self = state.cur;
    asm volatile("" ::: "memory");
    switch_context(&self->sp, state.scheduler_sp);
    asm volatile("" ::: "memory");
}

inline std::string site(const char* file, int line) { return std::string(file) + ":" + std::to_string(line); }

inline std::string hex_mask(unsigned mask) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", mask);
    return buf;
}

inline std::string thread_name(const Fiber& f) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "thread (%u,%u,%u) of block (%u,%u,%u)", f.tid.x, f.tid.y, f.tid.z,
                  state.block_idx.x, state.block_idx.y, state.block_idx.z);
    return buf;
}

// A runner starts threads in schedule order and runs each to its end as a plain call. A thread
// that waits at a barrier keeps this stack; when it resumes and finishes, this loop goes on
// starting whatever threads are still unstarted. With none left, the runner hands its stack back.
[[noreturn]] inline void runner_main(char* stack) {
    while (state.next_start < state.order.size()) {
        Fiber& f = state.fibers[state.order[state.next_start++]];
        f.state = RUNNING;
        state.cur = &f;
        state.body(state.body_ctx);
        f.state = EXITED;
    }
    state.finished_runner = stack;
    void* unused;
    switch_context(&unused, state.scheduler_sp);
    __builtin_unreachable();
}

// ---- barriers ----------------------------------------------------------------------------------
inline int block_barrier(const char* file, int line, int predicate) {
    Fiber* self = state.cur;
    unsigned parity = state.block_gen & 1;
    state.block_acc[parity] += predicate ? 1 : 0;
    self->state = AT_BLOCK_BARRIER;
    self->site_file = file;
    self->site_line = line;
    yield_to_scheduler();
    return state.block_acc[parity];
}

// Waits until every existing lane named in `mask` has arrived; returns the exchange-buffer parity
// that the caller wrote its contribution into before arriving.
inline void warp_arrive(unsigned mask, const char* file, int line) {
    Fiber* self = state.cur;
    Warp& w = state.warps[self->warp];
    if (!((mask >> self->lane) & 1u)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "warp sync mask 0x%08x does not name the calling lane %u", mask, self->lane);
        fail(site(file, line) + ": " + thread_name(*self) + ": " + buf);
    }
    if (w.arrived == 0) {
        w.mask = mask;
        w.site_file = file;
        w.site_line = line;
    } else if (w.mask != mask) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "warp sync with mask 0x%08x while lanes already wait with mask 0x%08x at ",
                      mask, w.mask);
        fail(site(file, line) + ": " + thread_name(*self) + ": " + buf + site(w.site_file, w.site_line));
    }
    w.arrived |= 1u << self->lane;
    unsigned required = mask & w.existing;
    unsigned base = self->warp * 32;
    for (unsigned l = 0; l < 32; ++l) {
        if (((required >> l) & 1u) && state.fibers[base + l].state == EXITED) {
            fail(site(file, line) + ": warp sync names lane " + std::to_string(l) + ", which has exited (" +
                 thread_name(state.fibers[base + l]) + ")");
        }
    }
    if ((w.arrived & required) == required) {
        for (unsigned l = 0; l < 32; ++l)
            if (((w.arrived >> l) & 1u) && l != self->lane) state.fibers[base + l].state = READY;
        w.arrived = 0;
        ++w.gen;
        return;
    }
    self->state = AT_WARP_SYNC;
    self->site_file = file;
    self->site_line = line;
    yield_to_scheduler();
}

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type wider than 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    return bits;
}
template <class T>
inline T from_bits(uint64_t bits) {
    T v;
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}

// Each lane publishes `value`, waits for the lanes of `mask`, then reads lane `src`'s value
// (its own when src is -1, the CUDA rule for sources outside the segment).
template <class T>
inline T warp_exchange(unsigned mask, T value, int src, const char* file, int line) {
    Fiber* self = state.cur;
    Warp& w = state.warps[self->warp];
    unsigned parity = w.gen & 1;
    w.slot[parity][self->lane] = to_bits(value);
    warp_arrive(mask, file, line);
    if (src < 0 || static_cast<unsigned>(src) == self->lane) return value;
    if (!((mask >> src) & 1u) || !((w.existing >> src) & 1u)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "shuffle reads lane %d, which is not in mask 0x%08x or does not exist", src, mask);
        fail(site(file, line) + ": " + thread_name(*self) + ": " + buf);
    }
    return from_bits<T>(w.slot[parity][src]);
}

inline unsigned warp_vote(unsigned mask, int predicate, const char* file, int line) {
    Fiber* self = state.cur;
    Warp& w = state.warps[self->warp];
    unsigned parity = w.gen & 1;
    w.pred[parity][self->lane] = predicate ? 1 : 0;
    warp_arrive(mask, file, line);
    unsigned ballot = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (((mask & w.existing) >> l) & 1u) ballot |= unsigned(w.pred[parity][l]) << l;
    return ballot;
}

inline unsigned segment_base(unsigned lane, int width) { return lane & ~unsigned(width - 1); }

template <class T>
inline T shfl(unsigned mask, T v, int src_lane, int width, const char* f, int l) {
    unsigned lane = state.cur->lane;
    int src = int(segment_base(lane, width) + (unsigned(src_lane) & unsigned(width - 1)));
    return warp_exchange(mask, v, src, f, l);
}
template <class T>
inline T shfl_up(unsigned mask, T v, unsigned delta, int width, const char* f, int l) {
    unsigned lane = state.cur->lane;
    int src = (lane & unsigned(width - 1)) >= delta ? int(lane - delta) : -1;
    return warp_exchange(mask, v, src, f, l);
}
template <class T>
inline T shfl_down(unsigned mask, T v, unsigned delta, int width, const char* f, int l) {
    unsigned lane = state.cur->lane;
    int src = (lane & unsigned(width - 1)) + delta < unsigned(width) ? int(lane + delta) : -1;
    return warp_exchange(mask, v, src, f, l);
}
template <class T>
inline T shfl_xor(unsigned mask, T v, int lane_mask, int width, const char* f, int l) {
    unsigned lane = state.cur->lane;
    unsigned src = lane ^ unsigned(lane_mask);
    bool inside = src < segment_base(lane, width) + unsigned(width);
    return warp_exchange(mask, v, inside ? int(src) : -1, f, l);
}

inline unsigned active_mask() {
    Fiber* self = state.cur;
    unsigned base = self->warp * 32, m = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (((state.warps[self->warp].existing >> l) & 1u) && state.fibers[base + l].state != EXITED) m |= 1u << l;
    return m;
}

template <class T>
inline T* dynamic_shared() {
    return reinterpret_cast<T*>(state.dyn_shared);
}

}  // namespace emu

#define __syncthreads() ((void)::emu::block_barrier(__FILE__, __LINE__, 0))
#define __syncthreads_count(p) (::emu::block_barrier(__FILE__, __LINE__, (p)))
#define __syncthreads_and(p) (::emu::block_barrier(__FILE__, __LINE__, !(p)) == 0)
#define __syncthreads_or(p) (::emu::block_barrier(__FILE__, __LINE__, (p)) != 0)
#define __syncwarp(...) ((void)::emu::warp_vote(::emu::syncwarp_mask(__VA_ARGS__), 1, __FILE__, __LINE__))
#define __shfl_sync(m, v, s, ...) (::emu::shfl((m), (v), (s), ::emu::shfl_width(__VA_ARGS__), __FILE__, __LINE__))
#define __shfl_up_sync(m, v, d, ...) (::emu::shfl_up((m), (v), (d), ::emu::shfl_width(__VA_ARGS__), __FILE__, __LINE__))
#define __shfl_down_sync(m, v, d, ...) (::emu::shfl_down((m), (v), (d), ::emu::shfl_width(__VA_ARGS__), __FILE__, __LINE__))
#define __shfl_xor_sync(m, v, x, ...) (::emu::shfl_xor((m), (v), (x), ::emu::shfl_width(__VA_ARGS__), __FILE__, __LINE__))
#define __ballot_sync(m, p) (::emu::warp_vote((m), (p), __FILE__, __LINE__))
#define __any_sync(m, p) (::emu::warp_vote((m), (p), __FILE__, __LINE__) != 0)
#define __all_sync(m, p) (::emu::warp_vote((m), (p), __FILE__, __LINE__) == ((m) & ::emu::active_mask()))
#define __activemask() (::emu::active_mask())

namespace emu {
inline unsigned syncwarp_mask() { return 0xffffffffu; }
inline unsigned syncwarp_mask(unsigned m) { return m; }
inline int shfl_width() { return 32; }
inline int shfl_width(int w) { return w; }
}  // namespace emu

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- atomics (fibers never switch inside one, so these are atomic among the block's threads) ---
template <class T>
inline T emu_atomic_update(T* address, T (*op)(T, T), T val) {
    T old = *address;
    *address = op(old, val);
    return old;
}
#define EMU_ATOMIC(name, T, expr)                                             \
    inline T name(T* address, T val) {                                        \
        return emu_atomic_update<T>(address, [](T a, T b) -> T { return expr; }, val); \
    }
EMU_ATOMIC(atomicAdd, int, a + b)
EMU_ATOMIC(atomicAdd, unsigned int, a + b)
EMU_ATOMIC(atomicAdd, unsigned long long, a + b)
EMU_ATOMIC(atomicAdd, float, a + b)
EMU_ATOMIC(atomicAdd, double, a + b)
EMU_ATOMIC(atomicSub, int, a - b)
EMU_ATOMIC(atomicSub, unsigned int, a - b)
EMU_ATOMIC(atomicExch, int, b)
EMU_ATOMIC(atomicExch, unsigned int, b)
EMU_ATOMIC(atomicExch, unsigned long long, b)
EMU_ATOMIC(atomicExch, float, b)
EMU_ATOMIC(atomicMax, int, a > b ? a : b)
EMU_ATOMIC(atomicMax, unsigned int, a > b ? a : b)
EMU_ATOMIC(atomicMax, long long, a > b ? a : b)
EMU_ATOMIC(atomicMax, unsigned long long, a > b ? a : b)
EMU_ATOMIC(atomicMin, int, a < b ? a : b)
EMU_ATOMIC(atomicMin, unsigned int, a < b ? a : b)
EMU_ATOMIC(atomicMin, long long, a < b ? a : b)
EMU_ATOMIC(atomicMin, unsigned long long, a < b ? a : b)
EMU_ATOMIC(atomicAnd, int, a & b)
EMU_ATOMIC(atomicAnd, unsigned int, a & b)
EMU_ATOMIC(atomicOr, int, a | b)
EMU_ATOMIC(atomicOr, unsigned int, a | b)
EMU_ATOMIC(atomicXor, int, a ^ b)
EMU_ATOMIC(atomicXor, unsigned int, a ^ b)
#undef EMU_ATOMIC
inline unsigned int atomicInc(unsigned int* address, unsigned int val) {
    unsigned int old = *address;
    *address = old >= val ? 0u : old + 1u;
    return old;
}
template <class T>
inline T emu_atomic_cas(T* address, T compare, T val) {
    T old = *address;
    if (old == compare) *address = val;
    return old;
}
inline int atomicCAS(int* a, int c, int v) { return emu_atomic_cas(a, c, v); }
inline unsigned int atomicCAS(unsigned int* a, unsigned int c, unsigned int v) { return emu_atomic_cas(a, c, v); }
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c, unsigned long long v) {
    return emu_atomic_cas(a, c, v);
}

// ---- math intrinsics ---------------------------------------------------------------------------
template <class T>
inline T __ldg(const T* p) { return *p; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline double __dadd_rn(double x, double y) { return x + y; }
inline double __dmul_rn(double x, double y) { return x * y; }
inline double __fma_rn(double x, double y, double z) { return fma(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
inline float exp10f(float x) { return powf(10.0f, x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned int __float_as_uint(float x) { unsigned int i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __mul24(int a, int b) { return a * b; }
inline unsigned int __umul24(unsigned int a, unsigned int b) { return a * b; }
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }

// CUDA's min and max are overloaded in the global namespace for every arithmetic type.
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }

// ---- the launch --------------------------------------------------------------------------------
struct EmuLaunchConfig {
    unsigned int grid[3];
    unsigned int block[3];
    unsigned long long shared_mem;
    int schedule;               // emu::Schedule
    unsigned long long seed;    // for the shuffled schedule
};

namespace emu {

extern "C" char __start_emu_shared[];
extern "C" char __stop_emu_shared[];
// Keeps the section present (and its bounds defined) in a module without static shared memory.
__attribute__((section("emu_shared"), used)) static char shared_section_anchor[16];

inline size_t static_shared_bytes() { return size_t(__stop_emu_shared - __start_emu_shared); }

inline uint64_t next_random() {
    uint64_t x = state.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return state.rng = x;
}

inline void order_threads(unsigned n) {
    state.order.resize(n);
    for (unsigned i = 0; i < n; ++i) state.order[i] = state.schedule == REVERSE ? n - 1 - i : i;
    if (state.schedule == SHUFFLED)
        for (unsigned i = n - 1; i > 0; --i) std::swap(state.order[i], state.order[next_random() % (i + 1)]);
}

// Switches to a runner or a waiting thread until it waits at a barrier or its runner is done.
inline void switch_to(void* sp) {
    switch_context(&state.scheduler_sp, sp);
    state.cur = nullptr;
    if (state.finished_runner != nullptr) {
        state.free_stacks.push_back(state.finished_runner);
        state.finished_runner = nullptr;
    }
}

inline bool start_runner() {
    char* stack = take_stack();
    if (stack == nullptr) {
        state.failed = true;
        state.error = "out of memory for fiber stacks";
        return false;
    }
    switch_to(fiber_initial_sp(stack, &runner_main, stack));
    return true;
}

inline void resume(Fiber& f) {
    f.state = RUNNING;
    state.cur = &f;
    switch_to(f.sp);
}

// Called when no thread can run: releases a complete __syncthreads or reports why none is.
inline bool resolve_block_barrier() {
    const Fiber* first = nullptr;
    for (const Fiber& f : state.fibers) {
        if (f.state == EXITED) continue;
        if (f.state == AT_WARP_SYNC) {
            Warp& w = state.warps[f.warp];
            state.failed = true;
            state.error = site(f.site_file, f.site_line) + ": " + thread_name(f) + " waits in a warp sync (mask " +
                          hex_mask(w.mask) + ") for lanes that never arrive";
            for (const Fiber& g : state.fibers)
                if (g.state == AT_BLOCK_BARRIER) {
                    state.error += "; " + thread_name(g) + " waits at __syncthreads at " + site(g.site_file, g.site_line);
                    break;
                }
            return false;
        }
        if (first == nullptr) {
            first = &f;
        } else if (f.site_line != first->site_line ||
                   (f.site_file != first->site_file && std::strcmp(f.site_file, first->site_file) != 0)) {
            state.failed = true;
            state.error = "divergent __syncthreads: " + thread_name(*first) + " waits at " +
                          site(first->site_file, first->site_line) + " but " + thread_name(f) + " waits at " +
                          site(f.site_file, f.site_line);
            return false;
        }
    }
    if (first == nullptr) return false;  // every thread has exited: the block is done
    state.block_acc[(state.block_gen + 1) & 1] = 0;
    ++state.block_gen;
    for (Fiber& f : state.fibers)
        if (f.state == AT_BLOCK_BARRIER) f.state = READY;
    return true;
}

inline void run_block(unsigned n_threads) {
    std::memset(__start_emu_shared, 0xFF, static_shared_bytes());
    if (state.dyn_shared_bytes) std::memset(state.dyn_shared, 0xFF, state.dyn_shared_bytes);
    const dim3 b = state.block_dim;
    for (unsigned i = 0; i < n_threads; ++i) {
        Fiber& f = state.fibers[i];
        f.state = NOT_STARTED;
        f.tid = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        f.lane = i % 32;
        f.warp = i / 32;
    }
    for (unsigned w = 0; w < state.warps.size(); ++w) {
        unsigned lanes = std::min(32u, n_threads - w * 32);
        state.warps[w].existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
        state.warps[w].arrived = 0;
        state.warps[w].gen = 0;
    }
    state.block_gen = 0;
    state.block_acc[0] = state.block_acc[1] = 0;
    // Every stack is free again: the previous block's threads all finished, or its launch failed.
    state.free_stacks = state.all_stacks;
    order_threads(n_threads);
    state.next_start = 0;
    do {
        while (state.next_start < n_threads && !state.failed) start_runner();
        // Between barriers: resume the threads a release made ready, in schedule order.
        bool ran = true;
        while (ran && !state.failed) {
            ran = false;
            if (state.schedule == SHUFFLED) order_threads(n_threads);  // a new order every pass
            for (unsigned i : state.order) {
                Fiber& f = state.fibers[i];
                if (f.state == READY) {
                    resume(f);
                    ran = true;
                    if (state.failed) return;
                }
            }
        }
    } while (!state.failed && resolve_block_barrier());
}

inline int run_grid(const EmuLaunchConfig* cfg) {
    state.failed = false;
    state.error.clear();
    const unsigned* g = cfg->grid;
    const unsigned* b = cfg->block;
    unsigned long long n_threads = 1ull * b[0] * b[1] * b[2];
    char buf[256];
    if (g[0] == 0 || g[1] == 0 || g[2] == 0 || n_threads == 0) {
        std::snprintf(buf, sizeof buf, "invalid launch: grid (%u,%u,%u), block (%u,%u,%u) has a zero extent", g[0],
                      g[1], g[2], b[0], b[1], b[2]);
        state.error = buf;
        return 1;
    }
    if (n_threads > 1024 || b[0] > 1024 || b[1] > 1024 || b[2] > 64 || g[0] > 2147483647u || g[1] > 65535 ||
        g[2] > 65535) {
        std::snprintf(buf, sizeof buf,
                      "invalid launch: grid (%u,%u,%u), block (%u,%u,%u) exceeds CUDA's limits (block <= 1024 threads, "
                      "block.z <= 64, grid.y and grid.z <= 65535)",
                      g[0], g[1], g[2], b[0], b[1], b[2]);
        state.error = buf;
        return 1;
    }
    if (cfg->shared_mem + static_shared_bytes() - sizeof(shared_section_anchor) > kMaxSharedBytes) {
        std::snprintf(buf, sizeof buf, "invalid launch: %llu bytes of dynamic and %zu bytes of static shared memory "
                      "exceed the %zu bytes a block may use", cfg->shared_mem,
                      static_shared_bytes() - sizeof(shared_section_anchor), kMaxSharedBytes);
        state.error = buf;
        return 1;
    }
    state.grid_dim = dim3(g[0], g[1], g[2]);
    state.block_dim = dim3(b[0], b[1], b[2]);
    state.schedule = static_cast<Schedule>(cfg->schedule);
    state.rng = cfg->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (state.rng == 0) state.rng = 1;
    state.fibers.resize(n_threads);
    state.warps.resize((n_threads + 31) / 32);
    if (cfg->shared_mem > state.dyn_shared_capacity) {
        std::free(state.dyn_shared);
        state.dyn_shared = static_cast<char*>(std::aligned_alloc(256, (cfg->shared_mem + 255) & ~255ull));
        state.dyn_shared_capacity = cfg->shared_mem;
    }
    state.dyn_shared_bytes = cfg->shared_mem;
    for (unsigned z = 0; z < g[2]; ++z)
        for (unsigned y = 0; y < g[1]; ++y)
            for (unsigned x = 0; x < g[0]; ++x) {
                state.block_idx = uint3{x, y, z};
                run_block(unsigned(n_threads));
                if (state.failed) return 2;
            }
    return 0;
}

template <class... P, size_t... I>
inline void call_kernel(void (*fn)(P...), void** args, std::index_sequence<I...>) {
    fn(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}

template <class... P>
inline int launch(void (*fn)(P...), const EmuLaunchConfig* cfg, void** args) {
    struct Call {
        void (*fn)(P...);
        void** args;
    } call{fn, args};
    state.body = [](void* ctx) {
        auto* c = static_cast<Call*>(ctx);
        call_kernel(c->fn, c->args, std::index_sequence_for<P...>{});
    };
    state.body_ctx = &call;
    return run_grid(cfg);
}

}  // namespace emu

extern "C" __attribute__((visibility("default"))) const char* emu_last_error() { return emu::state.error.c_str(); }
extern "C" __attribute__((visibility("default"))) unsigned long long emu_static_shared_bytes() {
    return emu::static_shared_bytes() - sizeof(emu::shared_section_anchor);
}

// The loader appends one EMU_LAUNCHER(name) per extern "C" __global__ entry point.
#define EMU_LAUNCHER(name)                                                                              \
    extern "C" __attribute__((visibility("default"))) int emu_launch__##name(const EmuLaunchConfig* cfg, \
                                                                             void** args) {             \
        return ::emu::launch(&name, cfg, args);                                                         \
    }
#include "wmma.h"  // nvcuda::wmma (TF32 m16n16k8)
