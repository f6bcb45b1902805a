/*
 * slim_cuda.h — the C API of libslimcuda.so, slim-quant's CUDA backend.
 *
 * The library is built by scripts/build-cuda.sh (nvcc, sm_80 + sm_90 SASS + PTX) from the .cu
 * files in Sources/CSlimCUDA/cuda and loaded at run time with dlopen (slim_cuda_api_load), so
 * slim-quant builds and runs without CUDA; only `--device cuda` needs the library and a GPU.
 *
 * Conventions:
 * - Every function that can fail returns 0 on success and non-zero on failure; the failure's
 *   one-line message (naming the CUDA call, its error and the source line) is then returned by
 *   last_error() on the same thread.
 * - Pointers named d_* are device memory (from device_malloc); others are host memory.
 * - Matrices are row-major. A linear maps x [tokens × cols] to y [tokens × rows] (y = x·Wᵀ).
 * - All work runs on the context's stream; calls that return host data synchronise it.
 * - A context, and everything created from it, is used by one thread at a time.
 */
#ifndef SLIM_CUDA_H
#define SLIM_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on every incompatible change of this header; slim-quant refuses another version. */
#define SLIM_CUDA_ABI_VERSION 6

typedef struct slim_cuda_context slim_cuda_context;
typedef struct slim_cuda_linear slim_cuda_linear;
typedef struct slim_cuda_model slim_cuda_model;

/* Element types of dense weights and embeddings (BF16 since ABI 2), and of the KV cache (F32 or
 * F16 since ABI 5, BF16 since ABI 6). */
enum { SLIM_CUDA_F32 = 0, SLIM_CUDA_F16 = 1, SLIM_CUDA_BF16 = 2 };

/* Which logits model_forward returns. */
enum { SLIM_CUDA_LOGITS_NONE = 0, SLIM_CUDA_LOGITS_LAST = 1, SLIM_CUDA_LOGITS_ALL = 2 };

/* Linear slots of a decoder layer (LinearKind order); LM_HEAD with layer -1. */
enum {
    SLIM_CUDA_Q = 0, SLIM_CUDA_K = 1, SLIM_CUDA_V = 2, SLIM_CUDA_O = 3,
    SLIM_CUDA_GATE = 4, SLIM_CUDA_UP = 5, SLIM_CUDA_DOWN = 6, SLIM_CUDA_LM_HEAD = 7
};

typedef struct {
    char name[256];
    int32_t major, minor;          /* compute capability */
    int32_t multiprocessors;
    int64_t total_memory;          /* bytes */
    int64_t l2_cache_bytes;        /* since ABI 3 */
    int32_t driver_version;        /* e.g. 13000 for CUDA 13.0 */
    int32_t runtime_version;       /* the runtime linked into the library */
} slim_cuda_device_properties;

/* A packed linear in the GPU layout (slim_cuda_layout.h), as slim_layout_pack produced it. */
typedef struct {
    int32_t rows, columns, group_size;
    const uint8_t *bits;           /* [K] bits of each group, 1…8 */
    const uint32_t *words;         /* slim_layout_word_count words */
    int64_t word_count;
    const uint32_t *params;        /* slim_layout_param_count words */
    int64_t param_count;
    const float *bias;             /* [rows] or NULL */
} slim_cuda_packed_desc;

typedef struct {
    int32_t hidden, intermediate, layers, heads, kv_heads, head_dim, vocab;
    int32_t capacity;              /* KV-cache positions (and rotary table rows) */
    int32_t max_tokens;            /* rows per forward block (prefill) */
    int32_t group_size;            /* of the packed linears (0 when every linear is dense) */
    float rms_eps;
    int32_t kv_dtype;              /* KV-cache elements: SLIM_CUDA_F32 (exact), F16 (ABI 5) or BF16 (ABI 6) */
} slim_cuda_model_config;

/*
 * The exported functions, as an X-macro: X(return type, name, parameter list). The library
 * exports slim_cuda_<name>; slim_cuda_api holds one pointer per entry.
 */
