// The CPU emulator of the CUDA runtime subset used by libslimcuda (include/cuda_runtime.h).
//
// Execution model: one device, every stream executes in order at enqueue time (so results are
// ready when a call returns), a block's threads are ucontext fibers on the calling OS thread,
// blocks run one after another. Warp collectives and __syncthreads are rendezvous: a fiber that
// arrives waits until every thread that must take part has arrived; the last one completes the
// operation. The mma fragment layouts are taken from the PTX ISA ("Matrix Fragments for
// mma.m16n8k16 with floating point type"), written here independently of slim_cuda_layout.h.
//
// Stricter than a GPU, to catch what a GPU might let pass by luck:
// - a full-mask warp collective with a lane that has exited, or in a partial warp, is an error;
// - __syncthreads with threads that have exited is an error; a block that cannot progress
//   (lanes at different rendezvous) is reported as a deadlock;
// - device memory has a guard page right after every allocation (faults are reported as an
//   illegal address naming kernel, block and thread); fresh allocations and dynamic shared
//   memory are filled with 0xFF bytes (NaN as floats);
// - pointer arguments of kernels must be null or point into a device allocation; memcpy
//   directions are checked against the allocations; copies from host memory, allocation and
//   synchronisation inside a stream capture are refused (as CUDA's thread-local capture mode
//   refuses them).
// Environment: SLIM_CUDA_EMULATOR_SCHEDULE=forward|reverse (order in which ready fibers run; a
// kernel whose results change with it has a race).
#include "cuda_runtime.h"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
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

thread_local ThreadState *current = nullptr;

// MARK: - Errors

static cudaError_t sticky_error = cudaSuccess;          // execution errors: the context is lost
static thread_local cudaError_t last_error = cudaSuccess;

static void note(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *format, ...) {
    char line[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    fprintf(stderr, "slim-cuda-emulator: %s\n", line);
}

static cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}

#define EMU_STICKY()                                                            \
    do {                                                                        \
        if (sticky_error != cudaSuccess) return fail(sticky_error);             \
    } while (0)

// MARK: - Device memory

struct Allocation {
    uintptr_t begin = 0;
    size_t bytes = 0;
    void *map = nullptr;
    size_t map_bytes = 0;
};

static std::mutex memory_lock;
static std::map<uintptr_t, Allocation> allocations;  // by begin
static const size_t page = (size_t)sysconf(_SC_PAGESIZE);

