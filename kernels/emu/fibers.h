// fibers.h — user-level threads for the CUDA threads of a block: context switch, stacks, the
// runner that starts threads, and how a thread leaves for good on an error (part of cuda_emu.h).
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <sys/mman.h>

// ---- the context switch: hand-written on x86-64; ucontext elsewhere (or with EMU_USE_UCONTEXT) ----
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
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + state.stack_bytes) & ~uintptr_t(15);
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
inline void raw_switch(void** save_sp, void* load_sp) { emu_switch_context(save_sp, load_sp); }
}  // namespace emu
#else
#include <ucontext.h>
namespace emu {
// Portable fallback. A fresh fiber's context sits at the top of its stack, out of the part the
// fiber runs on; a switched-out context is saved in a local of switch_context, on the stack of
// the context it describes (as the x86-64 version saves registers).
inline void* fiber_initial_sp(char* stack, void (*entry)(char*), char* arg) {
    size_t bytes = state.stack_bytes;
    auto* ctx = reinterpret_cast<ucontext_t*>(stack + bytes - sizeof(ucontext_t) - 64);
    getcontext(ctx);
    ctx->uc_stack.ss_sp = stack;
    ctx->uc_stack.ss_size = bytes - sizeof(ucontext_t) - 128;
    ctx->uc_link = nullptr;
    makecontext(ctx, reinterpret_cast<void (*)()>(entry), 1, arg);
    return ctx;
}
inline void raw_switch(void** save_sp, void* load_sp) {
    ucontext_t self;
    *save_sp = &self;
    swapcontext(&self, static_cast<ucontext_t*>(load_sp));
}
}  // namespace emu
#endif

#ifdef EMU_ASAN
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
#endif

namespace emu {

#ifdef EMU_ASAN
// AddressSanitizer keeps its own idea of the running stack: each switch tells it which stack runs
// next (a fiber stack, or the launching thread's, learned when a fiber first runs).
struct AsanStacks {
    const void* scheduler_bottom = nullptr;
    size_t scheduler_size = 0;
    std::vector<char*> sorted;  // state.all_stacks in address order, to find the stack a switch goes to
};
static AsanStacks asan_stacks;
constexpr size_t kAsanRunnerFrames = 16384;  // the top of a stack: trampoline, runner_main, the call into the kernel

inline void asan_learn_scheduler_stack(void* fake_stack) {
    __sanitizer_finish_switch_fiber(fake_stack, &asan_stacks.scheduler_bottom, &asan_stacks.scheduler_size);
}
#endif

// Every context switch of the emulator: a fiber to the scheduler or back.
inline void switch_context(void** save_sp, void* load_sp) {
#ifdef EMU_ASAN
    const void* bottom = asan_stacks.scheduler_bottom;
    size_t size = asan_stacks.scheduler_size;
    if (load_sp != state.scheduler_sp) {  // the fiber stack holding load_sp: the last one starting below it
        auto above = std::upper_bound(asan_stacks.sorted.begin(), asan_stacks.sorted.end(), static_cast<char*>(load_sp));
        if (above != asan_stacks.sorted.begin()) {
            bottom = *(above - 1);
            size = state.stack_bytes;
        }
    }
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, bottom, size);
    raw_switch(save_sp, load_sp);
    if (save_sp == &state.scheduler_sp) {
        __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
    } else {
        asan_learn_scheduler_stack(fake_stack);  // a fiber resumes: the scheduler switched to it
    }
#else
    raw_switch(save_sp, load_sp);
#endif
}

// Emulator code called from a kernel thread: the sanitizer hooks ignore its memory accesses, and
// the watchdog does not preempt it (signals.h); the fences keep its work inside the count.
struct ShimScope {
    Fiber* f;
    EMU_NOSAN ShimScope() : f(state.cur) {
        ++f->in_shim;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    EMU_NOSAN ~ShimScope() {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        --f->in_shim;
    }
};

inline void release_stacks() {
    for (char* s : state.all_stacks) munmap(s - kGuardBytes, state.stack_bytes + kGuardBytes);
    state.all_stacks.clear();
    state.free_stacks.clear();
#ifdef EMU_ASAN
    asan_stacks.sorted.clear();
#endif
}

// Every launch names its stack size (a setting); stacks of another size are given back.
inline void set_stack_bytes(size_t bytes) {
    bytes = (bytes + 4095) & ~size_t(4095);
    if (bytes != state.stack_bytes) {
        release_stacks();
        state.stack_bytes = bytes;
    }
}

inline char* take_stack() {
    if (!state.free_stacks.empty()) {
        char* s = state.free_stacks.back();
        state.free_stacks.pop_back();
#ifdef EMU_ASAN
        // A runner never returns from its first frames, so their redzones stay poisoned: clear them.
        // (Kernel frames return normally; after a failed launch every stack is cleared: launch.h.)
        __asan_unpoison_memory_region(s + state.stack_bytes - kAsanRunnerFrames, kAsanRunnerFrames);
#endif
        return s;
    }
    void* m = mmap(nullptr, state.stack_bytes + kGuardBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, kGuardBytes, PROT_NONE);  // a stack overflow faults instead of corrupting memory
    state.all_stacks.push_back(static_cast<char*>(m) + kGuardBytes);
#ifdef EMU_ASAN
    auto& sorted = asan_stacks.sorted;
    sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), state.all_stacks.back()), state.all_stacks.back());
#endif
    return state.all_stacks.back();
}

EMU_NOSAN inline void set_current(Fiber* f) {
    state.cur = f;
    state.tid = f->tid;
}

// Called on a fiber: records the error and leaves the block for good.
[[noreturn]] EMU_NOSAN inline void fail(const std::string& message) {
    state.failed = true;
    if (state.error.empty()) state.error = message;
    Fiber* self = state.cur;
    switch_context(&self->sp, state.scheduler_sp);
    __builtin_unreachable();
}

// NOTE: the memory clobbers stop the compiler from keeping shared-memory values in registers
// across a barrier; the loader also turns off the IPA analysis that could prove a static
// __shared__ variable untouched by the (opaque) context switch.
EMU_NOSAN inline void yield_to_scheduler() {
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
[[noreturn]] EMU_NOSAN inline void runner_main(char* stack) {
#ifdef EMU_ASAN
    asan_learn_scheduler_stack(nullptr);  // a new fiber's first switch came from the scheduler
#endif
    while (state.next_start < state.order.size()) {
        Fiber& f = state.fibers[state.order[state.next_start++]];
        f.state = RUNNING;
        f.stack = stack;
        set_current(&f);
        state.progress = state.progress + 1;
        state.body(state.body_ctx);
        f.state = EXITED;
        state.progress = state.progress + 1;
    }
    state.finished_runner = stack;
    void* unused;
    switch_context(&unused, state.scheduler_sp);
    __builtin_unreachable();
}

}  // namespace emu
