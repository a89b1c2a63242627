// sync.h — __syncthreads and the warp-level syncs (shuffles, votes, __syncwarp) (part of cuda_emu.h).
//
// Block barriers count arrivals; exited threads count as arrived (launch.h checks, when a
// barrier is released, that no thread left a loop of barriers early). Warp syncs wait per mask:
// lanes with disjoint masks may wait at the same time (CUDA allows it), overlapping masks may not.
#pragma once

#include <cstring>
#include <type_traits>

namespace emu {

inline int block_barrier(const char* file, int line, int predicate) {
    ShimScope shim;
    Fiber* self = state.cur;
    unsigned parity = state.block_gen & 1;
    state.block_acc[parity] += predicate ? 1 : 0;
    self->state = AT_BLOCK_BARRIER;
    self->site_file = file;
    self->site_line = line;
    state.progress = state.progress + 1;
    yield_to_scheduler();
    return state.block_acc[parity];
}

inline WarpGroup* group_of(Warp& w, unsigned lane) {
    for (unsigned g = 0; g < w.n_groups; ++g)
        if ((w.groups[g].arrived >> lane) & 1u) return &w.groups[g];
    return nullptr;
}

// Publishes this lane's value and predicate, waits until every existing lane named in `mask` has
// arrived, and returns with w.delivered[lane] / w.ballot[lane] filled in for it.
inline void warp_sync(unsigned mask, uint64_t value, int src, int predicate, const char* file, int line) {
    ShimScope shim;  // (wmma calls it directly) no preemption while the warp's groups change: signals.h
    Fiber* self = state.cur;
    Warp& w = state.warps[self->warp];
    const unsigned lane = self->lane;
    if (!((mask >> lane) & 1u)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "warp sync mask 0x%08x does not name the calling lane %u", mask, lane);
        fail(site(file, line) + ": " + thread_name(*self) + ": " + buf);
    }
    if (src >= 0 && unsigned(src) != lane && (!((mask >> src) & 1u) || !((w.existing >> src) & 1u))) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "shuffle reads lane %d, which is not in mask 0x%08x or does not exist", src, mask);
        fail(site(file, line) + ": " + thread_name(*self) + ": " + buf);
    }
    WarpGroup* group = nullptr;
    for (unsigned g = 0; g < w.n_groups; ++g) {
        WarpGroup& other = w.groups[g];
        if (other.mask == mask) {
            group = &other;
        } else if (other.mask & mask) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "warp sync with mask 0x%08x while lanes already wait with mask 0x%08x at ",
                          mask, other.mask);
            fail(site(file, line) + ": " + thread_name(*self) + ": " + buf + site(other.file, other.line));
        }
    }
    if (group == nullptr) {
        group = &w.groups[w.n_groups++];
        *group = WarpGroup{mask, 0, file, line};
    }
    group->arrived |= 1u << lane;
    w.slot[lane] = value;
    w.src[lane] = src;
    w.pred[lane] = predicate ? 1 : 0;
    state.progress = state.progress + 1;
    const unsigned required = mask & w.existing;
    const unsigned base = self->warp * 32;
    for (unsigned l = 0; l < 32; ++l) {
        if (((required >> l) & 1u) && state.fibers[base + l].state == EXITED) {
            fail(site(file, line) + ": warp sync names lane " + std::to_string(l) + ", which has exited (" +
                 thread_name(state.fibers[base + l]) + ")");
        }
    }
    if ((group->arrived & required) == required) {
        unsigned ballot = 0;
        for (unsigned l = 0; l < 32; ++l)
            if ((required >> l) & 1u) ballot |= unsigned(w.pred[l]) << l;
        for (unsigned l = 0; l < 32; ++l) {
            if (!((group->arrived >> l) & 1u)) continue;
            int s = w.src[l];
            w.delivered[l] = (s < 0 || unsigned(s) == l) ? w.slot[l] : w.slot[s];
            w.ballot[l] = ballot;
            if (l != lane) state.fibers[base + l].state = READY;
        }
        *group = w.groups[--w.n_groups];
        ++w.syncs;
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

// Each lane publishes `value`, waits for the lanes of `mask`, then gets lane `src`'s value
// (its own when src is -1, the CUDA rule for sources outside the segment).
template <class T>
inline T warp_exchange(unsigned mask, T value, int src, const char* file, int line) {
    ShimScope shim;
    warp_sync(mask, to_bits(value), src, 0, file, line);
    return from_bits<T>(state.warps[state.cur->warp].delivered[state.cur->lane]);
}

inline unsigned warp_vote(unsigned mask, int predicate, const char* file, int line) {
    ShimScope shim;
    warp_sync(mask, 0, -1, predicate, file, line);
    return state.warps[state.cur->warp].ballot[state.cur->lane];
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
    ShimScope shim;
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

inline unsigned syncwarp_mask() { return 0xffffffffu; }
inline unsigned syncwarp_mask(unsigned m) { return m; }
inline int shfl_width() { return 32; }
inline int shfl_width(int w) { return w; }

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

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
