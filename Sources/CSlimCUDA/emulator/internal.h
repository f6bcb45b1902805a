// Declarations shared by the emulator's two halves: emulator.cpp (threads, rendezvous, kernel
// execution) and runtime_api.cpp (the cuda* functions: memory, streams, events, graphs).
#pragma once

#include "cuda_runtime.h"

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

struct slim_emu_graph {
    std::vector<std::function<void()>> nodes;
};
struct slim_emu_graph_exec {
    std::vector<std::function<void()>> nodes;
};
struct slim_emu_stream {
    bool capturing = false, invalidated = false;
    slim_emu_graph *graph = nullptr;
};
struct slim_emu_event {
    std::chrono::steady_clock::time_point time;
    bool recorded = false;
};

namespace slim_emu {

/// An execution error (fault, broken rule): the context is lost, every later call returns it.
extern cudaError_t sticky_error;
/// What cudaGetLastError returns next (and resets).
extern thread_local cudaError_t last_error;
/// The stream this thread is capturing (thread-local capture mode), or null.
extern thread_local slim_emu_stream *capturing_stream;

constexpr size_t default_shared = 48 * 1024, optin_shared = 227 * 1024;
extern const size_t page;

/// One line on stderr, prefixed "slim-cuda-emulator: ".
void note(const char *format, ...) __attribute__((format(printf, 1, 2)));
/// Records `e` for cudaGetLastError and returns it.
cudaError_t fail(cudaError_t e);

struct Allocation {
    uintptr_t begin = 0;
    size_t bytes = 0;
    void *map = nullptr;
    size_t map_bytes = 0;
};
/// The device allocation holding [p, p + bytes), or null.
const Allocation *find_allocation(const void *p, size_t bytes);
/// An API call that a capture on this thread forbids: refuses it and invalidates the capture.
bool refused_by_capture(const char *what);
/// Runs `op` now, or appends it to the graph `stream` is capturing.
void run_or_record(cudaStream_t stream, std::function<void()> op);

}  // namespace slim_emu

#define EMU_STICKY()                                                            \
    do {                                                                        \
        if (::slim_emu::sticky_error != cudaSuccess) return ::slim_emu::fail(::slim_emu::sticky_error); \
    } while (0)
