// im2col.cu — im2col and its adjoint col2im, for convolution by GEMM and for F.unfold / F.fold.
//
// Column layout: element (n, row, l) of the columns, row = (c*KH + i)*KW + j and
// l = oh*OW + ow, lives at row*row_stride + n*n_stride + l. The launcher picks the strides:
//   "nkl" (N, C*KH*KW, OH*OW), PyTorch's unfold: row_stride = OH*OW, n_stride = C*KH*KW*OH*OW
//   "knl" (C*KH*KW, N*OH*OW), one 2-D GEMM for a whole batch: row_stride = N*OH*OW, n_stride = OH*OW
// Padding is given as (top, left) together with the output size, so asymmetric padding (PyTorch's
// "same" for even kernels) needs nothing more. Element type T = float or double; NCHW input,
// C-contiguous arrays. No #defines are injected. The extern "C" entry points are stamped out from
// one line per kernel by entry_points.cuh's GC_ENTRY_F (v1) and GC_ENTRY_I_F (v2-v4; the offset type
// I is int for _i32, long long for _i64).
//
// Version 1 (the reference and benchmark baseline; one thread per element, 64-bit offsets):
//   im2col_forward_{f32,f64}   x -> cols: one thread per element of cols (grid-stride), several
//                              64-bit divisions per element (measured on an H100 at 9-18% of a
//                              device-to-device copy: index arithmetic bound).
//   im2col_backward_{f32,f64}  cols -> dx (col2im): a gather, one thread per element of dx, looping
//                              over the KH*KW taps that can reach it. No atomics, deterministic.
// Version 2 (what the launcher runs), each in an _i32 variant (every offset in int: the launcher
// checks that the arrays have fewer than 2^31 elements) and an _i64 variant (offsets in long long):
//   im2col_forward_v2_{i32,i64}_{f32,f64}
//       block (BX, BY): threadIdx.x walks the output pixels l of a plane, threadIdx.y / blockIdx.y
//       the (n, c) planes. A thread computes oy = l / OW once (its only per-element division;
//       n = plane / C is the same for the block's row of threads) and writes its pixel for all
//       KH*KW taps of the channel: KH*KW coalesced writes (consecutive l across the warp) from one
//       index computation. BX is the plane size rounded up to a warp (at most 256), so 7x7 planes
//       do not leave most of a 256-thread block idle.
//   im2col_forward_v3_{i32,i64}_{f32,f64}
//       v2 with 16-byte stores: a thread writes kLanes = 4 (float) or 2 (double) consecutive pixels
//       of one output row per tap as one float4 / double2. It needs OW, both column strides and
//       the columns' address to be multiples of kLanes elements (16 bytes), so that every vector
//       is aligned and inside one output row. The launcher runs it only where its loads are
//       vectors too, at stride 1 (below), and v2 elsewhere: by the emulator's access profile v3
//       with scalar loads touches 1.5-3.8x v2's sectors (gpuconv/backend/cuda/im2col.py).
//       Loads: with scalar loads the k-th load of neighbouring lanes is kLanes*sw pixels apart, so
//       a warp's request spans kLanes times the bytes it uses (the emulator's access profile: 26%
//       load efficiency, 14.5 sectors per request). Where the launcher sets `vector_loads` (the
//       horizontal stride is 1 or 2, W % kLanes == 0 and x is 16-byte aligned), a thread reads
//       its kLanes pixels of a tap from the 2 (stride 1) or up to 3 (stride 2) aligned 16-byte
//       vectors around them, neighbouring lanes reading neighbouring vectors (coalesced), and
//       picks the pixels with a shift that is the same for the whole launch (no divergence, no
//       local memory). Profile at the emu_profile shape (stride 1): 86% load efficiency and
//       2.3x fewer sectors than the scalar loads. The second vector is mostly the neighbour
//       lane's first (an L1 hit on a GPU): a warp shuffle could replace it, not done.
//   im2col_backward_v2_{i32,i64}_{f32,f64}   (col2im)
//       same grid over the pixels of dx. A thread divides three times in 32 bits, once per thread
//       and none in the tap loops: y = p / W, and (y + pt, x + pl) by the strides; the taps then
//       step the quotient and remainder by (dh / sh, dh % sh) and (dw / sw, dw % sw), which the
//       launcher passes. A gather: no atomics, deterministic. Coalesced writes of dx.
//   im2col_backward_v3_{i32,i64}_{f32,f64}   (col2im with 16-byte stores)
//       v2 for kLanes = 4 (float) or 2 (double) consecutive pixels of one row per thread, written as
//       one float4 / double2; it needs W to be a multiple of kLanes and dx 16-byte aligned, and the
//       launcher runs it only where its loads are vectors too (below), v2 elsewhere, as for the
//       forward. Same divisions per thread, plus one per extra pixel (x + pl) / sw.
//       Loads: scalar ones are kLanes columns apart lane to lane (16% load efficiency in the
//       profile). Where the launcher sets `vector_loads` (stride 1 horizontally; OW, both column
//       strides and the columns' address multiples of kLanes), the kLanes columns of a tap are
//       consecutive and are read from aligned 16-byte vectors as in the forward (75%), summed in
//       the scalar branch's order: results are bitwise the same.
// Version 4 (what the launcher runs at horizontal stride 1 where the stores can be vectors; v3 stays
// as its baseline), v2's arguments (sw must be 1; dw_q and dw_r are unused):
//   im2col_forward_v4_{i32,i64}_{f32,f64}, im2col_backward_v4_{i32,i64}_{f32,f64}
//       v3's threads and 16-byte stores (OW % kLanes == 0 for im2col, W % kLanes == 0 for col2im,
//       as there), with loads in which every lane reads ONE distinct aligned 16-byte vector: the
//       one holding the first of the kLanes elements it needs (x for im2col, the columns for
//       col2im). The rest of them lie in the next aligned vector, which the next lane loaded when
//       its first vector is that one (the next kLanes elements of the row, or a next row that
//       starts there): 4 (float) or 2 (double) 32-bit shuffles bring it over (load_run_shfl).
//       Otherwise (the end of a run, lane 31) the lane loads it itself where needed; where
//       output rows are as wide as the input's (stride 1 "same" padding) consecutive rows are one
//       run, and only lane 31 does. Alignment is per lane: a row may start anywhere (any W for
//       im2col, any OW for col2im: the "valid" 3x3 forward, OW = W - 2 with W % 4 == 2, gets
//       vector loads too), the elements are picked by a funnel of selects on the lane's own shift, and elements outside
//       the row (padding, or a neighbouring row inside the vector) are masked to zero. The
//       launcher's promise: the array read is 16-byte aligned and its size a multiple of kLanes,
//       so no vector leaves it. Every lane runs every tap (the shuffles need the whole warp), and
//       warps wholly past the plane leave at once. Divisions as in v3 (v4 col2im: 3 per thread,
//       without v3's one per extra pixel, one fewer than v2). Profile
//       (benchmarks/emu_im2col_versions.py; stride 1, padding 1, 16x16 and 56x56 planes): loads
//       98-100% efficient for im2col and 96-98% for col2im (v3: 86-93% and 75-90%), 40-48% fewer
//       load sectors than v3 and 13-31% fewer than v2; "valid" im2col 82-91% (v2: 79-81%, v3
//       does not apply), col2im 94% (v2: 71%); stores 100% as in v3. On a GPU: unmeasured.
//
// Registers per thread (nvcc 13.0, `nvcc -cubin -arch=sm_90 -Xptxas -v -I kernels kernels/im2col.cu`),
// 0 bytes of stack frame and 0 bytes of spill stores/loads for every entry point:
//   forward (v1)             f32 36, f64 36      backward (v1)             f32 52, f64 48
//   forward_v2_i32           f32 32, f64 32      backward_v2_i32           f32 25, f64 27
//   forward_v2_i64           f32 40, f64 40      backward_v2_i64           f32 38, f64 40
//   forward_v3_i32           f32 48, f64 54      backward_v3_i32           f32 48, f64 48
//   forward_v3_i64           f32 48, f64 54      backward_v3_i64           f32 56, f64 56
//   forward_v4_i32           f32 34, f64 34      backward_v4_i32           f32 44, f64 42
//   forward_v4_i64           f32 37, f64 42      backward_v4_i64           f32 50, f64 48
// `nvcc -ptx` shows no 64-bit division or remainder in v2, v3 and v4 (v1: 19 forward, 5 backward);
// v2/v3/v4 forward have 2 32-bit ones per thread, v2 backward 4, v3 backward 5-7, v4 backward 3,
// none of them inside a tap loop; v3's and v4's stores are st.global.v4.f32 / st.global.v2.f64, their
// vector loads ld.global.nc.v4.f32 / ld.global.nc.v2.f64; v4 has 4 shfl.sync.down.b32 and one
// vote.ballot per tap;
// no entry point uses local memory.
#include "common.cuh"

