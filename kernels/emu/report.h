// report.h — naming things in error messages: code addresses, blocks, kernel arguments and
// shared arrays (part of cuda_emu.h).
#pragma once

#include <cinttypes>
#include <cstdio>
#include <dlfcn.h>
#include <string>

extern "C" char __start_emu_shared[];
extern "C" char __stop_emu_shared[];

namespace emu {

EMU_NOSAN inline uintptr_t module_base() {
    static uintptr_t base = [] {
        Dl_info info{};
        dladdr(reinterpret_cast<void*>(&module_base), &info);
        return reinterpret_cast<uintptr_t>(info.dli_fbase);
    }();
    return base;
}

// The loader replaces "@{pc:<offset>}" with file:line from the module's line table.
EMU_NOSAN inline std::string pc_token(uintptr_t pc) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "@{pc:%" PRIxPTR "}", pc - module_base());
    return buf;
}

// Blocks run in x, then y, then z order; block_serial numbers them across launches.
struct BlockNames {
    uint64_t first_serial = 0;
    uint3 of(uint64_t serial) const {
        uint64_t lin = serial - first_serial;
        unsigned gx = state.grid_dim.x, gy = state.grid_dim.y;
        return uint3{unsigned(lin % gx), unsigned((lin / gx) % gy), unsigned(lin / (uint64_t(gx) * gy))};
    }
};
static BlockNames block_names;

inline std::string thread_in_block(unsigned index, uint3 block) {
    const dim3 b = state.block_dim;
    char buf[96];
    std::snprintf(buf, sizeof buf, "thread (%u,%u,%u) of block (%u,%u,%u)", index % b.x, (index / b.x) % b.y,
                  index / (b.x * b.y), block.x, block.y, block.z);
    return buf;
}

// Where an address lies relative to the kernel's arguments and shared memory, for a message
// about an access that is in none of them.
inline std::string describe_address(uintptr_t a, unsigned size) {
    std::string best;
    uintptr_t best_distance = UINTPTR_MAX;
    auto consider = [&](uintptr_t lo, uintptr_t hi, const std::string& what) {
        char buf[320];
        if (a >= hi && a - hi < best_distance) {
            best_distance = a - hi;
            std::snprintf(buf, sizeof buf, "%" PRIuPTR " bytes past the end of %s (%" PRIuPTR " bytes)", a - hi,
                          what.c_str(), hi - lo);
            best = buf;
        } else if (a + size <= lo && lo - a < best_distance) {
            best_distance = lo - a;
            std::snprintf(buf, sizeof buf, "%" PRIuPTR " bytes before the start of %s (%" PRIuPTR " bytes)", lo - a,
                          what.c_str(), hi - lo);
            best = buf;
        } else if (a < hi && a + size > hi) {
            best_distance = 0;
            std::snprintf(buf, sizeof buf, "an access that runs %" PRIuPTR " bytes past the end of %s (%" PRIuPTR
                          " bytes)", a + size - hi, what.c_str(), hi - lo);
            best = buf;
        }
    };
    for (int i = 0; i < state.n_args; ++i) {
        const ArgInfo& g = state.args[i];
        uintptr_t lo = reinterpret_cast<uintptr_t>(g.base);
        consider(lo, lo + g.bytes, std::string("argument ") + g.name);
    }
    for (const SharedDecl& d : state.shared_decls) {
        uintptr_t lo = reinterpret_cast<uintptr_t>(d.base);
        if (d.launch == state.launch_serial) consider(lo, lo + d.bytes, "shared array '" + d.name + "'");
    }
    if (state.dyn_shared_bytes) {
        uintptr_t lo = reinterpret_cast<uintptr_t>(state.dyn_shared);
        consider(lo, lo + state.dyn_shared_bytes, "the dynamic shared memory");
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "address 0x%" PRIxPTR " ", a);
    if (best.empty() || best_distance > (uintptr_t(1) << 40)) return std::string(buf) + "is in no kernel argument or shared array";
    return std::string(buf) + "is " + best;
}

}  // namespace emu
