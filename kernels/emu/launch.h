// launch.h — running a grid: the block scheduler, launch checks, and the entry points the loader
// calls through ctypes (part of cuda_emu.h).
#pragma once

#include <algorithm>
#include <cstdlib>

struct EmuLaunchConfig {
    unsigned int grid[3];
    unsigned int block[3];
    unsigned long long shared_mem;
    int schedule;                        // emu::Schedule
    unsigned long long seed;             // for the shuffled schedule
    unsigned long long stack_bytes;      // per thread: its local memory and the emulator's frames
    double watchdog_seconds;             // 0: no watchdog
    int flags;                           // emu::Flags
    int n_args;
    const emu::ArgInfo* args;            // the pointer arguments' buffers
};

namespace emu {

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
    set_current(&f);
    switch_to(f.sp);
}

inline void fail_from_scheduler(const std::string& message) {
    state.failed = true;
    if (state.error.empty()) state.error = message;
}

// synccheck: a thread that passed the barrier others now wait at, and then exited, left a loop
// of barriers early (on a GPU the waiting threads hang or run on with wrong data).
inline bool check_exited_threads(const Fiber& waiter) {
    for (const Fiber& f : state.fibers) {
        if (f.state != EXITED || f.barriers == 0 || f.barriers >= waiter.barriers + 1) continue;
        if (f.barrier_line == waiter.site_line &&
            (f.barrier_file == waiter.site_file || std::strcmp(f.barrier_file, waiter.site_file) == 0)) {
            fail_from_scheduler("synccheck: divergent threads at __syncthreads " + site(waiter.site_file, waiter.site_line) +
                                ": " + thread_name(f) + " exited after passing it " + std::to_string(f.barriers) +
                                " time(s) while " + thread_name(waiter) + " waits there to pass it once more (threads "
                                "left a loop with a barrier after different counts)");
            return false;
        }
    }
    return true;
}

// Called when no thread can run: releases a complete __syncthreads or reports why none is.
inline bool resolve_block_barrier() {
    const Fiber* first = nullptr;
    for (const Fiber& f : state.fibers) {
        if (f.state == EXITED) continue;
        if (f.state == AT_WARP_SYNC) {
            const WarpGroup* g = group_of(state.warps[f.warp], f.lane);
            fail_from_scheduler(site(f.site_file, f.site_line) + ": " + thread_name(f) + " waits in a warp sync (mask " +
                                hex_mask(g ? g->mask : 0) + ") for lanes that never arrive");
            for (const Fiber& b : state.fibers)
                if (b.state == AT_BLOCK_BARRIER) {
                    state.error += "; " + thread_name(b) + " waits at __syncthreads at " + site(b.site_file, b.site_line);
                    break;
                }
            return false;
        }
        if (first == nullptr) {
            first = &f;
        } else if (f.site_line != first->site_line ||
                   (f.site_file != first->site_file && std::strcmp(f.site_file, first->site_file) != 0)) {
            fail_from_scheduler("divergent __syncthreads: " + thread_name(*first) + " waits at " +
                                site(first->site_file, first->site_line) + " but " + thread_name(f) + " waits at " +
                                site(f.site_file, f.site_line));
            return false;
        }
    }
#ifdef EMU_SANITIZER
    std::string uninitialized;
    if (san::take_pending_initcheck(uninitialized)) {
        fail_from_scheduler(uninitialized);
        return false;
    }
    if (state.flags & PROFILE) prof::flush();
#endif
    if (first == nullptr) return false;  // every thread has exited: the block is done
    if (!check_exited_threads(*first)) return false;
    state.block_acc[(state.block_gen + 1) & 1] = 0;
    ++state.block_gen;
    for (Fiber& f : state.fibers)
        if (f.state == AT_BLOCK_BARRIER) {
            f.state = READY;
            ++f.barriers;
            f.barrier_file = f.site_file;
            f.barrier_line = f.site_line;
        }
    return true;
}

