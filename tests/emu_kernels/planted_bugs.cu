// planted_bugs.cu — the bugs compute-sanitizer finds on a GPU, planted on purpose, and the legal
// cases the emulator once refused (tests/test_emulator_sanitizer.py). Each buggy line carries a
// `BUG:` comment that the tests look up to check the reported file:line. All compile with NVRTC.

// Reads one element past the end of x (thread n-1 reads x[n]).
extern "C" __global__ void read_past_end_f32(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i + 1];  // BUG: read_past_end
}

// Writes one element past the end of y.
extern "C" __global__ void write_past_end_f32(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i + 1] = x[i];  // BUG: write_past_end
}

// Reads one element past the end of x in code the sanitizer's hooks do not see (compiled without
// instrumentation, as a library function would be): only the guard page after x catches it.
#ifdef EMU_SANITIZER
__attribute__((no_sanitize_thread, noinline)) static float unchecked_load(const float* p) {
#else
__device__ __noinline__ float unchecked_load(const float* p) {
#endif
    return *p;  // BUG: unchecked_read_past_end
}
extern "C" __global__ void unchecked_read_past_end_f32(const float* x, float* y, int n) {
    if (threadIdx.x == 0) y[0] = unchecked_load(x + n);
}

// An int32 index that overflowed: 2^28 elements (1 GiB) past the array.
extern "C" __global__ void read_far_past_end_f32(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i + (1 << 28)];  // BUG: read_far_past_end
}

// The flat index of an (n, c, h, w) tensor computed in int: overflows for 2^31 elements or more.
extern "C" __global__ void int32_index_overflow_f32(const float* x, float* y, int c, int hw) {
    int n = blockIdx.x;
    int offset = n * c * hw;  // BUG: int32_index_overflow
    y[threadIdx.x] = x[(offset + threadIdx.x) % 64];
}

// Indexes a shared array one past its end (thread 31 writes a[32]); b follows it in memory.
extern "C" __global__ void shared_past_end_f32(const float* x, float* y) {
    __shared__ float a[32];
    __shared__ float b[32];
    b[threadIdx.x] = 0.0f;
    a[threadIdx.x + 1] = x[threadIdx.x];  // BUG: shared_past_end
    __syncthreads();
    y[threadIdx.x] = a[threadIdx.x] + b[threadIdx.x];
}

// Indexes a shared array far past its end (past its redzone, into the module's other data).
extern "C" __global__ void shared_far_past_end_f32(float* y) {
    __shared__ float c[32];
    c[threadIdx.x] = 1.0f;
    c[threadIdx.x + 96] = 2.0f;  // BUG: shared_far_past_end
    __syncthreads();
    y[threadIdx.x] = c[threadIdx.x];
}

// Accumulates into shared memory with += from every thread instead of atomicAdd.
extern "C" __global__ void shared_plus_equals_f32(const float* x, float* y) {
    __shared__ float total[1];
    if (threadIdx.x == 0) total[0] = 0.0f;
    __syncthreads();
    total[0] += x[threadIdx.x];  // BUG: shared_plus_equals
    __syncthreads();
    if (threadIdx.x == 0) y[0] = total[0];
}

// The same sum, correct: atomics are not races.
extern "C" __global__ void shared_atomic_sum_f32(const float* x, float* y) {
    __shared__ float total[1];
    if (threadIdx.x == 0) total[0] = 0.0f;
    __syncthreads();
    atomicAdd(&total[0], x[threadIdx.x]);
    __syncthreads();
    if (threadIdx.x == 0) y[0] = total[0];
}

// Writes shared memory, then reads a neighbour's slot with no __syncthreads in between.
extern "C" __global__ void missing_barrier_f32(const float* x, float* y) {
    __shared__ float s[64];
    s[threadIdx.x] = x[threadIdx.x];  // BUG: missing_barrier_write
    y[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];  // BUG: missing_barrier_read
}

// Odd threads go round a loop with a barrier twice, even threads once.
extern "C" __global__ void barrier_loop_counts_f32(float* y) {
    for (int r = 0; r < 1 + (int)(threadIdx.x & 1); ++r) {
        __syncthreads();  // BUG: barrier_loop_counts
        y[threadIdx.x] = (float)r;
    }
}

// A float4 store to an address that is 4 bytes past a 16-byte boundary.
extern "C" __global__ void misaligned_float4_f32(float* y) {
    float4 v = make_float4(1.0f, 2.0f, 3.0f, 4.0f);
    reinterpret_cast<float4*>(y + 1)[threadIdx.x] = v;  // BUG: misaligned_float4
}

