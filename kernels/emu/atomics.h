// atomics.h — CUDA atomics (part of cuda_emu.h). Fibers never switch inside one (not even by
// preemption), so these are atomic among the block's threads; blocks run one after another. In sanitizer builds their
// accesses are bounds-checked like any other but never reported as races.
#pragma once

namespace emu {
// The signal fences keep the update between the depth changes, where the watchdog's preemption
// (signals.h) sees it and leaves the thread alone.
struct AtomicScope {
    EMU_NOSAN AtomicScope() {
        ++state.atomic_depth;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    EMU_NOSAN ~AtomicScope() {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        --state.atomic_depth;
    }
};
}  // namespace emu

template <class T>
inline T emu_atomic_update(T* address, T (*op)(T, T), T val) {
    ::emu::AtomicScope atomic;
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
    ::emu::AtomicScope atomic;
    unsigned int old = *address;
    *address = old >= val ? 0u : old + 1u;
    return old;
}
template <class T>
inline T emu_atomic_cas(T* address, T compare, T val) {
    ::emu::AtomicScope atomic;
    T old = *address;
    if (old == compare) *address = val;
    return old;
}
inline int atomicCAS(int* a, int c, int v) { return emu_atomic_cas(a, c, v); }
inline unsigned int atomicCAS(unsigned int* a, unsigned int c, unsigned int v) { return emu_atomic_cas(a, c, v); }
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c, unsigned long long v) {
    return emu_atomic_cas(a, c, v);
}
