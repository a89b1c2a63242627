// pool.cu — max, average, adaptive, LP and GeM pooling over NCHW planes, forward and backward.
//
// Layout: x (N, C, H, W) and y (N, C, OH, OW), C-contiguous; the kernels see N*C independent
// planes ("planes"). Element type T = float (_f32) or double (_f64); indices are PyTorch's flat
// index y*W + x within the input plane, int64 (entry points without _i32: what the user gets with
// return_indices) or int32 (_i32: half the bytes, for indices kept only for the backward).
// Index arithmetic: a plane's offset is 64-bit (one multiplication per plane), positions inside a
// plane are 32-bit (the launcher checks H*W and OH*OW < 2^31): no element pays a 64-bit division;
// the v1 kernels pay 32-bit divisions per element (pos / width, and the window ranges of a gather),
// the v2 kernels none per element or tap (they step positions and split them once per thread or
// per tile row and column).
// Launch geometry (see GC_PLANE_LOOP): `ppb` planes per block for small planes, chunks of a plane
// over grid.x and plane groups over grid.y; the _v2 kernels: a tile per block over grid.x, plane
// groups over grid.y, dynamic shared memory sized by the launcher. No #defines injected.
//
// Entry points (each in _f32 and _f64; stamped out at the end of this file from one line per kernel by
// entry_points.cuh's GC_ENTRY_F, or GC_ENTRY_F_I32 for the kernels with _i32 index twins):
//   max_pool2d_forward       one thread per output (indices written only when write_indices != 0):
//                            the first maximum of the window in row-major tap order (the last NaN
//                            wins, as in PyTorch); padding is -inf. A window with no element inside
//                            the input (possible with dilation) gives -inf and the index of its
//                            first tap moved into the plane by whole dilation steps (PyTorch's rule).
//   max_pool2d_backward      gather, one thread per input element: sums dy over the windows that
//                            contain the element and chose it (indices == its flat index).
//   max_pool2d_check_indices / adaptive_max_pool2d_check_indices
//                            one thread per output: sets a flag when an index does not name an
//                            element of its window (the launcher raises after the backward).
//   max_pool2d_forward_v2    the same results bit for bit from a block per tile of outputs whose
//                            input rows the block first copies to shared memory (coalesced loads,
//                            conflict-free tap reads; see "tiled forward kernels"). The launcher's
//                            choice when the tile fits in shared memory; v1 runs otherwise.
//   avg_pool2d_forward       one thread per output; PyTorch's divisor rule (count_include_pad counts
//                            padding inside H+2*pad but not the ceil_mode overhang; divisor > 0
//                            overrides).
//   avg_pool2d_forward_v2    avg_pool2d_forward tiled as max_pool2d_forward_v2, bit for bit.
//   avg_pool2d_backward      gather over the windows containing each input element.
//   max_pool2d_backward_v2, avg_pool2d_backward_v2
//                            the same results bit for bit (the same windows summed in the same
//                            order) from a block per tile of inputs that first copies the dy (and
//                            index) rows the tile's windows cover to shared memory (coalesced loads,
//                            each dy and index loaded once per tile instead of once per window tap;
//                            see "tiled backward kernels"). The launcher's choice when the staged
//                            rows fit in shared memory; v1 runs otherwise. max_pool2d_backward_v2
//                            also checks every index it stages as max_pool2d_check_indices does
//                            (setting *bad), so the launcher runs that kernel only after v1.
//   adaptive_avg_pool2d_backward_v2, adaptive_max_pool2d_backward_v2
//                            the same tiled gather over adaptive bins (the same results bit for bit
//                            as their v1; the max one checks its indices as the v2 above).
//   adaptive_avg_pool2d_forward / _backward, adaptive_max_pool2d_forward / _backward
//                            bins floor(i*H/OH) .. ceil((i+1)*H/OH); backward is a gather over the
//                            bins that contain each input element.
//   gem_forward              y = mean_window(max(x, eps)^p)^(1/p), windows without padding (global
//                            GeM: one H x W window), computed with the window's maximum factored
//                            out (no overflow for large p, see the GeM section). p is read from a
//                            one-element device array, so a learnable p never needs a host sync.
//   gem_backward_coef        a thread or (large windows) a warp per output, over a fixed grid:
//                            coef = dy*m'^(1/p-1)/K and the window's maximum for dx, and the
//                            output's contribution to dp, summed per block by a fixed shared-memory
//                            tree into partial[blockIdx.x] (no atomics: deterministic).
//   gem_forward_v2, gem_backward_coef_v2
//                            windowed GeM (more than one output per plane) tiled as
//                            max_pool2d_forward_v2: a block per tile of outputs stages the input rows
//                            its windows cover, then a thread per output reduces its window from
//                            shared memory with v1's arithmetic (y, coef, wmax bit for bit as v1's
//                            thread-per-output path). gem_backward_coef_v2 runs 256 threads per
//                            block and writes one dp partial per block (blockIdx.y * gridDim.x +
//                            blockIdx.x; the grid depends only on the shapes: deterministic). The
//                            launcher's choice when the tile fits; global GeM keeps v1.
//   gem_backward_dx          gather: dx = [x >= eps] * sum over the windows of coef * (x/max)^(p-1).
//   sum_reduce               one block: out[0] = sum(partial[0..n)), fixed tree (the dp total).
//   lp_pool2d_forward        one thread per output: y = (avg(x^p) * K)^(1/p), K = kh*kw, over the
//                            window's elements inside the input (PyTorch's lp_pool2d: no padding; a
//                            ceil_mode window overhanging the input averages over its elements inside).
//   lp_pool2d_backward_coef  one thread per output, the window's sum recomputed: its coefficient
//                            [avg != 0] * dy * (1/p) * u^(1/p-1) * K / count (u = avg * K).
//   lp_pool2d_backward_dx    gather: dx = p * x^(p-1) * the sum of coef over the windows holding x.
//
// nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v, registers f32 / f64 (no spills, no stack frame in any;
// _i32 variants within one register of the int64 ones):
//   max_pool2d_forward 32 / 32, backward 39 / 39; avg_pool2d_forward 40 / 40, backward 47 / 64;
//   max_pool2d_forward_v2 31 / 31 (_i32 the same), avg_pool2d_forward_v2 32 / 37 (2026-11-26);
//   max_pool2d_backward_v2 48 / 40 (_i32 44 / 40), avg_pool2d_backward_v2 39 / 52,
//   adaptive_max_pool2d_backward_v2 40 / 40 (_i32 the same), adaptive_avg_pool2d_backward_v2 39 / 48
//   (2026-11-26, with the v1 backward numbers of that day);
//   adaptive_avg forward 32 / 38, backward 44 / 50; adaptive_max forward 31 / 32, backward 40 / 32;
//   gem_forward 32 / 54, gem_backward_coef 39 / 76, gem_backward_dx 40 / 66, gem_forward_v2 45 / 66,
//   gem_backward_coef_v2 45 / 70 (2026-11-26); sum_reduce 31 / 30; lp_pool2d_forward 39 / 60,
//   lp_pool2d_backward_coef 39 / 64, lp_pool2d_backward_dx 32 / 47 (2026-12-08).
// 64-bit division (PTX div/rem.s64): none.
#include "common.cuh"

