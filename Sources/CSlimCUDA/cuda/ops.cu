// Element-wise and row-wise decoder kernels: RMSNorm, rotary embedding, value-cache copy (the
// cache fp32 or fp16), SwiGLU, embedding gather, next-token NLL, fill. Products and sums that the
// CPU runtime rounds separately use __fmul_rn/__fadd_rn here so nvcc does not contract them into
// FMAs: the GPU then rounds like SlimRuntime (only reduction order differs).
#include "common.cuh"

namespace slim {

// MARK: - Kernels

__global__ void rmsnorm_kernel(const float *__restrict__ x, const float *__restrict__ w, float *out, int32_t n,
                               float eps) {
    __shared__ float scratch[32];
    const float *xr = x + (size_t)blockIdx.x * n;
    float *o = out + (size_t)blockIdx.x * n;
    float ss = 0.0f;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
    ss = block_sum(ss, scratch);
    // HF: x · rsqrt(mean(x²) + eps) · weight, the eps added in fp32.
    const float inverse = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)n), eps)));
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = __fmul_rn(__fmul_rn(xr[i], inverse), w[i]);
}

template <typename D>  // float, or __half / bf16_t for a 16-bit KV cache
__global__ void rope_kernel(const float *x, int32_t row_stride, int32_t heads, int32_t head_dim,
                            const float *__restrict__ cos_table, const float *__restrict__ sin_table,
                            const int32_t *__restrict__ start, D *dst, int64_t dst_stride, int32_t at_position) {
    const int32_t r = blockIdx.x, half = head_dim / 2, position = *start + r;
    const float *xr = x + (size_t)r * row_stride;
    D *dr = dst + (size_t)(at_position ? position : r) * dst_stride;
    const float *c = cos_table + (size_t)position * half, *s = sin_table + (size_t)position * half;
    for (int32_t idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
        const int32_t h = idx / half, i = idx % half;
        const float a = xr[h * head_dim + i], b = xr[h * head_dim + i + half];
        // rotate_half: (a, b) → (a·cos − b·sin, b·cos + a·sin), each product rounded.
        store_float(dr + h * head_dim + i, __fadd_rn(__fmul_rn(a, c[i]), __fmul_rn(-b, s[i])));
        store_float(dr + h * head_dim + i + half, __fadd_rn(__fmul_rn(b, c[i]), __fmul_rn(a, s[i])));
    }
}

template <typename D>
__global__ void copy_rows_kernel(const float *__restrict__ src, int32_t rows, int32_t width,
                                 const int32_t *__restrict__ start, D *__restrict__ dst) {
    const int64_t total = (int64_t)rows * width;
    const int64_t offset = (int64_t)(*start) * width;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        store_float(dst + offset + i, src[i]);
    }
}

// `out` may be `gate` or `up` (the model computes in place): no __restrict__, each element is
// read and then written by one thread.
__global__ void silu_mul_kernel(const float *gate, const float *up, float *out, int64_t count) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        out[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
    }
}

template <typename T>
__global__ void embed_kernel(const T *__restrict__ table, const int32_t *__restrict__ tokens, int32_t width,
                             float *__restrict__ out) {
    const int32_t r = blockIdx.x;
    const T *src = table + (size_t)tokens[r] * width;
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x) out[(size_t)r * width + i] = to_float(src[i]);
}

// −log softmax(row)[target] with the log-sum-exp of SlimRuntime: fp32 max and exp, fp64 sum.
__global__ void nll_kernel(const float *__restrict__ logits, const int32_t *__restrict__ targets, int32_t vocab,
                           double *__restrict__ out) {
    __shared__ float fscratch[32];
    __shared__ double dscratch[32];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    float m = -INFINITY;
    for (int32_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, row[i]);
    m = block_max(m, fscratch);
    double lse;
    if (!isfinite(m)) {
        lse = (double)m;
    } else {
        double sum = 0.0;
        for (int32_t i = threadIdx.x; i < vocab; i += blockDim.x) sum += (double)expf(row[i] - m);
        lse = (double)m + log(block_sum_double(sum, dscratch));
    }
    if (threadIdx.x == 0) out[blockIdx.x] = lse - (double)row[targets[blockIdx.x]];
}