template <typename T>
__device__ void im2col_forward(const T* __restrict__ x, T* __restrict__ cols, int n_batch, int channels, int height,
                               int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh,
                               int ow, long long row_stride, long long n_stride) {
    const long long l_size = (long long)oh * ow;
    const long long rows = (long long)channels * kh * kw;
    const long long total = n_batch * rows * l_size;
    GC_GRID_STRIDE_LOOP(idx, total) {
        const long long l = idx % l_size;
        const long long rest = idx / l_size;
        const long long row = rest % rows;
        const long long n = rest / rows;
        const int j = (int)(row % kw);
        const int i = (int)((row / kw) % kh);
        const long long c = row / ((long long)kh * kw);
        const int y = (int)(l / ow) * sh - pt + i * dh;
        const int xx = (int)(l % ow) * sw - pl + j * dw;
        T v = T(0);
        if (y >= 0 && y < height && xx >= 0 && xx < width)
            v = x[((n * channels + c) * height + y) * width + xx];
        cols[row * row_stride + n * n_stride + l] = v;
    }
}

template <typename T>
__device__ void im2col_backward(const T* __restrict__ cols, T* __restrict__ dx, int n_batch, int channels,
                                int height, int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw,
                                int oh, int ow, long long row_stride, long long n_stride) {
    const long long total = (long long)n_batch * channels * height * width;
    GC_GRID_STRIDE_LOOP(idx, total) {
        const int xx = (int)(idx % width);
        const int y = (int)((idx / width) % height);
        const long long c = (idx / ((long long)width * height)) % channels;
        const long long n = idx / ((long long)width * height * channels);
        T acc = T(0);
        for (int i = 0; i < kh; ++i) {
            const int ty = y + pt - i * dh;  // = out_y * sh for the window that reads (y, x) at tap i
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            for (int j = 0; j < kw; ++j) {
                const int tx = xx + pl - j * dw;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                const long long row = (c * kh + i) * kw + j;
                acc += cols[row * row_stride + n * n_stride + (long long)(ty / sh) * ow + tx / sw];
            }
        }
        dx[idx] = acc;
    }
}