namespace {

template <typename T> struct Lim;
template <> struct Lim<float> {
    __device__ static float neg_inf() { return -__int_as_float(0x7f800000); }
};
template <> struct Lim<double> {
    __device__ static double neg_inf() { return -__longlong_as_double(0x7ff0000000000000LL); }
};

__device__ __forceinline__ float gc_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double gc_pow(double a, double b) { return pow(a, b); }
// max(v, eps) that keeps NaN, as PyTorch's clamp does (fmax would turn NaN into eps).
template <typename T>
__device__ __forceinline__ T clamp_min(T v, T eps) { return v < eps ? eps : v; }
__device__ __forceinline__ float gc_log(float a) { return logf(a); }
__device__ __forceinline__ double gc_log(double a) { return log(a); }

// Range of window starts o (o*s - pad .. + (k-1)*d) that contain position v at some tap, as
// [lo, hi] with the tap test left to the caller: o*s = v + pad - i*d for some tap i.
__device__ __forceinline__ int ceil_div_nonneg(int a, int b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// Adaptive bins in 32 bits: the launcher checks (size + 1) * out < 2^31.
__device__ __forceinline__ int bin_start(int i, int size, int out) { return i * size / out; }
__device__ __forceinline__ int bin_end(int i, int size, int out) { return ((i + 1) * size + out - 1) / out; }

constexpr int kReduceBlock = 256;  // block size of the tree reductions (a power of two)

}  // namespace

// The planes this thread serves and its positions in each: `ppb` planes per block, blockDim.x/ppb
// threads per plane (a small plane shares a block with others instead of idling most of it);
// plane chunks over grid.x, plane groups over grid.y, both strided. Positions are 32-bit (the
// launcher checks a plane has fewer than 2^31 elements); a plane's base offset is one 64-bit
// multiplication per plane, so no element pays a 64-bit division.
#define GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb)                                                   \
    for (long long plane = (long long)blockIdx.y * (ppb) + threadIdx.x / (blockDim.x / (ppb));              \
         plane < (planes); plane += (long long)gridDim.y * (ppb))                                          \
        for (int pos = blockIdx.x * (blockDim.x / (ppb)) + threadIdx.x % (blockDim.x / (ppb));              \
             pos < (plane_size); pos += gridDim.x * (blockDim.x / (ppb)))

// Warp-per-output loop of the reductions over large windows (adaptive and global pooling, GeM):
// every lane of a warp runs the same iterations, as the shuffles need.
#define GC_WARP_OUTPUT_LOOP(o, total)                                                                     \
    for (int o = (int)((blockIdx.x * blockDim.x + threadIdx.x) / 32); o < (total);                        \
         o += (int)(gridDim.x * blockDim.x / 32))

namespace {

// Window starts o (0 <= o < out) whose taps o*s - pad + i*d (0 <= i < k) include position v:
// o in [lo, hi] with (v + pad - o*s) % d == 0 (the caller checks that when d > 1).
__device__ __forceinline__ void window_range(int v, int pad, int k, int s, int d, int out, int& lo, int& hi) {
    lo = ceil_div_nonneg(v + pad - (k - 1) * d, s);
    hi = min((v + pad) / s, out - 1);
}

// Lane l of a warp walks the window's elements e = l, l + 32, ... in row-major order, as
// (row, col) stepped without a division per element.
struct WindowWalk {
    int row, col, drow, dcol, width;
    __device__ WindowWalk(int window_width) : width(window_width) {
        const int lane = threadIdx.x % 32;
        row = lane / width;
        col = lane - row * width;
        drow = 32 / width;
        dcol = 32 - drow * width;
    }
    __device__ void next() {
        row += drow;
        col += dcol;
        if (col >= width) {
            col -= width;
            ++row;
        }
    }
};

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;  // a fixed butterfly: the same bits on every run, in every lane
}

// The better of two (value, flat index) candidates under max pooling's rule: NaN beats numbers and
// the later NaN wins; among equal numbers the earlier index wins. Commutative and associative, so a
// warp's butterfly finds what the row-major scan finds.
template <typename T>
__device__ __forceinline__ void better(T& v, int& i, T v2, int i2) {
    const bool nan1 = v != v, nan2 = v2 != v2;
    bool take;
    if (nan1 || nan2) take = nan2 && (!nan1 || i2 > i);
    else take = v2 > v || (v2 == v && i2 < i);
    if (take) {
        v = v2;
        i = i2;
    }
}

}  // namespace

// ---- max pooling ---------------------------------------------------------------------------------
// J: the index type written (int32 when the caller keeps indices only for the backward, int64 when
// it returns them to the user, as PyTorch does).
template <typename T, typename J>
__device__ void max_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, J* __restrict__ indices,
                                   long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh,
                                   int sw, int ph, int pw, int dh, int dw, int write_indices, int ppb) {
    const int out_size = oh * ow;
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        const T* xp = x + plane * height * width;
        const int y0 = oy * sh - ph, x0 = ox * sw - pw;
        int fy = y0, fx = x0;  // first tap inside the plane (PyTorch's initial index)
        while (fy < 0) fy += dh;
        while (fx < 0) fx += dw;
        T best = Lim<T>::neg_inf();
        int best_index = fy * width + fx;
        for (int i = 0; i < kh; ++i) {
            const int yy = y0 + i * dh;
            if (yy < 0 || yy >= height) continue;
            for (int j = 0; j < kw; ++j) {
                const int xx = x0 + j * dw;
                if (xx < 0 || xx >= width) continue;
                const T v = xp[yy * width + xx];
                if (v > best || v != v) {
                    best = v;
                    best_index = yy * width + xx;
                }
            }
        }
        const long long o = plane * out_size + pos;
        y[o] = best;
        if (write_indices) indices[o] = (J)best_index;
    }
}

template <typename T, typename J>
__device__ void max_pool2d_backward(const T* __restrict__ dy, const J* __restrict__ indices, T* __restrict__ dx,
                                    long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh,
                                    int sw, int ph, int pw, int dh, int dw, int ppb) {
    const int plane_size = height * width;
    GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb) {
        const int yy = pos / width, xx = pos - yy * width;
        const long long base = plane * oh * ow;
        int oy0, oy1, ox0, ox1;
        window_range(yy, ph, kh, sh, dh, oh, oy0, oy1);
        window_range(xx, pw, kw, sw, dw, ow, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            if (dh > 1 && (yy + ph - oy * sh) % dh != 0) continue;
            for (int ox = ox0; ox <= ox1; ++ox) {
                if (dw > 1 && (xx + pw - ox * sw) % dw != 0) continue;
                const long long o = base + oy * ow + ox;
                if (indices[o] == (J)pos) acc += dy[o];
            }
        }
        dx[plane * plane_size + pos] = acc;
    }
}

// ---- tiled forward kernels (v2): the input a block needs, staged in shared memory ---------------
// A block computes a tile of tile_oh x tile_ow outputs of `tpb` planes (tpb > 1 only when a tile is
// a whole output plane: small planes share a block); blockIdx.x is the tile (row-major over
// tiles_x tiles per output row), plane groups over grid.y, strided. Why: with a thread per output
// and stride s, a warp's k-th tap reads every s-th element, so each request touches s times the
// sectors it uses; here the warps copy the rows the tile's windows cover with consecutive lanes on
// consecutive elements, then every tap is a shared-memory read.
// Shared layout of a staged row (`cols` input columns from ix0): column c at word (c % sw) * cw +
// c / sw, phase-major, so that the lanes of a warp (consecutive outputs, columns sw apart) read
// consecutive words at every tap; cw >= ceil(cols / sw) is padded by the launcher so that the
// phases start in different banks. Positions outside the input hold `pad` (-inf for max, 0 for
// average), which never changes a window's result: -inf never beats the running maximum (nor is
// NaN), and adding +0 leaves a sum that started at +0 unchanged, bit for bit.
namespace {

struct PoolTile {
    int rows, cols, cw, row_words, plane_words, oy0, ox0, iy0, ix0, tile_ow, tile_out;
    __device__ PoolTile(int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int tile_oh, int tile_ow,
                        int tiles_x, int cw_, int row_words_, int plane_words_)
        : rows((tile_oh - 1) * sh + (kh - 1) * dh + 1), cols((tile_ow - 1) * sw + (kw - 1) * dw + 1), cw(cw_),
          row_words(row_words_), plane_words(plane_words_), tile_ow(tile_ow), tile_out(tile_oh * tile_ow) {
        const int ty = blockIdx.x / tiles_x;
        oy0 = ty * tile_oh;
        ox0 = (blockIdx.x - ty * tiles_x) * tile_ow;
        iy0 = oy0 * sh - ph;
        ix0 = ox0 * sw - pw;
    }
    // Output t of the block (plane pl of its group, row oyl and column oxl of the tile); false
    // past the output or past the last plane.
    __device__ bool locate(int t, long long plane0, long long planes, int oh, int ow, int& pl, int& oyl,
                           int& oxl) const {
        pl = t / tile_out;
        oyl = (t - pl * tile_out) / tile_ow;
        oxl = t - pl * tile_out - oyl * tile_ow;
        return plane0 + pl < planes && oy0 + oyl < oh && ox0 + oxl < ow;
    }
};

// Copies the tile's rows of planes plane0 .. plane0 + tpb - 1 into `tile` (a warp per row, lanes on
// consecutive columns), `pad` outside the input and for planes past the last.
template <typename T>
__device__ void stage_tile(const T* __restrict__ x, T* tile, const PoolTile& g, long long plane0, long long planes,
                           int tpb, int height, int width, int sw, T pad) {
    const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
    // Column c = lane + 32*k in (word, phase) = (c / sw, c % sw), stepped without a division.
    const int q0 = lane / sw, r0 = lane - q0 * sw, dq = 32 / sw, dr = 32 - dq * sw;
    for (int pr = threadIdx.x / 32; pr < tpb * g.rows; pr += warps) {
        const int pl = pr / g.rows, gy = g.iy0 + pr - pl * g.rows;
        const long long plane = plane0 + pl;
        const bool row_inside = plane < planes && gy >= 0 && gy < height;
        const T* xr = x + (row_inside ? plane * height * width + (long long)gy * width : 0);
        T* tr = tile + pl * g.plane_words + (pr - pl * g.rows) * g.row_words;
        int q = q0, r = r0;
        for (int c = lane; c < g.cols; c += 32) {
            const int gx = g.ix0 + c;
            tr[r * g.cw + q] = row_inside && gx >= 0 && gx < width ? xr[gx] : pad;
            q += dq;
            r += dr;
            if (r >= sw) {
                r -= sw;
                ++q;
            }
        }
    }
}

}  // namespace

