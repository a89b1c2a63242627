// asan.h — (AddressSanitizer build, -DEMU_ASAN) reports of ASan and UBSan name the CUDA thread and
// block (part of cuda_emu.h).
//
// The loader's ASan build compiles the module with -fsanitize=address,undefined (not recovering:
// the first report ends the process) and runs only in a process that preloads the ASan runtime
// (gpuconv.backend.emulated.run_under_asan). A sanitizer prints its report with file:line and
// then calls the death callback: ours adds the thread and block the emulator was running. UBSan's
// runtime is a library of its own with its own callback, set through its handle.
#pragma once

#include <dlfcn.h>

extern "C" void __sanitizer_set_death_callback(void (*callback)(void));

namespace emu::asan {

inline void on_death() {
    const Fiber* f = state.cur;
    if (f == nullptr) return;  // not in a kernel thread: nothing to add
    std::fprintf(stderr,
                 "gpuconv emulator: the report above comes from CUDA thread (%u,%u,%u) of block (%u,%u,%u) "
                 "(block dimensions (%u,%u,%u), grid (%u,%u,%u))\n",
                 f->tid.x, f->tid.y, f->tid.z, state.block_idx.x, state.block_idx.y, state.block_idx.z,
                 state.block_dim.x, state.block_dim.y, state.block_dim.z, state.grid_dim.x, state.grid_dim.y,
                 state.grid_dim.z);
}

// Set for the duration of a launch of this module, cleared after it.
inline void set_death_callback(void (*callback)(void)) {
    __sanitizer_set_death_callback(callback);  // the preloaded ASan runtime's
    if (void* ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD)) {
        using Setter = void (*)(void (*)(void));
        if (auto set = reinterpret_cast<Setter>(dlsym(ubsan, "__sanitizer_set_death_callback"))) set(callback);
        dlclose(ubsan);
    }
}

}  // namespace emu::asan
