// The CUDA runtime functions of the CPU emulator (include/cuda_runtime.h): device, errors, device
// memory with guard pages, streams that execute at enqueue time, events, and graphs recorded by
// stream capture and replayed on launch. Kernel execution is in emulator.cpp.
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

namespace slim_emu {

// MARK: - Errors

cudaError_t sticky_error = cudaSuccess;
thread_local cudaError_t last_error = cudaSuccess;
thread_local slim_emu_stream *capturing_stream = nullptr;
const size_t page = (size_t)sysconf(_SC_PAGESIZE);

void note(const char *format, ...) {
    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    fprintf(stderr, "slim-cuda-emulator: %s\n", line);
}

cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}


// MARK: - Device memory

static std::mutex memory_lock;
static std::map<uintptr_t, Allocation> allocations;  // by begin

const Allocation *find_allocation(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    std::lock_guard<std::mutex> guard(memory_lock);
    auto it = allocations.upper_bound(a);
    if (it == allocations.begin()) return nullptr;
    --it;
    const Allocation &found = it->second;
    if (a < found.begin || a + bytes > found.begin + found.bytes) return nullptr;
    return &found;
}

/// True when some byte of [p, p + bytes) is device memory.
static bool touches_device(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    std::lock_guard<std::mutex> guard(memory_lock);
    auto it = allocations.upper_bound(a + (bytes == 0 ? 0 : bytes - 1));
    if (it == allocations.begin()) return false;
    --it;
    return a < it->second.begin + it->second.bytes && a + bytes > it->second.begin;
}

// MARK: - Capture

bool refused_by_capture(const char *what) {
    if (capturing_stream == nullptr) return false;
    capturing_stream->invalidated = true;
    note("%s during a stream capture (not permitted in thread-local capture mode); the capture is invalidated", what);
    return true;
}

void run_or_record(cudaStream_t stream, std::function<void()> op) {
    if (stream != nullptr && stream->capturing) {
        stream->graph->nodes.push_back(std::move(op));
        return;
    }
    op();
}

}  // namespace slim_emu

using namespace slim_emu;

// MARK: - Device and errors

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof(*prop));
    // The H100's launch-relevant numbers, so that host code takes the paths it takes there.
    snprintf(prop->name, sizeof(prop->name), "slim-quant CUDA emulator on the CPU (H100-like limits)");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 132;
    prop->l2CacheSize = 50 << 20;
    prop->sharedMemPerBlockOptin = optin_shared;
    prop->totalGlobalMem = (size_t)sysconf(_SC_PHYS_PAGES) * page;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version) {
    *version = 0;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = 0;
    return cudaSuccess;
}

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorUnsupportedPtxVersion: return "cudaErrorUnsupportedPtxVersion";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (emulator)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: a kernel broke a rule, see stderr)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return cudaGetErrorName(error);
    }
}

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return sticky_error != cudaSuccess ? sticky_error : e;
}

// MARK: - Memory

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    *ptr = nullptr;
    EMU_STICKY();
    if (refused_by_capture("cudaMalloc")) return fail(cudaErrorStreamCaptureUnsupported);
    // The allocation ends 16-byte aligned right before a PROT_NONE page.
    const size_t rounded = (bytes + 15) / 16 * 16;
    const size_t data_pages = (rounded + page - 1) / page;
    const size_t map_bytes = (data_pages + 1) * page;
    void *m = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    mprotect((char *)m + data_pages * page, page, PROT_NONE);
    char *begin = (char *)m + data_pages * page - rounded;
    memset(begin, 0xFF, rounded);
    Allocation a;
    a.begin = (uintptr_t)begin;
    a.bytes = bytes;
    a.map = m;
    a.map_bytes = map_bytes;
    {
        std::lock_guard<std::mutex> guard(memory_lock);
        allocations[a.begin] = a;
    }
    *ptr = begin;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (ptr == nullptr) return cudaSuccess;
    if (refused_by_capture("cudaFree")) return fail(cudaErrorStreamCaptureUnsupported);
    Allocation a;
    {
        std::lock_guard<std::mutex> guard(memory_lock);
        auto it = allocations.find((uintptr_t)ptr);
        if (it == allocations.end()) {
            note("cudaFree(%p): not the start of a live device allocation", ptr);
            return fail(cudaErrorInvalidDevicePointer);
        }
        a = it->second;
        allocations.erase(it);
    }
    munmap(a.map, a.map_bytes);  // later use of the pointer faults
    return cudaSuccess;
}