template <typename T, typename J>
__device__ void max_pool2d_forward_tiled(const T* __restrict__ x, T* __restrict__ y, J* __restrict__ indices,
                                         long long planes, int height, int width, int oh, int ow, int kh, int kw,
                                         int sh, int sw, int ph, int pw, int dh, int dw, int write_indices,
                                         int tile_oh, int tile_ow, int tiles_x, int tpb, int cw, int row_words,
                                         int plane_words) {
    extern __shared__ __align__(16) unsigned char pool_smem[];
    T* tile = reinterpret_cast<T*>(pool_smem);
    const PoolTile g(kh, kw, sh, sw, ph, pw, dh, dw, tile_oh, tile_ow, tiles_x, cw, row_words, plane_words);
    const int dq = dw / sw, dr = dw - dq * sw;  // a column tap's step in (word, phase)
    for (long long plane0 = (long long)blockIdx.y * tpb; plane0 < planes; plane0 += (long long)gridDim.y * tpb) {
        stage_tile(x, tile, g, plane0, planes, tpb, height, width, sw, Lim<T>::neg_inf());
        __syncthreads();
        for (int t = threadIdx.x; t < tpb * g.tile_out; t += blockDim.x) {
            int pl, oyl, oxl;
            if (!g.locate(t, plane0, planes, oh, ow, pl, oyl, oxl)) continue;
            const int oy = g.oy0 + oyl, ox = g.ox0 + oxl;
            const int y0 = oy * sh - ph, x0 = ox * sw - pw;
            int fy = y0, fx = x0;  // first tap inside the plane (PyTorch's initial index), as in v1
            while (fy < 0) fy += dh;
            while (fx < 0) fx += dw;
            T best = Lim<T>::neg_inf();
            int best_index = fy * width + fx;
            const T* window = tile + pl * g.plane_words + oyl * sh * g.row_words + oxl;
            for (int i = 0; i < kh; ++i) {
                const T* tr = window + i * dh * g.row_words;
                int q = 0, r = 0;
                for (int j = 0; j < kw; ++j) {
                    const T v = tr[r * cw + q];
                    if (v > best || v != v) {  // padding (-inf) never gets here
                        best = v;
                        best_index = (y0 + i * dh) * width + x0 + j * dw;
                    }
                    q += dq;
                    r += dr;
                    if (r >= sw) {
                        r -= sw;
                        ++q;
                    }
                }
            }
            const long long o = (plane0 + pl) * oh * ow + oy * ow + ox;
            y[o] = best;
            if (write_indices) indices[o] = (J)best_index;
        }
        __syncthreads();  // the next plane group overwrites the tile
    }
}

// ---- index checks for the backward of max and adaptive max pooling ------------------------------
// One thread per output: sets *bad when the index of a window that holds input elements does not
// name one of them (a corrupt index, or one from another call, which the gathers would drop
// silently). A window without input elements passes nothing on, so its index is not checked.
// Every offending thread stores the same 1: a benign race, no atomics.
namespace {

// Whether `index` fails to name an element of window (oy, ox) (false for a window without input
// elements, whose index is not used).
__device__ __forceinline__ bool index_outside_window(long long index, int oy, int ox, int height, int width, int kh,
                                                     int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    const int y0 = oy * sh - ph, x0 = ox * sw - pw;
    int fy = y0, fx = x0;  // first tap inside the plane, as in the forward
    while (fy < 0) fy += dh;
    while (fx < 0) fx += dw;
    if (fy >= height || fy > y0 + (kh - 1) * dh || fx >= width || fx > x0 + (kw - 1) * dw) return false;
    if (index < 0 || index >= (long long)height * width) return true;
    const int row = (int)index / width, col = (int)index - row * width;
    const int di = row - y0, dj = col - x0;
    return di < 0 || dj < 0 || di > (kh - 1) * dh || dj > (kw - 1) * dw || (dh > 1 && di % dh != 0) ||
           (dw > 1 && dj % dw != 0);
}

}  // namespace

template <typename J>
__device__ void max_pool2d_check_indices(const J* __restrict__ indices, int* __restrict__ bad, long long planes,
                                         int height, int width, int oh, int ow, int kh, int kw, int sh, int sw,
                                         int ph, int pw, int dh, int dw, int ppb) {
    const int out_size = oh * ow;
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        if (index_outside_window((long long)indices[plane * out_size + pos], oy, ox, height, width, kh, kw, sh, sw, ph,
                                 pw, dh, dw))
            *bad = 1;
    }
}

namespace {

// Whether `index` fails to name an element of adaptive bin (oy, ox).
__device__ __forceinline__ bool index_outside_bin(long long index, int oy, int ox, int height, int width, int oh,
                                                  int ow) {
    if (index < 0 || index >= (long long)height * width) return true;
    const int row = (int)index / width, col = (int)index - row * width;
    return row < bin_start(oy, height, oh) || row >= bin_end(oy, height, oh) || col < bin_start(ox, width, ow) ||
           col >= bin_end(ox, width, ow);
}

}  // namespace

template <typename J>
__device__ void adaptive_max_pool2d_check_indices(const J* __restrict__ indices, int* __restrict__ bad,
                                                  long long planes, int height, int width, int oh, int ow, int ppb) {
    const int out_size = oh * ow;
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        if (index_outside_bin((long long)indices[plane * out_size + pos], oy, ox, height, width, oh, ow)) *bad = 1;
    }
}

// ---- average pooling -----------------------------------------------------------------------------
// PyTorch's divisor for window (oy, ox); 64-bit because a window's area may pass 2^31 (a 200001^2
// window over a padded 1x1 input) even though each side fits in 32 bits.
__device__ __forceinline__ long long avg_divisor(int oy, int ox, int height, int width, int kh, int kw, int sh,
                                                 int sw, int ph, int pw, int count_include_pad,
                                                 int divisor_override) {
    if (divisor_override > 0) return divisor_override;
    int y0 = oy * sh - ph, x0 = ox * sw - pw;
    int y1 = min(y0 + kh, height + ph), x1 = min(x0 + kw, width + pw);
    if (count_include_pad) return (long long)(y1 - y0) * (x1 - x0);
    y0 = max(y0, 0);
    x0 = max(x0, 0);
    y1 = min(y1, height);
    x1 = min(x1, width);
    return (long long)(y1 - y0) * (x1 - x0);
}

template <typename T>
__device__ void avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width,
                                   int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                   int count_include_pad, int divisor_override, int ppb) {
    const int out_size = oh * ow;
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        const T* xp = x + plane * height * width;
        const int y0 = max(oy * sh - ph, 0), y1 = min(oy * sh - ph + kh, height);
        const int x0 = max(ox * sw - pw, 0), x1 = min(ox * sw - pw + kw, width);
        T acc = T(0);
        for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) acc += xp[yy * width + xx];
        y[plane * out_size + pos] = acc / T(avg_divisor(oy, ox, height, width, kh, kw, sh, sw, ph, pw,
                                                        count_include_pad, divisor_override));
    }
}

template <typename T>
__device__ void avg_pool2d_backward(const T* __restrict__ dy, T* __restrict__ dx, long long planes, int height,
                                    int width, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                    int count_include_pad, int divisor_override, int ppb) {
    const int plane_size = height * width;
    GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb) {
        const int yy = pos / width, xx = pos - yy * width;
        const T* dyp = dy + plane * oh * ow;
        int oy0, oy1, ox0, ox1;
        window_range(yy, ph, kh, sh, 1, oh, oy0, oy1);
        window_range(xx, pw, kw, sw, 1, ow, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox)
                acc += dyp[oy * ow + ox] /
                       T(avg_divisor(oy, ox, height, width, kh, kw, sh, sw, ph, pw, count_include_pad,
                                     divisor_override));
        dx[plane * plane_size + pos] = acc;
    }
}

// v2 of avg_pool2d_forward: the tiled layout of max_pool2d_forward_tiled (dilation 1), padding 0.
template <typename T>
__device__ void avg_pool2d_forward_tiled(const T* __restrict__ x, T* __restrict__ y, long long planes, int height,
                                         int width, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                         int count_include_pad, int divisor_override, int tile_oh, int tile_ow,
                                         int tiles_x, int tpb, int cw, int row_words, int plane_words) {
    extern __shared__ __align__(16) unsigned char pool_smem[];
    T* tile = reinterpret_cast<T*>(pool_smem);
    const PoolTile g(kh, kw, sh, sw, ph, pw, 1, 1, tile_oh, tile_ow, tiles_x, cw, row_words, plane_words);
    const int dq = 1 / sw, dr = 1 - dq * sw;
    for (long long plane0 = (long long)blockIdx.y * tpb; plane0 < planes; plane0 += (long long)gridDim.y * tpb) {
        stage_tile(x, tile, g, plane0, planes, tpb, height, width, sw, T(0));
        __syncthreads();
        for (int t = threadIdx.x; t < tpb * g.tile_out; t += blockDim.x) {
            int pl, oyl, oxl;
            if (!g.locate(t, plane0, planes, oh, ow, pl, oyl, oxl)) continue;
            const int oy = g.oy0 + oyl, ox = g.ox0 + oxl;
            const T* window = tile + pl * g.plane_words + oyl * sh * g.row_words + oxl;
            T acc = T(0);
            for (int i = 0; i < kh; ++i) {
                const T* tr = window + i * g.row_words;
                int q = 0, r = 0;
                for (int j = 0; j < kw; ++j) {
                    acc += tr[r * cw + q];
                    q += dq;
                    r += dr;
                    if (r >= sw) {
                        r -= sw;
                        ++q;
                    }
                }
            }
            y[(plane0 + pl) * oh * ow + oy * ow + ox] =
                acc / T(avg_divisor(oy, ox, height, width, kh, kw, sh, sw, ph, pw, count_include_pad,
                                    divisor_override));
        }
        __syncthreads();  // the next plane group overwrites the tile
    }
}