#define IM2COL_ARGS n_batch, channels, height, width, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, row_stride, n_stride

GC_ENTRY_F(im2col_forward,
        (const T* __restrict__ x, T* __restrict__ cols, int n_batch, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, long long row_stride,
         long long n_stride),
        im2col_forward<T>(x, cols, IM2COL_ARGS))
GC_ENTRY_F(im2col_backward,
        (const T* __restrict__ cols, T* __restrict__ dx, int n_batch, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, long long row_stride,
         long long n_stride),
        im2col_backward<T>(cols, dx, IM2COL_ARGS))

template <typename T, typename I>
__device__ void im2col_forward_v2(const T* __restrict__ x, T* __restrict__ cols, int planes, int channels,
                                  int height, int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh,
                                  int dw, int oh, int ow, I row_stride, I n_stride) {
    const int l_size = oh * ow;
    const int l = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (l >= l_size) return;
    const int oy = l / ow;
    const int ox = l - oy * ow;
    const int y0 = oy * sh - pt, x0 = ox * sw - pl;
    const I plane_size = (I)height * width;
    for (int plane = (int)(blockIdx.y * blockDim.y + threadIdx.y); plane < planes;
         plane += (int)(gridDim.y * blockDim.y)) {
        const int n = plane / channels;
        const int c = plane - n * channels;
        const T* __restrict__ xp = x + (I)plane * plane_size;
        T* __restrict__ out = cols + (I)c * kh * kw * row_stride + (I)n * n_stride + l;
        for (int i = 0; i < kh; ++i) {
            const int y = y0 + i * dh;
            const bool row_in = (unsigned)y < (unsigned)height;
            const T* __restrict__ xrow = xp + (I)y * width;
            for (int j = 0; j < kw; ++j) {
                const int xx = x0 + j * dw;
                *out = (row_in && (unsigned)xx < (unsigned)width) ? xrow[xx] : T(0);
                out += row_stride;
            }
        }
    }
}