static cudaError_t check_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what) {
    const bool dst_device = find_allocation(dst, bytes) != nullptr, src_device = find_allocation(src, bytes) != nullptr;
    bool ok = false;
    switch (kind) {
    case cudaMemcpyHostToDevice: ok = dst_device && !touches_device(src, bytes); break;
    case cudaMemcpyDeviceToHost: ok = src_device && !touches_device(dst, bytes); break;
    case cudaMemcpyDeviceToDevice: ok = dst_device && src_device; break;
    case cudaMemcpyDefault: ok = (dst_device || !touches_device(dst, bytes)) && (src_device || !touches_device(src, bytes)); break;
    default: return fail(cudaErrorInvalidMemcpyDirection);
    }
    if (!ok) {
        note("%s of %zu bytes, kind %d: %p → %p does not match the device allocations (wrong direction, or out of "
             "bounds)", what, bytes, (int)kind, src, dst);
        return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    EMU_STICKY();
    if (refused_by_capture("cudaMemcpy (synchronous)")) return fail(cudaErrorStreamCaptureUnsupported);
    const cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpy");
    if (e != cudaSuccess) return e;
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    EMU_STICKY();
    const cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync");
    if (e != cudaSuccess) return e;
    if (stream != nullptr && stream->capturing) {
        if (kind != cudaMemcpyDeviceToDevice) {
            stream->invalidated = true;
            note("cudaMemcpyAsync from or to pageable host memory during a stream capture: the graph would read the "
                 "host buffer at replay time; the capture is invalidated");
            return fail(cudaErrorStreamCaptureUnsupported);
        }
        stream->graph->nodes.push_back([dst, src, bytes]() { memmove(dst, src, bytes); });
        return cudaSuccess;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    EMU_STICKY();
    if (find_allocation(dst, bytes) == nullptr) {
        note("cudaMemsetAsync of %zu bytes at %p: not inside a device allocation", bytes, dst);
        return fail(cudaErrorInvalidValue);
    }
    run_or_record(stream, [dst, value, bytes]() { memset(dst, value, bytes); });
    return cudaSuccess;
}

// MARK: - Streams and events

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    EMU_STICKY();
    *stream = new slim_emu_stream();
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    EMU_STICKY();
    if (refused_by_capture("cudaStreamSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    EMU_STICKY();
    if (refused_by_capture("cudaDeviceSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    *event = new slim_emu_event();
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    EMU_STICKY();
    if (stream != nullptr && stream->capturing) {
        stream->invalidated = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    event->time = std::chrono::steady_clock::now();
    event->recorded = true;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    (void)event;
    EMU_STICKY();
    if (refused_by_capture("cudaEventSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop) {
    EMU_STICKY();
    if (!start->recorded || !stop->recorded) return fail(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(stop->time - start->time).count();
    return cudaSuccess;
}

// MARK: - Graphs

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    EMU_STICKY();
    if (stream == nullptr || stream->capturing || mode != cudaStreamCaptureModeThreadLocal) return fail(cudaErrorInvalidValue);
    stream->capturing = true;
    stream->invalidated = false;
    stream->graph = new slim_emu_graph();
    capturing_stream = stream;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    *graph = nullptr;
    if (stream == nullptr || !stream->capturing) return fail(cudaErrorInvalidValue);
    stream->capturing = false;
    capturing_stream = nullptr;
    if (stream->invalidated) {
        delete stream->graph;
        stream->graph = nullptr;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = stream->graph;
    stream->graph = nullptr;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    (void)flags;
    EMU_STICKY();
    if (graph == nullptr) return fail(cudaErrorInvalidValue);
    *exec = new slim_emu_graph_exec{graph->nodes};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    EMU_STICKY();
    if (exec == nullptr) return fail(cudaErrorInvalidValue);
    if (stream != nullptr && stream->capturing) return fail(cudaErrorStreamCaptureUnsupported);
    for (const auto &node : exec->nodes) {
        node();
        if (sticky_error != cudaSuccess) return fail(sticky_error);
    }
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
