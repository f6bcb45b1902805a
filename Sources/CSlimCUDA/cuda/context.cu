// Context, device memory, error messages and timing helpers of libslimcuda.so.
#include "common.cuh"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <new>
#include <vector>

namespace slim {

// MARK: - Errors

static thread_local char last_message[1024] = "";

void set_error(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_message, sizeof(last_message), format, args);
    va_end(args);
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void set_cuda_error(cudaError_t error, const char *what, const char *file, int line) {
    const char *hint = "";
    switch (error) {
    case cudaErrorInsufficientDriver:
        hint = " (the NVIDIA driver is missing or older than the CUDA runtime this library was built with; "
               "rebuild with a matching nvcc: CUDA_HOME=... bash scripts/build-cuda.sh)";
        break;
    case cudaErrorNoDevice: hint = " (no NVIDIA GPU is visible to this process)"; break;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        hint = " (the GPU is neither sm_80/sm_90 nor able to JIT the PTX; rebuild with SLIM_CUDA_ARCHS set for it)";
        break;
    case cudaErrorMemoryAllocation: hint = " (GPU memory exhausted)"; break;
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
        hint = " (the context is now unusable; rerun with SLIM_CUDA_SYNC=1 to attribute the fault to its kernel)";
        break;
    default: break;
    }
    set_error("%s failed: %s: %s%s (%s:%d)", what, cudaGetErrorName(error), cudaGetErrorString(error), hint,
              base_name(file), line);
}

// MARK: - Scratch

int reserve(slim_cuda_context *ctx, Scratch &s, size_t bytes, const char *what) {
    if (bytes <= s.bytes) return 0;
    SLIM_REQUIRE(!ctx->capturing, "internal error: scratch '%s' must grow to %zu bytes during graph capture", what,
                 bytes);
    if (s.ptr != nullptr) {
        SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
        SLIM_CHECK(cudaFree(s.ptr));
        s.ptr = nullptr;
        s.bytes = 0;
    }
    size_t grown = bytes + bytes / 4;
    cudaError_t e = cudaMalloc(&s.ptr, grown);
    if (e != cudaSuccess) {
        s.ptr = nullptr;
        char label[128];
        snprintf(label, sizeof(label), "cudaMalloc(%zu bytes of %s scratch)", grown, what);
        set_cuda_error(e, label, __FILE__, __LINE__);
        return 1;
    }
    s.bytes = grown;
    return 0;
}

void release(Scratch &s) {
    if (s.ptr != nullptr) cudaFree(s.ptr);
    s.ptr = nullptr;
    s.bytes = 0;
}

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    return (v != nullptr && *v != '\0') ? atoi(v) : fallback;
}

}  // namespace slim

using namespace slim;

// MARK: - Version and errors

SLIM_EXPORT int slim_cuda_abi_version(void) { return SLIM_CUDA_ABI_VERSION; }

SLIM_EXPORT const char *slim_cuda_last_error(void) { return last_message; }

// MARK: - Context

