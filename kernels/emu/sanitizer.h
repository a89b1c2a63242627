// sanitizer.h — memcheck, racecheck and initcheck on the CPU (part of cuda_emu.h; only in the
// loader's instrumented build, compiled with -DEMU_SANITIZER -fsanitize=thread).
//
// GCC's -fsanitize=thread makes every load and store of the kernel call __tsan_readN/__tsan_writeN
// with the address. There is no libtsan: the hooks below are ours. Each access of a kernel thread
// is classified: a kernel argument (the loader passes each NumPy buffer's extent), static shared
// memory (each array from the symbol table, followed by a redzone), dynamic shared memory (with a
// redzone), the thread's own stack (local memory: ignored), the module's own data (ignored), or
// nothing: an out-of-bounds access, reported before it happens, with the code address the loader
// turns into file:line. The same hooks feed the access profile (profile.h).
//
// Races: per 4-byte word of shared memory and of every argument (per element for 1- and 2-byte
// elements), the last write and up to two
// reads since, each with its thread, barrier interval, warp-sync count and code address. Two
// accesses of different threads, at least one a write, are ordered only by a __syncthreads
// between them (same block, different interval) or a warp sync between them (same warp). Accesses
// inside atomics, and volatile accesses (deliberate communication between threads), are never races.
// Initcheck: a read of shared memory no thread of the block wrote; of a float element of an
// argument that still holds the poison gpuconv's empty() wrote; or of an integer element of an
// array from empty() that no kernel wrote (a shadow byte per element, kept by the loader).
#pragma once

#include <algorithm>
#include <link.h>

namespace emu::san {

constexpr uint32_t kPoisonF32 = 0x7FBADBADu;                 // a signalling NaN: arithmetic never makes it
constexpr uint64_t kPoisonF64 = 0x7FF4DEADBADDBADDull;
constexpr size_t kMaxTrackedWords = size_t(1) << 21;         // larger arguments get bounds checks only

struct Access {
    uint64_t who = 0;       // block_serial << 11 | thread index; 0: none
    unsigned interval = 0;  // the block's barrier generation
    unsigned warp_syncs = 0;
    uintptr_t pc = 0;
};
struct Shadow {
    Access w, r, r2;
    uint64_t block = 0;     // shared memory: the block_serial this shadow describes
    bool written = false;
};

struct Tables {
    std::vector<std::vector<Shadow>> global;  // per argument; allocated at its first access in a launch
    std::vector<std::vector<Shadow>> shared_decls;  // by index in state.shared_decls
    std::vector<Shadow> shared_static, shared_dynamic;
    // The first read of unwritten shared memory in this barrier interval. Reported when the
    // interval ends, unless a write by another thread in it makes it a race (the better message).
    std::string pending_initcheck;
    uintptr_t image_lo[16], image_hi[16];  // the module's read-only segments (constants)
    int n_image = -1;
};
static Tables tables;

EMU_NOSAN inline int collect_image(dl_phdr_info* info, size_t, void*) {
    if (info->dlpi_addr != module_base()) return 0;
    tables.n_image = 0;
    for (int i = 0; i < info->dlpi_phnum && tables.n_image < 16; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W)) continue;
        tables.image_lo[tables.n_image] = info->dlpi_addr + ph.p_vaddr;
        tables.image_hi[tables.n_image++] = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
    }
    return 1;
}

EMU_NOSAN inline void start_launch() {
    if (tables.n_image < 0) dl_iterate_phdr(&collect_image, nullptr);
    tables.global.assign(size_t(state.n_args), {});
    size_t static_words = size_t(__stop_emu_shared - __start_emu_shared + 3) / 4;
    if (tables.shared_static.size() < static_words) tables.shared_static.resize(static_words);
    size_t dyn_words = (state.dyn_shared_bytes + 3) / 4;
    if (tables.shared_dynamic.size() < dyn_words) tables.shared_dynamic.resize(dyn_words);
}

EMU_NOSAN inline void end_launch() {
    tables.global.clear();
    tables.pending_initcheck.clear();
}

// At a barrier release and at the end of a block: an uninitialized read no race explained.
EMU_NOSAN inline bool take_pending_initcheck(std::string& message) {
    if (tables.pending_initcheck.empty()) return false;
    message = std::move(tables.pending_initcheck);
    tables.pending_initcheck.clear();
    return true;
}

EMU_NOSAN inline uint64_t who(const Fiber& f) { return (state.block_serial << 11) | f.index; }