template <typename T, typename I>
__device__ void im2col_backward_v2(const T* __restrict__ cols, T* __restrict__ dx, int planes, int channels,
                                   int height, int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh,
                                   int dw, int oh, int ow, I row_stride, I n_stride, int dh_q, int dh_r, int dw_q,
                                   int dw_r) {
    const int p = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (p >= height * width) return;
    const int y = p / width;
    const int xx = p - y * width;
    // (y + pt) = qy*sh + ry and (x + pl) = qx*sw + rx: tap i reads output row (y + pt - i*dh) / sh
    // when that division is exact; stepping i subtracts (dh_q, dh_r) from (qy, ry).
    const int qy0 = (y + pt) / sh, ry0 = y + pt - qy0 * sh;
    const int qx0 = (xx + pl) / sw, rx0 = xx + pl - qx0 * sw;
    const I plane_size = (I)height * width;
    for (int plane = (int)(blockIdx.y * blockDim.y + threadIdx.y); plane < planes;
         plane += (int)(gridDim.y * blockDim.y)) {
        const int n = plane / channels;
        const int c = plane - n * channels;
        const T* __restrict__ base = cols + (I)c * kh * kw * row_stride + (I)n * n_stride;
        T acc = T(0);
        int qy = qy0, ry = ry0;
        for (int i = 0; i < kh && qy >= 0; ++i) {
            if (ry == 0 && qy < oh) {
                const T* __restrict__ row = base + (I)(i * kw) * row_stride + (I)qy * ow;
                int qx = qx0, rx = rx0;
                for (int j = 0; j < kw && qx >= 0; ++j) {
                    if (rx == 0 && qx < ow) acc += row[(I)j * row_stride + qx];
                    rx -= dw_r;
                    qx -= dw_q;
                    if (rx < 0) {
                        rx += sw;
                        --qx;
                    }
                }
            }
            ry -= dh_r;
            qy -= dh_q;
            if (ry < 0) {
                ry += sh;
                --qy;
            }
        }
        dx[(I)plane * plane_size + p] = acc;
    }
}

// Element k of a thread's kLanes outputs is element s + k*SW of the kBlocks aligned vectors `blk`
// loaded from consecutive addresses. s is the same for every thread of a launch, so the branch
// does not diverge, and every index is a compile-time constant once unrolled: `blk` stays in
// registers (a run-time index would put it in local memory).
template <int SW, int kBlocks, typename T, typename V>
__device__ __forceinline__ void select_from_blocks(const V (&blk)[kBlocks], int s, T* e) {
    constexpr int kLanes = gc::Vec16<T>::lanes;
#pragma unroll
    for (int c = 0; c < kLanes; ++c) {
        if (s == c) {
#pragma unroll
            for (int k = 0; k < kLanes; ++k)
                e[k] = reinterpret_cast<const T*>(&blk[(c + k * SW) / kLanes])[(c + k * SW) % kLanes];
        }
    }
}

// The kLanes input pixels x0 + k*sw + j*dw (k < kLanes) of one tap, by scalar loads: lane-to-lane
// the k-th load is kLanes*sw elements apart, so a warp's load spans kLanes times the bytes it uses.
// Any stride, any alignment of x.
template <typename T>
__device__ __forceinline__ void im2col_taps_scalar(const T* __restrict__ xrow, bool row_in, int start, int sw,
                                                   int width, T* e) {
    constexpr int kLanes = gc::Vec16<T>::lanes;
#pragma unroll
    for (int k = 0; k < kLanes; ++k) {
        const int xx = start + k * sw;
        e[k] = (row_in && (unsigned)xx < (unsigned)width) ? xrow[xx] : T(0);
    }
}

// The same pixels for a horizontal stride SW (1 or 2) by 16-byte loads: they lie in the aligned
// vectors from a = start rounded down to kLanes, and neighbouring lanes read neighbouring
// vectors, so every load is coalesced. Needs W % kLanes == 0 and x 16-byte aligned: a vector is
// then either inside the row or wholly in the padding (zeros), and never straddles two rows.
template <int SW, typename T>
__device__ __forceinline__ void im2col_taps_vector(const T* __restrict__ xrow, bool row_in, int start, int width,
                                                   T* e) {
    typedef typename gc::Vec16<T>::type V;
    constexpr int kLanes = gc::Vec16<T>::lanes;
    constexpr int kBlocks = (kLanes - 1) * (SW + 1) / kLanes + 1;  // for the largest offset s
    const int a = start & -kLanes;  // floor, also for start < 0 (two's complement)
    const int s = start - a;
    const int used = (s + (kLanes - 1) * SW) / kLanes + 1;  // same for every thread
    V blk[kBlocks];
#pragma unroll
    for (int b = 0; b < kBlocks; ++b) {
        const int xa = a + b * kLanes;
        if (b < used && row_in && (unsigned)xa < (unsigned)width)
            blk[b] = *reinterpret_cast<const V*>(xrow + xa);
        else
            blk[b] = V{};
    }
    select_from_blocks<SW>(blk, s, e);
}