SLIM_EXPORT int slim_cuda_context_create(int32_t device, slim_cuda_context **out) {
    *out = nullptr;
#ifndef SLIM_CUDA_EMULATOR
    // Without the driver library the runtime only says "insufficient driver": say what is missing.
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (driver == nullptr) {
        set_error("no NVIDIA driver: libcuda.so.1 cannot be loaded (%s); --device cuda needs an NVIDIA GPU with its driver",
                  dlerror());
        return 1;
    }
    dlclose(driver);
#endif
    int count = 0;
    SLIM_CHECK(cudaGetDeviceCount(&count));
    SLIM_REQUIRE(count > 0, "no CUDA device is visible (cudaGetDeviceCount = 0)");
    SLIM_REQUIRE(device >= 0 && device < count, "CUDA device %d does not exist (%d visible)", device, count);
    SLIM_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop;
    SLIM_CHECK(cudaGetDeviceProperties(&prop, device));
    SLIM_REQUIRE(prop.major >= 8,
                 "GPU %s has compute capability %d.%d; the packed kernels need tensor-core mma (8.0 or newer)",
                 prop.name, prop.major, prop.minor);
    auto *ctx = new (std::nothrow) slim_cuda_context();
    SLIM_REQUIRE(ctx != nullptr, "out of host memory creating the CUDA context");
    ctx->device = device;
    ctx->multiprocessors = prop.multiProcessorCount;
    ctx->shared_memory_optin = prop.sharedMemPerBlockOptin;
    ctx->debug_sync = env_int("SLIM_CUDA_SYNC", 0) != 0;
    ctx->warps_override = env_int("SLIM_CUDA_WARPS", 0);
    ctx->depth_override = env_int("SLIM_CUDA_DEPTH", 0);
    if (ctx->depth_override != 0 && ctx->depth_override != 2 && ctx->depth_override != 4 && ctx->depth_override != 8) {
        set_error("SLIM_CUDA_DEPTH=%d: expected 2, 4 or 8 (decode slabs in flight per warp), or 0 for automatic",
                  ctx->depth_override);
        delete ctx;
        return 1;
    }
    ctx->attn_splits_override = env_int("SLIM_CUDA_ATTN_SPLITS", 0);
    if (ctx->attn_splits_override < 0 || ctx->attn_splits_override > 128) {
        set_error("SLIM_CUDA_ATTN_SPLITS=%d: expected 1…128 (key splits per attention launch), or 0 for automatic",
                  ctx->attn_splits_override);
        delete ctx;
        return 1;
    }
    cudaError_t e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        set_cuda_error(e, "cudaStreamCreateWithFlags", __FILE__, __LINE__);
        delete ctx;
        return 1;
    }
    if (configure_attention(ctx) != 0) {
        slim_cuda_context_destroy(ctx);
        return 1;
    }
    *out = ctx;
    return 0;
}

SLIM_EXPORT void slim_cuda_context_destroy(slim_cuda_context *ctx) {
    if (ctx == nullptr) return;
    if (ctx->stream != nullptr) cudaStreamSynchronize(ctx->stream);
    release(ctx->xprep.xb);
    release(ctx->xprep.sums);
    release(ctx->xprep.scales);
    release(ctx->ints);
    release(ctx->attn_partials);
    if (ctx->stream != nullptr) cudaStreamDestroy(ctx->stream);
    delete ctx;
}

SLIM_EXPORT int slim_cuda_device_info(slim_cuda_context *ctx, slim_cuda_device_properties *out) {
    memset(out, 0, sizeof(*out));
    cudaDeviceProp prop;
    SLIM_CHECK(cudaGetDeviceProperties(&prop, ctx->device));
    snprintf(out->name, sizeof(out->name), "%s", prop.name);
    out->major = prop.major;
    out->minor = prop.minor;
    out->multiprocessors = prop.multiProcessorCount;
    out->total_memory = (int64_t)prop.totalGlobalMem;
    out->l2_cache_bytes = (int64_t)prop.l2CacheSize;
    int v = 0;
    SLIM_CHECK(cudaDriverGetVersion(&v));
    out->driver_version = v;
    SLIM_CHECK(cudaRuntimeGetVersion(&v));
    out->runtime_version = v;
    return 0;
}

// MARK: - Memory

SLIM_EXPORT int slim_cuda_device_malloc(slim_cuda_context *ctx, size_t bytes, void **out) {
    (void)ctx;
    *out = nullptr;
    char label[96];
    snprintf(label, sizeof(label), "cudaMalloc(%zu bytes)", bytes);
    cudaError_t e = cudaMalloc(out, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
        *out = nullptr;
        set_cuda_error(e, label, __FILE__, __LINE__);
        return 1;
    }
    return 0;
}

SLIM_EXPORT void slim_cuda_device_free(slim_cuda_context *ctx, void *d_ptr) {
    if (d_ptr == nullptr) return;
    if (ctx != nullptr) cudaStreamSynchronize(ctx->stream);
    cudaFree(d_ptr);
}

