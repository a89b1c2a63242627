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
