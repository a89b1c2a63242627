// conv_direct.cu — direct 2-D convolution (no workspace): forward, backward data, backward weight.
//
// Layout: x (N, C_in, H, W), w (C_out, C_in/groups, KH, KW), y/dy (N, C_out, OH, OW), all NCHW
// and C-contiguous; element type T = float or double. Padding is given as (top pt, left pl); the
// output size (OH, OW) is given, so asymmetric padding ("same" with an even kernel) needs nothing
// more. Cross-correlation, as PyTorch. Offsets that can exceed 2^31 are 64-bit.
//
// Entry points (each _f32 and _f64; stamped out at the end of this file from one line per kernel by
// entry_points.cuh's GC_ENTRY_F):
//   conv2d_direct_forward_v1      one thread per output element (grid-stride), looping over the
//                                 C_in/groups x KH x KW inputs that it reads. The reference.
//   conv2d_direct_forward_v2      tiled: a block of 16x8 threads computes a 16 (wide) x 16 (high)
//                                 tile of output pixels for CONV_CO_BLOCK = 8 output channels of
//                                 one image; each thread holds 2 pixels (rows ty, ty + 8) x 8
//                                 channels = 16 accumulators in registers (register blocking), so
//                                 every shared-memory weight read feeds 2 FMAs. Per input channel
//                                 the block stages the input patch its tile reads and the
//                                 KH x KW x 8 weights ([tap][channel], taps CONV_W_PITCH = 9 words
//                                 apart) in shared memory (dynamic: (PH*row_stride + 9*KH*KW) *
//                                 sizeof(T) bytes, PH = 15*sh + (KH-1)*dh + 1; the patch is
//                                 PW = 15*sw + (KW-1)*dw + 1 wide, its rows row_stride >= PW apart:
//                                 the launcher pads float32 rows so that the two rows a warp reads
//                                 fall in different banks). Each warp stages whole patch rows, its
//                                 lanes on consecutive columns (one row per request, no division
//                                 per element); at horizontal stride 2 a row is stored as its odd
//                                 columns, then its even ones, so the 16 lanes of a row read 16
//                                 consecutive words. The weights are read with consecutive threads
//                                 on consecutive taps of a channel (contiguous in w). Profile at
//                                 the emu_profile shape, before -> after this staging: loads
//                                 58% -> 82% efficient (stride 1) and 61% -> 82% (stride 2, with
//                                 2.1x fewer requests), extra shared wavefronts 3840 -> 512 and
//                                 9856 -> 384 (1.04 and 1.19 -> 1.01 wavefronts per request).
//                                 Grid: (tiles_w * tiles_h, groups * ceil(kg / 8), N); block (16, 8).
//   conv2d_direct_backward_data   dx: a gather, one thread per element of dx, looping over the taps
//                                 (i, j) whose window reads it and the C_out/groups output channels
//                                 of its group (the direct transposed convolution). No atomics. The
//                                 reference: the launcher runs it only where v3's tile does not
//                                 fit. With stride 1 it runs conv2d_direct_forward_v2 on dy with the
//                                 flipped, transposed weights (the same gather, the forward's tiling).
//   conv2d_direct_backward_data_v3 dx for any stride: the forward v2's tiling and register blocking
//                                 over 8 input channels, stride-aware (see the comment above it).
//                                 Weights staged as in forward_v2 (coalesced: the profile's load
//                                 efficiency at stride 2 went from 53% to 100%; the 9-word tap
//                                 pitch took its bank conflicts from 896 to 256 extra wavefronts).
//   conv2d_direct_backward_weight dw: one block per element of dw; its threads (a power of two)
//                                 sum dy * x over the N x OH x OW positions in a fixed strided
//                                 order, then a shared-memory tree reduction: deterministic, no
//                                 atomics. Dynamic shared memory: blockDim.x * sizeof(T). The
//                                 reference (measured on an H100: 80.8 ms for the ResNet stem at
//                                 batch 128, 64-bit divisions per position).
//   conv2d_direct_backward_weight_v2_partial, conv2d_direct_backward_weight_v2_sum
//                                 dw in two passes: a tiled reduction over N*OH*OW with shared-memory
//                                 tiles of x and dy and per-block partial sums for a range of output
//                                 rows, then a sum of the partials in a fixed order (see the comment
//                                 above the kernels). Deterministic, no float atomics; 32-bit index
//                                 arithmetic in the loops, no division per position.
// The bias (forward only) is added when has_bias != 0; otherwise the bias pointer is ignored.
// No #defines are injected.
//
// Registers per thread (nvcc 13.0, `nvcc -cubin -arch=sm_90 -Xptxas -v -I kernels`): every entry
// point has 0 bytes of stack frame and 0 bytes of spill stores/loads. 64-bit divisions (PTX
// div/rem .s64, which become a called subroutine in SASS) are left only in forward_v1,
// backward_data and backward_weight (the references); `nvcc -ptx` shows none in the others.
//   forward_v1          f32 48, f64 48
//   forward_v2          f32 48, f64 66 (1 barrier; 128 threads per block by __launch_bounds__)
//   backward_data       f32 56, f64 56
//   backward_data_v3    f32 64, f64 94 (1 barrier; no __launch_bounds__: with it ptxas spills)
//   backward_weight     f32 45, f64 48 (1 barrier)
//   backward_weight_v2_partial  f32 56, f64 64 (1 barrier; no __launch_bounds__: with it ptxas spills)
//   backward_weight_v2_sum      f32 32, f64 32
// forward_v1 is the reference: one output pixel per thread, already coalesced along the output
// row; its 61% load efficiency in the profile is the halo (rows start `pl` pixels before a
// 32-byte boundary), which a thread-per-pixel gather cannot avoid, so it is left as it is.
#include "common.cuh"