SLIM_EXPORT int slim_cuda_upload(slim_cuda_context *ctx, void *d_dst, const void *src, size_t bytes) {
    if (bytes == 0) return 0;
    SLIM_CHECK(cudaMemcpyAsync(d_dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
    return 0;
}

SLIM_EXPORT int slim_cuda_download(slim_cuda_context *ctx, void *dst, const void *d_src, size_t bytes) {
    if (bytes == 0) return 0;
    SLIM_CHECK(cudaMemcpyAsync(dst, d_src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
    return 0;
}

SLIM_EXPORT int slim_cuda_fill_u32(slim_cuda_context *ctx, void *d_dst, uint32_t pattern, size_t count) {
    if (count == 0) return 0;
    return launch_fill(ctx, d_dst, pattern, count);
}

SLIM_EXPORT int slim_cuda_synchronize(slim_cuda_context *ctx) {
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
    return 0;
}

// MARK: - Timing

SLIM_EXPORT int slim_cuda_copy_bandwidth(slim_cuda_context *ctx, size_t bytes, int32_t iterations,
                                         double *bytes_per_second) {
    *bytes_per_second = 0;
    SLIM_REQUIRE(bytes >= 4 && iterations >= 1, "copy_bandwidth: need bytes >= 4 and iterations >= 1");
    void *a = nullptr, *b = nullptr;
    SLIM_TRY(slim_cuda_device_malloc(ctx, bytes, &a));
    if (slim_cuda_device_malloc(ctx, bytes, &b) != 0) {
        cudaFree(a);
        return 1;
    }
    cudaEvent_t start = nullptr, stop = nullptr;
    float ms = 0;
    cudaError_t e = cudaEventCreate(&start);
    if (e == cudaSuccess) e = cudaEventCreate(&stop);
    if (e == cudaSuccess) e = cudaMemsetAsync(a, 1, bytes, ctx->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, ctx->stream);  // warm-up
    if (e == cudaSuccess) e = cudaEventRecord(start, ctx->stream);
    for (int32_t i = 0; i < iterations && e == cudaSuccess; i++) {
        e = cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice, ctx->stream);
    }
    if (e == cudaSuccess) e = cudaEventRecord(stop, ctx->stream);
    if (e == cudaSuccess) e = cudaEventSynchronize(stop);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, start, stop);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    if (e != cudaSuccess) {
        set_cuda_error(e, "device-to-device copy timing", __FILE__, __LINE__);
        return 1;
    }
    // A copy reads and writes every byte: count both, as CUDA's bandwidthTest does.
    *bytes_per_second = 2.0 * (double)bytes * iterations / (ms / 1e3);
    return 0;
}

// The kernel alone: a graph of `iterations` launches on prepared activations, launch i on
// linear set[i mod n] (all of one shape).
static int time_kernel_graph(slim_cuda_context *ctx, const std::vector<slim_cuda_linear *> &set, const float *x,
                             int32_t tokens, int32_t iterations, float *y, float *ms) {
    const slim_cuda_linear *lin = set[0];
    XPrep prep;
    if (lin->packed) SLIM_TRY(prepare_x(ctx, ctx->xprep, x, tokens, lin->cols, lin->group_size, &prep));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    SLIM_CHECK(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal));
    ctx->capturing = true;
    int status = 0;
    for (int32_t i = 0; i < iterations && status == 0; i++) {
        const slim_cuda_linear *l = set[(size_t)i % set.size()];
        status = l->packed ? packed_gemm(ctx, l, prep, y, false) : dense_gemm(ctx, l, x, tokens, y, false);
    }
    ctx->capturing = false;
    const cudaError_t end = cudaStreamEndCapture(ctx->stream, &graph);
    if (status != 0) {
        if (graph) cudaGraphDestroy(graph);
        return 1;
    }
    if (end != cudaSuccess) {
        set_cuda_error(end, "cudaStreamEndCapture (kernel timing graph)", __FILE__, __LINE__);
        return 1;
    }
    cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        set_cuda_error(e, "cudaGraphInstantiate (kernel timing graph)", __FILE__, __LINE__);
        return 1;
    }
    e = cudaGraphLaunch(exec, ctx->stream);  // warm-up
    if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
    if (e != cudaSuccess) {
        cudaGraphExecDestroy(exec);
        set_cuda_error(e, "kernel timing graph", __FILE__, __LINE__);
        return 1;
    }
    status = time_stream(ctx, [&]() -> int {
        SLIM_CHECK(cudaGraphLaunch(exec, ctx->stream));
        return 0;
    }, ms);
    cudaGraphExecDestroy(exec);
    return status;
}