// Whether `before` (an earlier access) happens before the current thread's access.
EMU_NOSAN inline bool ordered(const Access& before, const Fiber& f) {
    uint64_t me = who(f);
    if (before.who == me) return true;
    if ((before.who >> 11) != (me >> 11)) return false;  // another block: nothing orders them
    if (before.interval != state.block_gen) return true;
    unsigned other = unsigned(before.who & 2047);
    return other / 32 == f.warp && state.warps[f.warp].syncs != before.warp_syncs;
}

// Where a tracked word lives, for messages: prefix + name + suffix, and the byte offset in it.
struct Place {
    bool shared;
    const char* prefix;
    const char* name;
    const char* suffix;
    size_t offset;
    std::string what() const { return std::string(prefix) + name + suffix; }
};

[[noreturn]] EMU_NOSAN inline void report(const std::string& message) {
    ++state.cur->in_shim;
    fail(message);
}

EMU_NOSAN inline std::string access_name(bool write, uintptr_t pc, uint64_t who_, bool same_block_known) {
    unsigned index = unsigned(who_ & 2047);
    uint3 block = same_block_known ? state.block_idx : block_names.of(who_ >> 11);
    return std::string(write ? "write" : "read") + " at " + pc_token(pc) + " by " + thread_in_block(index, block);
}

EMU_NOSAN inline void race(const Place& place, const char* hazard, bool first_write, const Access& first,
                           bool second_write, uintptr_t pc) {
    Fiber& f = *state.cur;
    bool same_block = (first.who >> 11) == (who(f) >> 11);
    char where[64];
    std::snprintf(where, sizeof where, " (byte offset %zu)", place.offset);
    report(std::string("racecheck: ") + hazard + " hazard on " + place.what() + where + ": " +
           access_name(first_write, first.pc, first.who, same_block) + " and " +
           access_name(second_write, pc, who(f), true) +
           (same_block ? " with no __syncthreads between them" : ", in different blocks of one launch"));
}

EMU_NOSAN inline void track(Shadow& s, const Place& place, bool write, uintptr_t pc) {
    Fiber& f = *state.cur;
    if (place.shared && s.block != state.block_serial) {
        s = Shadow{};  // left from an earlier block of this module: shared memory starts afresh
        s.block = state.block_serial;
    }
    if (place.shared && !write && !s.written && tables.pending_initcheck.empty()) {
        char where[64];
        std::snprintf(where, sizeof where, " (byte offset %zu)", place.offset);
        tables.pending_initcheck = "initcheck: read of uninitialized shared memory at " + pc_token(pc) + " by " +
                                   thread_name(f) + ": " + place.what() + where +
                                   " was not written by any thread of this block before";
    }
    if (write) s.written = true;
    if (state.atomic_depth > 0) return;
    Access now{who(f), state.block_gen, state.warps[f.warp].syncs, pc};
    if (write) {
        if (s.w.who && !ordered(s.w, f)) race(place, "write-after-write", true, s.w, true, pc);
        if (s.r.who && !ordered(s.r, f)) race(place, "write-after-read", false, s.r, true, pc);
        if (s.r2.who && !ordered(s.r2, f)) race(place, "write-after-read", false, s.r2, true, pc);
        s.w = now;
        s.r = s.r2 = Access{};
    } else {
        if (s.w.who && !ordered(s.w, f)) race(place, "read-after-write", true, s.w, false, pc);
        if (!s.r.who || ordered(s.r, f)) s.r = now;
        else if (s.r.who != now.who) s.r2 = now;
    }
}

// `shift`: log2 of the bytes one shadow entry covers: 4-byte words, or each element of an argument
// of 1- or 2-byte elements (threads writing neighbouring bytes of one word do not race).
EMU_NOSAN inline void check_words(std::vector<Shadow>& shadow, const Place& place, uintptr_t region_lo, uintptr_t a,
                                  unsigned size, bool write, uintptr_t pc, unsigned shift = 2) {
    for (uintptr_t w = (a - region_lo) >> shift; w <= (a + size - 1 - region_lo) >> shift; ++w) {
        if (w >= shadow.size()) return;
        Place at = place;
        at.offset = size_t(w << shift);
        track(shadow[w], at, write, pc);
    }
}