#define CONV_TILE_W 16
#define CONV_THREADS_H 8
#define CONV_ROWS_PER_THREAD 2  // the code below is written for 2
#define CONV_CO_BLOCK 8
// Words from one tap's CONV_CO_BLOCK staged weights to the next ([tap][channel] in shared memory).
// The staging threads run along a channel's taps (coalesced loads of w), so lanes t and t + 4 of a
// warp store taps 4 apart: with a pitch of 8 words those share a bank (3x3: 2 extra wavefronts per
// request, 7x7: up to 7); with 9, 3x3 has at most one and 5x5 none (the emulator's profile:
// forward v2 1280 -> 512 extra wavefronts at stride 1, backward data v3 896 -> 256 at stride 2).
// The inner loops read one tap's weights as broadcasts, which any pitch serves.
#define CONV_W_PITCH 9

#define CONV_PARAMS                                                                                      \
    int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh, int sw, int pt, int pl, \
        int dh, int dw, int oh, int ow, int groups
#define CONV_ARGS n_batch, c_in, height, width, c_out, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, groups

template <typename T>
__device__ void conv2d_direct_forward_v1(const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias,
                                         T* __restrict__ y, int has_bias, CONV_PARAMS) {
    const int cg = c_in / groups, kg = c_out / groups;
    const long long total = (long long)n_batch * c_out * oh * ow;
    GC_GRID_STRIDE_LOOP(idx, total) {
        const int ox = (int)(idx % ow);
        const int oy = (int)((idx / ow) % oh);
        const int co = (int)((idx / ((long long)ow * oh)) % c_out);
        const long long n = idx / ((long long)ow * oh * c_out);
        const int grp = co / kg;
        T acc = T(0);
        for (int ci = 0; ci < cg; ++ci) {
            const T* xc = x + ((n * c_in + (long long)grp * cg + ci) * height) * width;
            const T* wc = wt + ((long long)co * cg + ci) * kh * kw;
            for (int i = 0; i < kh; ++i) {
                const int yy = oy * sh - pt + i * dh;
                if (yy < 0 || yy >= height) continue;
                for (int j = 0; j < kw; ++j) {
                    const int xx = ox * sw - pl + j * dw;
                    if (xx < 0 || xx >= width) continue;
                    acc += xc[(long long)yy * width + xx] * wc[i * kw + j];
                }
            }
        }
        if (has_bias) acc += bias[co];
        y[idx] = acc;
    }
}