// ---- tiled backward kernels (v2): the dy (and index) rows a tile of inputs gathers from, staged ---
// A block computes dx for a tile of tile_h x tile_w inputs of `tpb` planes (tpb > 1 only when a tile
// is a whole input plane: small planes share a block); blockIdx.x is the tile (row-major over
// tiles_x tiles per input row), plane groups over grid.y, strided. Why: with a thread per input
// reading its windows' dy (and indices) from global memory, every dy is loaded once per window tap
// that covers an input (about kh*kw times) by requests that straddle sectors; here the block first
// copies the outputs whose windows cover the tile (rows oy_lo.., columns ox_lo..) once, consecutive
// threads on consecutive outputs across row ends (where the rows span the output's width they are
// one contiguous run of dy), and every window is then read from shared memory.
// Shared memory (the launcher sizes it for the largest staged block, see pool_backward_tile):
//   the staged outputs as T, output (pl, oy_lo + r, ox_lo + c) at word pl * plane_words +
//   r * row_words + c (max: dy; average: dy / divisor, the quotient v1 computes per tap, so the sums
//   are the same bits); (max only) the indices as int in the same layout; each tile column's first
//   and last window (relative to ox_lo), tile_w + 32 entries where entry j is column j % tile_w, so
//   that lane l reads entry c0 + l (c0: lane 0's column) and a warp whose elements wrap into the
//   next tile row still reads 32 consecutive words; each tile row's first and last window.
// The windows containing position v are those in [lo, hi] (window_range) whose tap offset
// v + pad - o*s is a multiple of the dilation d: an arithmetic progression of step d / gcd(s, d)
// (`step_y`, `step_x`, from the launcher), so a thread loops over exactly those, in ascending order
// as v1 does, without a division per tap; the divisions that find the ends run once per tile row
// and column per block. Adaptive pooling (kAdaptive) uses the same kernel over PyTorch's bins:
// the bins containing v are consecutive (bin_ends), the staged value of average pooling is
// dy / (bin area), as v1 divides.
// Staged indices outside the plane become -1 (no element's position): an int64 index that is not a
// plane position never matches, as in v1, not even one equal to a position in its low 32 bits.
// Every window with an element inside the plane is staged by the tile holding that element, so
// checking the staged indices (index_outside_window / index_outside_bin, as the check kernels)
// checks them all: the separate check would read the indices again (int64: as many bytes as dx).
namespace {

// First and last window (relative to `base`) that contain position v at a tap; first > last: none.
__device__ __forceinline__ void window_ends(int v, int pad, int k, int s, int d, int out, int base, int& first,
                                            int& last) {
    int lo, hi;
    window_range(v, pad, k, s, d, out, lo, hi);
    if (d > 1) {
        while (lo <= hi && (v + pad - lo * s) % d != 0) ++lo;
        while (hi >= lo && (v + pad - hi * s) % d != 0) --hi;
    }
    first = lo - base;
    last = hi - base;
}

// Element t = start, start + step, ... of a block of planes x rows x cols as (pl, r, c), stepped
// without a division per element (the divisions split start and step once).
struct BlockWalk {
    int pl, r, c, dpl, dr, dc, rows, cols;
    __device__ BlockWalk(int start, int step, int rows_, int cols_) : rows(rows_), cols(cols_) {
        const int size = rows * cols;
        pl = start / size;
        r = (start - pl * size) / cols;
        c = start - pl * size - r * cols;
        dpl = step / size;
        dr = (step - dpl * size) / cols;
        dc = step - dpl * size - dr * cols;
    }
    __device__ void next() {
        c += dc;
        if (c >= cols) {
            c -= cols;
            ++r;
        }
        r += dr;
        if (r >= rows) {
            r -= rows;
            ++pl;
        }
        pl += dpl;
    }
};

// First and last adaptive bin (relative to `base`) that contain position v, exactly: bin o holds v
// iff floor(o*size/out) <= v < ceil((o+1)*size/out), i.e. floor(v*out/size) <= o <
// ceil((v+1)*out/size) (bins are intervals with increasing starts and ends).
__device__ __forceinline__ void bin_ends(int v, int size, int out, int base, int& first, int& last) {
    first = bin_start(v, out, size) - base;
    last = min(bin_end(v, out, size) - 1, out - 1) - base;
}

template <typename J>
__device__ __forceinline__ int staged_index(J index, int plane_size) {
    return index >= 0 && index < (J)plane_size ? (int)index : -1;
}

}  // namespace

template <typename T, typename J, bool kMax, bool kAdaptive>
__device__ void pool2d_backward_tiled(const T* __restrict__ dy, const J* __restrict__ indices, T* __restrict__ dx,
                                      int* __restrict__ bad, long long planes, int height, int width, int oh, int ow,
                                      int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int count_include_pad, int divisor_override, int tile_h, int tile_w, int tiles_x,
                                      int tpb, int step_y, int step_x, int row_words, int plane_words) {
    extern __shared__ __align__(16) unsigned char pool_smem[];
    T* s_dy = reinterpret_cast<T*>(pool_smem);
    int* s_idx = reinterpret_cast<int*>(s_dy + tpb * plane_words);
    int* first_x = s_idx + (kMax ? tpb * plane_words : 0);
    int* last_x = first_x + tile_w + 32;
    int* first_y = last_x + tile_w + 32;
    int* last_y = first_y + tile_h;
    const int ty = blockIdx.x / tiles_x;
    const int iy0 = ty * tile_h, ix0 = (blockIdx.x - ty * tiles_x) * tile_w;
    const int iy1 = min(iy0 + tile_h, height) - 1, ix1 = min(ix0 + tile_w, width) - 1;
    // The staged outputs: from the first window of the tile's first row / column to the last of
    // its last (window_range is monotone in v); rows or cols <= 0 when no window covers the tile.
    // Windows (or adaptive bins) containing position v along y or x, relative to base.
    auto ends_y = [&](int v, int base, int& first, int& last) {
        if constexpr (kAdaptive) bin_ends(v, height, oh, base, first, last);
        else window_ends(v, ph, kh, sh, dh, oh, base, first, last);
    };
    auto ends_x = [&](int v, int base, int& first, int& last) {
        if constexpr (kAdaptive) bin_ends(v, width, ow, base, first, last);
        else window_ends(v, pw, kw, sw, dw, ow, base, first, last);
    };
    // The staged range needs ends monotone in v: window_range's (before the dilation trims them) or
    // the bins' (exact).
    auto range_y = [&](int v, int& first, int& last) {
        if constexpr (kAdaptive) bin_ends(v, height, oh, 0, first, last);
        else window_range(v, ph, kh, sh, dh, oh, first, last);
    };
    auto range_x = [&](int v, int& first, int& last) {
        if constexpr (kAdaptive) bin_ends(v, width, ow, 0, first, last);
        else window_range(v, pw, kw, sw, dw, ow, first, last);
    };
    int oy_lo, oy_hi, ox_lo, ox_hi, unused;
    range_y(iy0, oy_lo, unused);
    range_y(iy1, unused, oy_hi);
    range_x(ix0, ox_lo, unused);
    range_x(ix1, unused, ox_hi);
    const int rows = oy_hi - oy_lo + 1, cols = ox_hi - ox_lo + 1;
    // Column entries j < tile_w + 32 hold column j % tile_w: lane l reads entry c0 + l (c0: lane 0's
    // column), so a warp whose elements wrap to the next tile row reads 32 consecutive words.
    // Positions past the plane (a partial tile) get an empty range: never read, and their bins
    // would need products past what the launcher checked.
    for (int t = threadIdx.x; t < tile_w + 32 + tile_h; t += blockDim.x) {
        if (t < tile_w + 32) {
            const int ix = ix0 + t % tile_w;
            first_x[t] = 0;
            last_x[t] = -1;
            if (ix < width) ends_x(ix, ox_lo, first_x[t], last_x[t]);
        } else {
            const int r = t - tile_w - 32;
            first_y[r] = 0;
            last_y[r] = -1;
            if (iy0 + r < height) ends_y(iy0 + r, oy_lo, first_y[r], last_y[r]);
        }
    }
    const int plane_size = height * width, out_size = oh * ow, lane = threadIdx.x % 32;
    // The column entry of this thread's element: c0 + lane, the one in [lane, lane + tile_w) that
    // is c (mod tile_w); kept in that range as the element steps by blockDim.x (a multiple of 32).
    int start_entry = threadIdx.x % tile_w;
    while (start_entry < lane) start_entry += tile_w;
    for (long long plane0 = (long long)blockIdx.y * tpb; plane0 < planes; plane0 += (long long)gridDim.y * tpb) {
        // Consecutive threads on consecutive staged outputs, across row ends (a staged row of a
        // small plane is shorter than a warp; where it spans the output's width, the rows are
        // contiguous in dy).
        if (rows > 0 && cols > 0) {
            for (BlockWalk e(threadIdx.x, blockDim.x, rows, cols); e.pl < tpb; e.next()) {
                const long long plane = plane0 + e.pl;
                if (plane >= planes) break;  // later elements are in later planes: never read
                const int oy = oy_lo + e.r, ox = ox_lo + e.c;
                const long long o = plane * out_size + (long long)oy * ow + ox;
                const int word = e.pl * plane_words + e.r * row_words + e.c;
                if constexpr (kMax) {
                    s_dy[word] = dy[o];
                    const J index = indices[o];
                    s_idx[word] = staged_index(index, plane_size);
                    // Atomic: overlapping tiles stage (and report) the same index.
                    bool outside;
                    if constexpr (kAdaptive)
                        outside = index_outside_bin((long long)index, oy, ox, height, width, oh, ow);
                    else
                        outside = index_outside_window((long long)index, oy, ox, height, width, kh, kw, sh, sw, ph, pw,
                                                       dh, dw);
                    if (outside) atomicExch(bad, 1);
                } else if constexpr (kAdaptive) {
                    s_dy[word] = dy[o] / T((bin_end(oy, height, oh) - bin_start(oy, height, oh)) *
                                           (bin_end(ox, width, ow) - bin_start(ox, width, ow)));
                } else {
                    s_dy[word] = dy[o] / T(avg_divisor(oy, ox, height, width, kh, kw, sh, sw, ph, pw, count_include_pad,
                                                       divisor_override));
                }
            }
        }
        __syncthreads();
        int entry = start_entry;
        for (BlockWalk e(threadIdx.x, blockDim.x, tile_h, tile_w); e.pl < tpb; e.next()) {
            const int pl = e.pl, r = e.r, c = e.c;
            const int iy = iy0 + r, ix = ix0 + c;
            if (plane0 + pl < planes && iy < height && ix < width) {
                const int pos = iy * width + ix;
                const T* sp = s_dy + pl * plane_words;
                const int* ip = s_idx + pl * plane_words;
                const int fx = first_x[entry], lx = last_x[entry], ly = last_y[r];
                T acc = T(0);
                for (int oy = first_y[r]; oy <= ly; oy += step_y)
                    for (int ox = fx; ox <= lx; ox += step_x) {
                        const int w = oy * row_words + ox;
                        if (!kMax || ip[w] == pos) acc += sp[w];
                    }
                dx[(plane0 + pl) * plane_size + pos] = acc;
            }
            entry += e.dc;
            if (entry >= lane + tile_w) entry -= tile_w;
        }
        __syncthreads();  // the next plane group overwrites the staged rows
    }
}

