// conv_implicit_gemm.cu — 2-D convolution as an implicit GEMM: forward, backward data, backward
// weight, with no column buffer (the GEMM operands are gathered from the tensors tile by tile).
//
// Layout: x (N, C_in, H, W), w (C_out, C_in/groups, KH, KW), y/dy (N, C_out, OH, OW), NCHW and
// C-contiguous; T = float or double. Padding is (top pt, left pl); the output size is given.
// Cross-correlation, as PyTorch. Per group g (blockIdx.z % groups), with cg = C_in/groups,
// kg = C_out/groups, taps = KH*KW:
//   forward          C[M=kg, N=N*OH*OW] = W_g[kg, cg*taps] x X_cols[cg*taps, N*OH*OW]
//                    (B gathered from x; workspace 0);
//   backward data    C[M=cg, N=N*H*W] = W_g^T[cg, kg*taps] x DY_cols[kg*taps, N*H*W]
//                    (the gather form of the transposed convolution: B(k=(ko,i,j), n=(img,ih,iw)) is
//                    dy[img, ko, (ih+pt-i*dh)/sh, (iw+pl-j*dw)/sw] where that division is exact and
//                    in range, else 0; workspace 0);
//   backward weight  C[M=kg, N=cg*taps] = DY_g[kg, N*OH*OW] x X_cols^T[N*OH*OW, cg*taps], the
//                    K = N*OH*OW range split over blockIdx.z / groups: split s writes its partial
//                    product to out + s * (C_out*cg*taps), and conv2d_igemm_split_sum adds the
//                    splits in a fixed order (deterministic, no float atomics). With one split the
//                    launcher passes dw itself.
//
// The GEMM (SIMT, the structure of the well-known hand-written SGEMMs): a block computes a BM x BN
// tile of C; each thread a TM x TN sub-tile in registers, as two TM/2-row halves BM/2 apart and two
// TN/2-column halves BN/2 apart, so a warp's vector reads of a shared-memory row are consecutive
// (no bank conflicts in the inner loop; A's rows are padded by 4 so its transposed stores spread
// over all 32 banks too). Shared memory is double-buffered: while the block multiplies tile k,
// each thread holds its share of tile k+1 in registers, stores it into the other buffer, and ONE
// __syncthreads per BK step separates the two. The k -> (channel, tap) decomposition of a BK step
// (the im2col gather offsets) is computed once per block by BK threads into a small shared table,
// one step ahead, so the loads and the inner loop have no division (backward data with stride > 1
// keeps one exact-division test per element: the gather form). Each thread's B column (an output
// or input pixel) is decomposed once per block. All index arithmetic is 32-bit except the
// per-image bases, which the launcher (gpuconv/backend/cuda/conv_implicit_gemm.py) checked:
// every image, the weights and the GEMM's N and K dimensions have fewer than 2^31 elements.
// Global memory: A is loaded as float4 / float2 / double2 runs along k where the tensor allows
// (forward: the weight rows, K % 4 == 0 and w 16-byte aligned; backward weight: dy's planes,
// OH*OW % 4 == 0 and dy aligned), element by element otherwise. The float32 SIMT epilogue of
// backward data and backward weight stores each thread's two runs of TN/2 columns as float4 /
// float2 where the output's rows allow (H*W or C_in/groups*KH*KW a multiple of TN/2, the output
// aligned): lane to lane the runs are adjacent, where element stores left lanes TN/2 elements
// apart (50% store efficiency in the emulator's access profile, 100% with the vectors). The
// forward (all SIMT tiles and dtypes) stages its C tile through the then free operand buffers in
// windows of 32 columns, and each warp stores 32 consecutive pixels of one output row per request,
// the bias added there (store_staged; 25% / 50% store efficiency before, 100% after, with 0 bank
// conflicts; per-thread vector stores instead cost the large tile 36 registers).
//
// TF32 (gemm_tf32, float only, sm_80+): the same pipeline, with warps multiplying the shared tiles
// on the tensor cores through nvcuda::wmma (m16n16k8, precision::tf32, float accumulators;
// kernels/wmma_tf32.cuh on the GPU, kernels/emu/wmma.h on the emulator). Guarded with
// __CUDA_ARCH__ >= 800: for sm_75 the kernels compile empty and the launcher never runs them.
//
// Tiles (template parameters; the launcher picks one by problem size, float64 never the large):
//   large      BM=BN=128, BK=8, TM=TN=8, 256 threads  (float32 only)
//   medium     BM=BN=64,  BK=8, TM=TN=4, 256 threads
//   small      BM=BN=32,  BK=8, TM=TN=4,  64 threads
//   tc_large   BM=BN=128, BK=8, 8 warps of 64x32 (4x2 fragments), 256 threads  (TF32)
//   tc_medium  BM=BN=64,  BK=8, 4 warps of 32x32 (2x2 fragments), 128 threads  (TF32)
// Dynamic shared memory: (2*BK*(BM+PAD) + 2*BK*(BN+PAD)) * sizeof(T) + 2*BK*16 bytes, PAD = 4
// (SIMT) or 8 (tensor cores), plus a 16 x 24 float scratch per warp for the tensor-core tiles.
// Grid: (ceil(N/BN), ceil(M/BM), groups * splits); block (threads).
//
// Entry points (SIMT tiles _f32 and _f64, `large` and the tc_ tiles only _f32; stamped out at the end
// of this file from one line per kernel by entry_points.cuh's GC_ENTRY_F_BOUNDED and GC_ENTRY_BOUNDED):
//   conv2d_igemm_{forward,backward_data,backward_weight}_<tile>
//       (a, b, bias, out, has_bias, k_split, geometry...): forward a = w, b = x, out = y (+ bias
//       when has_bias); backward data a = w, b = dy, out = dx; backward weight a = dy, b = x, out =
//       dw or the partial buffer, k_split = the K elements per split (a multiple of BK).
//   conv2d_igemm_split_sum (partial, out, splits, size): out[i] = sum over s of partial[s*size + i].
//
// Registers (nvcc 13.0 -cubin -arch=sm_90 -Xptxas -v -I kernels). 0-byte stack frames and no spills
// except backward_weight_small_f32 (8-byte stack frame, 4 bytes of spill stores and 4 of loads, at
// 80 registers; ptxas's choice under __launch_bounds__(64), the PTX has no local memory; it came
// with the k-fastest B loads, which keep kBLoads B columns per thread; cost unmeasured). Those
// loads also took backward_weight_medium_f32 from 64 to 75 registers: 3 blocks of 256 threads per
// SM instead of 4, against about 2x fewer sectors for B (unmeasured on a GPU which wins). The
// tc_medium entries are __launch_bounds__(128, 4): with (128) alone ptxas stopped at 80 registers
// and spilled 4 bytes in the forward.
//                        forward  backward_data  backward_weight
//   large_f32               127            127              191
//   medium_f32               64             63               75
//   small_f32                64             59               80
//   medium_f64               92            120              126
//   small_f64               128             94              134
//   tc_large_f32            128            128              128
//   tc_medium_f32           120            114              120
//   split_sum               32 (f32 and f64)
// The PTX (nvcc -ptx -arch=sm_90) has no 64-bit division in the GEMM kernels; split_sum's
// grid-stride loop has one u64 division (its trip count, outside the loop). Not measured on a
// GPU yet: no timings, and no compute-sanitizer run. The emulator's sanitizer mode
// (GPUCONV_EMU_SANITIZE=1: memcheck, racecheck, initcheck; pytest --emu-sanitize -k "emulated and
// implicit") runs the SIMT and tensor-core kernels of tests/test_conv_implicit_gemm.py clean. The
// emulator's access profile of these kernels, before and after the store and bank-conflict work,
// and what it cannot tell (the tensor-core fragment loads): benchmarks/results/
// emu-access-profile-implicit-gemm.md.
#include "common.cuh"
#include "wmma_tf32.cuh"

