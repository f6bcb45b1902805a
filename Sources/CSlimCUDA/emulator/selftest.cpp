// Self-test of the CUDA emulator (run by scripts/gpu-check.sh --emulator): the rules it claims to
// enforce are enforced, and its mma and shuffles compute what the PTX ISA says. Each case runs in
// a child process, since a broken rule leaves the (emulated) context unusable, as on a GPU.
//
//   slim-cuda-emulator-selftest        exit 0 when every case behaves, 1 otherwise
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

// MARK: - Kernels

__global__ void shuffle_kernel(int *out) {
    const int lane = threadIdx.x & 31;
    const int x = __shfl_xor_sync(0xFFFFFFFFu, lane * 10, 5);
    const int y = __shfl_sync(0xFFFFFFFFu, lane * 100, 31 - lane);
    out[threadIdx.x] = x + y;
}

// A (16×16) = row·16 + col, B (16×8) = k − n, C = 1: the lanes load their fragments per the PTX ISA
// and the warp's D is written back the same way.
__global__ void mma_kernel(float *out) {
    const int lane = threadIdx.x, group = lane >> 2, tig = lane & 3;
    uint32_t a[4], b[2];
    for (int r = 0; r < 4; r++) {
        uint32_t word = 0;
        for (int e = 0; e < 2; e++) {
            const int i = 2 * r + e;
            const int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
            const int col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
            word |= (uint32_t)__half_as_ushort(__float2half_rn((float)(row * 16 + col) / 64.0f)) << (16 * e);
        }
        a[r] = word;
    }
    for (int r = 0; r < 2; r++) {
        uint32_t word = 0;
        for (int e = 0; e < 2; e++) {
            const int i = 2 * r + e;
            const int k = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0);
            word |= (uint32_t)__half_as_ushort(__float2half_rn((float)(k - group))) << (16 * e);
        }
        b[r] = word;
    }
    float c[4] = {1, 1, 1, 1};
    slim_emu::mma_m16n8k16(c, a, b[0], b[1]);
    for (int i = 0; i < 4; i++) out[(group + (i >= 2 ? 8 : 0)) * 8 + tig * 2 + (i & 1)] = c[i];
}

__global__ void early_exit_kernel(float *out) {
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_xor_sync(0xFFFFFFFFu, 1.0f, 1);
}

