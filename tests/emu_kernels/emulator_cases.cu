// emulator_cases.cu — kernels that exercise the CUDA-on-CPU emulator (tests/test_emulator.py).
// Some are wrong on purpose (racy, divergent): the emulator must flag them. All are valid CUDA and
// compile with NVRTC.

#define TILE 8

__device__ __forceinline__ float multiply_add(float a, float b, float acc) { return fmaf(a, b, acc); }

// Tiled matmul C[M,N] = A[M,K] @ B[K,N] with shared-memory tiles and two barriers per tile.
extern "C" __global__ void __launch_bounds__(TILE * TILE) tiled_matmul_f32(const float* __restrict__ a, const float* __restrict__ b,
                                            float* __restrict__ c, int m, int n, int k) {
    __shared__ float ta[TILE][TILE];
    __shared__ float tb[TILE][TILE];
    int row = blockIdx.y * TILE + threadIdx.y;
    int col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < (k + TILE - 1) / TILE; ++t) {
        int ak = t * TILE + threadIdx.x, bk = t * TILE + threadIdx.y;
        ta[threadIdx.y][threadIdx.x] = (row < m && ak < k) ? a[row * k + ak] : 0.0f;
        tb[threadIdx.y][threadIdx.x] = (bk < k && col < n) ? b[bk * n + col] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int i = 0; i < TILE; ++i) acc = multiply_add(ta[threadIdx.y][i], tb[i][threadIdx.x], acc);
        __syncthreads();
    }
    if (row < m && col < n) c[row * n + col] = acc;
}

// Block sum: warp shuffles within each warp, then shared memory across warps. One output per block.
template <typename T>
__device__ void block_sum(const T* __restrict__ x, T* __restrict__ out, long long n) {
    __shared__ T warp_sums[32];
    T v = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        v += __ldg(&x[i]);
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x / 32) ? warp_sums[lane] : (T)0;
        for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
        if (lane == 0) out[blockIdx.x] = v;
    }
}
extern "C" __global__ void block_sum_f32(const float* x, float* out, long long n) { block_sum<float>(x, out, n); }
extern "C" __global__ void block_sum_f64(const double* x, double* out, long long n) { block_sum<double>(x, out, n); }

// Reverses each block's slice through dynamic shared memory sized by the launch.
extern "C" __global__ void reverse_blocks_f32(const float* __restrict__ x, float* __restrict__ y, int n) {
    extern __shared__ float buffer[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) buffer[threadIdx.x] = x[i];
    __syncthreads();
    int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - threadIdx.x);
    if (i < n && j < n) y[i] = buffer[blockDim.x - 1 - threadIdx.x];
}

// Threads past `active` return before the barrier; the rest must still get through it.
extern "C" __global__ void early_return_f32(const float* __restrict__ x, float* __restrict__ y, int active) {
    __shared__ float s[256];
    if ((int)threadIdx.x >= active) return;
    s[threadIdx.x] = x[threadIdx.x] * 2.0f;
    __syncthreads();
    y[threadIdx.x] = s[(threadIdx.x + 1) % active];
}

// RACY on purpose: reads a neighbour's shared-memory slot without a barrier in between.
extern "C" __global__ void racy_neighbour_f32(const float* __restrict__ x, float* __restrict__ y) {
    __shared__ float s[256];
    s[threadIdx.x] = x[threadIdx.x];
    y[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// WRONG on purpose: even and odd threads wait at different barriers.
extern "C" __global__ void divergent_barrier_f32(float* y) {
    if (threadIdx.x % 2 == 0) {
        y[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        y[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

// Ballot, __syncthreads_count, atomics of several types, and the built-in index variables in 3-D.
extern "C" __global__ void intrinsics_probe(const float* __restrict__ x, int* __restrict__ ints,
                                           float* __restrict__ floats, double* __restrict__ doubles,
                                           unsigned int* __restrict__ ballots) {
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    float v = x[blockIdx.x * blockDim.x * blockDim.y * blockDim.z + t];
    unsigned ballot = __ballot_sync(0xffffffffu, v > 0.0f);
    if (t % 32 == 0) ballots[blockIdx.x * 2 + t / 32] = ballot;
    int positives = __syncthreads_count(v > 0.0f);
    if (t == 0) ints[3 * blockIdx.x] = positives;
    atomicAdd(&ints[3 * blockIdx.x + 1], 1);
    atomicMax(&ints[3 * blockIdx.x + 2], (int)(v * 1000.0f));
    atomicAdd(&floats[blockIdx.x], v);
    atomicAdd(&doubles[blockIdx.x], (double)v);
    __syncwarp();
    float up = __shfl_up_sync(0xffffffffu, v, 1);
    float bcast = __shfl_sync(0xffffffffu, v, 3, 8);
    if (t == 5) floats[gridDim.x + blockIdx.x] = up + bcast + rsqrtf(4.0f) + __expf(0.0f) + fmaxf(v, 0.0f);
}

// WRONG on purpose: only block 0 writes shared memory, every block reads it. On a GPU block 1 may
// see stale data from another block; the emulator poisons shared memory so it reads NaN.
extern "C" __global__ void stale_shared_f32(float* y) {
    __shared__ float s[32];
    if (blockIdx.x == 0) s[threadIdx.x] = 1.0f;
    __syncthreads();
    y[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}

// Barrier cost: every thread passes `rounds` barriers (tests/test_emulator.py measures it).
extern "C" __global__ void barrier_rounds_f32(float* y, int rounds) {
    __shared__ float s[1024];
    s[threadIdx.x] = 0.0f;
    for (int r = 0; r < rounds; ++r) {
        __syncthreads();
        s[threadIdx.x] += 1.0f;
    }
    y[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
}

// Shared memory must be re-read after a barrier: the compiler may not keep a value loaded before
// __syncthreads in a register when another thread changes it in between.
extern "C" __global__ void reread_after_barrier_f32(float* y) {
    __shared__ float s[1];
    if (threadIdx.x == 0) s[0] = 1.0f;
    __syncthreads();
    float before = s[0];
    __syncthreads();
    if (threadIdx.x == 1) s[0] = 2.0f;
    __syncthreads();
    y[threadIdx.x] = before + s[0];
}

// WRONG on purpose: half the warp returns, the other half shuffles with a full mask.
extern "C" __global__ void shuffle_after_exit_f32(float* y) {
    if (threadIdx.x >= 16) return;
    y[threadIdx.x] = __shfl_down_sync(0xffffffffu, y[threadIdx.x], 1);
}