namespace igemm {

struct Conv {
    int n, c_in, h, w, c_out, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, groups;
    __device__ int cg() const { return c_in / groups; }
    __device__ int kg() const { return c_out / groups; }
    __device__ int taps() const { return kh * kw; }
};

// A k index of the current BK step, decomposed once per block: what the A and B loads of every
// thread need. Invalid (k >= K) entries have valid == 0 and load zeros.
struct KEntry {
    int a, b, c, valid;
};

// L consecutive T from registers into memory aligned to L * sizeof(T): one 16-byte (or 8-byte)
// store where it fits.
// The vector type of L consecutive T (8 or 16 bytes) for the epilogue's vector stores.
template <typename T, int L> struct VecOf;
template <> struct VecOf<float, 2> { typedef float2 type; };
template <> struct VecOf<float, 4> { typedef float4 type; };
template <> struct VecOf<double, 2> { typedef double2 type; };

__device__ __forceinline__ bool aligned_to(const void* p, int bytes) {
    return (reinterpret_cast<unsigned long long>(p) & (unsigned long long)(bytes - 1)) == 0;
}

// ---- the three GEMMs: how A, B and C map to the tensors -------------------------------------------
// Each op provides: M, N, K; entry(k) -> KEntry; Col column(n) (a B column, decomposed once);
// a(m, e) and b(col, e) loads (zero outside); store(m, n, v).
template <typename T>
struct Forward {
    const T* __restrict__ w;
    const T* __restrict__ x;
    const T* __restrict__ bias;
    T* __restrict__ y;
    int has_bias;
    Conv c;
    int grp, M, N, K;
    struct Col {
        const T* base;  // the group's first channel in the image
        int off, ih0, iw0, valid;  // off = ih0 * W + iw0: the window's top-left corner
    };
    __device__ Forward(const T* w_, const T* x_, const T* bias_, T* y_, int has_bias_, const Conv& c_, int grp_)
        : w(w_), x(x_), bias(bias_), y(y_), has_bias(has_bias_), c(c_), grp(grp_), M(c_.kg()),
          N(c_.n * c_.oh * c_.ow), K(c_.cg() * c_.taps()) {}
    // a: k itself (the weight row is contiguous); b: the input offset of tap (ci, i, j); c: i*dh | j*dw.
    __device__ KEntry entry(int k) const {
        if (k >= K) return {0, 0, 0, 0};
        const int taps = c.taps();
        const int ci = k / taps, r = k - ci * taps;
        const int i = r / c.kw, j = r - i * c.kw;
        return {k, ci * c.h * c.w + i * c.dh * c.w + j * c.dw, ((i * c.dh) << 16) | (j * c.dw), 1};
    }
    __device__ Col column(int n) const {
        if (n >= N) return {x, 0, 0, 0, 0};
        const int ohw = c.oh * c.ow;
        const int img = n / ohw, p = n - img * ohw;
        const int oy = p / c.ow, ox = p - oy * c.ow;
        const int ih0 = oy * c.sh - c.pt, iw0 = ox * c.sw - c.pl;
        return {x + ((long long)img * c.c_in + (long long)grp * c.cg()) * c.h * c.w, ih0 * c.w + iw0, ih0, iw0, 1};
    }
    __device__ T a(int m, const KEntry& e) const {
        return (m < M && e.valid) ? w[(grp * M + m) * K + e.a] : T(0);
    }
    // A's rows are the weight rows, contiguous in k: with K a multiple of 4 and 16-byte aligned
    // weights, the pipeline loads runs of consecutive k as vectors from a_row.
    static constexpr bool kContiguousA = true;
    static constexpr bool kBAlongK = false;  // B's columns are consecutive pixels
    __device__ bool vector_a() const { return K % 4 == 0 && (reinterpret_cast<unsigned long long>(w) & 15) == 0; }
    __device__ const T* a_row(int m, const KEntry& e) const { return w + (grp * M + m) * K + e.a; }
    __device__ T b(const Col& col, const KEntry& e) const {
        const int ih = col.ih0 + (e.c >> 16), iw = col.iw0 + (e.c & 0xFFFF);
        return (col.valid && e.valid && (unsigned)ih < (unsigned)c.h && (unsigned)iw < (unsigned)c.w)
                   ? col.base[col.off + e.b]
                   : T(0);
    }
    // The C tile goes out through shared memory (kStageC, see store_staged): a warp writes 32
    // consecutive pixels of one output row per request. Per-thread vector stores of its two runs
    // of TN/2 columns (the other directions' epilogue) took the large tile from 127 to 163
    // registers (one 256-thread block per SM instead of two) and spilled in the medium one.
    static constexpr bool kStageC = true;
    __device__ T* c_column(int n) const {
        const int ohw = c.oh * c.ow;
        const int img = n / ohw, p = n - img * ohw;
        return y + (long long)img * (c.c_out * ohw) + (grp * M * ohw + p);
    }
    __device__ int c_row_stride() const { return c.oh * c.ow; }
    __device__ T c_value(int m, T v) const { return has_bias ? v + bias[grp * M + m] : v; }
};

template <typename T>
struct BackwardData {
    const T* __restrict__ w;
    const T* __restrict__ dy;
    T* __restrict__ dx;
    Conv c;
    int grp, M, N, K;
    struct Col {
        const T* base;
        int oy0, ox0, valid;
    };
    __device__ BackwardData(const T* w_, const T* dy_, T* dx_, const Conv& c_, int grp_)
        : w(w_), dy(dy_), dx(dx_), c(c_), grp(grp_), M(c_.cg()), N(c_.n * c_.h * c_.w), K(c_.kg() * c_.taps()) {}
    // a: the offset of w[grp*kg + ko, 0, i, j]; b: the dy plane offset of ko; c: i*dh | j*dw.
    __device__ KEntry entry(int k) const {
        if (k >= K) return {0, 0, 0, 0};
        const int taps = c.taps();
        const int ko = k / taps, r = k - ko * taps;
        const int i = r / c.kw, j = r - i * c.kw;
        return {(grp * c.kg() + ko) * c.cg() * taps + r, ko * c.oh * c.ow, ((i * c.dh) << 16) | (j * c.dw), 1};
    }
    __device__ Col column(int n) const {
        if (n >= N) return {dy, 0, 0, 0};
        const int hw = c.h * c.w;
        const int img = n / hw, p = n - img * hw;
        const int iy = p / c.w, ix = p - iy * c.w;
        return {dy + ((long long)img * c.c_out + (long long)grp * c.kg()) * c.oh * c.ow, iy + c.pt, ix + c.pl, 1};
    }
    __device__ T a(int m, const KEntry& e) const { return (m < M && e.valid) ? w[e.a + m * c.taps()] : T(0); }
    static constexpr bool kContiguousA = false;
    static constexpr bool kBAlongK = false;  // B's columns are consecutive pixels
    __device__ T b(const Col& col, const KEntry& e) const {
        int ny = col.oy0 - (e.c >> 16), nx = col.ox0 - (e.c & 0xFFFF);
        if (!(col.valid && e.valid) || ny < 0 || nx < 0) return T(0);
        if (c.sh != 1) {
            const int q = ny / c.sh;
            if (q * c.sh != ny) return T(0);
            ny = q;
        }
        if (c.sw != 1) {
            const int q = nx / c.sw;
            if (q * c.sw != nx) return T(0);
            nx = q;
        }
        return (ny < c.oh && nx < c.ow) ? col.base[e.b + ny * c.ow + nx] : T(0);
    }
    __device__ void store(int m, int n, T v) const {
        const int hw = c.h * c.w;
        const int img = n / hw, p = n - img * hw;
        dx[((long long)img * c.c_in + grp * M + m) * hw + p] = v;
    }
    // Runs of L pixels of one plane of dx when H*W % L == 0 and dx is aligned: vector stores.
    static constexpr bool kStageC = false;
    static constexpr bool kVectorC = true;
    __device__ bool vector_c(int L) const { return (c.h * c.w) % L == 0 && aligned_to(dx, L * (int)sizeof(T)); }
    __device__ T* c_column(int n) const {
        const int hw = c.h * c.w;
        const int img = n / hw, p = n - img * hw;
        return dx + (long long)img * (c.c_in * hw) + (grp * M * hw + p);
    }
    __device__ int c_row_stride() const { return c.h * c.w; }
    __device__ T c_value(int, T v) const { return v; }
};

template <typename T>
struct BackwardWeight {
    const T* __restrict__ dy;
    const T* __restrict__ x;
    T* __restrict__ out;
    Conv c;
    int grp, M, N, K;
    struct Col {
        int plane, i, j, valid;  // x plane offset of channel ci within an image, i*dh - pt, j*dw - pl
    };
    __device__ BackwardWeight(const T* dy_, const T* x_, T* out_, const Conv& c_, int grp_)
        : dy(dy_), x(x_), out(out_), c(c_), grp(grp_), M(c_.kg()), N(c_.cg() * c_.taps()),
          K(c_.n * c_.oh * c_.ow) {}
    // a: the image; b: the output pixel p = oy*OW + ox; c: oy*sh | ox*sw (the K index is a pixel).
    __device__ KEntry entry(int k) const {
        if (k >= K) return {0, 0, 0, 0};
        const int ohw = c.oh * c.ow;
        const int img = k / ohw, p = k - img * ohw;
        const int oy = p / c.ow, ox = p - oy * c.ow;
        return {img, p, ((oy * c.sh) << 16) | (ox * c.sw), 1};
    }
    __device__ Col column(int n) const {
        if (n >= N) return {0, 0, 0, 0};
        const int taps = c.taps();
        const int ci = n / taps, r = n - ci * taps;
        const int i = r / c.kw, j = r - i * c.kw;
        return {(grp * c.cg() + ci) * c.h * c.w, i * c.dh - c.pt, j * c.dw - c.pl, 1};
    }
    __device__ T a(int m, const KEntry& e) const {
        return (m < M && e.valid) ? dy[((long long)e.a * c.c_out + grp * M + m) * (c.oh * c.ow) + e.b] : T(0);
    }
    // A's rows are dy's planes, contiguous along k within an image: with OH*OW % 4 == 0 a run of
    // 4 (or 2) k starting at a multiple of 4 stays in one image and is aligned when dy is; K and
    // the splits' bounds are then multiples of 4 too, so a run is valid or invalid as a whole.
    static constexpr bool kContiguousA = true;
    static constexpr bool kBAlongK = true;  // B's rows (k) are consecutive pixels, its columns taps
    __device__ bool vector_a() const { return (c.oh * c.ow) % 4 == 0 && aligned_to(dy, 16); }
    __device__ const T* a_row(int m, const KEntry& e) const {
        return dy + ((long long)e.a * c.c_out + grp * M + m) * (c.oh * c.ow) + e.b;
    }
    __device__ T b(const Col& col, const KEntry& e) const {
        const int ih = (e.c >> 16) + col.i, iw = (e.c & 0xFFFF) + col.j;
        return (col.valid && e.valid && (unsigned)ih < (unsigned)c.h && (unsigned)iw < (unsigned)c.w)
                   ? x[(long long)e.a * c.c_in * c.h * c.w + col.plane + ih * c.w + iw]
                   : T(0);
    }
    __device__ void store(int m, int n, T v) const { out[(grp * M + m) * N + n] = v; }
    // Rows of dw (or of a split's partial sums) are contiguous along n: runs of L when N % L == 0.
    static constexpr bool kStageC = false;
    static constexpr bool kVectorC = true;
    __device__ bool vector_c(int L) const { return N % L == 0 && aligned_to(out, L * (int)sizeof(T)); }
    __device__ T* c_column(int n) const { return out + grp * M * N + n; }
    __device__ int c_row_stride() const { return N; }
    __device__ T c_value(int, T v) const { return v; }
};

// ---- the tiled GEMMs ------------------------------------------------------------------------------
// L consecutive T (shared or global memory, aligned to L * sizeof(T)) into registers: one 16-byte
// (or 8-byte) load where it fits. NOTE: written as an assignment, not an initialization: the
// emulator sees a vector assignment as one access (its alignment checked, one request in the
// access profile), while GCC splits an initialized copy into scalar loads; nvcc emits the same
// vector load for both.
template <int L, typename T>
__device__ __forceinline__ void load_run(T* dst, const T* src) {
    if constexpr (sizeof(T) == 4 && L == 4) {
        float4 v;
        v = *reinterpret_cast<const float4*>(src);
        dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
    } else if constexpr (sizeof(T) == 4 && L == 2) {
        float2 v;
        v = *reinterpret_cast<const float2*>(src);
        dst[0] = v.x, dst[1] = v.y;
    } else if constexpr (sizeof(T) == 8 && L == 2) {
        double2 v;
        v = *reinterpret_cast<const double2*>(src);
        dst[0] = v.x, dst[1] = v.y;
    } else {
#pragma unroll
        for (int i = 0; i < L; ++i) dst[i] = src[i];
    }
}

// The operand pipeline both GEMMs share: the gather tables, the global -> register -> shared
// copies of the A and B tiles, double-buffered. Shared memory, from the start of the block's
// dynamic buffer: A [2][BK][BM + PAD] (transposed: a column-major BM x BK tile, its rows padded:
// with PAD = 4 the transposed stores spread over all 32 banks), B [2][BK][BN + PAD], the tables
// [2][BK] (PAD = 8 for the tensor-core tiles: see gemm_tf32). Each
// thread loads A elements t + i*THREADS (k fastest: the weights and dy are contiguous along k),
// as float4 / float2 / double2 runs where aligned. B: where the tensor is contiguous along the
// columns (forward, backward data: a column is a pixel) thread t loads rows t / BN + i*(THREADS /
// BN) of column t % BN, consecutive threads on consecutive pixels; where it is contiguous along
// k (Op::kBAlongK, backward weight: a column is a tap, k a pixel) thread t loads row t % BK of
// columns t / BK + i*(THREADS / BK), consecutive threads on consecutive pixels of one tap (with
// columns on consecutive threads, a warp's loads were 32 taps, KW-long runs in 32 places; the
// tc_large tile keeps that mapping, kBAlongKAllowed = false: registers). B's rows are padded by 4
// so that the k-fastest stores spread over the banks (4 banks apart).
template <typename T, int BM, int BN, int BK, int THREADS, class Op, bool kBAlongKAllowed = true, int PAD = 4,
          bool kRotateAllowed = false>
struct Pipeline {
    static constexpr int kAStride = BM + PAD;
    static constexpr int kALoads = BM * BK / THREADS;
    static constexpr int kBLoads = BK * BN / THREADS;
    static constexpr int kBRowsPerPass = THREADS / BN;
    static constexpr int kBColsPerPass = THREADS / BK;
    static constexpr int kBStride = BN + PAD;
    static constexpr bool kBAlongK = Op::kBAlongK && kBAlongKAllowed;
    static constexpr int kBCols = kBAlongK ? kBLoads : 1;  // B columns a thread loads
    // Vector width of A's global loads where Op::kContiguousA allows them (16 bytes, or what one
    // thread's share holds).
    static constexpr int kAVec = sizeof(T) == 4 ? (kALoads >= 4 ? 4 : kALoads >= 2 ? 2 : 1) : (kALoads >= 2 ? 2 : 1);
    static constexpr int kBytes = (2 * BK * kAStride + 2 * BK * kBStride) * (int)sizeof(T) + 2 * BK * (int)sizeof(KEntry);
    static_assert((BM * BK) % THREADS == 0 && THREADS % BN == 0 && THREADS % BK == 0 && BK <= THREADS,
                  "load mapping");