__global__ void barrier_after_exit_kernel(float *out) {
    if (threadIdx.x >= 32) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void out_of_bounds_kernel(const float *in, float *out, int n) {
    out[threadIdx.x] = in[threadIdx.x + n];  // reads past the allocation
}

__global__ void misaligned_kernel(const float *in, float *out) {
    const float4 v = __ldg(reinterpret_cast<const float4 *>(in + 1));  // 4-byte aligned, needs 16
    out[threadIdx.x] = v.x;
}

__device__ int deep(int n) {
    volatile char frame[4096];
    frame[0] = (char)n;
    return n == 0 ? frame[0] : deep(n - 1) + frame[0];
}

__global__ void overflow_kernel(int *out) { out[threadIdx.x] = deep(1 << 20); }

// Sums 64 values without the barrier between the partial writes and the final read: a race.
__global__ void racy_sum_kernel(const float *in, float *out) {
    __shared__ float partial[2];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float v = in[threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    if (lane == 0) partial[warp] = v;
    if (threadIdx.x == 0) out[0] = partial[0] + partial[1];
}

// MARK: - Harness

static int failures = 0;

static void expect(bool ok, const char *what) {
    printf("%s emulator self-test: %s\n", ok ? "PASS" : "FAIL", what);
    fflush(stdout);
    if (!ok) failures++;
}

/// Runs `body` in a child process with stderr silenced; its exit status.
template <typename Body>
static int in_child(Body body) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        if (getenv("SLIM_EMULATOR_SELFTEST_VERBOSE") == nullptr) freopen("/dev/null", "w", stderr);
        _exit(body());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

template <typename T>
static T *device(size_t count) {
    T *p = nullptr;
    if (cudaMalloc(&p, count * sizeof(T)) != cudaSuccess) exit(90);
    return p;
}

int main() {
    expect(in_child([] {
        int *d = device<int>(64);
        SLIM_LAUNCH(1, 64, 0, nullptr, shuffle_kernel)(d);
        int h[64];
        if (cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost) != cudaSuccess) return 2;
        for (int t = 0; t < 64; t++) {
            const int lane = t & 31;
            if (h[t] != (lane ^ 5) * 10 + (31 - lane) * 100) return 1;
        }
        return 0;
    }) == 0, "__shfl_xor_sync and __shfl_sync deliver the source lane's value");

    expect(in_child([] {
        float *d = device<float>(128);
        SLIM_LAUNCH(1, 32, 0, nullptr, mma_kernel)(d);
        float h[128];
        if (cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost) != cudaSuccess) return 2;
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 8; n++) {
                double want = 1;
                for (int k = 0; k < 16; k++) want += (double)(m * 16 + k) / 64.0 * (k - n);
                if (h[m * 8 + n] != (float)want) return 1;
            }
        return 0;
    }) == 0, "mma.m16n8k16 gives C + A·B for fragments laid out per the PTX ISA");

    expect(in_child([] {
        float *d = device<float>(32);
        SLIM_LAUNCH(1, 32, 0, nullptr, early_exit_kernel)(d);
        return cudaDeviceSynchronize() == cudaErrorLaunchFailure ? 0 : 1;
    }) == 0, "a full-mask shuffle after a lane exited is an error");

    expect(in_child([] {
        float *d = device<float>(64);
        SLIM_LAUNCH(1, 64, 0, nullptr, barrier_after_exit_kernel)(d);
        return cudaDeviceSynchronize() == cudaErrorLaunchFailure ? 0 : 1;
    }) == 0, "__syncthreads after threads exited is an error");

    expect(in_child([] {
        float *in = device<float>(1000), *out = device<float>(32);
        SLIM_LAUNCH(1, 32, 0, nullptr, out_of_bounds_kernel)(in, out, 1000);
        return cudaDeviceSynchronize() == cudaErrorIllegalAddress ? 0 : 1;
    }) == 0, "a read past the end of an allocation is an illegal address");

    expect(in_child([] {
        float *in = device<float>(64), *out = device<float>(32);
        SLIM_LAUNCH(1, 32, 0, nullptr, misaligned_kernel)(in, out);
        return cudaDeviceSynchronize() == cudaErrorMisalignedAddress ? 0 : 1;
    }) == 0, "a vector load at a misaligned address is a fault");

    expect(in_child([] {
        int *out = device<int>(32);
        SLIM_LAUNCH(1, 32, 0, nullptr, overflow_kernel)(out);
        return cudaDeviceSynchronize() == cudaErrorIllegalAddress ? 0 : 1;
    }) == 0, "a thread overflowing its stack is reported as a fault, not a crash");

    expect(in_child([] {
        std::vector<float> host(32);
        float *out = device<float>(32);
        SLIM_LAUNCH(1, 32, 0, nullptr, out_of_bounds_kernel)(host.data(), out, 0);
        return cudaGetLastError() == cudaErrorIllegalAddress ? 0 : 1;
    }) == 0, "a host pointer as a kernel argument is refused");

    expect(in_child([] {
        float *d = device<float>(4), h[8] = {};
        return cudaMemcpy(d, h, sizeof(h), cudaMemcpyHostToDevice) == cudaErrorInvalidValue &&
                       cudaMemcpy(h, d, 4 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue
                   ? 0
                   : 1;
    }) == 0, "copies out of bounds or in the wrong direction are refused");

    expect(in_child([] {
        float *d = device<float>(1);
        float h = 0;
        return cudaMemcpy(&h, d, sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess && h != h ? 0 : 1;
    }) == 0, "fresh device memory reads as NaN");

    expect(in_child([] {
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
        void *p = nullptr;
        const bool refused = cudaMalloc(&p, 64) == cudaErrorStreamCaptureUnsupported;
        cudaGraph_t g = nullptr;
        return refused && cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && g == nullptr ? 0 : 1;
    }) == 0, "cudaMalloc inside a stream capture is refused and invalidates the capture");

    expect(in_child([] {
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        float *d = device<float>(32);
        cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
        SLIM_LAUNCH(1, 32, 0, s, early_exit_kernel)(d);  // recorded, not run
        const bool deferred = cudaGetLastError() == cudaSuccess;
        cudaGraph_t g = nullptr;
        cudaGraphExec_t e = nullptr;
        if (cudaStreamEndCapture(s, &g) != cudaSuccess || cudaGraphInstantiate(&e, g, 0) != cudaSuccess) return 2;
        return deferred && cudaGraphLaunch(e, s) == cudaErrorLaunchFailure ? 0 : 1;
    }) == 0, "a captured kernel runs when its graph is launched, not when captured");

    // The race: forward order happens to sum correctly or not; the two orders must disagree.
    auto racy = [] {
        std::vector<float> h(64, 1.0f);
        float *in = device<float>(64), *out = device<float>(1);
        cudaMemcpy(in, h.data(), 64 * sizeof(float), cudaMemcpyHostToDevice);
        SLIM_LAUNCH(1, 64, 0, nullptr, racy_sum_kernel)(in, out);
        float r = 0;
        cudaMemcpy(&r, out, sizeof(float), cudaMemcpyDeviceToHost);
        return r == 64.0f ? 0 : 1;
    };
    setenv("SLIM_CUDA_EMULATOR_SCHEDULE", "forward", 1);
    const int forward = in_child(racy);
    setenv("SLIM_CUDA_EMULATOR_SCHEDULE", "reverse", 1);
    const int reverse = in_child(racy);
    expect(forward != reverse, "a missing __syncthreads changes the result between schedules");

    printf("emulator self-test: %d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
