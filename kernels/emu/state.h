// state.h — the emulator's per-module state: threads (fibers), warps, the launch, and the
// built-in variables threadIdx/blockIdx/blockDim/gridDim (part of cuda_emu.h).
#pragma once

#include <csignal>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace emu {

enum ThreadState : int { NOT_STARTED, RUNNING, READY, AT_BLOCK_BARRIER, AT_WARP_SYNC, EXITED };
enum Schedule : int { FORWARD = 0, REVERSE = 1, SHUFFLED = 2 };
// Launch flags; both need the instrumented (sanitizer) build of the module.
enum Flags : int { SANITIZE = 1, PROFILE = 2 };

constexpr size_t kGuardBytes = 4096;
constexpr size_t kMaxSharedBytes = 48 * 1024;  // CUDA's limit without an opt-in attribute

// A pointer argument of the launch: the NumPy buffer it points into (the loader knows it).
struct ArgInfo {
    const char* base;
    unsigned long long bytes;
    const char* name;  // "float32* y (shape (2, 3))", for messages
    int elem_size;
    int is_float;      // float32/float64: initcheck compares elements with the poison of gpuconv's empty
    // Integer arrays from gpuconv's empty(): one byte per element, set once a kernel wrote it in
    // sanitizer mode (kept by the loader across launches); null for other arguments.
    unsigned char* written;
};

// A static __shared__ array, registered when a thread first executes its declaration (the loader
// rewrites `__shared__ T name[N];` into EMU_SHARED, keywords.h).
struct SharedDecl {
    char* base;
    size_t bytes;               // without the redzone that follows
    std::string name;           // "function::name"
    uint64_t poisoned_block = 0;  // block_serial it was last poisoned for
    uint64_t launch = 0;          // launch_serial it was last counted for
};

struct Fiber {
    void* sp = nullptr;          // saved stack pointer while waiting at a barrier
    ThreadState state = NOT_STARTED;
    uint3 tid{0, 0, 0};
    unsigned index = 0, lane = 0, warp = 0;
    const char* site_file = "";  // where it waits
    int site_line = 0;
    char* stack = nullptr;       // the stack it runs on
    int in_shim = 0;             // > 0 while it runs emulator code: the sanitizer hooks ignore that
    unsigned barriers = 0;       // __syncthreads passed, and the site of the last one
    const char* barrier_file = "";
    int barrier_line = 0;
    uintptr_t spin_pc = 0;       // volatile reads in a row at one site (a spin loop)
    unsigned spin_count = 0;
    std::unordered_map<uintptr_t, uint32_t> site_visits;  // profile: accesses per instruction site
};

// Lanes of a warp waiting at one warp-level sync with the same mask.
struct WarpGroup {
    unsigned mask = 0, arrived = 0;
    const char* file = "";
    int line = 0;
};

struct Warp {
    unsigned existing = 0;  // lanes that exist in this block (a last warp may be partial)
    unsigned syncs = 0;     // completed warp syncs: they order the lanes' memory accesses
    unsigned n_groups = 0;  // groups waiting now; disjoint masks may wait at the same time
    WarpGroup groups[32];
    uint64_t slot[32];       // each lane's contribution to the pending sync
    int src[32];             // the lane whose value each lane asked for
    int pred[32];
    uint64_t delivered[32];  // the value each lane receives when its group completes
    unsigned ballot[32];
};

struct State {
    dim3 grid_dim, block_dim;
    uint3 block_idx{0, 0, 0};
    uint3 tid{0, 0, 0};  // the running thread's threadIdx; kernel code reads it here, not in `fibers`
    Fiber* cur = nullptr;
    void* scheduler_sp = nullptr;
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    size_t stack_bytes = 0;          // of every stack below
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
    int flags = 0;
    const ArgInfo* args = nullptr;
    int n_args = 0;
    std::vector<SharedDecl> shared_decls;
    uint64_t launch_serial = 0;
    unsigned long long static_shared_limit = 0;  // for the arrays declared in this launch
    unsigned long long static_shared_used = 0;
    uint64_t block_serial = 0;       // counts blocks run by this module: stamps shadow memory
    int atomic_depth = 0;            // > 0 inside an atomic: not a race
    volatile uint64_t progress = 0;  // thread starts, exits and barrier arrivals (the watchdog)
    volatile sig_atomic_t watchdog_fired = 0;
    double watchdog_seconds = 0;
    bool failed = false;
    std::string error;
};

static State state;

inline uint3 thread_idx() { return state.tid; }
inline uint3 block_idx() { return state.block_idx; }
inline dim3 block_dim() { return state.block_dim; }
inline dim3 grid_dim() { return state.grid_dim; }

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())