// One (n, c) plane's KH*KW taps for the thread's kLanes output pixels; SW = 0: scalar loads, any
// stride; SW = 1 or 2: that stride, by 16-byte loads.
template <int SW, typename T, typename I>
__device__ __forceinline__ void im2col_forward_v3_plane(const T* __restrict__ xp, T* __restrict__ out, int height,
                                                        int width, int kh, int kw, int sw, int dh, int dw, int y0,
                                                        int x0, I row_stride) {
    typedef typename gc::Vec16<T>::type V;
    for (int i = 0; i < kh; ++i) {
        const int y = y0 + i * dh;
        const bool row_in = (unsigned)y < (unsigned)height;
        const T* __restrict__ xrow = xp + (I)y * width;
        for (int j = 0; j < kw; ++j) {
            V v;
            T* e = reinterpret_cast<T*>(&v);
            if (SW == 0)
                im2col_taps_scalar(xrow, row_in, x0 + j * dw, sw, width, e);
            else
                im2col_taps_vector<SW>(xrow, row_in, x0 + j * dw, width, e);
            *reinterpret_cast<V*>(out) = v;
            out += row_stride;
        }
    }
}

template <typename T, typename I>
__device__ void im2col_forward_v3(const T* __restrict__ x, T* __restrict__ cols, int planes, int channels,
                                  int height, int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh,
                                  int dw, int oh, int ow, I row_stride, I n_stride, int vector_loads) {
    constexpr int kLanes = gc::Vec16<T>::lanes;
    const int l_size = oh * ow;
    const int l = (int)(blockIdx.x * blockDim.x + threadIdx.x) * kLanes;
    if (l >= l_size) return;
    const int oy = l / ow;  // OW % kLanes == 0: the thread's kLanes pixels share this row
    const int ox = l - oy * ow;
    const int y0 = oy * sh - pt, x0 = ox * sw - pl;
    const I plane_size = (I)height * width;
    for (int plane = (int)(blockIdx.y * blockDim.y + threadIdx.y); plane < planes;
         plane += (int)(gridDim.y * blockDim.y)) {
        const int n = plane / channels;
        const int c = plane - n * channels;
        const T* __restrict__ xp = x + (I)plane * plane_size;
        T* __restrict__ out = cols + (I)c * kh * kw * row_stride + (I)n * n_stride + l;
        // vector_loads (the launcher's promise: sw is 1 or 2, W % kLanes == 0, x 16-byte aligned)
        // is the same for every thread: no divergence.
        if (vector_loads && sw == 1)
            im2col_forward_v3_plane<1>(xp, out, height, width, kh, kw, sw, dh, dw, y0, x0, row_stride);
        else if (vector_loads)
            im2col_forward_v3_plane<2>(xp, out, height, width, kh, kw, sw, dh, dw, y0, x0, row_stride);
        else
            im2col_forward_v3_plane<0>(xp, out, height, width, kh, kw, sw, dh, dw, y0, x0, row_stride);
    }
}

