// profile.h — the memory-access profile, a GPU-free proxy for a kernel's memory efficiency
// (part of cuda_emu.h; only in the instrumented build, fed by sanitizer.h's hooks).
//
// A warp-level request is what one instruction does for the 32 lanes of a warp: the k-th access
// that lane L of warp W makes at code address pc belongs to request (W, pc, k). Lanes run one after
// another here, so requests are collected per block and folded into counters when the block
// reaches a barrier or ends: global requests count the 32-byte sectors they touch (ideal: the
// distinct bytes / 32, i.e. 4 per 32-lane float request); shared requests count wavefronts, the
// most distinct 4-byte words any of the 32 banks must serve (ideal: distinct bytes / 128).
#pragma once

#include <algorithm>
#include <unordered_map>
#include <vector>

namespace emu::prof {

enum Kind : int { GLOBAL_LOAD = 0, GLOBAL_STORE = 1, SHARED_LOAD = 2, SHARED_STORE = 3, KINDS = 4 };
// Per kind: requests, transactions (sectors or wavefronts), ideal transactions, bytes the lanes asked for.
enum Field : int { REQUESTS = 0, TRANSACTIONS = 1, IDEAL = 2, BYTES = 3, FIELDS = 4 };

struct Key {
    uintptr_t pc;
    unsigned warp, visit;
    bool operator==(const Key& o) const { return pc == o.pc && warp == o.warp && visit == o.visit; }
};
struct KeyHash {
    size_t operator()(const Key& k) const { return k.pc * 0x9E3779B97F4A7C15ull ^ (uint64_t(k.warp) << 32 | k.visit); }
};
struct Request {
    int kind = 0;
    std::vector<std::pair<uintptr_t, unsigned>> lanes;  // address and size of each lane's access
};

struct Profile {
    std::unordered_map<Key, Request, KeyHash> pending;
    unsigned long long counters[KINDS][FIELDS] = {};
};
static Profile profile;

// `offset` is from the start of the argument or shared array: the profile assumes each starts
// 256-byte aligned, as cudaMalloc's allocations do (NumPy's are only 16-byte aligned). `region`
// keeps offsets in different arrays apart.
EMU_NOSAN inline void record(uintptr_t offset, uint64_t region, unsigned size, bool write, bool shared, uintptr_t pc) {
    Fiber& f = *state.cur;
    unsigned visit = ++f.site_visits[pc];
    Request& r = profile.pending[Key{pc, f.warp, visit}];
    r.kind = shared ? (write ? SHARED_STORE : SHARED_LOAD) : (write ? GLOBAL_STORE : GLOBAL_LOAD);
    r.lanes.emplace_back((region << 40) + offset, size);
}

EMU_NOSAN inline void fold(const Request& r) {
    std::vector<std::pair<uintptr_t, unsigned>> lanes = r.lanes;
    std::sort(lanes.begin(), lanes.end());
    lanes.erase(std::unique(lanes.begin(), lanes.end()), lanes.end());
    unsigned long long bytes = 0, distinct = 0;
    for (const auto& l : r.lanes) bytes += l.second;
    std::vector<uintptr_t> units;  // sectors (global) or 4-byte words (shared)
    const unsigned shift = (r.kind == SHARED_LOAD || r.kind == SHARED_STORE) ? 2 : 5;
    for (const auto& [a, n] : lanes) {
        distinct += n;
        for (uintptr_t u = a >> shift; u <= (a + n - 1) >> shift; ++u) units.push_back(u);
    }
    std::sort(units.begin(), units.end());
    units.erase(std::unique(units.begin(), units.end()), units.end());
    unsigned long long transactions = units.size(), ideal = (distinct + 31) / 32;
    if (shift == 2) {
        unsigned per_bank[32] = {};
        for (uintptr_t w : units) ++per_bank[w % 32];
        transactions = *std::max_element(per_bank, per_bank + 32);
        ideal = (units.size() * 4 + 127) / 128;
    }
    unsigned long long* c = profile.counters[r.kind];
    c[REQUESTS] += 1;
    c[TRANSACTIONS] += transactions;
    c[IDEAL] += ideal;
    c[BYTES] += bytes;
}

// At a barrier every access before it is complete: fold them and free the memory.
EMU_NOSAN inline void flush() {
    for (const auto& [key, request] : profile.pending) fold(request);
    profile.pending.clear();
}

}  // namespace emu::prof

extern "C" __attribute__((visibility("default"))) EMU_NOSAN void emu_profile_take(unsigned long long* out) {
    std::memcpy(out, emu::prof::profile.counters, sizeof emu::prof::profile.counters);
    std::memset(emu::prof::profile.counters, 0, sizeof emu::prof::profile.counters);
}