    const Op& op;
    T* a_s;
    T* b_s;
    KEntry* k_s;
    const int t, m0, k_begin, k_end, b_col, b_row;
    const bool a_vec;  // vector loads of A: runs of kAVec consecutive k per thread
    typename Op::Col cols[kBCols];
    T a_reg[kALoads], b_reg[kBLoads];

    __device__ Pipeline(const Op& op_, unsigned char* smem, int k_begin_, int k_end_)
        : op(op_), a_s(reinterpret_cast<T*>(smem)), b_s(a_s + 2 * BK * kAStride),
          k_s(reinterpret_cast<KEntry*>(b_s + 2 * BK * kBStride)), t((int)threadIdx.x), m0((int)blockIdx.y * BM),
          k_begin(k_begin_), k_end(k_end_), b_col(kBAlongK ? t / BK : t % BN), b_row(kBAlongK ? t % BK : t / BN),
          a_vec(vector_a(op_)) {
#pragma unroll
        for (int i = 0; i < kBCols; ++i) cols[i] = op_.column((int)blockIdx.x * BN + b_col + i * kBColsPerPass);
    }

    __device__ static bool vector_a(const Op& op) {
        if constexpr (Op::kContiguousA && kAVec > 1) return op.vector_a();
        return false;
    }

    __device__ int steps() const { return (k_end - k_begin + BK - 1) / BK; }
    __device__ const T* a_tile(int buf) const { return a_s + buf * BK * kAStride; }
    __device__ const T* b_tile(int buf) const { return b_s + buf * BK * kBStride; }
    // The gather table of `step` into table buffer `buf` (BK threads, one division each).
    __device__ void table(int step, int buf) {
        if (t < BK) {
            const int k = k_begin + step * BK + t;
            // NOTE: field by field: the emulator's initcheck did not see the whole-struct store
            // (it reported the table as uninitialized shared memory); nvcc emits the same stores.
            const KEntry e = op.entry(k < k_end ? k : 0x7FFFFFFF);
            KEntry& d = k_s[buf * BK + t];
            d.a = e.a, d.b = e.b, d.c = e.c, d.valid = e.valid;
        }
    }
    // This thread's share of the tile whose table is in buffer `buf`, into registers.
    // Vector mode: run j of this thread is run g = t + j*THREADS of the tile, row g / (BK/kAVec),
    // k (g % (BK/kAVec)) * kAVec + [0, kAVec); a run is valid or invalid as a whole (K % 4 == 0).
    __device__ void fetch(int buf) {
        const KEntry* ks = k_s + buf * BK;
        if constexpr (Op::kContiguousA && kAVec > 1) {
            if (a_vec) {
#pragma unroll
                for (int j = 0; j < kALoads / kAVec; ++j) {
                    const int g = t + j * THREADS;
                    const int m = m0 + g / (BK / kAVec);
                    const KEntry& e = ks[(g % (BK / kAVec)) * kAVec];
                    if (m < op.M && e.valid) {
                        load_run<kAVec>(a_reg + j * kAVec, op.a_row(m, e));
                    } else {
#pragma unroll
                        for (int v = 0; v < kAVec; ++v) a_reg[j * kAVec + v] = T(0);
                    }
                }
            }
        }
        if (!a_vec) {
#pragma unroll
            for (int i = 0; i < kALoads; ++i) {
                const int e = t + i * THREADS;
                a_reg[i] = op.a(m0 + e / BK, ks[e % BK]);
            }
        }
#pragma unroll
        for (int i = 0; i < kBLoads; ++i) {
            if constexpr (kBAlongK)
                b_reg[i] = op.b(cols[i], ks[b_row]);
            else
                b_reg[i] = op.b(cols[0], ks[b_row + i * kBRowsPerPass]);
        }
    }
    __device__ void stash(int buf) {
        T* as = a_s + buf * BK * kAStride;
        T* bs = b_s + buf * BK * kBStride;
        if (a_vec) {
            // Lanes g and g+1 store the two k-halves of one row m: where the rows are 8 banks apart
            // (PAD = 8) the odd lane stores its run rotated by half, so that the two halves of the
            // warp fall 16 banks apart instead of on the same banks (2-way conflicts).
            constexpr bool kRotate = kRotateAllowed && kAStride % 32 == 8 && kAVec == 4 && BK / kAVec == 2;
#pragma unroll
            for (int j = 0; j < kALoads / kAVec; ++j) {
                const int g = t + j * THREADS;
                const int half = g % (BK / kAVec);
#pragma unroll
                for (int v = 0; v < kAVec; ++v) {
                    if constexpr (kRotate) {
                        const int u = v ^ (2 * half);
                        const T value = half ? a_reg[j * kAVec + (v ^ 2)] : a_reg[j * kAVec + v];
                        as[(half * kAVec + u) * kAStride + g / 2] = value;
                    } else {
                        as[(half * kAVec + v) * kAStride + g / (BK / kAVec)] = a_reg[j * kAVec + v];
                    }
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < kALoads; ++i) {
                const int e = t + i * THREADS;
                as[(e % BK) * kAStride + e / BK] = a_reg[i];
            }
        }
#pragma unroll
        for (int i = 0; i < kBLoads; ++i) {
            if constexpr (kBAlongK)
                bs[b_row * kBStride + b_col + i * kBColsPerPass] = b_reg[i];
            else
                bs[(b_row + i * kBRowsPerPass) * kBStride + b_col] = b_reg[i];
        }
    }
    // Tables of steps 0 and 1, then tile 0 in buffer 0.
    __device__ void prologue() {
        table(0, 0);
        table(1, 1);
        __syncthreads();
        fetch(0);
        stash(0);
        __syncthreads();
    }
};

// The main loop of both GEMMs: while `multiply` works on tile `step` (buffer step & 1), each thread
// holds its share of tile step+1 in registers and the BK threads write the table of step+2 into
// the table buffer tile `step` used; both reach shared memory before the step's one barrier.
template <class P, class Multiply>
__device__ __forceinline__ void main_loop(P& p, Multiply&& multiply) {
    p.prologue();
    const int steps = p.steps();
    for (int step = 0; step < steps; ++step) {
        const int cur = step & 1, nxt = cur ^ 1;
        const bool more = step + 1 < steps;
        if (more) p.fetch(nxt);
        p.table(step + 2, cur);
        multiply(p.a_tile(cur), p.b_tile(cur));
        if (more) p.stash(nxt);
        __syncthreads();
    }
}

// The SIMT epilogue through shared memory (Op::kStageC), once the main loop's last barrier has
// freed the operand buffers: the C tile goes out in windows of 32 columns. Pass w stages the
// BM x 32 window w (each thread its elements there), then each warp stores whole rows of it, lane
// l column 32w + l: a request covers 32 consecutive pixels of one output row (two planes at most),
// where the threads' own columns left lanes TN/2 elements apart (25-50% of each sector used). The
// threads consume acc column by column (j outer): with rows outer ptxas took the large tile from
// 127 to 163 registers (one 256-thread block per SM instead of two), as per-thread vector stores
// did. A staged row is swizzled (column c at c ^ swizzle(row)) so that the rows of the warp's
// thread rows fall on different banks in the stage writes; the row reads stay one bank per lane.
template <int TN, int kThreadsN>
__device__ __forceinline__ int stage_swizzle(int ty) {
    // A stage write instruction covers, per row, the words tx*(TN/2) + j2 (tx < kThreadsN, j2
    // fixed): it leaves the low log2(TN/2) bits and the bits from log2(kThreadsN*TN/2) free for
    // the thread row's bits, which separate the 32/kThreadsN rows of a warp.
    constexpr int kLow = TN / 2 >= 4 ? 2 : TN / 2 >= 2 ? 1 : 0;
    constexpr int kSpan = kThreadsN * (TN / 2);
    constexpr int kHigh = kSpan >= 32 ? 5 : kSpan >= 16 ? 4 : kSpan >= 8 ? 3 : kSpan >= 4 ? 2 : 1;
    const int low = ty & ((1 << kLow) - 1);
    const int high = ((ty >> kLow) << kHigh) & 31;
    return low | high;
}

template <typename T, int BM, int BN, int TM, int TN, int THREADS, int SMEM_BYTES, class Op>
__device__ __forceinline__ void store_staged(const Op& op, unsigned char* smem, const T (&acc)[TM][TN], int t,
                                             int m0, int n0) {
    constexpr int kThreadsN = BN / TN, kThreadsM = BM / TM, kWarps = THREADS / 32;
    static_assert(BN % 32 == 0 && BM % kWarps == 0, "store mapping");
    static_assert(BM * 32 * (int)sizeof(T) <= SMEM_BYTES, "the stage fits in the operand buffers");
    T* const cs = reinterpret_cast<T*>(smem);
    const int tx = t % kThreadsN, ty = t / kThreadsN, lane = t % 32, warp = t / 32;
    const int swz = stage_swizzle<TN, kThreadsN>(ty);
    const int row_stride = op.c_row_stride();
#pragma unroll
    for (int w = 0; w < BN / 32; ++w) {
        if (w > 0) __syncthreads();  // the previous window is out
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int col = (j / (TN / 2)) * (BN / 2) + tx * (TN / 2) + j % (TN / 2);
            if (col / 32 != w) continue;
#pragma unroll
            for (int i = 0; i < TM; ++i) {
                const int row = (i / (TM / 2)) * (BM / 2) + ty * (TM / 2) + i % (TM / 2);
                cs[row * 32 + ((col % 32) ^ swz)] = acc[i][j];
            }
        }
        __syncthreads();
        const int n = n0 + w * 32 + lane;
        if (n >= op.N) continue;  // no barrier below
        T* const column = op.c_column(n);  // one division per lane and window, none per row
#pragma unroll 4
        for (int r = warp; r < BM; r += kWarps) {
            const int m = m0 + r;
            if (m >= op.M) break;
            const int ty_r = (r % (BM / 2)) / (TM / 2);
            column[m * row_stride] = op.c_value(m, cs[r * 32 + (lane ^ stage_swizzle<TN, kThreadsN>(ty_r))]);
        }
    }
}

// The SIMT epilogue of the ops without kStageC: each thread stores its own TM x TN elements.
template <typename T, int BM, int BN, int TM, int TN, class Op>
__device__ __forceinline__ void store_direct(const Op& op, const T (&acc)[TM][TN], int tx, int ty, int m0, int n0) {
    // A thread's columns are two runs of TN/2 consecutive n: where the output allows (the same
    // for the whole launch), each row of a run is one vector store, and lane to lane the runs are
    // adjacent (coalesced; element by element, lanes TN/2 elements apart touch TN/2 times the
    // sectors). float32 only: float64 (gradient checks, not speed) would spill in backward weight.
    constexpr int L = sizeof(T) == 4 && Op::kVectorC ? TN / 2 : 1;
    if constexpr (L > 1) {
        if (op.vector_c(L)) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int n = n0 + h * (BN / 2) + tx * L;
                if (n >= op.N) continue;  // N % L == 0: a run is inside or outside as a whole
                T* const column = op.c_column(n);  // one division per run, none per row
                const int row_stride = op.c_row_stride();
#pragma unroll
                for (int i = 0; i < TM; ++i) {
                    const int m = m0 + (i < TM / 2 ? ty * (TM / 2) + i : BM / 2 + ty * (TM / 2) + i - TM / 2);
                    if (m >= op.M) continue;
                    // Filled through a T alias and stored whole, as im2col's v3 does: nvcc emits one
                    // st.global.v4 / .v2 (stores of make_float4(...) or a helper taking a T array came
                    // out as scalar stores or a stack frame).
                    typename VecOf<T, L>::type v;
                    T* e = reinterpret_cast<T*>(&v);
#pragma unroll
                    for (int k = 0; k < L; ++k) e[k] = op.c_value(m, acc[i][h * L + k]);
                    *reinterpret_cast<typename VecOf<T, L>::type*>(column + m * row_stride) = v;
                }
            }
            return;
        }
    }
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int n = n0 + (j < TN / 2 ? tx * (TN / 2) + j : BN / 2 + tx * (TN / 2) + j - TN / 2);
        if (n >= op.N) continue;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + (i < TM / 2 ? ty * (TM / 2) + i : BM / 2 + ty * (TM / 2) + i - TM / 2);
            if (m < op.M) op.store(m, n, acc[i][j]);
        }
    }
}