template <typename T, typename I>
__device__ void im2col_backward_v3(const T* __restrict__ cols, T* __restrict__ dx, int planes, int channels,
                                   int height, int width, int kh, int kw, int sh, int sw, int pt, int pl, int dh,
                                   int dw, int oh, int ow, I row_stride, I n_stride, int dh_q, int dh_r, int dw_q,
                                   int dw_r, int vector_loads) {
    typedef typename gc::Vec16<T>::type V;
    constexpr int kLanes = gc::Vec16<T>::lanes;
    const int p = (int)(blockIdx.x * blockDim.x + threadIdx.x) * kLanes;
    if (p >= height * width) return;
    const int y = p / width;  // W % kLanes == 0: the thread's kLanes pixels share this row
    const int x0 = p - y * width;
    const int qy0 = (y + pt) / sh, ry0 = y + pt - qy0 * sh;
    int qx0[kLanes], rx0[kLanes];
#pragma unroll
    for (int k = 0; k < kLanes; ++k) {
        qx0[k] = (x0 + k + pl) / sw;
        rx0[k] = x0 + k + pl - qx0[k] * sw;
    }
    const I plane_size = (I)height * width;
    for (int plane = (int)(blockIdx.y * blockDim.y + threadIdx.y); plane < planes;
         plane += (int)(gridDim.y * blockDim.y)) {
        const int n = plane / channels;
        const int c = plane - n * channels;
        const T* __restrict__ base = cols + (I)c * kh * kw * row_stride + (I)n * n_stride;
        V out;
        T* acc = reinterpret_cast<T*>(&out);
#pragma unroll
        for (int k = 0; k < kLanes; ++k) acc[k] = T(0);
        int qy = qy0, ry = ry0;
        for (int i = 0; i < kh && qy >= 0; ++i) {
            if (ry == 0 && qy < oh) {
                const T* __restrict__ row = base + (I)(i * kw) * row_stride + (I)qy * ow;
                if (vector_loads) {
                    // Stride 1 (the launcher's promise, with OW, both column strides and the columns'
                    // address multiples of kLanes): the thread's pixels read the kLanes consecutive
                    // columns qx0[0] - j*dw + k, from 16-byte loads that neighbouring lanes make at
                    // neighbouring addresses (coalesced). A vector wholly outside [0, OW) holds
                    // pixels no window reads: zeros, which leave the sums as they are. The order of
                    // the additions per pixel (i, then j) is the scalar branch's.
                    for (int j = 0; j < kw; ++j) {
                        T e[kLanes];
                        im2col_taps_vector<1>(row + (I)j * row_stride, true, qx0[0] - j * dw, ow, e);
#pragma unroll
                        for (int k = 0; k < kLanes; ++k) acc[k] += e[k];
                    }
                } else {
#pragma unroll
                    for (int k = 0; k < kLanes; ++k) {
                        int qx = qx0[k], rx = rx0[k];
                        for (int j = 0; j < kw && qx >= 0; ++j) {
                            if (rx == 0 && qx < ow) acc[k] += row[(I)j * row_stride + qx];
                            rx -= dw_r;
                            qx -= dw_q;
                            if (rx < 0) {
                                rx += sw;
                                --qx;
                            }
                        }
                    }
                }
            }
            ry -= dh_r;
            qy -= dh_q;
            if (ry < 0) {
                ry += sh;
                --qy;
            }
        }
        *reinterpret_cast<V*>(dx + (I)plane * plane_size + p) = out;
    }
}

// ---- Version 4: v3's 16-byte stores with every lane loading ONE distinct aligned vector ----

// v with every element shuffled down by one lane (a vector type has no shuffle of its own).
template <typename V, typename T>
__device__ __forceinline__ V shfl_down_vec(V v) {
    constexpr int kLanes = gc::Vec16<T>::lanes;
    T* e = reinterpret_cast<T*>(&v);
#pragma unroll
    for (int k = 0; k < kLanes; ++k) e[k] = __shfl_down_sync(0xffffffffu, e[k], 1);
    return v;
}

// The kLanes consecutive elements start .. start + kLanes - 1 of a row of `width` elements (zeros
// for those outside [0, width) or when !row_in), for stride 1, by 16-byte loads in which each lane
// of the warp reads ONE aligned vector. `g` is the offset of element `start` in `base` (any
// alignment: rows need not start on 16 bytes); the elements lie in the aligned vector A at
// a = g rounded down to kLanes and, unless g is aligned, the next one B. `has_next` says that the
// next lane exists and works on elements g + next_delta: when that lane's A is this lane's B (the
// next kLanes elements of the same row, or a next row whose first vector is this one's B), B is
// taken from it with shuffles; otherwise (the end of a run, lane 31) the lane loads B itself
// where it needs it. A lane also loads its A when its left neighbour needs it
// as B, even if it needs none of it (a padded tap). Every vector loaded holds an element some
// lane uses inside its row, so with `base` 16-byte aligned and its size a multiple of kLanes
// (the launcher's promise) no load leaves the array. Every lane of the warp must call this (the
// shuffles): `active` says whether the lane's results are used. The shift s = g mod kLanes may
// differ lane to lane (rows of any width): a funnel of selects picks the elements without
// branches or run-time register indices (which would put the vectors in local memory).
template <typename T, typename I>
__device__ __forceinline__ void load_run_shfl(const T* __restrict__ base, I g, int start, int width, bool row_in,
                                              bool active, bool has_next, int next_delta, T* e) {
    typedef typename gc::Vec16<T>::type V;
    constexpr int kLanes = gc::Vec16<T>::lanes;
    const I a = g & ~(I)(kLanes - 1);  // floor to kLanes, also for g < 0 (two's complement)
    const int s = (int)(g - a);
    const int a_row = start - s;  // where A starts in the row
    const bool right_next = has_next && ((g + next_delta) & ~(I)(kLanes - 1)) == a + kLanes;
    const bool use = active && row_in;
    const bool need_a = use && start < width && a_row + kLanes > 0;
    const bool need_b = use && s > 0 && a_row + kLanes < width && start + kLanes > 0;
    const unsigned lane = threadIdx.x & 31;
    const unsigned wants_b = __ballot_sync(0xffffffffu, need_b && right_next);
    V va, vb;
    va = V{};
    if (need_a || (lane > 0 && ((wants_b >> (lane - 1)) & 1u))) va = *reinterpret_cast<const V*>(base + a);
    vb = shfl_down_vec<V, T>(va);
    if (!right_next) {
        vb = V{};
        if (need_b) vb = *reinterpret_cast<const V*>(base + a + kLanes);
    }
    T w[2 * kLanes];
#pragma unroll
    for (int k = 0; k < kLanes; ++k) {
        w[k] = reinterpret_cast<const T*>(&va)[k];
        w[kLanes + k] = reinterpret_cast<const T*>(&vb)[k];
    }
    // Shift left by s in log2(kLanes) steps: after the steps, w[k] is element s + k.
#pragma unroll
    for (int bit = kLanes / 2; bit > 0; bit >>= 1) {
        const bool sel = (s & bit) != 0;
#pragma unroll
        for (int k = 0; k + bit < 2 * kLanes; ++k) w[k] = sel ? w[k + bit] : w[k];
    }
#pragma unroll
    for (int k = 0; k < kLanes; ++k) e[k] = (row_in && (unsigned)(start + k) < (unsigned)width) ? w[k] : T(0);
}