// ---- adaptive pooling ----------------------------------------------------------------------------
// Forward kernels: warp_mode != 0 gives each output a warp (lanes stride over the bin, a shuffle
// tree combines them: large bins, e.g. global pooling of 7x7 planes), else a thread per output.
template <typename T>
__device__ void adaptive_avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, long long planes, int height,
                                            int width, int oh, int ow, int ppb, int warp_mode) {
    const int out_size = oh * ow;
    if (warp_mode) {
        GC_WARP_OUTPUT_LOOP(o, (int)(planes * out_size)) {
            const int plane = o / out_size, pos = o - plane * out_size;
            const int oy = pos / ow, ox = pos - oy * ow;
            const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
            const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
            const T* xp = x + (long long)plane * height * width + y0 * width + x0;
            T acc = T(0);
            for (WindowWalk w(x1 - x0); w.row < y1 - y0; w.next()) acc += xp[w.row * width + w.col];
            acc = warp_sum(acc);
            if (threadIdx.x % 32 == 0) y[o] = acc / T((y1 - y0) * (x1 - x0));
        }
        return;
    }
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        const T* xp = x + plane * height * width;
        const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
        const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
        T acc = T(0);
        for (int yy = y0; yy < y1; ++yy)
            for (int xx = x0; xx < x1; ++xx) acc += xp[yy * width + xx];
        y[plane * out_size + pos] = acc / T((y1 - y0) * (x1 - x0));
    }
}

template <typename T>
__device__ void adaptive_avg_pool2d_backward(const T* __restrict__ dy, T* __restrict__ dx, long long planes,
                                             int height, int width, int oh, int ow, int ppb) {
    const int plane_size = height * width;
    GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb) {
        const int yy = pos / width, xx = pos - yy * width;
        const T* dyp = dy + plane * oh * ow;
        // Bins containing yy: floor(yy*OH/H) .. ceil((yy+1)*OH/H) - 1 (checked exactly below).
        const int oy0 = bin_start(yy, oh, height), oy1 = min(bin_end(yy, oh, height) - 1, oh - 1);
        const int ox0 = bin_start(xx, ow, width), ox1 = min(bin_end(xx, ow, width) - 1, ow - 1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
            if (yy < y0 || yy >= y1) continue;
            for (int ox = ox0; ox <= ox1; ++ox) {
                const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
                if (xx < x0 || xx >= x1) continue;
                acc += dyp[oy * ow + ox] / T((y1 - y0) * (x1 - x0));
            }
        }
        dx[plane * plane_size + pos] = acc;
    }
}

template <typename T, typename J>
__device__ void adaptive_max_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, J* __restrict__ indices,
                                            long long planes, int height, int width, int oh, int ow, int ppb,
                                            int warp_mode) {
    const int out_size = oh * ow;
    if (warp_mode) {
        GC_WARP_OUTPUT_LOOP(o, (int)(planes * out_size)) {
            const int plane = o / out_size, pos = o - plane * out_size;
            const int oy = pos / ow, ox = pos - oy * ow;
            const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
            const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
            const T* xp = x + (long long)plane * height * width;
            T best = Lim<T>::neg_inf();
            int best_index = 0x7fffffff;  // loses every tie: an empty lane never wins
            for (WindowWalk w(x1 - x0); w.row < y1 - y0; w.next()) {
                const int index = (y0 + w.row) * width + x0 + w.col;
                better(best, best_index, xp[index], index);
            }
            for (int offset = 16; offset > 0; offset >>= 1)
                better(best, best_index, __shfl_xor_sync(0xffffffffu, best, offset),
                       __shfl_xor_sync(0xffffffffu, best_index, offset));
            if (threadIdx.x % 32 == 0) {
                y[o] = best;
                indices[o] = (J)best_index;
            }
        }
        return;
    }
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        const T* xp = x + plane * height * width;
        const int y0 = bin_start(oy, height, oh), y1 = bin_end(oy, height, oh);
        const int x0 = bin_start(ox, width, ow), x1 = bin_end(ox, width, ow);
        T best = Lim<T>::neg_inf();
        int best_index = y0 * width + x0;
        for (int yy = y0; yy < y1; ++yy) {
            for (int xx = x0; xx < x1; ++xx) {
                const T v = xp[yy * width + xx];
                if (v > best || v != v) {
                    best = v;
                    best_index = yy * width + xx;
                }
            }
        }
        y[plane * out_size + pos] = best;
        indices[plane * out_size + pos] = (J)best_index;
    }
}

template <typename T, typename J>
__device__ void adaptive_max_pool2d_backward(const T* __restrict__ dy, const J* __restrict__ indices,
                                             T* __restrict__ dx, long long planes, int height, int width, int oh,
                                             int ow, int ppb) {
    const int plane_size = height * width;
    GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb) {
        const int yy = pos / width, xx = pos - yy * width;
        const long long base = plane * oh * ow;
        const int oy0 = bin_start(yy, oh, height), oy1 = min(bin_end(yy, oh, height) - 1, oh - 1);
        const int ox0 = bin_start(xx, ow, width), ox1 = min(bin_end(xx, ow, width) - 1, ow - 1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) {
                const long long o = base + oy * ow + ox;
                if (indices[o] == (J)pos) acc += dy[o];
            }
        dx[plane * plane_size + pos] = acc;
    }
}

// ---- GeM -----------------------------------------------------------------------------------------
// Every window is computed with its maximum M = max(c) (c = max(x, eps)) factored out: with
// r = c / M in (0, 1] and m' = mean(r^p) in [1/K, 1],
//   y = M * m'^(1/p),   dy/dc = r^(p-1) * m'^(1/p - 1) / K,   dy/dp = y * (S/(K*p*m') - log(m')/p^2)
// where S = sum(r^p * log(r)). Nothing overflows or underflows to 0/0 for any p, where
// mean(c^p) itself does in float32 already for p = 50 on inputs in [0, 10] (or on zeros: eps^50).
template <typename T>
__device__ __forceinline__ T max_nan(T a, T b) { return (a > b || a != a) ? a : b; }  // keeps NaN

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// A kh x kw window read in row-major order: from global memory (v1, rows `width` apart) or from a
// tile staged by stage_tile (v2: rows row_words apart, column j at word (j % sw) * cw + j / sw).
// The v1 and v2 kernels share the window arithmetic below through each(), so both visit the same
// values in the same order and give the same bits.
template <typename T>
struct GemGlobalWindow {
    const T* xp;
    int width, kh, kw;
    template <typename F>
    __device__ __forceinline__ void each(F f) const {
        for (int i = 0; i < kh; ++i)
            for (int j = 0; j < kw; ++j) f(xp[i * width + j]);
    }
};