/// The allocation holding [p, p + bytes), or null.
static const Allocation *find_allocation(const void *p, size_t bytes) {
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

static thread_local slim_emu_stream *capturing_stream = nullptr;  // thread-local capture mode

/// An API call that a capture on this thread forbids: refuses it and invalidates the capture.
static bool refused_by_capture(const char *what) {
    if (capturing_stream == nullptr) return false;
    capturing_stream->invalidated = true;
    note("%s during a stream capture (not permitted in thread-local capture mode); the capture is invalidated", what);
    return true;
}

// MARK: - Fibers

struct Fiber {
    ThreadState state;
    enum Status { ready, at_barrier, at_warp, done } status = ready;
    // Warp rendezvous payload: op 1 = shuffle, 2 = mma.
    int op = 0, src = 0, mode = 0, width = 0;
    unsigned mask = 0;
    uint64_t value = 0, result = 0;
    uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float c[4] = {0, 0, 0, 0};
};

static const size_t stack_bytes = 256 * 1024;

// A worker is a persistent execution context on its own stack that runs one CUDA thread after
// another: created once with makecontext, then switched with _setjmp/_longjmp, which (unlike
// swapcontext) make no system call. A worker abandoned mid-kernel (error, fault) is restarted.
struct Worker {
    jmp_buf resume;
    ucontext_t start;
    char *stack = nullptr;
    bool live = false;   // running its loop (else it must be started afresh)
};

struct BlockRun {
    std::vector<Fiber> fibers;
    std::vector<int> warp_arrived;
    int barrier_arrived = 0, threads = 0;
    jmp_buf scheduler;
    ucontext_t scheduler_context;  // only for starting workers
    const std::function<void()> *body = nullptr;
    const LaunchConfig *config = nullptr;
    std::vector<unsigned char> shared;
    Fiber *running = nullptr;
    std::string error;                   // set when the block broke a rule
    sigjmp_buf escape;                   // a fault in a fiber jumps back to the scheduler
    bool in_kernel = false;
};

static thread_local BlockRun *block_run = nullptr;
static std::vector<Worker *> workers;   // worker t runs thread t of every block (launches are serialised)
static std::mutex launch_lock;

static bool ensure_workers(size_t count) {
    while (workers.size() < count) {
        // A PROT_NONE page below each stack turns an overflow into a reported fault.
        void *m = mmap(nullptr, stack_bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return false;
        mprotect(m, page, PROT_NONE);
        Worker *w = new Worker();
        w->stack = (char *)m + page;
        workers.push_back(w);
    }
    return true;
}

static std::string where(const Fiber &f) {
    char text[160];
    snprintf(text, sizeof(text), "kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", block_run->config->name,
             f.state.block_idx.x, f.state.block_idx.y, f.state.block_idx.z, f.state.thread_idx.x, f.state.thread_idx.y,
             f.state.thread_idx.z);
    return text;
}

static void block_error(const std::string &message) {
    if (block_run->error.empty()) block_run->error = message;
}

static thread_local Worker *running_worker = nullptr;

/// Back to the scheduler until the scheduler resumes this worker.
static void yield_fiber(Fiber *) {
    if (_setjmp(running_worker->resume) == 0) _longjmp(block_run->scheduler, 1);
}

static thread_local Worker *starting_worker = nullptr;

static void worker_main() {
    Worker *self = starting_worker;
    self->live = true;
    for (;;) {
        Fiber *f = block_run->running;
        (*block_run->body)();
        f->status = Fiber::done;
        // Exiting while others wait for this thread breaks their rendezvous.
        if (block_run->barrier_arrived > 0) {
            block_error("a thread exited while others wait at __syncthreads (" + where(*f) + ")");
        }
        if (block_run->warp_arrived[(size_t)f->state.warp] > 0) {
            block_error("a lane exited while others of its warp wait at a full-mask warp collective (" + where(*f) + ")");
        }
        yield_fiber(f);  // resumed for the next thread this worker runs
    }
}

/// Runs fiber t on worker t until it yields or finishes.
static void run_fiber(BlockRun &run, size_t t) {
    Worker *w = workers[t];
    running_worker = w;
    if (_setjmp(run.scheduler) != 0) return;  // the fiber yielded
    if (w->live) _longjmp(w->resume, 1);
    getcontext(&w->start);
    w->start.uc_stack.ss_sp = w->stack;
    w->start.uc_stack.ss_size = stack_bytes;
    w->start.uc_link = nullptr;  // worker_main never returns
    makecontext(&w->start, worker_main, 0);
    starting_worker = w;
    swapcontext(&run.scheduler_context, &w->start);
}

static Fiber *current_fiber() { return block_run->running; }

// MARK: - Rendezvous

void syncthreads() {
    Fiber *f = current_fiber();
    BlockRun &b = *block_run;
    for (const Fiber &other : b.fibers) {
        if (other.status == Fiber::done) {
            block_error("__syncthreads after thread (" + std::to_string(other.state.thread_idx.x) + ") exited (" + where(*f) + ")");
            f->status = Fiber::at_barrier;
            yield_fiber(f);  // never resumed: the block is abandoned
        }
    }
    if (++b.barrier_arrived == b.threads) {
        b.barrier_arrived = 0;
        for (Fiber &other : b.fibers)
            if (other.status == Fiber::at_barrier) other.status = Fiber::ready;
        return;
    }
    f->status = Fiber::at_barrier;
    yield_fiber(f);
}

// D = A·B + C for m16n8k16 (A row-major 16×16, B col-major 16×8, fp16 in, fp32 accumulate), from
// the 32 lanes' fragments. groupID = lane >> 2, threadID_in_group = lane % 4.
static void complete_mma(Fiber *lanes) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const int group = lane >> 2, tig = lane & 3;
        const Fiber &l = lanes[lane];
        for (int i = 0; i < 8; i++) {  // a_i: register i/2, half i%2 (low half first)
            const uint16_t h = (uint16_t)(l.a[i / 2] >> (16 * (i % 2)));
            const int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
            const int col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = half_bits_to_float(h);
        }
        for (int i = 0; i < 4; i++) {  // b_i: register i/2
            const uint16_t h = (uint16_t)(l.b[i / 2] >> (16 * (i % 2)));
            const int row = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0);
            B[row][group] = half_bits_to_float(h);
        }
        for (int i = 0; i < 4; i++) C[group + (i >= 2 ? 8 : 0)][tig * 2 + (i & 1)] = l.c[i];
    }
    for (int lane = 0; lane < 32; lane++) {
        const int group = lane >> 2, tig = lane & 3;
        for (int i = 0; i < 4; i++) {
            const int row = group + (i >= 2 ? 8 : 0), col = tig * 2 + (i & 1);
            float d = C[row][col];
            for (int k = 0; k < 16; k++) d += A[row][k] * B[k][col];  // fp16 products are exact in fp32
            lanes[lane].c[i] = d;
        }
    }
}

