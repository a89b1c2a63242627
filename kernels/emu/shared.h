// shared.h — static __shared__ arrays: registration, poisoning and the per-kernel limit (part of
// cuda_emu.h). Dynamic shared memory is a buffer of the launch (launch.h).
#pragma once

namespace emu {

template <class T>
EMU_NOSAN inline T& declare_shared(Redzoned<T>& storage, int& id, const char* name, const char* function) {
    ShimScope shim;
    if (id < 0) {
        id = int(state.shared_decls.size());
        state.shared_decls.push_back(
            SharedDecl{const_cast<char*>(reinterpret_cast<const volatile char*>(&storage.value)), sizeof(T), std::string(function) + "::" + name});
    }
    SharedDecl& d = state.shared_decls[size_t(id)];
    if (d.launch != state.launch_serial) {
        d.launch = state.launch_serial;
        state.static_shared_used += d.bytes;
        if (state.static_shared_used > state.static_shared_limit) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "invalid launch: %llu bytes of static shared memory (with '%s') and %zu "
                          "bytes of dynamic exceed the %zu bytes a block may use", state.static_shared_used,
                          d.name.c_str(), state.dyn_shared_bytes, kMaxSharedBytes);
            fail(buf);
        }
    }
    if (d.poisoned_block != state.block_serial) {
        std::memset(d.base, 0xFF, d.bytes);  // a read of shared memory no thread wrote shows up in results
        d.poisoned_block = state.block_serial;
    }
    return storage.value;
}

}  // namespace emu