inline void run_block(unsigned n_threads) {
    std::memset(__start_emu_shared, 0xFF, static_shared_bytes());
    if (state.dyn_shared_bytes) std::memset(state.dyn_shared, 0xFF, state.dyn_shared_bytes);
    ++state.block_serial;
    const dim3 b = state.block_dim;
    for (unsigned i = 0; i < n_threads; ++i) {
        Fiber& f = state.fibers[i];
        f.state = NOT_STARTED;
        f.tid = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        f.index = i;
        f.lane = i % 32;
        f.warp = i / 32;
        f.in_shim = 0;
        f.barriers = 0;
        f.barrier_file = "";
        f.barrier_line = 0;
        f.spin_pc = 0;
        if (state.flags & PROFILE) f.site_visits.clear();
    }
    for (unsigned w = 0; w < state.warps.size(); ++w) {
        unsigned lanes = std::min(32u, n_threads - w * 32);
        state.warps[w].existing = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
        state.warps[w].n_groups = 0;
        state.warps[w].syncs = 0;
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
            if (state.watchdog_fired) {
                fail_from_scheduler(sig::watchdog_message() + "threads yield without progress (a spin loop whose "
                                    "exit condition no running thread can change?); " + sig::waiting_threads());
                return;
            }
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

inline int check_launch(const EmuLaunchConfig* cfg) {
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
    const unsigned long long unregistered = static_shared_bytes() - sizeof(shared_section_anchor);
    if (cfg->shared_mem + unregistered > kMaxSharedBytes) {
        std::snprintf(buf, sizeof buf, "invalid launch: %llu bytes of dynamic and %llu bytes of static shared memory "
                      "exceed the %zu bytes a block may use", cfg->shared_mem, unregistered, kMaxSharedBytes);
        state.error = buf;
        return 1;
    }
    return 0;
}

inline int run_grid(const EmuLaunchConfig* cfg) {
    state.failed = false;
    state.error.clear();
    if (check_launch(cfg)) return 1;
    const unsigned* g = cfg->grid;
    const unsigned* b = cfg->block;
    const unsigned n_threads = b[0] * b[1] * b[2];
    state.grid_dim = dim3(g[0], g[1], g[2]);
    state.block_dim = dim3(b[0], b[1], b[2]);
    state.schedule = static_cast<Schedule>(cfg->schedule);
    state.rng = cfg->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (state.rng == 0) state.rng = 1;
    state.flags = cfg->flags;
    state.args = cfg->args;
    state.n_args = cfg->n_args;
    ++state.launch_serial;
    state.static_shared_used = static_shared_bytes() - sizeof(shared_section_anchor);
    state.static_shared_limit = kMaxSharedBytes - cfg->shared_mem;
    state.watchdog_seconds = cfg->watchdog_seconds;
    set_stack_bytes(cfg->stack_bytes);
    state.fibers.resize(n_threads);
    state.warps.resize((n_threads + 31) / 32);
    if (cfg->shared_mem > state.dyn_shared_capacity || state.dyn_shared == nullptr) {
        std::free(state.dyn_shared);
        // The redzone after the buffer is where the sanitizer catches an index past its end.
        state.dyn_shared = static_cast<char*>(std::aligned_alloc(256, (cfg->shared_mem + kRedzoneBytes + 255) & ~255ull));
        state.dyn_shared_capacity = cfg->shared_mem;
    }
    state.dyn_shared_bytes = cfg->shared_mem;
    block_names.first_serial = state.block_serial + 1;
#ifdef EMU_SANITIZER
    san::start_launch();
#endif
#ifdef EMU_ASAN
    asan::set_death_callback(&asan::on_death);
#endif
    sig::install();
    int status = 0;
    for (unsigned z = 0; z < g[2] && !status; ++z)
        for (unsigned y = 0; y < g[1] && !status; ++y)
            for (unsigned x = 0; x < g[0] && !status; ++x) {
                state.block_idx = uint3{x, y, z};
                run_block(n_threads);
                if (state.failed) status = 2;
            }
    sig::uninstall();
#ifdef EMU_ASAN
    asan::set_death_callback(nullptr);
    // Threads that left on an error leave poisoned frames anywhere on their stacks.
    if (status)
        for (char* s : state.all_stacks) __asan_unpoison_memory_region(s, state.stack_bytes);
#endif
#ifdef EMU_SANITIZER
    san::end_launch();
    if (status) prof::profile.pending.clear();
#endif
    state.args = nullptr;
    state.n_args = 0;
    return status;
}

// NOTE: EMU_NOSAN here and on the body below: reading the arguments out of the loader's buffers
// runs on a kernel thread but is not the kernel's access.
template <class... P, size_t... I>
EMU_NOSAN inline void call_kernel(void (*fn)(P...), void** args, std::index_sequence<I...>) {
    fn(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}

template <class... P>
inline int launch(void (*fn)(P...), const EmuLaunchConfig* cfg, void** args) {
    struct Call {
        void (*fn)(P...);
        void** args;
    } call{fn, args};
    state.body = [](void* ctx) EMU_NOSAN {
        auto* c = static_cast<Call*>(ctx);
        call_kernel(c->fn, c->args, std::index_sequence_for<P...>{});
    };
    state.body_ctx = &call;
    return run_grid(cfg);
}

}  // namespace emu

extern "C" __attribute__((visibility("default"))) const char* emu_last_error() { return emu::state.error.c_str(); }

// The loader appends one EMU_LAUNCHER(name) per extern "C" __global__ entry point (those GC_ENTRY*
// generates are named at global scope by entry_points.cuh's using-declarations).
#define EMU_LAUNCHER(name)                                                                              \
    extern "C" __attribute__((visibility("default"))) int emu_launch__##name(const EmuLaunchConfig* cfg, \
                                                                             void** args) {             \
        return ::emu::launch(&name, cfg, args);                                                         \
    }