// SIMT: C tile (blockIdx.y, blockIdx.x) of op's GEMM over k in [k_begin, k_end). Thread (tx, ty)
// holds rows ty*TM/2 + [0, TM/2) and BM/2 + ty*TM/2 + [0, TM/2), columns likewise with TN.
template <typename T, int BM, int BN, int BK, int TM, int TN, class Op>
__device__ void gemm(const Op& op, int k_begin, int k_end) {
    static_assert(TM % 2 == 0 && TN % 2 == 0, "thread tiles are two halves");
    constexpr int kThreadsN = BN / TN, kThreads = kThreadsN * (BM / TM);
    using P = Pipeline<T, BM, BN, BK, kThreads, Op>;
    extern __shared__ __align__(128) unsigned char igemm_smem[];
    P p(op, igemm_smem, k_begin, k_end);
    const int tx = p.t % kThreadsN, ty = p.t / kThreadsN;

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
    main_loop(p, [&](const T* as, const T* bs) {
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            T af[TM], bf[TN];
            load_run<TM / 2>(af, as + kk * P::kAStride + ty * (TM / 2));
            load_run<TM / 2>(af + TM / 2, as + kk * P::kAStride + BM / 2 + ty * (TM / 2));
            load_run<TN / 2>(bf, bs + kk * P::kBStride + tx * (TN / 2));
            load_run<TN / 2>(bf + TN / 2, bs + kk * P::kBStride + BN / 2 + tx * (TN / 2));
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fma(af[i], bf[j], acc[i][j]);
        }
    });

    const int m0 = p.m0, n0 = (int)blockIdx.x * BN;
    if constexpr (Op::kStageC)
        store_staged<T, BM, BN, TM, TN, kThreads, P::kBytes>(op, igemm_smem, acc, p.t, m0, n0);
    else
        store_direct<T, BM, BN, TM, TN>(op, acc, tx, ty, m0, n0);
}