// Copies beyond the first are made so that all of them together hold at least `min_footprint`
// bytes of weights: launches cycle through them, and with a footprint of twice the L2 each
// launch reads its weights from HBM as a decode step through a whole model does (a single
// LLaMA-7B-shape matrix of 4…12 MB stays in a 50 MB L2 when launched back to back).
SLIM_EXPORT int slim_cuda_linear_time(slim_cuda_context *ctx, slim_cuda_linear *lin, int32_t tokens,
                                      int32_t iterations, int64_t min_footprint, double *seconds_per_call,
                                      double *seconds_per_kernel, int32_t *copies) {
    *seconds_per_call = 0;
    *seconds_per_kernel = 0;
    *copies = 0;
    SLIM_REQUIRE(tokens >= 1 && iterations >= 1, "linear_time: need tokens >= 1 and iterations >= 1");
    const int64_t bytes = std::max<int64_t>(1, slim_cuda_linear_weight_bytes(lin));
    const int64_t wanted = min_footprint > bytes ? (min_footprint + bytes - 1) / bytes : 1;
    SLIM_REQUIRE(wanted <= 4096, "linear_time: %lld copies of a %lld-byte linear asked for (at most 4096)",
                 (long long)wanted, (long long)bytes);
    std::vector<slim_cuda_linear *> set{lin};
    int status = 0;
    while (status == 0 && (int64_t)set.size() < wanted) {
        slim_cuda_linear *copy = nullptr;
        status = clone_linear(ctx, lin, &copy);
        if (status == 0) set.push_back(copy);
    }
    void *x = nullptr, *y = nullptr;
    if (status == 0) status = slim_cuda_device_malloc(ctx, sizeof(float) * (size_t)tokens * lin->cols, &x);
    if (status == 0) status = slim_cuda_device_malloc(ctx, sizeof(float) * (size_t)tokens * lin->rows, &y);
    float call_ms = 0, kernel_ms = 0;
    if (status == 0) status = launch_fill(ctx, x, 0x3F000000u /* 0.5f */, (size_t)tokens * lin->cols);
    if (status == 0) status = slim_cuda_linear_apply(ctx, lin, (const float *)x, tokens, (float *)y, 0);  // warm-up
    if (status == 0) {
        status = time_stream(ctx, [&]() -> int {
            for (int32_t i = 0; i < iterations; i++) {
                SLIM_TRY(slim_cuda_linear_apply(ctx, set[(size_t)i % set.size()], (const float *)x, tokens, (float *)y, 0));
            }
            return 0;
        }, &call_ms);
    }
    if (status == 0) status = time_kernel_graph(ctx, set, (const float *)x, tokens, iterations, (float *)y, &kernel_ms);
    cudaStreamSynchronize(ctx->stream);
    cudaFree(x);
    cudaFree(y);
    for (size_t i = 1; i < set.size(); i++) slim_cuda_linear_destroy(set[i]);
    if (status != 0) return 1;
    *seconds_per_call = call_ms / 1e3 / iterations;
    *seconds_per_kernel = kernel_ms / 1e3 / iterations;
    *copies = (int32_t)set.size();
    return 0;
}
