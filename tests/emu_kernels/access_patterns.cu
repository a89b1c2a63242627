// access_patterns.cu — memory access patterns with known costs, for the emulator's access
// profile (tests/test_emulator_profile.py). All compile with NVRTC.

// Coalesced: lane i reads and writes float i of a 128-byte aligned line: 4 sectors per request.
extern "C" __global__ void copy_coalesced_f32(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[i];
}

// Lane i reads float 32*i: every lane its own sector, 32 per request; the store stays coalesced.
extern "C" __global__ void gather_strided_f32(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[32 * i];
}

// Every lane reads the same float: one sector per request.
extern "C" __global__ void broadcast_f32(const float* x, float* y) {
    y[blockIdx.x * blockDim.x + threadIdx.x] = x[0];
}

// Shared memory: row access (no conflict) and column access of a 32x32 tile (32-way conflict).
extern "C" __global__ void shared_rows_and_columns_f32(const float* x, float* y) {
    __shared__ float tile[32 * 32];
    for (int r = 0; r < 32; ++r) tile[r * 32 + threadIdx.x] = x[r * 32 + threadIdx.x];
    __syncthreads();
    float sum = 0.0f;
    for (int c = 0; c < 32; ++c) sum += tile[threadIdx.x * 32 + c];
    y[threadIdx.x] = sum;
}

// 16-byte vector accesses: lane i loads and stores float4 i. One request of 16 bytes per lane:
// 16 sectors per 32-lane request, which is the ideal (512 distinct bytes / 32).
extern "C" __global__ void copy_float4_f32(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float4 v = reinterpret_cast<const float4*>(x)[i];  // a copy construction: one load
    reinterpret_cast<float4*>(y)[i] = v;                     // an assignment: one store
}

// The same as one statement: an assignment from global memory, a load and a store at one site.
extern "C" __global__ void assign_float4_f32(const float* x, float* y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    reinterpret_cast<float4*>(y)[i] = reinterpret_cast<const float4*>(x)[i];
}

// Shared float4: consecutive (4 wavefronts, one per quarter-warp phase: no conflict), then a
// stride of two float4 (each phase's 8 lanes hit 16 banks twice: 2 wavefronts per phase, 8 in all).
extern "C" __global__ void shared_float4_f32(const float* x, float* y) {
    __shared__ float4 tile[64];
    tile[threadIdx.x] = reinterpret_cast<const float4*>(x)[threadIdx.x];
    tile[threadIdx.x + 32] = reinterpret_cast<const float4*>(x)[threadIdx.x + 32];
    __syncthreads();
    const float4 v = tile[threadIdx.x * 2];
    y[threadIdx.x] = v.x + v.y + v.z + v.w;
}

// Integer divisions by run-time values: two 32-bit (one of them in a callee that is not inlined)
// and one 64-bit; the division by 3 becomes a multiplication.
__device__ __noinline__ int modulo32(int a, int b) { return a % b; }
extern "C" __global__ void divisions_i64(long long* x, int d32, long long d64) {
    const int t = threadIdx.x;
    x[t] += t / d32 + modulo32(t, d32) + (long long)t / d64 + t / 3 + 1;
}