// A float4 load from an address that is 4 bytes past a 16-byte boundary.
extern "C" __global__ void misaligned_float4_load_f32(const float* x, float* y) {
    const float4 v = reinterpret_cast<const float4*>(x + 1)[threadIdx.x];  // BUG: misaligned_float4_load
    y[threadIdx.x] = v.x + v.y + v.z + v.w;
}

// Indexes a thread's local array one past its end (n = 64: a[8]).
extern "C" __global__ void local_array_past_end_f32(const float* x, float* y, int n) {
    float a[8];
    for (int i = 0; i < 8; ++i) a[i] = x[(threadIdx.x + i) % n];
    y[threadIdx.x] = a[n / 8];  // BUG: local_array_past_end
}

// Copies x to y: run on an x that gpuconv's empty() allocated and no kernel wrote.
extern "C" __global__ void copy_f32(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i];  // BUG: uninitialized_read
}

// Copies int32 x to y: run on an x from gpuconv's empty() that no kernel wrote (a bug), or one
// that fill_i32 wrote, -1 included (legal).
extern "C" __global__ void copy_i32(const int* x, int* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i];  // BUG: uninitialized_int_read
}
extern "C" __global__ void fill_i32(int* y, int value, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = value;
}

// Every block writes the same elements of y: a race between blocks.
extern "C" __global__ void blocks_write_same_f32(float* y) {
    y[threadIdx.x] = (float)blockIdx.x;  // BUG: blocks_write_same
}

// Reads a shared array no thread of the block wrote.
extern "C" __global__ void unwritten_shared_f32(float* y) {
    __shared__ float s[32];
    y[threadIdx.x] = s[threadIdx.x];  // BUG: unwritten_shared
}

// A 1 MiB local array: more than a thread's local memory (512 KiB) and the fiber stack.
// (A crash in the function's prologue: the report names the line of its opening.)
extern "C" __global__ void local_overflow_f32(const float* x, float* y, int n) {  // BUG: local_overflow
    float big[262144];
    for (int i = 0; i < 262144; ++i) big[i] = x[i % n];
    y[threadIdx.x] = big[(threadIdx.x * 7919) % 262144];
}

// ---- legal --------------------------------------------------------------------------------------

// Two kernels with 32 KiB of static shared memory each: fine, the limit is per kernel.
extern "C" __global__ void big_shared_a_f32(float* y) {
    __shared__ float a[8192];
    a[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = a[(threadIdx.x + 1) % blockDim.x];
}
extern "C" __global__ void big_shared_b_f32(float* y) {
    __shared__ float b[8192];
    b[threadIdx.x] = 2.0f * threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = b[(threadIdx.x + 1) % blockDim.x];
}

// The two half-warps reduce separately, each with its own mask.
extern "C" __global__ void half_warp_sums_f32(const float* x, float* y) {
    unsigned lane = threadIdx.x % 32;
    unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    float v = x[threadIdx.x];
    for (int offset = 8; offset > 0; offset /= 2) v += __shfl_down_sync(mask, v, offset, 16);
    __syncwarp(mask);
    if (lane % 16 == 0) y[threadIdx.x / 16] = v;
}

// A 300 KB local array per thread (under the GPU's 512 KiB local-memory limit).
extern "C" __global__ void big_local_array_f32(const float* x, float* y, int n) {
    float big[75000];
    for (int i = 0; i < 75000; ++i) big[i] = x[i % n] + (float)i;
    y[threadIdx.x] = big[74999 - threadIdx.x];
}

// Each thread writes its own byte of a bool array (four threads share each 4-byte word): no race.
extern "C" __global__ void write_own_byte_b8(bool* y) {
    y[threadIdx.x] = (threadIdx.x % 3) == 0;
}

// Thread 1 spins until thread 5 sets a shared flag.
extern "C" __global__ void spin_on_flag_f32(float* y) {
    __shared__ volatile int flag[1];
    if (threadIdx.x == 0) flag[0] = 0;
    __syncthreads();
    if (threadIdx.x == 1) {
        while (flag[0] == 0) {
        }
        y[1] = 1.0f;
    }
    if (threadIdx.x == 5) flag[0] = 1;
}

// Thread 1 spins on a flag that no thread sets: a real hang, which the watchdog reports.
extern "C" __global__ void spin_forever_f32(float* y) {
    __shared__ volatile int flag[1];
    if (threadIdx.x == 0) flag[0] = 0;
    __syncthreads();
    if (threadIdx.x == 1) {
        while (flag[0] == 0) {  // BUG: spin_forever
        }
        y[1] = 1.0f;
    }
}