template <typename T>
struct GemTileWindow {
    const T* window;
    int row_words, cw, sw, kh, kw;
    template <typename F>
    __device__ __forceinline__ void each(F f) const {
        const int dq = 1 / sw, dr = 1 - dq * sw;  // a column's step in (word, phase)
        for (int i = 0; i < kh; ++i) {
            const T* tr = window + i * row_words;
            int q = 0, r = 0;
            for (int j = 0; j < kw; ++j) {
                f(tr[r * cw + q]);
                q += dq;
                r += dr;
                if (r >= sw) {
                    r -= sw;
                    ++q;
                }
            }
        }
    }
};

// The maximum of max(x, eps) over a window.
template <typename T, typename W>
__device__ __forceinline__ T gem_window_max(const W& win, T eps) {
    T best = eps;
    win.each([&](T v) { best = max_nan(best, clamp_min(v, eps)); });
    return best;
}

// sum over the window of r^p (and, when log_sum is not null, of r^p * log(r)), r = max(x, eps) / wmax.
template <typename T, typename W>
__device__ __forceinline__ T gem_window_sum(const W& win, T p, T eps, T wmax, T* log_sum) {
    const T inv = T(1) / wmax;
    T acc = T(0), acc_log = T(0);
    win.each([&](T v) {
        const T r = clamp_min(v, eps) * inv;
        const T rp = gc_pow(r, p);
        acc += rp;
        if (log_sum) acc_log += rp * gc_log(r);
    });
    if (log_sum) *log_sum = acc_log;
    return acc;
}

// y = M * m'^(1/p); a window whose maximum is +inf (or NaN) has that as its result: with M factored
// out, r = inf / inf would be NaN where PyTorch's mean(c^p)^(1/p), like avg and max pooling, is inf.
template <typename T>
__device__ __forceinline__ T gem_value(T wmax, T m, T p) {
    return wmax - wmax == T(0) ? wmax * gc_pow(m, T(1) / p) : wmax;
}

template <typename T>
__device__ void gem_forward(const T* __restrict__ x, const T* __restrict__ p_ptr, T* __restrict__ y, long long planes,
                            int height, int width, int oh, int ow, int kh, int kw, int sh, int sw, T eps, int ppb,
                            int warp_mode) {
    const T p = p_ptr[0];
    const T k = T(kh * kw);
    const int out_size = oh * ow;
    if (warp_mode) {
        GC_WARP_OUTPUT_LOOP(o, (int)(planes * out_size)) {
            const int plane = o / out_size, pos = o - plane * out_size;
            const int oy = pos / ow, ox = pos - oy * ow;
            const T* xp = x + (long long)plane * height * width + oy * sh * width + ox * sw;
            T wmax = eps;
            for (WindowWalk w(kw); w.row < kh; w.next()) wmax = max_nan(wmax, clamp_min(xp[w.row * width + w.col], eps));
            wmax = warp_max(wmax);
            const T inv = T(1) / wmax;
            T acc = T(0);
            for (WindowWalk w(kw); w.row < kh; w.next()) acc += gc_pow(clamp_min(xp[w.row * width + w.col], eps) * inv, p);
            acc = warp_sum(acc);
            if (threadIdx.x % 32 == 0) y[o] = gem_value(wmax, acc / k, p);
        }
        return;
    }
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        const GemGlobalWindow<T> win{x + plane * height * width + oy * sh * width + ox * sw, width, kh, kw};
        const T wmax = gem_window_max<T>(win, eps);
        const T m = gem_window_sum<T>(win, p, eps, wmax, nullptr) / k;
        y[plane * out_size + pos] = gem_value(wmax, m, p);
    }
}

// Per output: coef = dy * m'^(1/p - 1) / K and the window's maximum (for dx), and its term of dp.
template <typename T>
__device__ void gem_backward_coef(const T* __restrict__ x, const T* __restrict__ p_ptr, const T* __restrict__ dy,
                                  T* __restrict__ coef, T* __restrict__ wmax_out, T* __restrict__ partial,
                                  long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh,
                                  int sw, T eps, int warp_mode) {
    __shared__ T shared[kReduceBlock];
    const T p = p_ptr[0];
    const T k = T(kh * kw);
    const int out_size = oh * ow;
    T dp = T(0);
    // The output's coefficient and its term of dp from the window's max, mean m' and S.
    auto finish = [&](int o, T wmax, T m, T log_sum) {
        const T yv = wmax * gc_pow(m, T(1) / p);
        coef[o] = dy[o] * gc_pow(m, T(1) / p - T(1)) / k;
        wmax_out[o] = wmax;
        dp += dy[o] * yv * (log_sum / (k * p * m) - gc_log(m) / (p * p));
    };
    if (warp_mode) {  // a warp per output (large windows); lane 0 keeps the output's dp term
        GC_WARP_OUTPUT_LOOP(o, (int)(planes * out_size)) {
            const int plane = o / out_size, pos = o - plane * out_size;
            const int oy = pos / ow, ox = pos - oy * ow;
            const T* xp = x + (long long)plane * height * width + oy * sh * width + ox * sw;
            T wmax = eps;
            for (WindowWalk w(kw); w.row < kh; w.next()) wmax = max_nan(wmax, clamp_min(xp[w.row * width + w.col], eps));
            wmax = warp_max(wmax);
            const T inv = T(1) / wmax;
            T sum = T(0), log_sum = T(0);
            for (WindowWalk w(kw); w.row < kh; w.next()) {
                const T r = clamp_min(xp[w.row * width + w.col], eps) * inv;
                const T rp = gc_pow(r, p);
                sum += rp;
                log_sum += rp * gc_log(r);
            }
            sum = warp_sum(sum);
            log_sum = warp_sum(log_sum);
            if (threadIdx.x % 32 == 0) finish(o, wmax, sum / k, log_sum);
        }
    } else {  // a thread per output; the launcher checked planes * OH * OW < 2^31
        const int total = (int)(planes * out_size);
        for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < total; o += blockDim.x * gridDim.x) {
            const int plane = o / out_size, pos = o - plane * out_size;
            const int oy = pos / ow, ox = pos - oy * ow;
            const GemGlobalWindow<T> win{x + (long long)plane * height * width + oy * sh * width + ox * sw, width,
                                         kh, kw};
            const T wmax = gem_window_max<T>(win, eps);
            T log_sum;
            const T m = gem_window_sum<T>(win, p, eps, wmax, &log_sum) / k;
            finish(o, wmax, m, log_sum);
        }
    }
    const T block_total = gc::block_sum<kReduceBlock>(dp, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = block_total;
}

// v2 of gem_forward and gem_backward_coef (windowed GeM, a thread per output): the tiled layout of
// max_pool2d_forward_tiled (padding 0, dilation 1; see "tiled forward kernels"), the same window
// arithmetic as v1 on the staged values, so the same bits for y, coef and wmax. Staged positions
// past the input (the overhang of a tile's last row or column) are never read: windows have no
// padding, so every valid output's window lies inside the input.
template <typename T>
__device__ void gem_forward_tiled(const T* __restrict__ x, const T* __restrict__ p_ptr, T* __restrict__ y,
                                  long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh,
                                  int sw, T eps, int tile_oh, int tile_ow, int tiles_x, int tpb, int cw, int row_words,
                                  int plane_words) {
    extern __shared__ __align__(16) unsigned char pool_smem[];
    T* tile = reinterpret_cast<T*>(pool_smem);
    const T p = p_ptr[0];
    const T k = T(kh * kw);
    const PoolTile g(kh, kw, sh, sw, 0, 0, 1, 1, tile_oh, tile_ow, tiles_x, cw, row_words, plane_words);
    for (long long plane0 = (long long)blockIdx.y * tpb; plane0 < planes; plane0 += (long long)gridDim.y * tpb) {
        stage_tile(x, tile, g, plane0, planes, tpb, height, width, sw, eps);
        __syncthreads();
        for (int t = threadIdx.x; t < tpb * g.tile_out; t += blockDim.x) {
            int pl, oyl, oxl;
            if (!g.locate(t, plane0, planes, oh, ow, pl, oyl, oxl)) continue;
            const GemTileWindow<T> win{tile + pl * g.plane_words + oyl * sh * g.row_words + oxl, g.row_words, cw, sw,
                                       kh, kw};
            const T wmax = gem_window_max<T>(win, eps);
            const T m = gem_window_sum<T>(win, p, eps, wmax, nullptr) / k;
            y[(plane0 + pl) * oh * ow + (g.oy0 + oyl) * ow + g.ox0 + oxl] = gem_value(wmax, m, p);
        }
        __syncthreads();  // the next plane group overwrites the tile
    }
}

