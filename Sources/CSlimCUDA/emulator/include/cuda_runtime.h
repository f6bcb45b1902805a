// The CPU emulator of the CUDA runtime subset libslimcuda uses (scripts/build-cuda-emulator.sh).
//
// The .cu sources compile unchanged as C++ against this header: every CUDA thread of a block is a
// fiber, warp collectives (__shfl*_sync, mma.sync) and __syncthreads are rendezvous of the
// fibers, and device memory is host memory with guard pages. It exists to run the kernels where
// no GPU is lent: indexing, fragment layouts, synchronisation and the host code around them are
// exercised for real, with stricter checks than a GPU makes (see emulator.cpp). Speeds mean
// nothing here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>

#include "cuda_fp16.h"
#include "vector_types.h"

#define SLIM_CUDA_EMULATOR 1

// MARK: - Qualifiers

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// All fibers of a block run on one OS thread, one block at a time: a thread_local is the block's.
#define __shared__ static thread_local

// MARK: - Runtime types

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorUnsupportedPtxVersion = 222,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlockOptin;
    int l2CacheSize;
    int major, minor, multiProcessorCount;
};

typedef struct slim_emu_stream *cudaStream_t;
typedef struct slim_emu_event *cudaEvent_t;
typedef struct slim_emu_graph *cudaGraph_t;
typedef struct slim_emu_graph_exec *cudaGraphExec_t;

// MARK: - Runtime API (emulator.cpp)

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
const char *cudaGetErrorName(cudaError_t error);
const char *cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError(void);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
template <typename T>
inline cudaError_t cudaMalloc(T **ptr, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
}
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop);

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

namespace slim_emu {
cudaError_t set_function_attribute(const void *function, cudaFuncAttribute attribute, int value);
}
template <typename F>
inline cudaError_t cudaFuncSetAttribute(F *function, cudaFuncAttribute attribute, int value) {
    return slim_emu::set_function_attribute(reinterpret_cast<const void *>(function), attribute, value);
}

// MARK: - Device side

namespace slim_emu {

/// The executing CUDA thread (a fiber) of the block being run.
struct ThreadState {
    uint3 thread_idx, block_idx;
    dim3 block_dim, grid_dim;
    int lane, warp;
};
extern thread_local ThreadState *current;

void syncthreads();
/// Warp-wide exchange of 64-bit payloads: every lane deposits `value`; lane i receives the value
/// of lane source(i) where source = src_lane (mode 0) or lane ^ src_lane (mode 1).
uint64_t shuffle(unsigned mask, uint64_t value, int src_lane, int width, int mode);
/// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32, fragments per the PTX ISA.
void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
/// The block's dynamic shared memory (poisoned with NaN bytes at block start).
void *dynamic_shared();
/// A load through __ldg/__ldcs at an address not aligned to its type: a fault, as on the GPU.
[[noreturn]] void misaligned_load(const void *p, size_t alignment);

template <typename T>
inline T checked_load(const T *p) {
    if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) misaligned_load(p, alignof(T));
    return *p;
}

template <typename T>
inline T shuffle_typed(unsigned mask, T value, int lane, int width, int mode) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 64 bits");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = shuffle(mask, bits, lane, width, mode);
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

}  // namespace slim_emu

#define threadIdx (::slim_emu::current->thread_idx)
#define blockIdx (::slim_emu::current->block_idx)
#define blockDim (::slim_emu::current->block_dim)
#define gridDim (::slim_emu::current->grid_dim)

inline void __syncthreads() { slim_emu::syncthreads(); }

template <typename T>
inline T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
    return slim_emu::shuffle_typed(mask, value, src_lane, width, 0);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    return slim_emu::shuffle_typed(mask, value, lane_mask, width, 1);
}

template <typename T>
inline T __ldg(const T *p) { return slim_emu::checked_load(p); }
template <typename T>
inline T __ldcs(const T *p) { return slim_emu::checked_load(p); }

// Bit reinterpretation.
inline float __uint_as_float(unsigned v) {
    float f;
    std::memcpy(&f, &v, sizeof f);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned v;
    std::memcpy(&v, &f, sizeof v);
    return v;
}

// Explicitly rounded arithmetic: plain IEEE operations (the library is built with
// -ffp-contract=off, so nothing is fused behind them).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

// CUDA's device overloads of min/max for integers (the .cu files call them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
using std::isfinite;

// MARK: - Launches

namespace slim_emu {

struct LaunchConfig {
    dim3 grid, block;
    size_t shared;
    cudaStream_t stream;
    const void *function;
    const char *name;
};

/// Validates a launch as the driver would, then runs it (or records it into the graph the stream
/// is capturing). `pointers` are the kernel's pointer arguments: each must be null or inside a
/// device allocation.
void launch(const LaunchConfig &config, const void *const *pointers, int pointer_count, std::function<void()> body);

template <typename T>
inline void collect_pointer(const T &value, const void **out, int *count) {
    if constexpr (std::is_pointer<T>::value) out[(*count)++] = reinterpret_cast<const void *>(value);
    (void)value;
    (void)out;
    (void)count;
}

template <typename... P>
struct Launcher {
    LaunchConfig config;
    void (*function)(P...);

    template <typename... A>
    void operator()(A &&...args) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        // Arguments are converted to the parameter types and copied now, as a launch (and a
        // captured graph node) does.
        std::tuple<std::decay_t<P>...> values(static_cast<std::decay_t<P>>(args)...);
        const void *pointers[sizeof...(P) + 1];
        int count = 0;
        std::apply([&](const auto &...v) { (collect_pointer(v, pointers, &count), ...); }, values);
        auto f = function;
        launch(config, pointers, count, [f, values]() { std::apply(f, values); });
    }
};

template <typename... P>
inline Launcher<P...> make_launcher(dim3 grid, dim3 block, size_t shared, cudaStream_t stream, void (*function)(P...),
                                    const char *name) {
    return Launcher<P...>{LaunchConfig{grid, block, shared, stream, reinterpret_cast<const void *>(function), name},
                          function};
}

}  // namespace slim_emu

// `SLIM_LAUNCH(grid, block, shared, stream, kernel)(args…)` is `kernel<<<grid, block, shared,
// stream>>>(args…)` under nvcc (common.cuh).
#define SLIM_LAUNCH(grid, block, shared, stream, ...) \
    ::slim_emu::make_launcher(grid, block, shared, stream, &__VA_ARGS__, #__VA_ARGS__)
#define SLIM_DYNAMIC_SHARED(type, name) type *name = static_cast<type *>(::slim_emu::dynamic_shared())
