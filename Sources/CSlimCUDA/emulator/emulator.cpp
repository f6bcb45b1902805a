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
//   memory are filled with 0xFF bytes (NaN as floats); __ldg/__ldcs at an address not aligned
//   to the loaded type is a misaligned-address fault, as on the GPU (x86 would not mind);
// - pointer arguments of kernels must be null or point into a device allocation; memcpy
//   directions are checked against the allocations; copies from host memory, allocation and
//   synchronisation inside a stream capture are refused (as CUDA's thread-local capture mode
//   refuses them).
// Environment: SLIM_CUDA_EMULATOR_SCHEDULE=forward|reverse (order in which ready fibers run; a
// kernel whose results change with it has a race).
#include "internal.h"

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace slim_emu {

thread_local ThreadState *current = nullptr;

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

/// A rule broken by thread `f`: records it and leaves for good (the scheduler stops at the first
/// error, so the fiber is never resumed; its worker is restarted for the next launch).
[[noreturn]] static void abandon(Fiber *f, const std::string &message) {
    block_error(message + " (" + where(*f) + ")");
    yield_fiber(f);
    abort();  // unreachable
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
            abandon(f, "__syncthreads after thread (" + std::to_string(other.state.thread_idx.x) + ") exited");
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
        abandon(f, "full-mask warp collective in a partial warp of " + std::to_string(b.fibers.size() % 32) + " threads");
    }
    if (f->mask != 0xFFFFFFFFu || f->width != 32) {
        abandon(f, "warp collective with mask " + std::to_string(f->mask) + " / width " + std::to_string(f->width) +
                       ": only full warps are emulated");
    }
    for (int lane = 0; lane < 32; lane++) {
        if (lanes[lane].status == Fiber::done) abandon(f, "full-mask warp collective after lane " + std::to_string(lane) + " exited");
    }
    if (++b.warp_arrived[(size_t)warp] < 32) {
        f->status = Fiber::at_warp;
        yield_fiber(f);
        return;
    }
    b.warp_arrived[(size_t)warp] = 0;
    for (int lane = 0; lane < 32; lane++) {
        if (lanes[lane].op != f->op) abandon(f, "lanes of one warp meet at different collectives (shuffle vs mma)");
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

void misaligned_load(const void *p, size_t alignment) {
    Fiber *f = current_fiber();
    char text[96];
    snprintf(text, sizeof(text), "misaligned address %p for a %zu-byte aligned load", p, alignment);
    abandon(f, text);
}

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

// The handler is process-wide; the alternate stack it runs on (so that a fiber's stack overflow
// can be reported) is per thread, set up by each thread that runs kernels.
static void install_fault_handler() {
    static thread_local bool alternate_stack = false;
    if (!alternate_stack) {
        static thread_local char alternate[64 * 1024];
        stack_t ss = {};
        ss.ss_sp = alternate;
        ss.ss_size = sizeof(alternate);
        sigaltstack(&ss, nullptr);
        alternate_stack = true;
    }
    if (handler_installed) return;
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
                    if (run.error.rfind("illegal address", 0) == 0) return cudaErrorIllegalAddress;
                    if (run.error.rfind("misaligned address", 0) == 0) return cudaErrorMisalignedAddress;
                    return cudaErrorLaunchFailure;
                }
            }
    block_run = nullptr;
    return cudaSuccess;
}

static std::mutex attribute_lock;
static std::map<const void *, int> dynamic_shared_limit;

cudaError_t set_function_attribute(const void *function, cudaFuncAttribute attribute, int value) {
    EMU_STICKY();
    if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > optin_shared) {
        return fail(cudaErrorInvalidValue);
    }
    std::lock_guard<std::mutex> guard(attribute_lock);
    dynamic_shared_limit[function] = value;
    return cudaSuccess;
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