/// Arrival at a warp collective; the last lane completes it for all 32.
static void warp_rendezvous(Fiber *f) {
    BlockRun &b = *block_run;
    const int warp = f->state.warp;
    Fiber *lanes = &b.fibers[(size_t)warp * 32];
    if ((size_t)(warp + 1) * 32 > b.fibers.size()) {
        block_error("full-mask warp collective in a partial warp of " + std::to_string(b.fibers.size() % 32) +
                    " threads (" + where(*f) + ")");
        f->status = Fiber::at_warp;
        yield_fiber(f);
    }
    if (f->mask != 0xFFFFFFFFu || f->width != 32) {
        block_error("warp collective with mask " + std::to_string(f->mask) + " / width " + std::to_string(f->width) +
                    ": only full warps are emulated (" + where(*f) + ")");
    }
    for (int lane = 0; lane < 32; lane++) {
        if (lanes[lane].status == Fiber::done) {
            block_error("full-mask warp collective after lane " + std::to_string(lane) + " exited (" + where(*f) + ")");
            f->status = Fiber::at_warp;
            yield_fiber(f);
        }
    }
    if (++b.warp_arrived[(size_t)warp] < 32) {
        f->status = Fiber::at_warp;
        yield_fiber(f);
        return;
    }
    b.warp_arrived[(size_t)warp] = 0;
    for (int lane = 0; lane < 32; lane++) {
        if (lanes[lane].op != f->op) {
            block_error("lanes of one warp meet at different collectives (shuffle vs mma) (" + where(*f) + ")");
            f->status = Fiber::at_warp;
            yield_fiber(f);
        }
    }
    if (f->op == 2) {
        complete_mma(lanes);
    } else {
        for (int lane = 0; lane < 32; lane++) {
            const int source = lanes[lane].mode == 1 ? (lane ^ lanes[lane].src) : lanes[lane].src;
            lanes[lane].result = (source >= 0 && source < 32) ? lanes[source].value : lanes[lane].value;
        }
    }
    for (int lane = 0; lane < 32; lane++) {
        lanes[lane].op = 0;
        if (lanes[lane].status == Fiber::at_warp) lanes[lane].status = Fiber::ready;
    }
}

uint64_t shuffle(unsigned mask, uint64_t value, int src_lane, int width, int mode) {
    Fiber *f = current_fiber();
    f->op = 1;
    f->mask = mask;
    f->width = width;
    f->value = value;
    f->src = src_lane;
    f->mode = mode;
    warp_rendezvous(f);
    return f->result;
}