// An integer element is uninitialized when no kernel wrote it (its shadow byte) and it still holds
// the poison (0xFF bytes, -1) that empty() wrote: a write from the host leaves the shadow clear but
// the poison gone. A kernel that writes -1 sets the shadow, so -1 is a legal value.
EMU_NOSAN inline bool unwritten_int(const ArgInfo& g, uintptr_t p, uintptr_t lo) {
    if (g.written[(p - lo) / unsigned(g.elem_size)]) return false;
    for (int b = 0; b < g.elem_size; ++b)
        if (reinterpret_cast<const unsigned char*>(p)[b] != 0xFF) return false;
    return true;
}

EMU_NOSAN inline void mark_written(const ArgInfo& g, uintptr_t a, unsigned size) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(g.base);
    const unsigned e = unsigned(g.elem_size);
    for (uintptr_t i = (a - lo) / e; i <= (a + size - 1 - lo) / e; ++i) g.written[i] = 1;
}

EMU_NOSAN inline void initcheck_global(const ArgInfo& g, uintptr_t a, unsigned size, uintptr_t pc) {
    uintptr_t lo = reinterpret_cast<uintptr_t>(g.base);
    const unsigned e = unsigned(g.elem_size);
    for (uintptr_t p = lo + (a - lo) / e * e; p < a + size; p += e) {
        bool poison = g.written ? unwritten_int(g, p, lo)
                    : e == 4 ? *reinterpret_cast<const uint32_t*>(p) == kPoisonF32
                             : e == 8 && *reinterpret_cast<const uint64_t*>(p) == kPoisonF64;
        if (poison) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "element %" PRIuPTR, (p - lo) / e);
            report("initcheck: read of uninitialized global memory at " + pc_token(pc) + " by " +
                   thread_name(*state.cur) + ": " + buf + " of argument " + g.name +
                   " was allocated by gpuconv's empty() and never written");
        }
    }
}

EMU_NOSAN inline std::string out_of_bounds(bool write, unsigned size, uintptr_t pc, const std::string& what) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "memcheck: invalid %s of %u bytes at ", write ? "write" : "read", size);
    return buf + pc_token(pc) + " by " + thread_name(*state.cur) + ": " + what;
}

EMU_NOSAN inline bool in_image(uintptr_t a) {
    for (int i = 0; i < tables.n_image; ++i)
        if (a >= tables.image_lo[i] && a < tables.image_hi[i]) return true;
    return false;
}

template <class T>
EMU_NOSAN inline bool in_vector(const std::vector<T>& v, uintptr_t a) {
    uintptr_t lo = reinterpret_cast<uintptr_t>(v.data());
    return a >= lo && a < lo + v.size() * sizeof(T);
}