// The block's dp terms go to partial[blockIdx.y * gridDim.x + blockIdx.x] by the fixed tree of v1:
// the grid depends only on the shapes (pool_tile), so dp is the same bits on every run and device
// (not v1's bits: the terms are grouped by tile instead of by thread stride). blockDim.x must be
// kReduceBlock.
template <typename T>
__device__ void gem_backward_coef_tiled(const T* __restrict__ x, const T* __restrict__ p_ptr,
                                        const T* __restrict__ dy, T* __restrict__ coef, T* __restrict__ wmax_out,
                                        T* __restrict__ partial, long long planes, int height, int width, int oh,
                                        int ow, int kh, int kw, int sh, int sw, T eps, int tile_oh, int tile_ow,
                                        int tiles_x, int tpb, int cw, int row_words, int plane_words) {
    extern __shared__ __align__(16) unsigned char pool_smem[];
    __shared__ T shared[kReduceBlock];
    T* tile = reinterpret_cast<T*>(pool_smem);
    const T p = p_ptr[0];
    const T k = T(kh * kw);
    const PoolTile g(kh, kw, sh, sw, 0, 0, 1, 1, tile_oh, tile_ow, tiles_x, cw, row_words, plane_words);
    T dp = T(0);
    for (long long plane0 = (long long)blockIdx.y * tpb; plane0 < planes; plane0 += (long long)gridDim.y * tpb) {
        stage_tile(x, tile, g, plane0, planes, tpb, height, width, sw, eps);
        __syncthreads();
        for (int t = threadIdx.x; t < tpb * g.tile_out; t += blockDim.x) {
            int pl, oyl, oxl;
            if (!g.locate(t, plane0, planes, oh, ow, pl, oyl, oxl)) continue;
            const GemTileWindow<T> win{tile + pl * g.plane_words + oyl * sh * g.row_words + oxl, g.row_words, cw, sw,
                                       kh, kw};
            const T wmax = gem_window_max<T>(win, eps);
            T log_sum;
            const T m = gem_window_sum<T>(win, p, eps, wmax, &log_sum) / k;
            // As v1's finish().
            const long long o = (plane0 + pl) * oh * ow + (g.oy0 + oyl) * ow + g.ox0 + oxl;
            const T yv = wmax * gc_pow(m, T(1) / p);
            coef[o] = dy[o] * gc_pow(m, T(1) / p - T(1)) / k;
            wmax_out[o] = wmax;
            dp += dy[o] * yv * (log_sum / (k * p * m) - gc_log(m) / (p * p));
        }
        __syncthreads();  // the next plane group overwrites the tile
    }
    const T block_total = gc::block_sum<kReduceBlock>(dp, shared);
    if (threadIdx.x == 0) partial[blockIdx.y * gridDim.x + blockIdx.x] = block_total;
}

// Gather: dx = [x >= eps] * sum over the windows holding x of coef * (x / window max)^(p-1).
template <typename T>
__device__ void gem_backward_dx(const T* __restrict__ x, const T* __restrict__ p_ptr, const T* __restrict__ coef,
                                const T* __restrict__ wmax, T* __restrict__ dx, long long planes, int height,
                                int width, int oh, int ow, int kh, int kw, int sh, int sw, T eps, int ppb) {
    const T p = p_ptr[0];
    const int plane_size = height * width;
    GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb) {
        const int yy = pos / width, xx = pos - yy * width;
        const T* cp = coef + plane * oh * ow;
        const T* mp = wmax + plane * oh * ow;
        const long long i = plane * plane_size + pos;
        const T v = x[i];
        T result = T(0);
        if (v >= eps) {
            int oy0, oy1, ox0, ox1;
            window_range(yy, 0, kh, sh, 1, oh, oy0, oy1);
            window_range(xx, 0, kw, sw, 1, ow, ox0, ox1);
            for (int oy = oy0; oy <= oy1; ++oy)
                for (int ox = ox0; ox <= ox1; ++ox) {
                    const int o = oy * ow + ox;
                    result += cp[o] * gc_pow(v / mp[o], p - T(1));
                }
        }
        dx[i] = result;
    }
}

template <typename T>
__device__ void sum_reduce(const T* __restrict__ partial, T* __restrict__ out, int n) {
    __shared__ T shared[kReduceBlock];
    T acc = T(0);
    for (int i = threadIdx.x; i < n; i += kReduceBlock) acc += partial[i];
    const T total = gc::block_sum<kReduceBlock>(acc, shared);
    if (threadIdx.x == 0) out[0] = total;
}

// ---- LP pooling ----------------------------------------------------------------------------------
// PyTorch's lp_pool2d: y = (avg_pool2d(x^p) * K)^(1/p), K = kh*kw, windows without padding; the
// average's divisor is the window's element count inside the input, which is K except for a
// ceil_mode window overhanging the input (PyTorch's count_include_pad rule with padding 0), so that
// window is scaled by K / count. inv_p = 1/p and the exponents p - 1, 1/p - 1 are rounded once on
// the host from the double p, as PyTorch's Python-scalar exponents are.
namespace {

// Sum of x^p over the window of output (oy, ox) inside the plane, and that window's element count.
template <typename T>
__device__ __forceinline__ T lp_window_sum(const T* __restrict__ xp, int oy, int ox, int height, int width, int kh,
                                           int kw, int sh, int sw, T p, int& count) {
    const int y0 = oy * sh, y1 = min(y0 + kh, height);
    const int x0 = ox * sw, x1 = min(x0 + kw, width);
    T acc = T(0);
    for (int yy = y0; yy < y1; ++yy)
        for (int xx = x0; xx < x1; ++xx) acc += gc_pow(xp[yy * width + xx], p);
    count = (y1 - y0) * (x1 - x0);
    return acc;
}

}  // namespace

template <typename T>
__device__ void lp_pool2d_forward(const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width,
                                  int oh, int ow, int kh, int kw, int sh, int sw, T p, T inv_p, int ppb) {
    const int out_size = oh * ow;
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        int count;
        const T sum = lp_window_sum(x + plane * height * width, oy, ox, height, width, kh, kw, sh, sw, p, count);
        y[plane * out_size + pos] = gc_pow(sum / T(count) * (T(kh) * T(kw)), inv_p);
    }
}

// One thread per output: coef = [u != 0] * dy * (1/p) * u^(1/p - 1) * K / count, u the window's
// (avg * K), what each element of the window receives before the factor p * x^(p-1) (a window whose
// average is 0 passes nothing on: PyTorch's relu in its formula).
template <typename T>
__device__ void lp_pool2d_backward_coef(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ coef,
                                        long long planes, int height, int width, int oh, int ow, int kh, int kw,
                                        int sh, int sw, T p, T inv_p, T inv_p_minus_1, int ppb) {
    const int out_size = oh * ow;
    GC_PLANE_LOOP(plane, pos, planes, out_size, ppb) {
        const int oy = pos / ow, ox = pos - oy * ow;
        int count;
        const T sum = lp_window_sum(x + plane * height * width, oy, ox, height, width, kh, kw, sh, sw, p, count);
        const T avg = sum / T(count), k = T(kh) * T(kw);
        const long long o = plane * out_size + pos;
        coef[o] = avg == T(0) ? T(0) : dy[o] * (inv_p * gc_pow(avg * k, inv_p_minus_1)) * k / T(count);
    }
}

// Gather, one thread per input element: dx = (p * x^(p-1)) * sum of coef over the windows holding it.
template <typename T>
__device__ void lp_pool2d_backward_dx(const T* __restrict__ x, const T* __restrict__ coef, T* __restrict__ dx,
                                      long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh,
                                      int sw, T p, T p_minus_1, int ppb) {
    const int plane_size = height * width;
    GC_PLANE_LOOP(plane, pos, planes, plane_size, ppb) {
        const int yy = pos / width, xx = pos - yy * width;
        const T* cp = coef + plane * oh * ow;
        int oy0, oy1, ox0, ox1;
        window_range(yy, 0, kh, sh, 1, oh, oy0, oy1);
        window_range(xx, 0, kw, sw, 1, ow, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy)
            for (int ox = ox0; ox <= ox1; ++ox) acc += cp[oy * ow + ox];
        const long long i = plane * plane_size + pos;
        dx[i] = acc * (p * gc_pow(x[i], p_minus_1));
    }
}

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
#define MAXPOOL_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, ppb
#define AVGPOOL_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override, ppb
#define GEM_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, eps
GC_ENTRY_F_I32(max_pool2d_forward,
        (const T* __restrict__ x, T* __restrict__ y, I* __restrict__ indices, long long planes, int height, int width,
         int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int write_indices, int ppb),
        max_pool2d_forward<T, I>(x, y, indices, planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw,
            write_indices, ppb))
GC_ENTRY_F_I32(max_pool2d_backward,
        (const T* __restrict__ dy, const I* __restrict__ indices, T* __restrict__ dx, long long planes, int height,
         int width, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int ppb),
        max_pool2d_backward<T, I>(dy, indices, dx, MAXPOOL_ARGS))
// The index checks do not read dy: _f32 and _f64 differ only in name (the launcher picks by dy's dtype).
GC_ENTRY_F_I32(max_pool2d_check_indices,
        (const I* __restrict__ indices, int* __restrict__ bad, long long planes, int height, int width, int oh, int ow,
         int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int ppb),
        max_pool2d_check_indices<I>(indices, bad, MAXPOOL_ARGS))