void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    Fiber *f = current_fiber();
    f->op = 2;
    f->mask = 0xFFFFFFFFu;
    f->width = 32;
    for (int i = 0; i < 4; i++) f->a[i] = a[i];
    f->b[0] = b0;
    f->b[1] = b1;
    for (int i = 0; i < 4; i++) f->c[i] = c[i];
    warp_rendezvous(f);
    for (int i = 0; i < 4; i++) c[i] = f->c[i];
}

void *dynamic_shared() { return block_run->shared.data(); }

// MARK: - Faults

static struct sigaction previous_segv;
static bool handler_installed = false;

static void on_fault(int signal, siginfo_t *info, void *context) {
    BlockRun *b = block_run;
    if (b != nullptr && b->in_kernel) {
        char text[256];
        snprintf(text, sizeof(text), "illegal address %p (%s)", info->si_addr,
                 b->running != nullptr ? where(*b->running).c_str() : b->config->name);
        b->error = text;
        b->in_kernel = false;
        siglongjmp(b->escape, 1);
    }
    // Not a kernel's fault: hand it to whoever handled it before.
    sigaction(signal, &previous_segv, nullptr);
    (void)context;
}

static void install_fault_handler() {
    if (handler_installed) return;
    static char alternate[64 * 1024];
    stack_t ss = {};
    ss.ss_sp = alternate;
    ss.ss_size = sizeof(alternate);
    sigaltstack(&ss, nullptr);
    struct sigaction sa = {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    handler_installed = true;
}

// MARK: - Kernel execution

static bool reverse_schedule() {
    static const bool reverse = [] {
        const char *v = getenv("SLIM_CUDA_EMULATOR_SCHEDULE");
        return v != nullptr && std::string(v) == "reverse";
    }();
    return reverse;
}

/// Runs every block of a launch; returns cudaSuccess or the (sticky) execution error.
static cudaError_t execute(const LaunchConfig &config, const std::function<void()> &body) {
    std::lock_guard<std::mutex> guard(launch_lock);
    install_fault_handler();
    const int threads = (int)(config.block.x * config.block.y * config.block.z);
    BlockRun run;
    run.fibers.resize((size_t)threads);
    run.warp_arrived.assign((size_t)(threads + 31) / 32, 0);
    run.threads = threads;
    run.body = &body;
    run.config = &config;
    if (!ensure_workers((size_t)threads)) {
        note("cannot map fiber stacks for %d threads", threads);
        return cudaErrorLaunchOutOfResources;
    }
    block_run = &run;
    const bool reverse = reverse_schedule();
    for (unsigned bz = 0; bz < config.grid.z; bz++)
        for (unsigned by = 0; by < config.grid.y; by++)
            for (unsigned bx = 0; bx < config.grid.x; bx++) {
                run.shared.assign(config.shared, 0xFF);
                run.barrier_arrived = 0;
                std::fill(run.warp_arrived.begin(), run.warp_arrived.end(), 0);
                for (int t = 0; t < threads; t++) {
                    Fiber &f = run.fibers[(size_t)t];
                    f.status = Fiber::ready;
                    f.op = 0;
                    f.state.block_idx = uint3{bx, by, bz};
                    f.state.thread_idx = uint3{(unsigned)t % config.block.x, (unsigned)t / config.block.x % config.block.y,
                                               (unsigned)t / (config.block.x * config.block.y)};
                    f.state.block_dim = config.block;
                    f.state.grid_dim = config.grid;
                    f.state.lane = t % 32;
                    f.state.warp = t / 32;
                }
                if (sigsetjmp(run.escape, 1) == 0) {
                    run.in_kernel = true;
                    for (;;) {
                        bool progressed = false, all_done = true;
                        for (int i = 0; i < threads && run.error.empty(); i++) {
                            const size_t t = (size_t)(reverse ? threads - 1 - i : i);
                            Fiber &f = run.fibers[t];
                            if (f.status != Fiber::done) all_done = false;
                            if (f.status != Fiber::ready) continue;
                            run.running = &f;
                            current = &f.state;
                            run_fiber(run, t);
                            progressed = true;
                        }
                        if (!run.error.empty() || all_done) break;
                        if (!progressed) {
                            int barrier = 0, warp = 0;
                            for (const Fiber &f : run.fibers) {
                                barrier += f.status == Fiber::at_barrier;
                                warp += f.status == Fiber::at_warp;
                            }
                            run.error = "deadlock in kernel " + std::string(config.name) + ": " +
                                        std::to_string(barrier) + " threads at __syncthreads, " + std::to_string(warp) +
                                        " lanes at warp collectives, none can proceed";
                            break;
                        }
                    }
                    run.in_kernel = false;
                }
                run.running = nullptr;
                current = nullptr;
                if (!run.error.empty()) {
                    // Workers stopped mid-thread cannot be resumed: start them afresh next time.
                    for (int t = 0; t < threads; t++) workers[(size_t)t]->live = false;
                    note("%s", run.error.c_str());
                    block_run = nullptr;
                    return run.error.rfind("illegal address", 0) == 0 ? cudaErrorIllegalAddress : cudaErrorLaunchFailure;
                }
            }
    block_run = nullptr;
    return cudaSuccess;
}

static std::mutex attribute_lock;
static std::map<const void *, int> dynamic_shared_limit;
static const size_t default_shared = 48 * 1024, optin_shared = 227 * 1024;

cudaError_t set_function_attribute(const void *function, cudaFuncAttribute attribute, int value) {
    EMU_STICKY();
    if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > optin_shared) {
        return fail(cudaErrorInvalidValue);
    }
    std::lock_guard<std::mutex> guard(attribute_lock);
    dynamic_shared_limit[function] = value;
    return cudaSuccess;
}