// Every instrumented load and store of the module comes here first.
EMU_NOSAN inline void on_access(uintptr_t a, unsigned size, bool write, uintptr_t pc, bool aligned) {
    Fiber* self = state.cur;
    if (self == nullptr || self->in_shim) return;
    ++self->in_shim;
    const bool checks = state.flags & SANITIZE;
    const uintptr_t stack = reinterpret_cast<uintptr_t>(self->stack);
    if (a >= stack && a < stack + state.stack_bytes) {  // local memory
        --self->in_shim;
        return;
    }
    if (checks && aligned && size > 1 && (a & (size - 1))) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "misaligned address 0x%" PRIxPTR " for a %u-byte ", a, size);
        report(std::string("memcheck: ") + buf + (write ? "write" : "read") + " at " + pc_token(pc) + " by " +
               thread_name(*self) + " (vector loads and stores need addresses aligned to their size)");
    }
    if (checks && a < stack && a + kGuardBytes >= stack) {
        char buf[160];
        std::snprintf(buf, sizeof buf, ": local memory overflows the %zu KiB fiber stack (GPUCONV_EMU_STACK_KB)",
                      state.stack_bytes / 1024);
        report("memcheck: stack overflow at " + pc_token(pc) + " by " + thread_name(*self) + buf);
    }
    for (int i = 0; i < state.n_args; ++i) {
        const ArgInfo& g = state.args[i];
        uintptr_t lo = reinterpret_cast<uintptr_t>(g.base);
        if (a < lo || a + size > lo + g.bytes) continue;
        if (checks) {
            if (!write && (g.is_float || g.written)) initcheck_global(g, a, size, pc);
            if (write && g.written) mark_written(g, a, size);
            auto& shadow = tables.global[size_t(i)];
            const unsigned shift = g.elem_size >= 4 ? 2 : g.elem_size == 2 ? 1 : 0;
            if (shadow.empty() && (g.bytes >> shift) <= kMaxTrackedWords) shadow.resize((g.bytes + (1u << shift) - 1) >> shift);
            check_words(shadow, Place{false, "argument ", g.name, "", 0}, lo, a, size, write, pc, shift);
        }
        if (state.flags & PROFILE) ::emu::prof::record(a - lo, uint64_t(i + 1), size, write, false, pc);
        --self->in_shim;
        return;
    }
    for (size_t i = 0; i < state.shared_decls.size(); ++i) {
        const SharedDecl& d = state.shared_decls[i];
        const uintptr_t lo = reinterpret_cast<uintptr_t>(d.base);
        if (d.launch != state.launch_serial) continue;  // not declared by this kernel
        if (a + size <= lo || a >= lo + d.bytes + kRedzoneBytes) continue;
        if (checks && (a < lo || a + size > lo + d.bytes)) report(out_of_bounds(write, size, pc, describe_address(a, size)));
        if (checks) {
            if (tables.shared_decls.size() <= i) tables.shared_decls.resize(i + 1);
            auto& shadow = tables.shared_decls[i];
            if (shadow.size() < (d.bytes + 3) / 4) shadow.resize((d.bytes + 3) / 4);
            check_words(shadow, Place{true, "shared array '", d.name.c_str(), "'", 0}, lo, a, size, write, pc);
        }
        if (state.flags & PROFILE) ::emu::prof::record(a - lo, 1000 + i, size, write, true, pc);
        --self->in_shim;
        return;
    }
    const uintptr_t s0 = reinterpret_cast<uintptr_t>(__start_emu_shared);
    const uintptr_t s1 = reinterpret_cast<uintptr_t>(__stop_emu_shared);
    if (a >= s0 && a < s1) {  // a __shared__ declaration the loader did not rewrite (file scope)
        if (checks) check_words(tables.shared_static, Place{true, "static shared memory", "", "", 0}, s0, a, size, write, pc);
        if (state.flags & PROFILE) ::emu::prof::record(a - s0, 998, size, write, true, pc);
        --self->in_shim;
        return;
    }
    const uintptr_t d0 = reinterpret_cast<uintptr_t>(state.dyn_shared);
    if (d0 && a >= d0 && a < d0 + state.dyn_shared_bytes + kRedzoneBytes) {
        if (checks && a + size > d0 + state.dyn_shared_bytes)
            report(out_of_bounds(write, size, pc, describe_address(a, size)));
        if (checks) check_words(tables.shared_dynamic, Place{true, "the dynamic shared memory", "", "", 0}, d0, a, size, write, pc);
        if (state.flags & PROFILE) ::emu::prof::record(a - d0, 999, size, write, true, pc);
        --self->in_shim;
        return;
    }
    // Reads of the module's constants, and the emulator state that inlined emulator code reads
    // (threadIdx, the dynamic shared pointer, ...), are not the kernel's business. Anything else in
    // the module's writable data (where the static shared arrays live too) is out of bounds.
    const uintptr_t s_lo = reinterpret_cast<uintptr_t>(&state);
    if ((!write && in_image(a)) || (a >= s_lo && a + size <= s_lo + sizeof(State)) || in_vector(state.fibers, a) ||
        in_vector(state.warps, a)) {
        --self->in_shim;
        return;
    }
    if (checks) report(out_of_bounds(write, size, pc, describe_address(a, size)));
    --self->in_shim;
}

}  // namespace emu::san