// TF32 tensor cores (sm_80+; compiled empty for older targets, where the launcher never runs it):
// the same pipeline with BK = 8 = one m16n16k8 step; warp (wm, wn) owns a WM x WN sub-tile of
// (WM/16) x (WN/16) accumulator fragments. A's shared tile is column-major with ldm BM + 8 and B's
// row-major with ldm BN + 8 (multiples of 4; every fragment pointer is 32-byte aligned). Why 8: in
// the mma.m16n8k8 TF32 fragment layout of the PTX ISA (which wmma m16n16k8 is assumed to lower to,
// one 32-bit shared load per fragment register), a load's 32 lanes read 4 k-rows x 8 m (or n)
// consecutive words; 4 k-rows ldm words apart hit distinct banks when ldm = 8 mod 32, while with
// ldm = 4 mod 32 they overlap (2 wavefronts per load), and a multiple of 32 gives 4. The A stores
// would then put a row's two k-halves on the same banks: the pipeline rotates the odd lane's run
// (kRotateAllowed; not in backward weight's 128x128 tile, for registers). Unmeasured on a GPU;
// the emulator's profile cannot tell, its fragment layout being deliberately scrambled
// (benchmarks/results/emu-access-profile-implicit-gemm.md). The operands are rounded to TF32
// (round to nearest, ties away) after loading, as cuBLAS does. The epilogue goes through a 16x16
// scratch per warp after the tables, because the fragment layout is opaque.
template <int BM, int BN, int WM, int WN, class Op>
__device__ void gemm_tf32(const Op& op, int k_begin, int k_end) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    namespace wmma = nvcuda::wmma;
    constexpr int BK = 8, FM = WM / 16, FN = WN / 16;
    constexpr int kWarpsN = BN / WN, kThreads = 32 * kWarpsN * (BM / WM);
    // The 128x128 tile's backward weight is at the 128-register line (two 256-thread blocks per
    // SM): it keeps B's columns on consecutive threads (the k-fastest loads took it to 184
    // registers) and A's stores unrotated (rotated: 170).
    constexpr bool kRoom = BM < 128 || !Op::kBAlongK;
    using P = Pipeline<float, BM, BN, BK, kThreads, Op, kRoom, 8, kRoom>;
    extern __shared__ __align__(128) unsigned char igemm_smem[];
    P p(op, igemm_smem, k_begin, k_end);
    const int warp = p.t / 32, lane = p.t % 32;
    const int wm = warp / kWarpsN, wn = warp % kWarpsN;
    // The epilogue's scratch: one 16x16 fragment per warp, rows kLd = 24 words apart. In the
    // mma layout (see above) a fragment store's 32 lanes write 8 rows x 4 even words, which 16
    // apart fall on the same 8 banks (4 wavefronts), 24 apart on 16 (2, the fewest for 32 words
    // on even banks); the reads take rows r and r + 2 per request, 16 banks apart.
    constexpr int kLd = 24;
    float* scratch = reinterpret_cast<float*>(igemm_smem + P::kBytes) + warp * 16 * kLd;

    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[FM][FN];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
    main_loop(p, [&](const float* as, const float* bs) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa[FM];
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[FN];
#pragma unroll
        for (int i = 0; i < FM; ++i) {
            wmma::load_matrix_sync(fa[i], as + wm * WM + i * 16, P::kAStride);
#pragma unroll
            for (int e = 0; e < fa[i].num_elements; ++e) fa[i].x[e] = wmma::__float_to_tf32(fa[i].x[e]);
        }
#pragma unroll
        for (int j = 0; j < FN; ++j) {
            wmma::load_matrix_sync(fb[j], bs + wn * WN + j * 16, P::kBStride);
#pragma unroll
            for (int e = 0; e < fb[j].num_elements; ++e) fb[j].x[e] = wmma::__float_to_tf32(fb[j].x[e]);
        }
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
            for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    });