// Whether the whole warp of the calling thread lies past `count` work items of kLanes each: such
// warps leave at once; the others keep every lane to the end (the shuffles need all 32).
template <int kLanes>
__device__ __forceinline__ bool warp_is_idle(int count) {
    return (int)(blockIdx.x * blockDim.x + (threadIdx.x & ~31u)) * kLanes >= count;
}

template <typename T, typename I>
__device__ void im2col_forward_v4(const T* __restrict__ x, T* __restrict__ cols, int planes, int channels,
                                  int height, int width, int kh, int kw, int sh, int pt, int pl, int dh, int dw,
                                  int oh, int ow, I row_stride, I n_stride) {
    typedef typename gc::Vec16<T>::type V;
    constexpr int kLanes = gc::Vec16<T>::lanes;
    const int l_size = oh * ow;
    if (warp_is_idle<kLanes>(l_size)) return;
    const int l = (int)(blockIdx.x * blockDim.x + threadIdx.x) * kLanes;
    const bool active = l < l_size;
    const int oy = l / ow;  // OW % kLanes == 0: the thread's kLanes pixels share this row
    const int ox = l - oy * ow;
    const int y0 = oy * sh - pt, x0 = ox - pl;
    // The next lane's pixels: the next kLanes of this output row, or the first of the next one,
    // whose taps read sh input rows further down and ox columns further left.
    const bool has_next = (threadIdx.x & 31) != 31 && l + kLanes < l_size;
    const int next_delta = ox + kLanes < ow ? kLanes : sh * width - ox;
    const I plane_size = (I)height * width;
    for (int plane = (int)(blockIdx.y * blockDim.y + threadIdx.y); plane < planes;
         plane += (int)(gridDim.y * blockDim.y)) {
        const int n = plane / channels;
        const int c = plane - n * channels;
        T* __restrict__ out = cols + (I)c * kh * kw * row_stride + (I)n * n_stride + l;
        for (int i = 0; i < kh; ++i) {
            const int y = y0 + i * dh;
            const bool row_in = (unsigned)y < (unsigned)height;
            const I row = (I)plane * plane_size + (I)y * width;
            for (int j = 0; j < kw; ++j) {
                const int start = x0 + j * dw;
                V v;
                load_run_shfl(x, row + start, start, width, row_in, active, has_next, next_delta,
                              reinterpret_cast<T*>(&v));
                if (active) *reinterpret_cast<V*>(out) = v;
                out += row_stride;
            }
        }
    }
}