namespace emu {
namespace san {
// The argument or shared array an address lies in, for the misaligned-access message.
EMU_NOSAN inline std::string holder_of(uintptr_t a, unsigned size) {
    char buf[64];
    for (int i = 0; i < state.n_args; ++i) {
        const ArgInfo& g = state.args[i];
        const uintptr_t lo = reinterpret_cast<uintptr_t>(g.base);
        if (a < lo || a >= lo + g.bytes) continue;
        std::snprintf(buf, sizeof buf, " (byte offset %" PRIuPTR ")", a - lo);
        return std::string("argument ") + g.name + buf;
    }
    for (const SharedDecl& d : state.shared_decls) {
        const uintptr_t lo = reinterpret_cast<uintptr_t>(d.base);
        if (d.launch != state.launch_serial || a < lo || a >= lo + d.bytes) continue;
        std::snprintf(buf, sizeof buf, " (byte offset %" PRIuPTR ")", a - lo);
        return "shared array '" + d.name + "'" + buf;
    }
    return describe_address(a, size);
}
}  // namespace san

// A copy of a CUDA vector type (keywords.h): one load and one store of its width, each checked
// for alignment and seen by the hooks as a single access (one request in the profile).
EMU_NOSAN void vector_copy(void* dst, const void* src, unsigned size, uintptr_t pc) {
    Fiber* self = state.cur;
    if (self != nullptr && !self->in_shim) {
        for (const void* p : {src, static_cast<const void*>(dst)}) {
            uintptr_t a = reinterpret_cast<uintptr_t>(p);
            if (!(state.flags & SANITIZE) || a % size == 0) continue;
            ++self->in_shim;
            char buf[96];
            std::snprintf(buf, sizeof buf, "misaligned address 0x%" PRIxPTR " for a %u-byte vector ", a, size);
            fail(std::string("memcheck: ") + buf + (p == dst ? "store" : "load") + " at " + pc_token(pc) + " by " +
                 thread_name(*self) + ": " + san::holder_of(a, size) +
                 " (vector loads and stores need addresses aligned to their size)");
        }
        san::on_access(reinterpret_cast<uintptr_t>(src), size, false, pc, false);
        san::on_access(reinterpret_cast<uintptr_t>(dst), size, true, pc, false);
    }
    std::memmove(dst, src, size);  // v = v is legal
}
}  // namespace emu

namespace emu::san {

// A spin loop on a volatile location (waiting for another thread's write) must let the other
// threads run: the fibers are cooperative.
EMU_NOSAN inline void on_volatile_read(uintptr_t pc) {
    Fiber* self = state.cur;
    if (self == nullptr || self->in_shim) return;
    if (self->spin_pc == pc) {
        ++self->spin_count;
    } else {
        self->spin_pc = pc;
        self->spin_count = 1;
    }
    if (self->spin_count < 2) return;
    ++self->in_shim;
    self->state = READY;
    yield_to_scheduler();
    --self->in_shim;
}

}  // namespace emu::san

#define EMU_HOOK(kind, n, write, aligned)                                                                  \
    extern "C" __attribute__((visibility("hidden"), noinline)) EMU_NOSAN void __tsan_##kind##n(void* p) { \
        ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), n, write,                                    \
                              reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1, aligned);       \
    }
#define EMU_HOOKS(n)                      \
    EMU_HOOK(read, n, false, true)        \
    EMU_HOOK(write, n, true, true)        \
    EMU_HOOK(unaligned_read, n, false, false) \
    EMU_HOOK(unaligned_write, n, true, false)
EMU_HOOK(read, 1, false, true)
EMU_HOOK(write, 1, true, true)
EMU_HOOKS(2)
EMU_HOOKS(4)
EMU_HOOKS(8)
EMU_HOOKS(16)
#define EMU_VOLATILE_HOOKS(n)                                                                                  \
    extern "C" __attribute__((visibility("hidden"), noinline)) EMU_NOSAN void __tsan_volatile_read##n(void* p) { \
        uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1;                          \
        ::emu::AtomicScope communication;                                                                      \
        ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), n, false, pc, true);                             \
        ::emu::san::on_volatile_read(pc);                                                                      \
    }                                                                                                          \
    extern "C" __attribute__((visibility("hidden"), noinline)) EMU_NOSAN void __tsan_volatile_write##n(void* p) { \
        ::emu::AtomicScope communication;                                                                      \
        ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), n, true,                                         \
                              reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1, true);            \
    }
EMU_VOLATILE_HOOKS(1)
EMU_VOLATILE_HOOKS(2)
EMU_VOLATILE_HOOKS(4)
EMU_VOLATILE_HOOKS(8)
EMU_VOLATILE_HOOKS(16)
#undef EMU_HOOK
#undef EMU_HOOKS
#undef EMU_VOLATILE_HOOKS
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_read_range(void* p, unsigned long n) {
    ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), unsigned(n), false,
                          reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1, false);
}
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_write_range(void* p, unsigned long n) {
    ::emu::san::on_access(reinterpret_cast<uintptr_t>(p), unsigned(n), true,
                          reinterpret_cast<uintptr_t>(__builtin_return_address(0)) - 1, false);
}
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_init() {}
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_func_entry(void*) {}
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_func_exit() {}
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_atomic_thread_fence(int) {}
extern "C" __attribute__((visibility("hidden"))) EMU_NOSAN void __tsan_atomic_signal_fence(int) {}