#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) {  // unrolled: acc stays in registers
            wmma::store_matrix_sync(scratch, acc[i][j], kLd, wmma::mem_row_major);
            __syncwarp();
            // Lane l stores column l % 16 of rows r, r + 2 (l / 16): two runs of 16 pixels per
            // request, and one column decomposition per lane and fragment.
            const int n = (int)blockIdx.x * BN + wn * WN + j * 16 + lane % 16;
            if (n < op.N) {
                float* const column = op.c_column(n);
                const int row_stride = op.c_row_stride();
#pragma unroll
                for (int q = 0; q < 8; ++q) {
                    const int r = (q / 2) * 4 + q % 2 + 2 * (lane / 16);
                    const int m = p.m0 + wm * WM + i * 16 + r;
                    if (m < op.M) column[m * row_stride] = op.c_value(m, scratch[r * kLd + lane % 16]);
                }
            }
            __syncwarp();  // the next fragment overwrites the scratch
        }
#endif
}

// ---- the directions -------------------------------------------------------------------------------
// GEMM is gemm<T, BM, BN, BK, TM, TN> or gemm_tf32<BM, BN, WM, WN>, as a callable type.
template <typename T, int BM, int BN, int BK, int TM, int TN>
struct Simt {
    template <class Op>
    __device__ void operator()(const Op& op, int k_begin, int k_end) const {
        gemm<T, BM, BN, BK, TM, TN>(op, k_begin, k_end);
    }
};
template <int BM, int BN, int WM, int WN>
struct TensorCore {
    template <class Op>
    __device__ void operator()(const Op& op, int k_begin, int k_end) const {
        gemm_tf32<BM, BN, WM, WN>(op, k_begin, k_end);
    }
};