__global__ void fill_kernel(uint32_t *dst, uint32_t pattern, size_t count) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        dst[i] = pattern;
    }
}

// MARK: - Launchers

static unsigned grid_for(int64_t count, int threads) {
    const int64_t blocks = (count + threads - 1) / threads;
    return (unsigned)(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

static int row_threads(int32_t n) { return n >= 1024 ? 256 : (n >= 256 ? 128 : 64); }

int launch_rmsnorm(slim_cuda_context *ctx, const float *d_x, const float *d_w, float *d_out, int32_t rows, int32_t n,
                   float eps) {
    if (rows == 0) return 0;
    SLIM_LAUNCH(rows, row_threads(n), 0, ctx->stream, rmsnorm_kernel)(d_x, d_w, d_out, n, eps);
    SLIM_KERNEL_CHECK(ctx, "rmsnorm");
    return 0;
}

int launch_rope(slim_cuda_context *ctx, const float *d_x, int32_t rows, int32_t row_stride, int32_t heads,
                int32_t head_dim, const float *d_cos, const float *d_sin, const int32_t *d_start, void *d_dst,
                int32_t dst_dtype, int64_t dst_stride, bool at_position) {
    if (rows == 0) return 0;
    SLIM_REQUIRE(kv_dtype_supported(dst_dtype), "rope: unsupported destination dtype %d", dst_dtype);
    with_kv_type(dst_dtype, [&](auto t) {
        using D = decltype(t);
        SLIM_LAUNCH(rows, 128, 0, ctx->stream, rope_kernel<D>)(d_x, row_stride, heads, head_dim, d_cos, d_sin, d_start,
                                                              static_cast<D *>(d_dst), dst_stride, at_position ? 1 : 0);
    });
    SLIM_KERNEL_CHECK(ctx, "rope");
    return 0;
}

int launch_copy_rows(slim_cuda_context *ctx, const float *d_src, int32_t rows, int32_t width, const int32_t *d_start,
                     void *d_dst, int32_t dst_dtype) {
    if (rows == 0) return 0;
    SLIM_REQUIRE(kv_dtype_supported(dst_dtype), "copy_rows: unsupported destination dtype %d", dst_dtype);
    with_kv_type(dst_dtype, [&](auto t) {
        using D = decltype(t);
        SLIM_LAUNCH(grid_for((int64_t)rows * width, 256), 256, 0, ctx->stream, copy_rows_kernel<D>)(
            d_src, rows, width, d_start, static_cast<D *>(d_dst));
    });
    SLIM_KERNEL_CHECK(ctx, "copy_rows");
    return 0;
}

int launch_silu_mul(slim_cuda_context *ctx, const float *d_gate, const float *d_up, float *d_out, int64_t count) {
    if (count == 0) return 0;
    SLIM_LAUNCH(grid_for(count, 256), 256, 0, ctx->stream, silu_mul_kernel)(d_gate, d_up, d_out, count);
    SLIM_KERNEL_CHECK(ctx, "silu_mul");
    return 0;
}

int launch_embed(slim_cuda_context *ctx, const void *d_table, int32_t dtype, const int32_t *d_tokens, int32_t rows,
                 int32_t width, float *d_out) {
    if (rows == 0) return 0;
    if (dtype == SLIM_CUDA_F16) {
        SLIM_LAUNCH(rows, 128, 0, ctx->stream, embed_kernel<__half>)((const __half *)d_table, d_tokens, width, d_out);
    } else if (dtype == SLIM_CUDA_BF16) {
        SLIM_LAUNCH(rows, 128, 0, ctx->stream, embed_kernel<bf16_t>)((const bf16_t *)d_table, d_tokens, width, d_out);
    } else {
        SLIM_LAUNCH(rows, 128, 0, ctx->stream, embed_kernel<float>)((const float *)d_table, d_tokens, width, d_out);
    }
    SLIM_KERNEL_CHECK(ctx, "embed");
    return 0;
}

int launch_nll(slim_cuda_context *ctx, const float *d_logits, const int32_t *d_targets, int32_t rows, int32_t vocab,
               double *d_out) {
    if (rows == 0) return 0;
    SLIM_LAUNCH(rows, 256, 0, ctx->stream, nll_kernel)(d_logits, d_targets, vocab, d_out);
    SLIM_KERNEL_CHECK(ctx, "nll");
    return 0;
}

int launch_fill(slim_cuda_context *ctx, void *d_dst, uint32_t pattern, size_t count) {
    SLIM_LAUNCH(grid_for((int64_t)count, 256), 256, 0, ctx->stream, fill_kernel)((uint32_t *)d_dst, pattern, count);
    SLIM_KERNEL_CHECK(ctx, "fill");
    return 0;
}

}  // namespace slim

using namespace slim;

// MARK: - C API wrappers (device buffers; used by the GPU checks)

SLIM_EXPORT int slim_cuda_rmsnorm(slim_cuda_context *ctx, const float *d_x, const float *d_weight, float *d_out,
                                  int32_t rows, int32_t n, float eps) {
    SLIM_REQUIRE(rows >= 0 && n >= 1, "rmsnorm: bad shape %d×%d", rows, n);
    return launch_rmsnorm(ctx, d_x, d_weight, d_out, rows, n, eps);
}

SLIM_EXPORT int slim_cuda_rope(slim_cuda_context *ctx, float *d_x, int32_t rows, int32_t row_stride, int32_t heads,
                               int32_t head_dim, const float *d_cos, const float *d_sin, int32_t start) {
    SLIM_REQUIRE(rows >= 0 && heads >= 1 && head_dim >= 2 && head_dim % 2 == 0 && row_stride >= heads * head_dim &&
                     start >= 0,
                 "rope: bad arguments (rows %d, stride %d, heads %d, head_dim %d, start %d)", rows, row_stride, heads,
                 head_dim, start);
    SLIM_TRY(reserve(ctx, ctx->ints, sizeof(int32_t), "position"));
    SLIM_CHECK(cudaMemcpyAsync(ctx->ints.ptr, &start, sizeof(int32_t), cudaMemcpyHostToDevice, ctx->stream));
    SLIM_TRY(launch_rope(ctx, d_x, rows, row_stride, heads, head_dim, d_cos, d_sin, (const int32_t *)ctx->ints.ptr, d_x,
                         SLIM_CUDA_F32, row_stride, false));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));  // `start` lives on the caller's stack
    return 0;
}