static void run_or_record(cudaStream_t stream, std::function<void()> op) {
    if (stream != nullptr && stream->capturing) {
        stream->graph->nodes.push_back(std::move(op));
        return;
    }
    op();
}

void launch(const LaunchConfig &config, const void *const *pointers, int pointer_count, std::function<void()> body) {
    if (sticky_error != cudaSuccess) {
        fail(sticky_error);
        return;
    }
    const uint64_t threads = (uint64_t)config.block.x * config.block.y * config.block.z;
    if (threads == 0 || threads > 1024 || config.block.z > 64 || config.grid.x == 0 || config.grid.y == 0 ||
        config.grid.z == 0 || config.grid.x > 0x7FFFFFFFu || config.grid.y > 65535 || config.grid.z > 65535) {
        note("launch of %s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)", config.name, config.grid.x,
             config.grid.y, config.grid.z, config.block.x, config.block.y, config.block.z);
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    size_t limit = default_shared;
    {
        std::lock_guard<std::mutex> guard(attribute_lock);
        auto it = dynamic_shared_limit.find(config.function);
        if (it != dynamic_shared_limit.end()) limit = std::max(limit, (size_t)it->second);
    }
    if (config.shared > limit) {
        note("launch of %s: %zu bytes of dynamic shared memory exceed the %zu the kernel may use "
             "(cudaFuncSetAttribute(MaxDynamicSharedMemorySize) opts in up to %zu)",
             config.name, config.shared, limit, optin_shared);
        fail(cudaErrorInvalidValue);
        return;
    }
    for (int i = 0; i < pointer_count; i++) {
        if (pointers[i] != nullptr && find_allocation(pointers[i], 0) == nullptr) {
            note("launch of %s: pointer argument %p is not device memory", config.name, pointers[i]);
            sticky_error = cudaErrorIllegalAddress;
            fail(sticky_error);
            return;
        }
    }
    run_or_record(config.stream, [config, body]() {
        if (sticky_error != cudaSuccess) return;
        const cudaError_t e = execute(config, body);
        if (e != cudaSuccess) sticky_error = e;
    });
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