GC_ENTRY_F_I32(adaptive_max_pool2d_check_indices,
        (const I* __restrict__ indices, int* __restrict__ bad, long long planes, int height, int width, int oh, int ow,
         int ppb),
        adaptive_max_pool2d_check_indices<I>(indices, bad, planes, height, width, oh, ow, ppb))
#define MAXPOOL_TILED_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, write_indices, \
    tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words
GC_ENTRY_F_I32(max_pool2d_forward_v2,
        (const T* __restrict__ x, T* __restrict__ y, I* __restrict__ indices, long long planes, int height, int width,
         int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int write_indices, int tile_oh,
         int tile_ow, int tiles_x, int tpb, int cw, int row_words, int plane_words),
        max_pool2d_forward_tiled<T, I>(x, y, indices, MAXPOOL_TILED_ARGS))
#define AVGPOOL_TILED_ARGS planes, height, width, oh, ow, kh, kw, sh, sw, ph, pw, count_include_pad, \
    divisor_override, tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words
GC_ENTRY_F(avg_pool2d_forward_v2,
        (const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, int ph, int pw, int count_include_pad, int divisor_override, int tile_oh, int tile_ow,
         int tiles_x, int tpb, int cw, int row_words, int plane_words),
        avg_pool2d_forward_tiled<T>(x, y, AVGPOOL_TILED_ARGS))
GC_ENTRY_F(avg_pool2d_forward,
        (const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, int ph, int pw, int count_include_pad, int divisor_override, int ppb),
        avg_pool2d_forward<T>(x, y, AVGPOOL_ARGS))
GC_ENTRY_F(avg_pool2d_backward,
        (const T* __restrict__ dy, T* __restrict__ dx, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, int ph, int pw, int count_include_pad, int divisor_override, int ppb),
        avg_pool2d_backward<T>(dy, dx, AVGPOOL_ARGS))
GC_ENTRY_F(adaptive_avg_pool2d_forward,
        (const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width, int oh, int ow, int ppb,
         int warp_mode),
        adaptive_avg_pool2d_forward<T>(x, y, planes, height, width, oh, ow, ppb, warp_mode))
GC_ENTRY_F(adaptive_avg_pool2d_backward,
        (const T* __restrict__ dy, T* __restrict__ dx, long long planes, int height, int width, int oh, int ow,
         int ppb),
        adaptive_avg_pool2d_backward<T>(dy, dx, planes, height, width, oh, ow, ppb))
GC_ENTRY_F_I32(adaptive_max_pool2d_forward,
        (const T* __restrict__ x, T* __restrict__ y, I* __restrict__ indices, long long planes, int height, int width,
         int oh, int ow, int ppb, int warp_mode),
        adaptive_max_pool2d_forward<T, I>(x, y, indices, planes, height, width, oh, ow, ppb, warp_mode))
GC_ENTRY_F_I32(adaptive_max_pool2d_backward,
        (const T* __restrict__ dy, const I* __restrict__ indices, T* __restrict__ dx, long long planes, int height,
         int width, int oh, int ow, int ppb),
        adaptive_max_pool2d_backward<T, I>(dy, indices, dx, planes, height, width, oh, ow, ppb))
GC_ENTRY_F(gem_forward,
        (const T* __restrict__ x, const T* __restrict__ p, T* __restrict__ y, long long planes, int height, int width,
         int oh, int ow, int kh, int kw, int sh, int sw, T eps, int ppb, int warp_mode),
        gem_forward<T>(x, p, y, GEM_ARGS, ppb, warp_mode))
GC_ENTRY_F(gem_backward_coef,
        (const T* __restrict__ x, const T* __restrict__ p, const T* __restrict__ dy, T* __restrict__ coef,
         T* __restrict__ wmax, T* __restrict__ partial, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, T eps, int warp_mode),
        gem_backward_coef<T>(x, p, dy, coef, wmax, partial, GEM_ARGS, warp_mode))
GC_ENTRY_F(gem_backward_dx,
        (const T* __restrict__ x, const T* __restrict__ p, const T* __restrict__ coef, const T* __restrict__ wmax,
         T* __restrict__ dx, long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh, int sw,
         T eps, int ppb),
        gem_backward_dx<T>(x, p, coef, wmax, dx, GEM_ARGS, ppb))
GC_ENTRY_F(sum_reduce,
        (const T* __restrict__ partial, T* __restrict__ out, int n),
        sum_reduce<T>(partial, out, n))
#define GEM_TILED_ARGS tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words
GC_ENTRY_F(gem_forward_v2,
        (const T* __restrict__ x, const T* __restrict__ p, T* __restrict__ y, long long planes, int height, int width,
         int oh, int ow, int kh, int kw, int sh, int sw, T eps, int tile_oh, int tile_ow, int tiles_x, int tpb, int cw,
         int row_words, int plane_words),
        gem_forward_tiled<T>(x, p, y, GEM_ARGS, GEM_TILED_ARGS))
GC_ENTRY_F(gem_backward_coef_v2,
        (const T* __restrict__ x, const T* __restrict__ p, const T* __restrict__ dy, T* __restrict__ coef,
         T* __restrict__ wmax, T* __restrict__ partial, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, T eps, int tile_oh, int tile_ow, int tiles_x, int tpb, int cw, int row_words,
         int plane_words),
        gem_backward_coef_tiled<T>(x, p, dy, coef, wmax, partial, GEM_ARGS, GEM_TILED_ARGS))
GC_ENTRY_F_I32(max_pool2d_backward_v2,
        (const T* __restrict__ dy, const I* __restrict__ indices, T* __restrict__ dx, int* __restrict__ bad,
         long long planes, int height, int width, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
         int dh, int dw, int tile_h, int tile_w, int tiles_x, int tpb, int step_y, int step_x, int row_words,
         int plane_words),
        pool2d_backward_tiled<T, I, true, false>(dy, indices, dx, bad, planes, height, width, oh, ow, kh, kw, sh, sw,
            ph, pw, dh, dw, 0, 0, tile_h, tile_w, tiles_x, tpb, step_y, step_x, row_words, plane_words))
GC_ENTRY_F(avg_pool2d_backward_v2,
        (const T* __restrict__ dy, T* __restrict__ dx, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, int ph, int pw, int count_include_pad, int divisor_override, int tile_h, int tile_w,
         int tiles_x, int tpb, int row_words, int plane_words),
        pool2d_backward_tiled<T, int, false, false>(dy, nullptr, dx, nullptr, planes, height, width, oh, ow, kh, kw, sh,
            sw, ph, pw, 1, 1, count_include_pad, divisor_override, tile_h, tile_w, tiles_x, tpb, 1, 1, row_words,
            plane_words))
GC_ENTRY_F_I32(adaptive_max_pool2d_backward_v2,
        (const T* __restrict__ dy, const I* __restrict__ indices, T* __restrict__ dx, int* __restrict__ bad,
         long long planes, int height, int width, int oh, int ow, int tile_h, int tile_w, int tiles_x, int tpb,
         int row_words, int plane_words),
        pool2d_backward_tiled<T, I, true, true>(dy, indices, dx, bad, planes, height, width, oh, ow, 0, 0, 0, 0, 0, 0,
            1, 1, 0, 0, tile_h, tile_w, tiles_x, tpb, 1, 1, row_words, plane_words))
GC_ENTRY_F(adaptive_avg_pool2d_backward_v2,
        (const T* __restrict__ dy, T* __restrict__ dx, long long planes, int height, int width, int oh, int ow,
         int tile_h, int tile_w, int tiles_x, int tpb, int row_words, int plane_words),
        pool2d_backward_tiled<T, int, false, true>(dy, nullptr, dx, nullptr, planes, height, width, oh, ow, 0, 0, 0, 0,
            0, 0, 1, 1, 0, 0, tile_h, tile_w, tiles_x, tpb, 1, 1, row_words, plane_words))
#define LPPOOL_ARGS planes, height, width, oh, ow, kh, kw, sh, sw
GC_ENTRY_F(lp_pool2d_forward,
        (const T* __restrict__ x, T* __restrict__ y, long long planes, int height, int width, int oh, int ow, int kh,
         int kw, int sh, int sw, T p, T inv_p, int ppb),
        lp_pool2d_forward<T>(x, y, LPPOOL_ARGS, p, inv_p, ppb))
GC_ENTRY_F(lp_pool2d_backward_coef,
        (const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ coef, long long planes, int height,
         int width, int oh, int ow, int kh, int kw, int sh, int sw, T p, T inv_p, T inv_p_minus_1, int ppb),
        lp_pool2d_backward_coef<T>(x, dy, coef, LPPOOL_ARGS, p, inv_p, inv_p_minus_1, ppb))
GC_ENTRY_F(lp_pool2d_backward_dx,
        (const T* __restrict__ x, const T* __restrict__ coef, T* __restrict__ dx, long long planes, int height,
         int width, int oh, int ow, int kh, int kw, int sh, int sw, T p, T p_minus_1, int ppb),
        lp_pool2d_backward_dx<T>(x, coef, dx, LPPOOL_ARGS, p, p_minus_1, ppb))