SLIM_EXPORT int slim_cuda_store_kv(slim_cuda_context *ctx, const float *d_src, int32_t rows, int32_t width,
                                   int32_t start, void *d_dst, int32_t kv_dtype) {
    SLIM_REQUIRE(rows >= 0 && width >= 1 && start >= 0, "store_kv: bad arguments (rows %d, width %d, start %d)", rows,
                 width, start);
    SLIM_REQUIRE(kv_dtype_supported(kv_dtype), "store_kv: unsupported KV-cache dtype %d (F32, F16 or BF16)", kv_dtype);
    SLIM_TRY(reserve(ctx, ctx->ints, sizeof(int32_t), "position"));
    SLIM_CHECK(cudaMemcpyAsync(ctx->ints.ptr, &start, sizeof(int32_t), cudaMemcpyHostToDevice, ctx->stream));
    SLIM_TRY(launch_copy_rows(ctx, d_src, rows, width, (const int32_t *)ctx->ints.ptr, d_dst, kv_dtype));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));  // `start` lives on the caller's stack
    return 0;
}

SLIM_EXPORT int slim_cuda_silu_mul(slim_cuda_context *ctx, const float *d_gate, const float *d_up, float *d_out,
                                   int64_t count) {
    SLIM_REQUIRE(count >= 0, "silu_mul: negative count");
    return launch_silu_mul(ctx, d_gate, d_up, d_out, count);
}

SLIM_EXPORT int slim_cuda_nll(slim_cuda_context *ctx, const float *d_logits, const int32_t *d_targets, int32_t rows,
                              int32_t vocab, double *d_out) {
    SLIM_REQUIRE(rows >= 0 && vocab >= 1, "nll: bad shape %d×%d", rows, vocab);
    return launch_nll(ctx, d_logits, d_targets, rows, vocab, d_out);
}
