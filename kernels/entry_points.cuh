// entry_points.cuh — the extern "C" entry points of kernels/*.cu, generated from one line per kernel.
//
// A kernel is a templated __device__ function; the launchers find it by an unmangled name per
// element type and index width (<op>_<direction>[_v<N>][_i32|_i64]_<f32|f64>, DESIGN.md section 3).
// Instead of a hand-written wrapper per name, a kernel file says once, at its end:
//
//   GC_ENTRY_F(avg_pool2d_forward, (const T* __restrict__ x, T* __restrict__ y, long long planes, ...),
//              avg_pool2d_forward<T>(x, y, planes, ...))
//
// (name, parameter list, call), and the macro stamps out avg_pool2d_forward_f32 and _f64. The
// parameter list and the call are written with T (the element type) and I (the index type); each
// generated function is defined in the namespace gc_entry::<suffix>, whose typedefs give T and I
// their meaning for that suffix, and made visible at global scope by a using-declaration (the
// emulator's launchers take its address there). extern "C" gives the symbol the plain name
// whatever the namespace, so the exported names are exactly those of hand-written wrappers.
//
// Why macros, and not CuPy's name_expressions over templates: those export mangled names that only
// the NVRTC program which compiled them can map back (nvrtcGetLoweredName), while the wheel's prebuilt
// CUBINs, the kernel cache and the emulator (dlsym) find entry points by their plain names; macros
// work the same under NVRTC, nvcc and g++, and the launchers keep their names. Nothing hides an entry
// point: gpuconv/backend/entry_points.py reads this
// file's suffix namespaces and GC_ENTRY* definitions and expands the invocations in a kernel file
// into the extern "C" signatures the argument checker (signature.py) parses; tests/test_nvrtc.py
// checks that the symbols of every compiled file are exactly that list. So the macros below keep
// a form that reader understands: a family macro's body is a list of invocations of other GC_ENTRY
// macros whose arguments are its own parameter names, a suffix, or __VA_ARGS__; and each suffix's
// namespace is one line of typedefs.
//
//   macro                                     entry points                      T; I
//   GC_ENTRY_F(name, params, call...)         name_f32, name_f64                float, double
//   GC_ENTRY_F_I32(name, params, call...)     name_f32, name_f64                I = long long (int64 indices)
//                                             name_i32_f32, name_i32_f64        I = int (int32 indices)
//   GC_ENTRY_I_F(name, params, call...)       name_i32_f32 ... name_i64_f64     I = int / long long (index width)
//   GC_ENTRY_I(name, params, call...)         name_i32, name_i64                I only (no element type)
//   GC_ENTRY(suffix, name, params, call...)   name_<suffix>: a single instance (e.g. a float32-only kernel)
//   GC_ENTRY_BOUNDED, GC_ENTRY_F_BOUNDED,     the same with __launch_bounds__(threads[, blocks]) from a
//   GC_ENTRY_I_F_BOUNDED, GC_ENTRY_I_BOUNDED  first argument (threads[, blocks])
//
// The call is the wrapper's whole body (statements without the last ';'); it may contain commas. Invoke
// the macros at global scope, after the device functions they call. A new kernel is one more line;
// a new suffix is one more namespace below (entry_points.py reads it from there).
#pragma once

namespace gc_entry {
namespace f32 { typedef float T; typedef long long I; }
namespace f64 { typedef double T; typedef long long I; }
namespace i32_f32 { typedef float T; typedef int I; }
namespace i32_f64 { typedef double T; typedef int I; }
namespace i64_f32 { typedef float T; typedef long long I; }
namespace i64_f64 { typedef double T; typedef long long I; }
namespace i32 { typedef int I; }
namespace i64 { typedef long long I; }
}  // namespace gc_entry

#define GC_ENTRY(suffix, name, params, ...)                                 \
    namespace gc_entry {                                                    \
    namespace suffix {                                                      \
    extern "C" __global__ void name##_##suffix params { __VA_ARGS__; }      \
    }                                                                       \
    }                                                                       \
    using gc_entry::suffix::name##_##suffix;

#define GC_ENTRY_BOUNDED(bounds, suffix, name, params, ...)                                   \
    namespace gc_entry {                                                                      \
    namespace suffix {                                                                        \
    extern "C" __global__ void __launch_bounds__ bounds name##_##suffix params { __VA_ARGS__; } \
    }                                                                                         \
    }                                                                                         \
    using gc_entry::suffix::name##_##suffix;

#define GC_ENTRY_F(name, params, ...)        \
    GC_ENTRY(f32, name, params, __VA_ARGS__) \
    GC_ENTRY(f64, name, params, __VA_ARGS__)

#define GC_ENTRY_F_BOUNDED(bounds, name, params, ...)        \
    GC_ENTRY_BOUNDED(bounds, f32, name, params, __VA_ARGS__) \
    GC_ENTRY_BOUNDED(bounds, f64, name, params, __VA_ARGS__)

#define GC_ENTRY_F_I32(name, params, ...)        \
    GC_ENTRY(f32, name, params, __VA_ARGS__)     \
    GC_ENTRY(f64, name, params, __VA_ARGS__)     \
    GC_ENTRY(i32_f32, name, params, __VA_ARGS__) \
    GC_ENTRY(i32_f64, name, params, __VA_ARGS__)

#define GC_ENTRY_I_F(name, params, ...)          \
    GC_ENTRY(i32_f32, name, params, __VA_ARGS__) \
    GC_ENTRY(i32_f64, name, params, __VA_ARGS__) \
    GC_ENTRY(i64_f32, name, params, __VA_ARGS__) \
    GC_ENTRY(i64_f64, name, params, __VA_ARGS__)

#define GC_ENTRY_I_F_BOUNDED(bounds, name, params, ...)          \
    GC_ENTRY_BOUNDED(bounds, i32_f32, name, params, __VA_ARGS__) \
    GC_ENTRY_BOUNDED(bounds, i32_f64, name, params, __VA_ARGS__) \
    GC_ENTRY_BOUNDED(bounds, i64_f32, name, params, __VA_ARGS__) \
    GC_ENTRY_BOUNDED(bounds, i64_f64, name, params, __VA_ARGS__)

#define GC_ENTRY_I(name, params, ...)        \
    GC_ENTRY(i32, name, params, __VA_ARGS__) \
    GC_ENTRY(i64, name, params, __VA_ARGS__)

#define GC_ENTRY_I_BOUNDED(bounds, name, params, ...)        \
    GC_ENTRY_BOUNDED(bounds, i32, name, params, __VA_ARGS__) \
    GC_ENTRY_BOUNDED(bounds, i64, name, params, __VA_ARGS__)
