// profile.h — the memory-access profile, a GPU-free proxy for a kernel's memory efficiency
// (part of cuda_emu.h; only in the instrumented build, fed by sanitizer.h's hooks).
//
// A warp-level request is what one instruction does for the 32 lanes of a warp: the k-th access
// that lane L of warp W makes at code address pc belongs to request (W, pc, k). Lanes run one after
// another here, so requests are collected per block and folded into counters when the block
// reaches a barrier or ends: global requests count the 32-byte sectors they touch (ideal: the
// distinct bytes / 32, i.e. 4 per 32-lane float request); shared requests count wavefronts, the
// most distinct 4-byte words any of the 32 banks must serve (ideal: distinct bytes / 128), per
// phase: as on the GPU, 64-bit accesses are served a half-warp and 128-bit ones a quarter-warp at
// a time. A copy of a CUDA vector type is one access of its width (keywords.h), so a 32-lane
// float4 request ideally touches 16 sectors, or 4 wavefronts.
#pragma once

#include <algorithm>
#include <tuple>
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
struct Lane {
    uintptr_t address;
    unsigned size, lane;
    bool operator<(const Lane& o) const { return address < o.address || (address == o.address && size < o.size); }
};
struct Request {
    int kind = 0;
    std::vector<Lane> lanes;  // each lane's access
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
    // A vector copy makes a load and a store at one call site: keep them apart.
    const uintptr_t site = pc * 2 + write;
    unsigned visit = ++f.site_visits[site];
    Request& r = profile.pending[Key{site, f.warp, visit}];
    r.kind = shared ? (write ? SHARED_STORE : SHARED_LOAD) : (write ? GLOBAL_STORE : GLOBAL_LOAD);
    r.lanes.push_back(Lane{(region << 40) + offset, size, f.lane});
}

// Shared memory: wavefronts (the most distinct words one bank serves) and the ideal, summed over
// the phases the hardware splits the request into by its access width.
EMU_NOSAN inline std::pair<unsigned long long, unsigned long long> wavefronts(const std::vector<Lane>& lanes) {
    unsigned width = 0;
    for (const Lane& l : lanes) width = std::max(width, l.size);
    const unsigned lanes_per_phase = width >= 16 ? 8 : width >= 8 ? 16 : 32;
    unsigned long long total = 0, ideal = 0;
    for (unsigned phase = 0; phase < 32 / lanes_per_phase; ++phase) {
        std::vector<uintptr_t> words;
        for (const Lane& l : lanes) {
            if (l.lane / lanes_per_phase != phase) continue;
            for (uintptr_t w = l.address >> 2; w <= (l.address + l.size - 1) >> 2; ++w) words.push_back(w);
        }
        if (words.empty()) continue;
        std::sort(words.begin(), words.end());
        words.erase(std::unique(words.begin(), words.end()), words.end());
        unsigned per_bank[32] = {};
        for (uintptr_t w : words) ++per_bank[w % 32];
        total += *std::max_element(per_bank, per_bank + 32);
        ideal += (words.size() * 4 + 127) / 128;
    }
    return {total, ideal};
}

EMU_NOSAN inline void fold(const Request& r) {
    std::vector<Lane> lanes = r.lanes;
    std::sort(lanes.begin(), lanes.end());
    unsigned long long bytes = 0, distinct = 0;
    for (const Lane& l : r.lanes) bytes += l.size;
    unsigned long long transactions = 0, ideal = 0;
    if (r.kind == SHARED_LOAD || r.kind == SHARED_STORE) {
        std::tie(transactions, ideal) = wavefronts(r.lanes);
    } else {
        std::vector<uintptr_t> sectors;
        uintptr_t covered = 0;  // distinct bytes: lanes sorted by address, overlaps counted once
        for (const Lane& l : lanes) {
            const uintptr_t end = l.address + l.size;
            if (end > covered) distinct += end - std::max(covered, l.address);
            covered = std::max(covered, end);
            for (uintptr_t u = l.address >> 5; u <= (end - 1) >> 5; ++u) sectors.push_back(u);
        }
        std::sort(sectors.begin(), sectors.end());
        sectors.erase(std::unique(sectors.begin(), sectors.end()), sectors.end());
        transactions = sectors.size();
        ideal = (distinct + 31) / 32;
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
