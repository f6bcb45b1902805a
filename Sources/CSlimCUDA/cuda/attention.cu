// Causal grouped-query attention over the resident KV cache, for a decode step or a prefill
// block: scores q·k scaled by 1/√head_dim after the product (as HF's eager attention), softmax
// in fp32 computed online (running max and sum, one pass over the keys), weighted sum of values.
//
// grid: (kv_heads, ⌈queries / 16⌉) where the queries of a KV head are its query heads × the
// block's token rows (so GQA heads share each K/V tile); block: 4 warps × 4 queries. Per tile of
// 32 keys, K and V are staged in shared memory; lane j scores key j, then every lane updates its
// slice of the head dimension.
#include "common.cuh"

#include <cmath>

namespace slim {

constexpr int kAttnWarps = 4, kAttnPerWarp = 4, kAttnQueries = kAttnWarps * kAttnPerWarp, kAttnKeys = 32;
constexpr int kAttnMaxHeadDim = 256;

size_t attention_shared_bytes(int32_t head_dim) {
    if (head_dim < 2 || head_dim > kAttnMaxHeadDim) return 0;
    return sizeof(float) * ((size_t)kAttnQueries * head_dim + (size_t)kAttnKeys * (head_dim + 1) +
                            (size_t)kAttnKeys * head_dim);
}

template <int DR>  // ⌈head_dim / 32⌉ values of the output per lane and query
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_kernel(const float *__restrict__ q, const float *__restrict__ keys, const float *__restrict__ values,
                     float *__restrict__ out, int32_t rows, const int32_t *__restrict__ d_start, int32_t heads,
                     int32_t kv_heads, int32_t d, float scale) {
    SLIM_DYNAMIC_SHARED(float, sm);
    float *qs = sm;                            // [16][d]
    float *ks = qs + kAttnQueries * d;         // [32][d + 1] (odd stride: conflict-free column reads)
    float *vs = ks + kAttnKeys * (d + 1);      // [32][d]
    const int32_t start = *d_start;
    const int32_t kvh = blockIdx.x, per_kv = heads / kv_heads;
    const int32_t q_dim = heads * d, kv_dim = kv_heads * d;
    const int32_t total = per_kv * rows, i0 = blockIdx.y * kAttnQueries;
    const int32_t warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    for (int32_t idx = threadIdx.x; idx < kAttnQueries * d; idx += blockDim.x) {
        const int32_t i = i0 + idx / d, dd = idx % d;
        float v = 0.0f;
        if (i < total) v = q[(size_t)(i / per_kv) * q_dim + (kvh * per_kv + i % per_kv) * d + dd];
        qs[idx] = v;
    }
    const int32_t last = min(i0 + kAttnQueries, total) - 1;
    const int32_t max_pos = start + last / per_kv;  // the last key any query of this block sees

    float m[kAttnPerWarp], l[kAttnPerWarp], acc[kAttnPerWarp][DR];
    int32_t pos[kAttnPerWarp];
    bool valid[kAttnPerWarp];
#pragma unroll
    for (int j = 0; j < kAttnPerWarp; j++) {
        const int32_t i = i0 + warp * kAttnPerWarp + j;
        valid[j] = i < total;
        pos[j] = start + i / per_kv;
        m[j] = -INFINITY;
        l[j] = 0.0f;
#pragma unroll
        for (int r = 0; r < DR; r++) acc[j][r] = 0.0f;
    }

    for (int32_t k0 = 0; k0 <= max_pos; k0 += kAttnKeys) {
        __syncthreads();  // the previous tile is consumed (and the q tile written, first time)
        for (int32_t idx = threadIdx.x; idx < kAttnKeys * d; idx += blockDim.x) {
            const int32_t jj = idx / d, dd = idx % d, key = k0 + jj;
            const bool inside = key <= max_pos;
            const size_t src = (size_t)key * kv_dim + kvh * d + dd;
            ks[jj * (d + 1) + dd] = inside ? keys[src] : 0.0f;
            vs[jj * d + dd] = inside ? values[src] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < kAttnPerWarp; j++) {
            if (!valid[j] || k0 > pos[j]) continue;  // warp-uniform
            const float *qq = qs + (warp * kAttnPerWarp + j) * d;
            const float *kk = ks + lane * (d + 1);
            float s = 0.0f;
            for (int32_t dd = 0; dd < d; dd++) s = fmaf(qq[dd], kk[dd], s);
            const bool visible = k0 + lane <= pos[j];
            s = visible ? s * scale : -INFINITY;
            const float m_new = fmaxf(m[j], warp_max(s));  // finite: key k0 is visible
            const float p = visible ? expf(s - m_new) : 0.0f;
            const float alpha = expf(m[j] - m_new);        // 0 on the first tile (m = −∞)
            l[j] = l[j] * alpha + warp_sum(p);
#pragma unroll
            for (int r = 0; r < DR; r++) acc[j][r] *= alpha;
            for (int jj = 0; jj < kAttnKeys; jj++) {
                const float pj = __shfl_sync(0xFFFFFFFFu, p, jj);
#pragma unroll
                for (int r = 0; r < DR; r++) {
                    const int32_t dd = lane + 32 * r;
                    if (dd < d) acc[j][r] = fmaf(pj, vs[jj * d + dd], acc[j][r]);
                }
            }
            m[j] = m_new;
        }
    }

#pragma unroll
    for (int j = 0; j < kAttnPerWarp; j++) {
        if (!valid[j]) continue;
        const int32_t i = i0 + warp * kAttnPerWarp + j;
        float *o = out + (size_t)(i / per_kv) * q_dim + (kvh * per_kv + i % per_kv) * d;
#pragma unroll
        for (int r = 0; r < DR; r++) {
            const int32_t dd = lane + 32 * r;
            if (dd < d) o[dd] = acc[j][r] / l[j];
        }
    }
}

template <int DR>
static int set_attention_limit(slim_cuda_context *ctx, int32_t max_head_dim) {
    const size_t bytes = attention_shared_bytes(max_head_dim);
    if (bytes <= 48 * 1024) return 0;
    if (bytes > ctx->shared_memory_optin) return 0;  // launches needing it are refused with a message
    SLIM_CHECK(cudaFuncSetAttribute(attention_kernel<DR>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return 0;
}

int configure_attention(slim_cuda_context *ctx) {
    SLIM_TRY(set_attention_limit<1>(ctx, 32));
    SLIM_TRY(set_attention_limit<2>(ctx, 64));
    SLIM_TRY(set_attention_limit<3>(ctx, 96));
    SLIM_TRY(set_attention_limit<4>(ctx, 128));
    SLIM_TRY(set_attention_limit<8>(ctx, 256));
    return 0;
}

int launch_attention(slim_cuda_context *ctx, const float *d_q, const float *d_keys, const float *d_values,
                     float *d_out, int32_t rows, const int32_t *d_start, int32_t heads, int32_t kv_heads,
                     int32_t head_dim) {
    if (rows == 0) return 0;
    const size_t shared = attention_shared_bytes(head_dim);
    SLIM_REQUIRE(shared > 0, "attention: head_dim %d is not supported (2…%d)", head_dim, kAttnMaxHeadDim);
    SLIM_REQUIRE(shared <= 48 * 1024 || shared <= ctx->shared_memory_optin,
                 "attention: head_dim %d needs %zu bytes of shared memory, the GPU allows %zu", head_dim, shared,
                 ctx->shared_memory_optin);
    const int32_t queries = heads / kv_heads * rows;
    const dim3 grid((unsigned)kv_heads, (unsigned)((queries + kAttnQueries - 1) / kAttnQueries));
    const float scale = (float)std::pow((double)head_dim, -0.5);
    const int threads = kAttnWarps * 32;
    if (head_dim <= 32) {
        SLIM_LAUNCH(grid, threads, shared, ctx->stream, attention_kernel<1>)(d_q, d_keys, d_values, d_out, rows, d_start, heads,
                                                                    kv_heads, head_dim, scale);
    } else if (head_dim <= 64) {
        SLIM_LAUNCH(grid, threads, shared, ctx->stream, attention_kernel<2>)(d_q, d_keys, d_values, d_out, rows, d_start, heads,
                                                                    kv_heads, head_dim, scale);
    } else if (head_dim <= 96) {
        SLIM_LAUNCH(grid, threads, shared, ctx->stream, attention_kernel<3>)(d_q, d_keys, d_values, d_out, rows, d_start, heads,
                                                                    kv_heads, head_dim, scale);
    } else if (head_dim <= 128) {
        SLIM_LAUNCH(grid, threads, shared, ctx->stream, attention_kernel<4>)(d_q, d_keys, d_values, d_out, rows, d_start, heads,
                                                                    kv_heads, head_dim, scale);
    } else {
        SLIM_LAUNCH(grid, threads, shared, ctx->stream, attention_kernel<8>)(d_q, d_keys, d_values, d_out, rows, d_start, heads,
                                                                    kv_heads, head_dim, scale);
    }
    SLIM_KERNEL_CHECK(ctx, "attention");
    return 0;
}

}  // namespace slim

using namespace slim;

SLIM_EXPORT int slim_cuda_attention(slim_cuda_context *ctx, const float *d_q, const float *d_keys,
                                    const float *d_values, float *d_out, int32_t rows, int32_t start, int32_t heads,
                                    int32_t kv_heads, int32_t head_dim) {
    SLIM_REQUIRE(rows >= 0 && start >= 0 && heads >= 1 && kv_heads >= 1 && heads % kv_heads == 0,
                 "attention: bad arguments (rows %d, start %d, heads %d, kv_heads %d)", rows, start, heads, kv_heads);
    SLIM_TRY(reserve(ctx, ctx->ints, sizeof(int32_t), "position"));
    SLIM_CHECK(cudaMemcpyAsync(ctx->ints.ptr, &start, sizeof(int32_t), cudaMemcpyHostToDevice, ctx->stream));
    SLIM_TRY(launch_attention(ctx, d_q, d_keys, d_values, d_out, rows, (const int32_t *)ctx->ints.ptr, heads, kv_heads,
                              head_dim));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));  // `start` lives on the caller's stack
    return 0;
}
