// cuda_emu.h — runs our CUDA kernels on the CPU, for tests. One header per concern, included here.
//
// The emulated loader (gpuconv/backend/emulated/loader.py) compiles a kernels/*.cu file with g++
// as C++20, with this header force-included (-include) and one generated launch wrapper per
// `extern "C" __global__` entry point appended. Python calls the wrapper through ctypes with the
// launch configuration and an array of pointers to the arguments.
//
// Execution model (DESIGN.md §4):
// - A launch runs its blocks one after another on the calling OS thread; the Python side holds a
//   lock for all launches: the scheduler state is per module (state.h), the signal handlers of a
//   launch are per process (signals.h).
// - A block's threads run as plain calls, one after another, inside a "runner" fiber (fibers.h).
//   When a thread waits at a barrier (__syncthreads, or a warp-level sync: shuffles, ballots,
//   __syncwarp; sync.h), it keeps the runner's stack as its own fiber and a new runner carries on
//   with the next thread. So a kernel without barriers costs one function call per thread, and
//   only threads that stop at a barrier hold a stack (from a pool, reused by every block).
// - Barriers count arrivals; exited threads count as arrived at __syncthreads, unless they left a
//   loop of barriers early (synccheck, launch.h). Live threads that wait at __syncthreads on
//   different source lines, or at a block barrier while others wait in a warp sync, are reported
//   as an error naming file:line. A lane named in a warp-sync mask that has exited is an error too.
// - Static __shared__ variables live in the ELF section "emu_shared"; dynamic shared memory
//   (extern __shared__, which the loader rewrites to EMU_EXTERN_SHARED) in a buffer sized by the
//   launch's shared_mem. Both are poisoned with 0xFF bytes (NaN, -1) before each block, so a read
//   of shared memory that no thread wrote shows up in the results.
// - The schedule (forward, reverse, shuffled) orders the runnable threads between barriers. A
//   kernel whose results depend on it has a race.
// - Crashes (SIGSEGV, SIGBUS) and launches that stop making progress become errors that name the
//   thread (signals.h).
// - The sanitizer build (-DEMU_SANITIZER, instrumented by -fsanitize=thread with our own hooks,
//   plus trapping -fsanitize=undefined checks) adds memcheck, racecheck and initcheck
//   (sanitizer.h), undefined-behaviour reports (signals.h) and the access profile (profile.h).
#pragma once

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <math.h>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "keywords.h"
#include "state.h"
#include "intrinsics.h"
#include "fibers.h"
#include "report.h"
#include "shared.h"
#include "sync.h"
#include "atomics.h"
#ifdef EMU_SANITIZER
#include "profile.h"
#include "sanitizer.h"
#endif
#ifdef EMU_ASAN
#include "asan.h"
#endif
#include "signals.h"
#include "launch.h"
#include "wmma.h"
