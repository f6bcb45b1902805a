// Internal declarations shared by the .cu files of libslimcuda.so: error reporting, the context,
// linears, scratch buffers and the kernel launchers. Nothing here is part of the C API.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>

#include "../include/slim_cuda.h"
#include "../include/slim_cuda_layout.h"

#define SLIM_EXPORT extern "C" __attribute__((visibility("default")))

// Kernel launches and dynamic shared memory go through these two macros so that the same sources
// also build against the CPU emulator (../emulator, SLIM_CUDA_EMULATOR), which defines its own.
#ifndef SLIM_CUDA_EMULATOR
// SLIM_LAUNCH(grid, block, shared bytes, stream, kernel)(arguments…)
#define SLIM_LAUNCH(grid, block, shared, stream, ...) __VA_ARGS__<<<grid, block, shared, stream>>>
#define SLIM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace slim {

// MARK: - Element types

// bfloat16 as stored (the upper half of a binary32); widened by a shift, so no cuda_bf16.h.
struct bf16_t {
    uint16_t bits;
};

__host__ __device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(bf16_t v) { return __uint_as_float((uint32_t)v.bits << 16); }

// Stores v as the element type (fp16, bf16: rounded to nearest even; what the KV cache holds).
__device__ __forceinline__ void store_float(float *p, float v) { *p = v; }
__device__ __forceinline__ void store_float(__half *p, float v) { *p = __float2half_rn(v); }
// As the CPU's Kernels.convertF32ToBF16, bit for bit: NaN stays NaN (quiet bit set, so a payload
// only in the dropped half cannot become infinity); finite values may round to ±infinity.
__device__ __forceinline__ void store_float(bf16_t *p, float v) {
    const uint32_t bits = __float_as_uint(v);
    p->bits = (bits & 0x7FFFFFFFu) > 0x7F800000u ? (uint16_t)((bits >> 16) | 0x0040u)
                                                 : (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// Element types of the KV cache: SLIM_CUDA_F32, SLIM_CUDA_F16 or SLIM_CUDA_BF16.
inline bool kv_dtype_supported(int32_t dtype) {
    return dtype == SLIM_CUDA_F32 || dtype == SLIM_CUDA_F16 || dtype == SLIM_CUDA_BF16;
}

// Calls body(T{}) with T the C++ type of a supported KV-cache dtype, so a launcher instantiates
// its kernel template once: `with_kv_type(dtype, [&](auto t) { kernel<decltype(t)>… })`.
template <typename Body>
inline void with_kv_type(int32_t dtype, Body &&body) {
    if (dtype == SLIM_CUDA_F16) {
        body(__half{});
    } else if (dtype == SLIM_CUDA_BF16) {
        body(bf16_t{});
    } else {
        body(float{});
    }
}

// Bytes per element of a SLIM_CUDA_* dtype, 0 for an unknown one.
inline size_t dtype_bytes(int32_t dtype) {
    return dtype == SLIM_CUDA_F32 ? 4 : (dtype == SLIM_CUDA_F16 || dtype == SLIM_CUDA_BF16) ? 2 : 0;
}

// MARK: - Errors

// Stores a one-line message for last_error() (thread-local). printf-style.
void set_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
// "what: <CUDA error name>: <description> (file:line)", with a hint for driver/device problems.
void set_cuda_error(cudaError_t error, const char *what, const char *file, int line);

}  // namespace slim

// Checks a CUDA runtime call; on failure records the error and returns 1 from the caller.
#define SLIM_CHECK(call)                                                        \
    do {                                                                        \
        cudaError_t slim_e_ = (call);                                           \
        if (slim_e_ != cudaSuccess) {                                           \
            slim::set_cuda_error(slim_e_, #call, __FILE__, __LINE__);           \
            return 1;                                                           \
        }                                                                       \
    } while (0)

// Propagates a failure of an internal function (whose message is already recorded).
#define SLIM_TRY(call)                                                          \
    do {                                                                        \
        if ((call) != 0) return 1;                                              \
    } while (0)

// After a kernel launch: launch errors always; with SLIM_CUDA_SYNC=1 also execution errors,
// attributed to this kernel (synchronous debugging; disabled while a graph is captured).
#define SLIM_KERNEL_CHECK(ctx, name)                                            \
    do {                                                                        \
        cudaError_t slim_e_ = cudaGetLastError();                               \
        if (slim_e_ != cudaSuccess) {                                           \
            slim::set_cuda_error(slim_e_, "launch of kernel " name, __FILE__, __LINE__); \
            return 1;                                                           \
        }                                                                       \
        if ((ctx)->debug_sync && !(ctx)->capturing) {                           \
            slim_e_ = cudaStreamSynchronize((ctx)->stream);                     \
            if (slim_e_ != cudaSuccess) {                                       \
                slim::set_cuda_error(slim_e_, "kernel " name, __FILE__, __LINE__); \
                return 1;                                                       \
            }                                                                   \
        }                                                                       \
    } while (0)

// Validates an argument of an API call; on failure records "function: message" and returns 1.
#define SLIM_REQUIRE(cond, ...)                                                 \
    do {                                                                        \
        if (!(cond)) {                                                          \
            slim::set_error(__VA_ARGS__);                                       \
            return 1;                                                           \
        }                                                                       \
    } while (0)

namespace slim {

// MARK: - Device buffers

// A grow-only device allocation (scratch). Growing is refused while a graph is captured.
struct Scratch {
    void *ptr = nullptr;
    size_t bytes = 0;
};

// Device buffers for prepared activations. The context has one set (linear_apply) and every
// model its own, so a captured decode graph never sees them reallocated by another caller.
struct XScratch {
    Scratch xb, sums, scales;
};

// The activations of one input prepared for the packed kernel (slim_cuda_layout.h).
struct XPrep {
    const uint2 *xb = nullptr;      // [ntiles][KT][32] half pairs (hi/lo)
    const float *sums = nullptr;    // [ntiles·4][K] Σx̃ per group
    const float *scales = nullptr;  // [ntiles·4] 2^e per token
    int32_t tokens = 0, columns = 0, group_size = 0;
};

}  // namespace slim

struct slim_cuda_context {
    int32_t device = 0;
    cudaStream_t stream = nullptr;
    int32_t multiprocessors = 0;
    size_t shared_memory_optin = 0;   // bytes of dynamic shared memory a block may opt in to
    bool debug_sync = false;          // SLIM_CUDA_SYNC=1
    bool capturing = false;           // inside a CUDA graph capture
    int32_t warps_override = 0;       // SLIM_CUDA_WARPS (tuning experiments), 0 = automatic
    int32_t depth_override = 0;       // SLIM_CUDA_DEPTH: decode slabs in flight per warp (2/4/8), 0 = automatic
    int32_t attn_splits_override = 0; // SLIM_CUDA_ATTN_SPLITS: key splits per attention launch (1…128), 0 = automatic
    // Scratch for linear_apply (x preparation) and the op wrappers (a device int, attention partials).
    slim::XScratch xprep;
    slim::Scratch ints, attn_partials;
};

struct slim_cuda_linear {
    bool packed = false;
    int32_t rows = 0, cols = 0;
    float *bias = nullptr;            // device [rows] or null
    // Packed (GPU layout).
    int32_t group_size = 0, groups = 0, slabs = 0, row_tiles = 0;
    int32_t max_bits = 0;             // the widest group (≤ 4 selects the kernels with 4-word buffers)
    int64_t tile_words = 0;
    uint32_t *words = nullptr;
    uint2 *params = nullptr;
    int2 *group_meta = nullptr;       // per group: {word offset within a tile, bits}
    int64_t word_count = 0, param_count = 0;
    // Dense.
    int32_t dtype = SLIM_CUDA_F32;
    void *weights = nullptr;
    bool owns_weights = true;         // false for a tied lm_head viewing the embedding
};

namespace slim {

// MARK: - Internal API (host side of the kernels)

// Grows `s` to at least `bytes` (no-op when large enough; error while capturing).
int reserve(slim_cuda_context *ctx, Scratch &s, size_t bytes, const char *what);

// Frees a scratch buffer.
void release(Scratch &s);
// Reserves x-preparation scratch for `tokens` × `columns` in groups of `group_size`.
int reserve_xprep(slim_cuda_context *ctx, XScratch &scratch, int32_t tokens, int32_t columns, int32_t group_size);
// Prepares x [tokens × columns] for the packed kernel into `scratch`.
int prepare_x(slim_cuda_context *ctx, XScratch &scratch, const float *d_x, int32_t tokens, int32_t columns,
              int32_t group_size, XPrep *out);
// y (+)= x·Wᵀ (+ bias) for a packed linear, from prepared activations.
int packed_gemm(slim_cuda_context *ctx, const slim_cuda_linear *lin, const XPrep &x, float *d_y, bool accumulate);
// y (+)= x·Wᵀ (+ bias) for a dense linear.
int dense_gemm(slim_cuda_context *ctx, const slim_cuda_linear *lin, const float *d_x, int32_t tokens, float *d_y,
               bool accumulate);
// A deep copy of `src` in fresh device memory (timing rotates copies so that weights come from
// HBM, not from an L2 that a few-MB matrix would otherwise stay in).
int clone_linear(slim_cuda_context *ctx, const slim_cuda_linear *src, slim_cuda_linear **out);
// Either kind; `prep` is used for packed linears when non-null (else x is prepared in the
// context's scratch).
int linear_forward(slim_cuda_context *ctx, const slim_cuda_linear *lin, const float *d_x, int32_t tokens,
                   const XPrep *prep, float *d_y, bool accumulate);

int launch_rmsnorm(slim_cuda_context *ctx, const float *d_x, const float *d_w, float *d_out, int32_t rows, int32_t n,
                   float eps);
// Rotates `heads` heads of `rows` rows (row r at position *d_start + r) of d_x, writing to d_dst
// of element type dst_dtype (F32, F16 or BF16) (row r at d_dst + (at_position ? *d_start + r : r)·
// dst_stride; may equal d_x when F32).
int launch_rope(slim_cuda_context *ctx, const float *d_x, int32_t rows, int32_t row_stride, int32_t heads,
                int32_t head_dim, const float *d_cos, const float *d_sin, const int32_t *d_start, void *d_dst,
                int32_t dst_dtype, int64_t dst_stride, bool at_position);
// Copies rows [rows × width] to d_dst (F32, F16 or BF16 elements) at rows *d_start + r (the value cache).
int launch_copy_rows(slim_cuda_context *ctx, const float *d_src, int32_t rows, int32_t width, const int32_t *d_start,
                     void *d_dst, int32_t dst_dtype);
int launch_silu_mul(slim_cuda_context *ctx, const float *d_gate, const float *d_up, float *d_out, int64_t count);
// Attention of `rows` query rows at positions *d_start + r over the cache. `max_keys` bounds the
// keys any query sees (fixed for a captured graph: the capacity); it and the grid size choose the
// key splits, whose partial results go to `partials` (grown here, so sized beforehand for capture).
// The cache holds kv_dtype elements (F32, F16 or BF16); scores and sums are fp32 either way.
int launch_attention(slim_cuda_context *ctx, const float *d_q, const void *d_keys, const void *d_values,
                     int32_t kv_dtype, float *d_out, int32_t rows, const int32_t *d_start, int32_t heads,
                     int32_t kv_heads, int32_t head_dim, int32_t max_keys, Scratch &partials);
// The key splits launch_attention uses, and the partial-result bytes they need (0 when 1 split).
int32_t attention_splits(const slim_cuda_context *ctx, int32_t rows, int32_t heads, int32_t kv_heads, int32_t max_keys);
size_t attention_partial_bytes(const slim_cuda_context *ctx, int32_t rows, int32_t heads, int32_t kv_heads,
                               int32_t head_dim, int32_t max_keys);
int launch_nll(slim_cuda_context *ctx, const float *d_logits, const int32_t *d_targets, int32_t rows, int32_t vocab,
               double *d_out);
int launch_embed(slim_cuda_context *ctx, const void *d_table, int32_t dtype, const int32_t *d_tokens, int32_t rows,
                 int32_t width, float *d_out);
int launch_fill(slim_cuda_context *ctx, void *d_dst, uint32_t pattern, size_t count);

// Times `body` (which enqueues work on the stream) with CUDA events: milliseconds.
template <typename Body>
inline int time_stream(slim_cuda_context *ctx, Body body, float *ms) {
    cudaEvent_t start = nullptr, stop = nullptr;
    cudaError_t e = cudaEventCreate(&start);
    if (e == cudaSuccess) e = cudaEventCreate(&stop);
    if (e == cudaSuccess) e = cudaEventRecord(start, ctx->stream);
    int status = e == cudaSuccess ? body() : 0;
    if (status == 0 && e == cudaSuccess) e = cudaEventRecord(stop, ctx->stream);
    if (status == 0 && e == cudaSuccess) e = cudaEventSynchronize(stop);
    if (status == 0 && e == cudaSuccess) e = cudaEventElapsedTime(ms, start, stop);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (status != 0) return 1;
    if (e != cudaSuccess) {
        set_cuda_error(e, "event timing", __FILE__, __LINE__);
        return 1;
    }
    return 0;
}

// Shared-memory bytes the attention kernel needs for `head_dim` (0 when unsupported).
size_t attention_shared_bytes(int32_t head_dim);
// One-time kernel attributes (opt-in shared memory); called by context_create.
int configure_attention(slim_cuda_context *ctx);

// MARK: - Device helpers

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_double(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}

// Block-wide sum / max for blockDim.x a multiple of 32 (≤ 1024); every thread gets the result.
// `scratch` holds 32 values; the block must call it uniformly.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ double block_sum_double(double v, double *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum_double(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0;
    return warp_sum_double(v);
}

__device__ __forceinline__ float block_max(float v, float *scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

}  // namespace slim