template <typename T, typename I>
__device__ void im2col_backward_v4(const T* __restrict__ cols, T* __restrict__ dx, int planes, int channels,
                                   int height, int width, int kh, int kw, int sh, int pt, int pl, int dh, int dw,
                                   int oh, int ow, I row_stride, I n_stride, int dh_q, int dh_r) {
    typedef typename gc::Vec16<T>::type V;
    constexpr int kLanes = gc::Vec16<T>::lanes;
    const int plane_pixels = height * width;
    if (warp_is_idle<kLanes>(plane_pixels)) return;
    const int p = (int)(blockIdx.x * blockDim.x + threadIdx.x) * kLanes;
    const bool active = p < plane_pixels;
    const int y = p / width;  // W % kLanes == 0: the thread's kLanes pixels share this row
    const int x0 = p - y * width;
    const int qy0 = (y + pt) / sh, ry0 = y + pt - qy0 * sh;
    // The next lane's columns: the next kLanes of this row of dx, or, at vertical stride 1, the
    // first of the next row, which reads the next output row (ow further) x0 columns further left.
    // (At larger strides whether the next row reads the next output row depends on the tap.)
    const bool has_next = (threadIdx.x & 31) != 31 && p + kLanes < plane_pixels && (x0 + kLanes < width || sh == 1);
    const int next_delta = x0 + kLanes < width ? kLanes : ow - x0;
    const I plane_size = (I)height * width;
    for (int plane = (int)(blockIdx.y * blockDim.y + threadIdx.y); plane < planes;
         plane += (int)(gridDim.y * blockDim.y)) {
        const int n = plane / channels;
        const int c = plane - n * channels;
        const I first = (I)c * kh * kw * row_stride + (I)n * n_stride;
        V out;
        T* acc = reinterpret_cast<T*>(&out);
#pragma unroll
        for (int k = 0; k < kLanes; ++k) acc[k] = T(0);
        // Every lane runs every tap (the shuffles need the whole warp); a tap whose output row
        // does not exist for this lane contributes zeros. The additions per pixel run in (i, j)
        // order, as in v2 and v3.
        int qy = qy0, ry = ry0;
        for (int i = 0; i < kh; ++i) {
            const bool row_in = ry == 0 && qy >= 0 && qy < oh;
            for (int j = 0; j < kw; ++j) {
                const int start = x0 + pl - j * dw;
                const I g = first + (I)(i * kw + j) * row_stride + (I)qy * ow + start;
                T e[kLanes];
                load_run_shfl(cols, g, start, ow, row_in, active, has_next, next_delta, e);
#pragma unroll
                for (int k = 0; k < kLanes; ++k) acc[k] += e[k];
            }
            ry -= dh_r;
            qy -= dh_q;
            if (ry < 0) {
                ry += sh;
                --qy;
            }
        }
        if (active) *reinterpret_cast<V*>(dx + (I)plane * plane_size + p) = out;
    }
}

#define IM2COL_V2_ARGS planes, channels, height, width, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, row_stride, n_stride

GC_ENTRY_I_F(im2col_forward_v2,
        (const T* __restrict__ x, T* __restrict__ cols, int planes, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, I row_stride, I n_stride),
        im2col_forward_v2<T, I>(x, cols, IM2COL_V2_ARGS))
GC_ENTRY_I_F(im2col_backward_v2,
        (const T* __restrict__ cols, T* __restrict__ dx, int planes, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, I row_stride, I n_stride, int dh_q,
         int dh_r, int dw_q, int dw_r),
        im2col_backward_v2<T, I>(cols, dx, IM2COL_V2_ARGS, dh_q, dh_r, dw_q, dw_r))
GC_ENTRY_I_F(im2col_forward_v3,
        (const T* __restrict__ x, T* __restrict__ cols, int planes, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, I row_stride, I n_stride,
         int vector_loads),
        im2col_forward_v3<T, I>(x, cols, IM2COL_V2_ARGS, vector_loads))
GC_ENTRY_I_F(im2col_backward_v3,
        (const T* __restrict__ cols, T* __restrict__ dx, int planes, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, I row_stride, I n_stride, int dh_q,
         int dh_r, int dw_q, int dw_r, int vector_loads),
        im2col_backward_v3<T, I>(cols, dx, IM2COL_V2_ARGS, dh_q, dh_r, dw_q, dw_r, vector_loads))

// v4 takes v2's arguments (so one launcher serves both); sw must be 1, so dw_q = dw and dw_r = 0.
#define IM2COL_V4_ARGS planes, channels, height, width, kh, kw, sh, pt, pl, dh, dw, oh, ow, row_stride, n_stride

GC_ENTRY_I_F(im2col_forward_v4,
        (const T* __restrict__ x, T* __restrict__ cols, int planes, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, I row_stride, I n_stride),
        im2col_forward_v4<T, I>(x, cols, IM2COL_V4_ARGS))
GC_ENTRY_I_F(im2col_backward_v4,
        (const T* __restrict__ cols, T* __restrict__ dx, int planes, int channels, int height, int width, int kh,
         int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, I row_stride, I n_stride, int dh_q,
         int dh_r, int dw_q, int dw_r),
        im2col_backward_v4<T, I>(cols, dx, IM2COL_V4_ARGS, dh_q, dh_r))