template <typename T, class Gemm>
__device__ void forward(const T* w, const T* x, const T* bias, T* y, int has_bias, const Conv& c) {
    const Forward<T> op(w, x, bias, y, has_bias, c, (int)blockIdx.z);
    Gemm()(op, 0, op.K);
}

template <typename T, class Gemm>
__device__ void backward_data(const T* w, const T* dy, T* dx, const Conv& c) {
    const BackwardData<T> op(w, dy, dx, c, (int)blockIdx.z);
    Gemm()(op, 0, op.K);
}

template <typename T, class Gemm>
__device__ void backward_weight(const T* dy, const T* x, T* out, int k_split, const Conv& c) {
    const int grp = (int)blockIdx.z % c.groups, split = (int)blockIdx.z / c.groups;
    const long long size = (long long)c.c_out * c.cg() * c.taps();
    const BackwardWeight<T> op(dy, x, out + split * size, c, grp);
    const int k_begin = split * k_split;
    Gemm()(op, k_begin, min(op.K, k_begin + k_split));
}

template <typename T>
__device__ void split_sum(const T* __restrict__ partial, T* __restrict__ out, int splits, int size) {
    GC_GRID_STRIDE_LOOP(i, size) {
        T sum = T(0);
        for (int s = 0; s < splits; ++s) sum += partial[(long long)s * size + i];
        out[i] = sum;
    }
}

}  // namespace igemm