template <typename T>
__device__ void conv2d_direct_forward_v2(const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias,
                                         T* __restrict__ y, int has_bias, int row_stride, CONV_PARAMS) {
    extern __shared__ __align__(16) unsigned char conv_smem[];
    T* s_in = reinterpret_cast<T*>(conv_smem);
    const int cg = c_in / groups, kg = c_out / groups;
    const int kk = kh * kw;
    const int out_rows = CONV_THREADS_H * CONV_ROWS_PER_THREAD;  // output rows of a tile
    const int ph = (out_rows - 1) * sh + (kh - 1) * dh + 1;
    const int pw = (CONV_TILE_W - 1) * sw + (kw - 1) * dw + 1;
    T* s_w = s_in + ph * row_stride;  // [tap][output channel]: one tap's CONV_CO_BLOCK weights side by side

    const int tiles_w = (ow + CONV_TILE_W - 1) / CONV_TILE_W;
    const int tile_x0 = (int)(blockIdx.x % tiles_w) * CONV_TILE_W;
    const int tile_y0 = (int)(blockIdx.x / tiles_w) * out_rows;
    const int co_blocks = (kg + CONV_CO_BLOCK - 1) / CONV_CO_BLOCK;
    const int grp = (int)blockIdx.y / co_blocks;
    const int co0 = ((int)blockIdx.y % co_blocks) * CONV_CO_BLOCK;  // within the group
    const long long n = blockIdx.z;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * CONV_TILE_W + tx;
    const int threads = CONV_TILE_W * CONV_THREADS_H;
    const int in_y0 = tile_y0 * sh - pt, in_x0 = tile_x0 * sw - pl;

    // Thread (tx, ty) computes output rows ty and ty + CONV_THREADS_H of the tile, column tx, for
    // CONV_CO_BLOCK output channels: each weight read from shared memory feeds two FMAs.
    T acc[CONV_ROWS_PER_THREAD][CONV_CO_BLOCK];
#pragma unroll
    for (int r = 0; r < CONV_ROWS_PER_THREAD; ++r)
#pragma unroll
        for (int c = 0; c < CONV_CO_BLOCK; ++c) acc[r][c] = T(0);

    // Horizontal stride 2: a patch row holds its odd columns (`odd` = PW / 2 of them), then its even
    // ones, so that the 16 lanes of a row read 16 consecutive words (column tx*2 + c is word
    // tx + c/2 of the even half, or tx + (c-1)/2 of the odd one) and the launcher can pad the rows
    // apart as at stride 1; in place, the lanes read even words only and the two rows of a warp
    // shared their banks (1.19 wavefronts per request in the profile). Odd columns first: a warp
    // staging columns 0..31 writes 32 distinct banks for PW up to 33 (3x3, dilation 1).
    const bool split = sw == 2;
    const int odd = pw / 2;
    const int warp = tid >> 5, lane = tid & 31;
    for (int ci = 0; ci < cg; ++ci) {
        const T* xc = x + ((n * c_in + (long long)grp * cg + ci) * height) * width;
        // A warp stages whole patch rows, its lanes on consecutive columns: one row per request
        // (a 16-wide tile's rows are 18-37 columns, so requests of 32 consecutive elements mixed
        // two rows: more sectors per request, and two rows' words in one set of banks), and no
        // division per element.
        for (int py = warp; py < ph; py += threads / 32) {
            const int yy = in_y0 + py;
            const bool row_in = yy >= 0 && yy < height;
            T* srow = s_in + py * row_stride;
            for (int px = lane; px < pw; px += 32) {
                const int xx = in_x0 + px;
                srow[split ? (px & 1 ? px >> 1 : odd + (px >> 1)) : px] =
                    (row_in && xx >= 0 && xx < width) ? xc[(long long)yy * width + xx] : T(0);
            }
        }
        // Consecutive threads read consecutive taps of one channel (contiguous in wt: coalesced)
        // and store them into the [tap][channel] layout the inner loop reads.
        for (int t = tid; t < CONV_CO_BLOCK * kk; t += threads) {
            const int c = t / kk, k = t - c * kk;
            s_w[k * CONV_W_PITCH + c] = co0 + c < kg ? wt[(((long long)grp * kg + co0 + c) * cg + ci) * kk + k] : T(0);
        }
        __syncthreads();
        for (int i = 0; i < kh; ++i) {
            const T* row0 = s_in + (ty * sh + i * dh) * row_stride + (split ? tx : tx * sw);
            const T* row1 = row0 + CONV_THREADS_H * sh * row_stride;
            for (int j = 0; j < kw; ++j) {
                const int cx = j * dw;  // the tap's column offset in the patch
                const int col = split ? (cx & 1 ? cx >> 1 : odd + (cx >> 1)) : cx;
                const T v0 = row0[col], v1 = row1[col];
                const T* wk = s_w + (i * kw + j) * CONV_W_PITCH;
#pragma unroll
                for (int c = 0; c < CONV_CO_BLOCK; ++c) {
                    const T wv = wk[c];
                    acc[0][c] += v0 * wv;
                    acc[1][c] += v1 * wv;
                }
            }
        }
        __syncthreads();
    }
    const int ox = tile_x0 + tx;
    if (ox >= ow) return;
#pragma unroll
    for (int r = 0; r < CONV_ROWS_PER_THREAD; ++r) {
        const int oy = tile_y0 + ty + r * CONV_THREADS_H;
        if (oy >= oh) break;
#pragma unroll
        for (int c = 0; c < CONV_CO_BLOCK; ++c) {
            const int co = grp * kg + co0 + c;
            if (co0 + c >= kg) break;
            y[((n * c_out + co) * oh + oy) * ow + ox] = has_bias ? acc[r][c] + bias[co] : acc[r][c];
        }
    }
}