#define SLIM_CUDA_FUNCTIONS(X) \
    X(int, abi_version, (void)) \
    X(const char *, last_error, (void)) \
    /* Context and memory. */ \
    X(int, context_create, (int32_t device, slim_cuda_context **out)) \
    X(void, context_destroy, (slim_cuda_context *ctx)) \
    X(int, device_info, (slim_cuda_context *ctx, slim_cuda_device_properties *out)) \
    X(int, device_malloc, (slim_cuda_context *ctx, size_t bytes, void **out)) \
    X(void, device_free, (slim_cuda_context *ctx, void *d_ptr)) \
    X(int, upload, (slim_cuda_context *ctx, void *d_dst, const void *src, size_t bytes)) \
    X(int, download, (slim_cuda_context *ctx, void *dst, const void *d_src, size_t bytes)) \
    X(int, fill_u32, (slim_cuda_context *ctx, void *d_dst, uint32_t pattern, size_t count)) \
    X(int, synchronize, (slim_cuda_context *ctx)) \
    /* Linears: packed (GPU layout) or dense fp16/fp32; apply = y (+)= x·Wᵀ (+ bias). */ \
    X(int, linear_create_packed, (slim_cuda_context *ctx, const slim_cuda_packed_desc *desc, slim_cuda_linear **out)) \
    X(int, linear_create_dense, (slim_cuda_context *ctx, int32_t rows, int32_t cols, int32_t dtype, \
                                 const void *weights, const float *bias, slim_cuda_linear **out)) \
    X(void, linear_destroy, (slim_cuda_linear *lin)) \
    X(int, linear_apply, (slim_cuda_context *ctx, slim_cuda_linear *lin, const float *d_x, int32_t tokens, \
                          float *d_y, int32_t accumulate)) \
    X(int64_t, linear_weight_bytes, (const slim_cuda_linear *lin)) \
    /* Mean seconds per application: as linear_apply runs it (stream launches, activation \
     * preparation included) and of the GEMV/GEMM kernel alone (a CUDA graph of `iterations` \
     * launches on prepared activations: no launch gaps). Launches cycle through *copies device \
     * copies of the weights, as many as hold min_footprint bytes (ABI 3; 2 × the L2 size gives \
     * cold-cache timings; 0 times one copy, hot in L2 when it fits). */ \
    X(int, linear_time, (slim_cuda_context *ctx, slim_cuda_linear *lin, int32_t tokens, int32_t iterations, \
                         int64_t min_footprint, double *seconds_per_call, double *seconds_per_kernel, \
                         int32_t *copies)) \
    X(int, copy_bandwidth, (slim_cuda_context *ctx, size_t bytes, int32_t iterations, double *bytes_per_second)) \
    /* Decoder kernels on device buffers (the model runs the same kernels). */ \
    X(int, rmsnorm, (slim_cuda_context *ctx, const float *d_x, const float *d_weight, float *d_out, \
                     int32_t rows, int32_t n, float eps)) \
    X(int, rope, (slim_cuda_context *ctx, float *d_x, int32_t rows, int32_t row_stride, int32_t heads, \
                  int32_t head_dim, const float *d_cos, const float *d_sin, int32_t start)) \
    X(int, silu_mul, (slim_cuda_context *ctx, const float *d_gate, const float *d_up, float *d_out, int64_t count)) \
    /* Rounds rows [rows × width] of fp32 into a KV cache of kv_dtype elements at rows start … start + \
     * rows − 1 (what the model stores after the rotary embedding; ABI 6). */ \
    X(int, store_kv, (slim_cuda_context *ctx, const float *d_src, int32_t rows, int32_t width, int32_t start, \
                      void *d_dst, int32_t kv_dtype)) \
    /* Keys/values are kv_dtype elements (F32, F16 since ABI 5, BF16 since ABI 6); scores and sums are fp32. */ \
    X(int, attention, (slim_cuda_context *ctx, const float *d_q, const void *d_keys, const void *d_values, \
                       int32_t kv_dtype, float *d_out, int32_t rows, int32_t start, int32_t heads, int32_t kv_heads, \
                       int32_t head_dim)) \
    X(int, nll, (slim_cuda_context *ctx, const float *d_logits, const int32_t *d_targets, int32_t rows, \
                 int32_t vocab, double *d_out)) \
    /* Mean seconds per attention launch (key splits and their combination included), from CUDA \
     * events around `iterations` back-to-back launches that cycle through `caches` K/V caches \
     * cache_stride elements apart (enough of them to exceed the L2 gives cold-cache timings); \
     * *splits = the key splits used (ABI 4). */ \
    X(int, attention_time, (slim_cuda_context *ctx, const float *d_q, const void *d_keys, const void *d_values, \
                            int32_t kv_dtype, int64_t cache_stride, int32_t caches, float *d_out, int32_t rows, \
                            int32_t start, \
                            int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t iterations, double *seconds, \
                            int32_t *splits)) \
    /* Whole model: weights and KV cache resident on the device. */ \
    X(int, model_create, (slim_cuda_context *ctx, const slim_cuda_model_config *config, const float *rope_cos, \
                          const float *rope_sin, slim_cuda_model **out)) \
    X(void, model_destroy, (slim_cuda_model *model)) \
    X(int, model_set_embedding, (slim_cuda_model *model, int32_t dtype, const void *weights, int32_t tied_lm_head)) \
    X(int, model_set_norm, (slim_cuda_model *model, int32_t layer, int32_t which, const float *weights)) \
    X(int, model_set_linear, (slim_cuda_model *model, int32_t layer, int32_t kind, slim_cuda_linear *lin)) \
    X(int, model_reset, (slim_cuda_model *model)) \
    X(int, model_position, (slim_cuda_model *model, int32_t *out)) \
    X(int, model_forward, (slim_cuda_model *model, const int32_t *tokens, int32_t count, int32_t logits_mode, \
                           float *logits)) \
    X(int, model_nll, (slim_cuda_model *model, const int32_t *tokens, int32_t count, double *nll)) \
    X(int64_t, model_device_bytes, (const slim_cuda_model *model))

/* The table of entry points filled by slim_cuda_api_load. */
#define SLIM_CUDA_API_FIELD(ret, name, args) ret (*name) args;
typedef struct slim_cuda_api {
    void *handle;
    SLIM_CUDA_FUNCTIONS(SLIM_CUDA_API_FIELD)
} slim_cuda_api;
#undef SLIM_CUDA_API_FIELD

/*
 * Opens the library at `path` (dlopen), resolves every entry point and checks the ABI version.
 * Returns 0, or non-zero with one line in `error` (file, problem, remedy). On failure `api` is
 * zeroed and nothing stays loaded. Implemented in slim_cuda_loader.c (part of slim-quant).
 */
int slim_cuda_api_load(const char *path, slim_cuda_api *api, char *error, size_t error_size);

/* Closes a library opened by slim_cuda_api_load; every object created through it must be gone. */
void slim_cuda_api_unload(slim_cuda_api *api);

#ifdef SLIM_CUDA_BUILDING_LIBRARY
/* Prototypes of the exported functions (only the library itself is linked against them). */
#define SLIM_CUDA_PROTOTYPE(ret, name, args) __attribute__((visibility("default"))) ret slim_cuda_##name args;
SLIM_CUDA_FUNCTIONS(SLIM_CUDA_PROTOTYPE)
#undef SLIM_CUDA_PROTOTYPE
#endif

#ifdef __cplusplus
}
#endif

#endif /* SLIM_CUDA_H */