#define IGEMM_CONV igemm::Conv{n_batch, c_in, height, width, c_out, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, groups}
#define IGEMM_LARGE(T) igemm::Simt<T, 128, 128, 8, 8, 8>
#define IGEMM_MEDIUM(T) igemm::Simt<T, 64, 64, 8, 4, 4>
#define IGEMM_SMALL(T) igemm::Simt<T, 32, 32, 8, 4, 4>
#define IGEMM_TC_LARGE igemm::TensorCore<128, 128, 64, 32>
#define IGEMM_TC_MEDIUM igemm::TensorCore<64, 64, 32, 32>

// ---- entry points (GC_ENTRY*: kernels/entry_points.cuh; T the element type, I the index type) ----
GC_ENTRY_BOUNDED((256), f32, conv2d_igemm_forward_large,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::forward<T, IGEMM_LARGE(T)>(a, b, bias, out, has_bias, IGEMM_CONV))
GC_ENTRY_BOUNDED((256), f32, conv2d_igemm_backward_data_large,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_data<T, IGEMM_LARGE(T)>(a, b, out, IGEMM_CONV))
GC_ENTRY_BOUNDED((256), f32, conv2d_igemm_backward_weight_large,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_weight<T, IGEMM_LARGE(T)>(a, b, out, k_split, IGEMM_CONV))
GC_ENTRY_F_BOUNDED((256), conv2d_igemm_forward_medium,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias, T* __restrict__ out,
         int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::forward<T, IGEMM_MEDIUM(T)>(a, b, bias, out, has_bias, IGEMM_CONV))
GC_ENTRY_F_BOUNDED((256), conv2d_igemm_backward_data_medium,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias, T* __restrict__ out,
         int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_data<T, IGEMM_MEDIUM(T)>(a, b, out, IGEMM_CONV))
GC_ENTRY_F_BOUNDED((256), conv2d_igemm_backward_weight_medium,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias, T* __restrict__ out,
         int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_weight<T, IGEMM_MEDIUM(T)>(a, b, out, k_split, IGEMM_CONV))
GC_ENTRY_F_BOUNDED((64), conv2d_igemm_forward_small,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias, T* __restrict__ out,
         int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::forward<T, IGEMM_SMALL(T)>(a, b, bias, out, has_bias, IGEMM_CONV))
GC_ENTRY_F_BOUNDED((64), conv2d_igemm_backward_data_small,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias, T* __restrict__ out,
         int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_data<T, IGEMM_SMALL(T)>(a, b, out, IGEMM_CONV))
GC_ENTRY_F_BOUNDED((64), conv2d_igemm_backward_weight_small,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias, T* __restrict__ out,
         int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out, int kh, int kw, int sh,
         int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_weight<T, IGEMM_SMALL(T)>(a, b, out, k_split, IGEMM_CONV))
GC_ENTRY_BOUNDED((256), f32, conv2d_igemm_forward_tc_large,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::forward<T, IGEMM_TC_LARGE>(a, b, bias, out, has_bias, IGEMM_CONV))
GC_ENTRY_BOUNDED((256), f32, conv2d_igemm_backward_data_tc_large,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_data<T, IGEMM_TC_LARGE>(a, b, out, IGEMM_CONV))
GC_ENTRY_BOUNDED((256), f32, conv2d_igemm_backward_weight_tc_large,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_weight<T, IGEMM_TC_LARGE>(a, b, out, k_split, IGEMM_CONV))
GC_ENTRY_BOUNDED((128, 4), f32, conv2d_igemm_forward_tc_medium,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::forward<T, IGEMM_TC_MEDIUM>(a, b, bias, out, has_bias, IGEMM_CONV))
GC_ENTRY_BOUNDED((128, 4), f32, conv2d_igemm_backward_data_tc_medium,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_data<T, IGEMM_TC_MEDIUM>(a, b, out, IGEMM_CONV))
GC_ENTRY_BOUNDED((128, 4), f32, conv2d_igemm_backward_weight_tc_medium,
        (const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
         T* __restrict__ out, int has_bias, int k_split, int n_batch, int c_in, int height, int width, int c_out,
         int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow, int groups),
        igemm::backward_weight<T, IGEMM_TC_MEDIUM>(a, b, out, k_split, IGEMM_CONV))
GC_ENTRY_F(conv2d_igemm_split_sum,
        (const T* __restrict__ partial, T* __restrict__ out, int splits, int size),
        igemm::split_sum<T>(partial, out, splits, size))