template <typename T>
__device__ void conv2d_direct_backward_data(const T* __restrict__ dy, const T* __restrict__ wt, T* __restrict__ dx,
                                            CONV_PARAMS) {
    const int cg = c_in / groups, kg = c_out / groups;
    const long long total = (long long)n_batch * c_in * height * width;
    GC_GRID_STRIDE_LOOP(idx, total) {
        const int xx = (int)(idx % width);
        const int yy = (int)((idx / width) % height);
        const int ci = (int)((idx / ((long long)width * height)) % c_in);
        const long long n = idx / ((long long)width * height * c_in);
        const int grp = ci / cg, ci_l = ci % cg;
        T acc = T(0);
        for (int i = 0; i < kh; ++i) {
            const int ty = yy + pt - i * dh;  // = oy * sh for the output that reads (yy, xx) at tap i
            if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
            const int oy = ty / sh;
            for (int j = 0; j < kw; ++j) {
                const int tx = xx + pl - j * dw;
                if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
                const int ox = tx / sw;
                for (int k = 0; k < kg; ++k) {
                    const long long co = (long long)grp * kg + k;
                    acc += dy[((n * c_out + co) * oh + oy) * ow + ox] * wt[((co * cg + ci_l) * kh + i) * kw + j];
                }
            }
        }
        dx[idx] = acc;
    }
}

template <typename T>
__device__ void conv2d_direct_backward_weight(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dwt,
                                              CONV_PARAMS) {
    extern __shared__ __align__(16) unsigned char conv_smem[];
    T* partial = reinterpret_cast<T*>(conv_smem);
    const int cg = c_in / groups, kg = c_out / groups;
    const long long widx = blockIdx.x;  // element (co, ci_l, i, j) of dw
    const int j = (int)(widx % kw);
    const int i = (int)((widx / kw) % kh);
    const int ci_l = (int)((widx / ((long long)kw * kh)) % cg);
    const long long co = widx / ((long long)kw * kh * cg);
    const long long ci = (co / kg) * cg + ci_l;
    const long long l_size = (long long)oh * ow;
    const long long total = (long long)n_batch * l_size;
    T acc = T(0);
    for (long long r = threadIdx.x; r < total; r += blockDim.x) {
        const long long n = r / l_size;
        const int oy = (int)((r % l_size) / ow), ox = (int)(r % ow);
        const int yy = oy * sh - pt + i * dh, xx = ox * sw - pl + j * dw;
        if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
        acc += dy[(n * c_out + co) * l_size + r % l_size] * x[((n * c_in + ci) * height + yy) * width + xx];
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) dwt[widx] = partial[0];
}

// ---- backward data, version 3: tiled gather for any stride ------------------------------------------------
// The forward v2's tiling turned around: a block of 16x8 threads computes a 16 (wide) x 16 (high)
// tile of dx for CONV_CO_BLOCK = 8 input channels of one image; each thread holds 2 pixels (rows ty,
// ty + 8) x 8 channels = 16 accumulators. Per output channel of the group the block stages the dy
// patch its tile reads (rows floor((y0 + pt - (KH-1)*dh) / sh) .. floor((y0 + 15 + pt) / sh), zero
// outside dy) and that channel's KH x KW x 8 weights ([tap][ci]) in shared memory. Tap i reads dy
// row (y + pt - i*dh) / sh only when the division is exact; a thread keeps (quotient, remainder)
// of y + pt and steps them by (dh / sh, dh % sh) per tap (the launcher passes both), so the tap
// loops divide nothing. Grid (tiles_w * tiles_h, groups * ceil(cg / 8), N); block (16, 8); dynamic
// shared memory (PH * PW + 9 * KH * KW) * sizeof(T). A gather: no atomics, deterministic.
// One output row of conv2d_direct_backward_data_v3 for one output channel: every tap (i, j)
// whose division is exact adds dy * w to the row's CONV_CO_BLOCK accumulators.
template <typename T>
__device__ __forceinline__ void bwd_data_v3_row(T (&acc)[CONV_CO_BLOCK], const T* s_dy, const T* s_w, int qy, int ry,
                                                int qx0, int rx0, int pw, int kh, int kw, int sh, int sw, int dh_q,
                                                int dh_r, int dw_q, int dw_r) {
    for (int i = 0; i < kh; ++i) {
        if (ry == 0) {
            const T* row = s_dy + qy * pw;
            int qx = qx0, rx = rx0;
            for (int j = 0; j < kw; ++j) {
                if (rx == 0) {
                    const T v = row[qx];
                    const T* wk = s_w + (i * kw + j) * CONV_W_PITCH;
#pragma unroll
                    for (int c = 0; c < CONV_CO_BLOCK; ++c) acc[c] += v * wk[c];
                }
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
}

template <typename T>
__device__ void conv2d_direct_backward_data_v3(const T* __restrict__ dy, const T* __restrict__ wt,
                                               T* __restrict__ dx, int dh_q, int dh_r, int dw_q, int dw_r,
                                               CONV_PARAMS) {
    extern __shared__ __align__(16) unsigned char conv_smem[];
    T* s_dy = reinterpret_cast<T*>(conv_smem);
    const int cg = c_in / groups, kg = c_out / groups;
    const int kk = kh * kw;
    const int rows = CONV_THREADS_H * CONV_ROWS_PER_THREAD;
    const int tiles_w = (width + CONV_TILE_W - 1) / CONV_TILE_W;
    const int x0 = (int)(blockIdx.x % tiles_w) * CONV_TILE_W;
    const int y0 = (int)(blockIdx.x / tiles_w) * rows;
    const int oy_lo = gc::floor_div_int(y0 + pt - (kh - 1) * dh, sh), oy_hi = (y0 + rows - 1 + pt) / sh;
    const int ox_lo = gc::floor_div_int(x0 + pl - (kw - 1) * dw, sw), ox_hi = (x0 + CONV_TILE_W - 1 + pl) / sw;
    const int ph = oy_hi - oy_lo + 1, pw = ox_hi - ox_lo + 1;
    T* s_w = s_dy + ph * pw;  // [tap][input channel]
    const int ci_blocks = (cg + CONV_CO_BLOCK - 1) / CONV_CO_BLOCK;
    const int grp = (int)blockIdx.y / ci_blocks;
    const int ci0 = ((int)blockIdx.y % ci_blocks) * CONV_CO_BLOCK;  // within the group
    const long long n = blockIdx.z;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * CONV_TILE_W + tx;
    const int threads = CONV_TILE_W * CONV_THREADS_H;

    const int xx = x0 + tx;
    const int qx0 = (xx + pl) / sw - ox_lo, rx0 = (xx + pl) % sw;  // patch column of tap 0, remainder
    // Rows ty and ty + CONV_THREADS_H (CONV_ROWS_PER_THREAD = 2): patch row of tap 0, remainder.
    const int qya = (y0 + ty + pt) / sh - oy_lo, rya = (y0 + ty + pt) % sh;
    const int qyb = (y0 + ty + CONV_THREADS_H + pt) / sh - oy_lo, ryb = (y0 + ty + CONV_THREADS_H + pt) % sh;
    T acc[CONV_ROWS_PER_THREAD][CONV_CO_BLOCK];
#pragma unroll
    for (int r = 0; r < CONV_ROWS_PER_THREAD; ++r)
#pragma unroll
        for (int c = 0; c < CONV_CO_BLOCK; ++c) acc[r][c] = T(0);

    for (int k = 0; k < kg; ++k) {
        const long long co = (long long)grp * kg + k;
        const T* dyc = dy + (n * c_out + co) * oh * ow;
        for (int t = tid; t < ph * pw; t += threads) {
            const int py = t / pw;
            const int oy = oy_lo + py, ox = ox_lo + (t - py * pw);
            s_dy[t] = (oy >= 0 && oy < oh && ox >= 0 && ox < ow) ? dyc[(long long)oy * ow + ox] : T(0);
        }
        // As in the forward: consecutive threads read consecutive taps of one channel (coalesced).
        for (int t = tid; t < CONV_CO_BLOCK * kk; t += threads) {
            const int c = t / kk, tap = t - c * kk;
            s_w[tap * CONV_W_PITCH + c] = ci0 + c < cg ? wt[(co * cg + ci0 + c) * kk + tap] : T(0);
        }
        __syncthreads();
        bwd_data_v3_row(acc[0], s_dy, s_w, qya, rya, qx0, rx0, pw, kh, kw, sh, sw, dh_q, dh_r, dw_q, dw_r);
        bwd_data_v3_row(acc[1], s_dy, s_w, qyb, ryb, qx0, rx0, pw, kh, kw, sh, sw, dh_q, dh_r, dw_q, dw_r);
        __syncthreads();
    }
    if (xx >= width) return;
#pragma unroll
    for (int r = 0; r < CONV_ROWS_PER_THREAD; ++r) {
        const int yy = y0 + ty + r * CONV_THREADS_H;
        if (yy >= height) break;
#pragma unroll
        for (int c = 0; c < CONV_CO_BLOCK; ++c) {
            if (ci0 + c >= cg) break;
            dx[((n * c_in + (long long)grp * cg + ci0 + c) * height + yy) * width + xx] = acc[r][c];
        }
    }
}

// ---- backward weight, version 2: tiled, two passes, deterministic ----------------------------------------
// Pass 1, grid (splits, groups * ceil(kg / CONV_CO_BLOCK), C_in/groups), 256 threads: block
// (split, group and output-channel block, input channel ci) owns the CONV_CO_BLOCK x KH x KW
// elements of dw for ci and reduces them over its contiguous range of output rows (n, oy). Per
// row it stages dy[n, co-block, oy, :] as [co][ox] and the KH input rows that row reads (zero
// padded, PW wide) in shared memory. Thread t owns tap t / lanes for all CONV_CO_BLOCK channels
// (register blocking: one x value feeds 8 FMAs) and sums over the columns ox = lane, lane + lanes, ...
// (lanes = 256 / (KH*KW), passed by the launcher). At the end the lanes of each tap are added in a
// fixed order, and the block writes its sums to partial[split][dw index]. Pass 2: one thread per
// element of dw adds the splits in order. No atomics: bit-for-bit the same on every run. Dynamic
// shared memory: max(CONV_CO_BLOCK * OW + KH * PW, 256) * sizeof(T).
// Banks: the lanes of a warp read dy at consecutive columns ox (taps sharing a warp read the same
// ones: a broadcast), so dy is staged [co][ox], consecutive words across the lanes for both the
// staging stores and the reads. ([ox][co], the first layout, put the lanes 8 words apart: 4-way
// conflicts on every read, 8-way on every store; the emulator's profile counted 442k extra
// wavefronts at the emu_profile shape, 1.21 wavefronts per request, against 1.00 now.)
#define CONV_BWW_THREADS 256

template <typename T>
__device__ void conv2d_direct_backward_weight_v2_partial(const T* __restrict__ dy, const T* __restrict__ x,
                                                         T* __restrict__ partial, int rows_per_split, int lanes,
                                                         CONV_PARAMS) {
    extern __shared__ __align__(16) unsigned char conv_smem[];
    T* s_dy = reinterpret_cast<T*>(conv_smem);  // [co][ox]
    const int cg = c_in / groups, kg = c_out / groups, kk = kh * kw;
    const int pw = (ow - 1) * sw + (kw - 1) * dw + 1;
    T* s_x = s_dy + CONV_CO_BLOCK * ow;  // [i][u]
    const int co_blocks = (kg + CONV_CO_BLOCK - 1) / CONV_CO_BLOCK;
    const int grp = (int)blockIdx.y / co_blocks;
    const int co0 = ((int)blockIdx.y % co_blocks) * CONV_CO_BLOCK;
    const int ci = (int)blockIdx.z;
    const int tid = (int)threadIdx.x;
    const int tap = tid / lanes, lane = tid - tap * lanes;  // once per thread
    const bool owns = tap < kk;
    const int ti = owns ? tap / kw : 0;
    const int x_off = owns ? ti * pw + (tap - ti * kw) * dw : 0;
    T acc[CONV_CO_BLOCK];
#pragma unroll
    for (int c = 0; c < CONV_CO_BLOCK; ++c) acc[c] = T(0);

    const int total_rows = n_batch * oh;  // the launcher checks N*OH < 2^31
    const int r_begin = (int)blockIdx.x * rows_per_split;
    const int r_end = r_begin + rows_per_split < total_rows ? r_begin + rows_per_split : total_rows;
    for (int r = r_begin; r < r_end; ++r) {
        const int n = r / oh;  // once per row for the whole block
        const int oy = r - n * oh;
        for (int c = 0; c < CONV_CO_BLOCK; ++c) {
            const bool live = co0 + c < kg;
            const T* dyrow = dy + (((long long)n * c_out + (long long)grp * kg + co0 + c) * oh + oy) * ow;
            for (int ox = tid; ox < ow; ox += CONV_BWW_THREADS) s_dy[c * ow + ox] = live ? dyrow[ox] : T(0);
        }
        const T* xc = x + ((long long)n * c_in + (long long)grp * cg + ci) * height * width;
        for (int i = 0; i < kh; ++i) {
            const int iy = oy * sh - pt + i * dh;
            const bool row_in = iy >= 0 && iy < height;
            for (int u = tid; u < pw; u += CONV_BWW_THREADS) {
                const int ix = u - pl;
                s_x[i * pw + u] = (row_in && ix >= 0 && ix < width) ? xc[(long long)iy * width + ix] : T(0);
            }
        }
        __syncthreads();
        if (owns) {
            const T* xs = s_x + x_off;
            for (int ox = lane; ox < ow; ox += lanes) {
                const T xv = xs[ox * sw];
#pragma unroll
                for (int c = 0; c < CONV_CO_BLOCK; ++c) acc[c] += s_dy[c * ow + ox] * xv;
            }
        }
        __syncthreads();
    }

    // The lanes of each tap, added in lane order, one channel at a time through shared memory.
    T* red = s_dy;  // every thread is past the last barrier of the row loop
    T* out = partial + (long long)blockIdx.x * c_out * cg * kk;
#pragma unroll
    for (int c = 0; c < CONV_CO_BLOCK; ++c) {
        red[tid] = acc[c];
        __syncthreads();
        if (owns && lane == 0 && co0 + c < kg) {
            T sum = T(0);
            for (int q = 0; q < lanes; ++q) sum += red[tid + q];
            out[(((long long)grp * kg + co0 + c) * cg + ci) * kk + tap] = sum;
        }
        __syncthreads();
    }
}

template <typename T>
__device__ void conv2d_direct_backward_weight_v2_sum(const T* __restrict__ partial, T* __restrict__ dwt, int splits,
                                                     int size) {
    for (int idx = (int)(blockIdx.x * blockDim.x + threadIdx.x); idx < size; idx += (int)(gridDim.x * blockDim.x)) {
        T sum = T(0);
        for (int s = 0; s < splits; ++s) sum += partial[(long long)s * size + idx];
        dwt[idx] = sum;
    }
}

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
GC_ENTRY_F(conv2d_direct_forward_v1,
        (const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias, T* __restrict__ y,
         int has_bias, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh, int sw, int pt,
         int pl, int dh, int dw, int oh, int ow, int groups),
        conv2d_direct_forward_v1<T>(x, wt, bias, y, has_bias, CONV_ARGS))
GC_ENTRY_F_BOUNDED((CONV_TILE_W * CONV_THREADS_H), conv2d_direct_forward_v2,
        (const T* __restrict__ x, const T* __restrict__ wt, const T* __restrict__ bias, T* __restrict__ y,
         int has_bias, int row_stride, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        conv2d_direct_forward_v2<T>(x, wt, bias, y, has_bias, row_stride, CONV_ARGS))
GC_ENTRY_F(conv2d_direct_backward_data,
        (const T* __restrict__ dy, const T* __restrict__ wt, T* __restrict__ dx, int n_batch, int c_in, int height,
         int width, int c_out, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow,
         int groups),
        conv2d_direct_backward_data<T>(dy, wt, dx, CONV_ARGS))
GC_ENTRY_F(conv2d_direct_backward_weight,
        (const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dwt, int n_batch, int c_in, int height,
         int width, int c_out, int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow,
         int groups),
        conv2d_direct_backward_weight<T>(dy, x, dwt, CONV_ARGS))
GC_ENTRY_F(conv2d_direct_backward_weight_v2_partial,
        (const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ partial, int rows_per_split, int lanes,
         int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh, int sw, int pt, int pl,
         int dh, int dw, int oh, int ow, int groups),
        conv2d_direct_backward_weight_v2_partial<T>(dy, x, partial, rows_per_split, lanes, CONV_ARGS))
GC_ENTRY_F(conv2d_direct_backward_weight_v2_sum,
        (const T* __restrict__ partial, T* __restrict__ dwt, int splits, int size),
        conv2d_direct_backward_weight_v2_sum<T>(partial, dwt, splits, size))
GC_ENTRY_F(conv2d_direct_backward_data_v3,
        (const T* __restrict__ dy, const T* __restrict__ wt, T* __restrict__ dx, int dh_q, int dh_r, int dw_q,
         int dw_r, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh, int sw, int pt,
         int pl, int dh, int dw, int oh, int ow, int groups),
        conv2d_direct_backward_data_v3<T>(dy, wt, dx, dh_q, dh_r, dw_q, dw_r, CONV_ARGS))
