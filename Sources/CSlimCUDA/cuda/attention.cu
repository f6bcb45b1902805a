// Causal grouped-query attention over the resident KV cache, for a decode step or a prefill
// block: scores q·k scaled by 1/√head_dim after the product (as HF's eager attention), softmax
// in fp32 computed online (running max and sum, one pass over the keys), weighted sum of values.
//
// grid: (kv_heads, ⌈queries / 16⌉, splits) where the queries of a KV head are its query heads ×
// the block's token rows (so GQA heads share each K/V tile); block: 4 warps × 4 queries. Per tile
// of 32 keys, K and V are staged in shared memory (as fp32, whatever the cache holds: fp32, or
// fp16 for half the bytes per decode step); lane j scores key j, then every lane updates its
// slice of the head dimension.
//
// Split keys (flash-decoding): a decode step has one query block per KV head, 32 blocks for
// LLaMA-7B on 132 SMs, each walking the whole cache tile by tile. When the grid is smaller than
// the GPU, the keys are split over gridDim.z blocks; each writes its unnormalised (max, sum,
// Σ p·v) and attention_combine merges them. The split count is fixed by the host from a bound on
// the keys (the cache capacity in a model), so one captured decode graph serves every position:
// the chunk of keys per split is derived in the kernel from the position it reads.
#include "common.cuh"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace slim {

constexpr int kAttnWarps = 4, kAttnPerWarp = 4, kAttnQueries = kAttnWarps * kAttnPerWarp, kAttnKeys = 32;
constexpr int kAttnMaxHeadDim = 256;
constexpr int kAttnMaxSplits = 128;

size_t attention_shared_bytes(int32_t head_dim) {
    if (head_dim < 2 || head_dim > kAttnMaxHeadDim) return 0;
    return sizeof(float) * ((size_t)kAttnQueries * head_dim + (size_t)kAttnKeys * (head_dim + 1) +
                            (size_t)kAttnKeys * head_dim);
}

// Where split blocks leave their partial results: [splits][queries][d] weighted sums, then
// [splits][queries] {max, sum} pairs; queries = rows × heads, in the output's order.
struct AttnPartial {
    float *acc = nullptr;
    float2 *ml = nullptr;
};

// Widens the 4 (fp32) or 8 (fp16, bf16) cache elements at p, one 16-byte load.
__device__ __forceinline__ void load16(const float *p, float (&out)[4]) {
    const float4 v = __ldg(reinterpret_cast<const float4 *>(p));
    out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
}
__device__ __forceinline__ void load16(const __half *p, float (&out)[8]) {
    const uint4 v = __ldg(reinterpret_cast<const uint4 *>(p));
    const uint32_t parts[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&parts[i]));
        out[2 * i] = f.x, out[2 * i + 1] = f.y;
    }
}
__device__ __forceinline__ void load16(const bf16_t *p, float (&out)[8]) {
    const uint4 v = __ldg(reinterpret_cast<const uint4 *>(p));
    const uint32_t parts[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {  // little-endian: the even element is the low half
        out[2 * i] = __uint_as_float(parts[i] << 16), out[2 * i + 1] = __uint_as_float(parts[i] & 0xFFFF0000u);
    }
}

// DR: ⌈head_dim / 32⌉ values of the output per lane and query; KV: the cache's element type.
template <int DR, typename KV>
__global__ void __launch_bounds__(kAttnWarps * 32)
    attention_kernel(const float *__restrict__ q, const KV *__restrict__ keys, const KV *__restrict__ values,
                     float *__restrict__ out, AttnPartial partial, int32_t rows, const int32_t *__restrict__ d_start,
                     int32_t heads, int32_t kv_heads, int32_t d, float scale, bool vec) {
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
    // This block's keys: all, or its split's chunk (whole tiles; empty for late splits while the
    // context is short). Split 0 holds key 0, so every query sees a key in some split.
    int32_t k_begin = 0, k_end = max_pos + 1;
    if (gridDim.z > 1) {
        const int32_t per = (k_end + (int32_t)gridDim.z - 1) / (int32_t)gridDim.z;
        const int32_t chunk = (per + kAttnKeys - 1) / kAttnKeys * kAttnKeys;
        k_begin = (int32_t)blockIdx.z * chunk;
        k_end = min(k_end, k_begin + chunk);
    }

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

    for (int32_t k0 = k_begin; k0 < k_end; k0 += kAttnKeys) {
        __syncthreads();  // the previous tile is consumed (and the q tile written, first time)
        if (vec) {  // d a multiple of W, both cache pointers 16-byte aligned: 16-byte loads
            constexpr int W = 16 / sizeof(KV);
            const int32_t dw = d / W;
            for (int32_t idx = threadIdx.x; idx < kAttnKeys * dw; idx += blockDim.x) {
                const int32_t jj = idx / dw, dd = (idx % dw) * W, key = k0 + jj;
                float kv[W], vv[W];
                if (key < k_end) {
                    const size_t src = (size_t)key * kv_dim + kvh * d + dd;
                    load16(keys + src, kv);
                    load16(values + src, vv);
                } else {
#pragma unroll
                    for (int w = 0; w < W; w++) kv[w] = vv[w] = 0.0f;
                }
                float *kd = ks + jj * (d + 1) + dd;  // odd row stride: stored one by one
#pragma unroll
                for (int w = 0; w < W; w++) kd[w] = kv[w];
#pragma unroll
                for (int w = 0; w < W; w += 4) {
                    *reinterpret_cast<float4 *>(vs + jj * d + dd + w) = make_float4(vv[w], vv[w + 1], vv[w + 2], vv[w + 3]);
                }
            }
        } else {
            for (int32_t idx = threadIdx.x; idx < kAttnKeys * d; idx += blockDim.x) {
                const int32_t jj = idx / d, dd = idx % d, key = k0 + jj;
                const bool inside = key < k_end;
                const size_t src = (size_t)key * kv_dim + kvh * d + dd;
                ks[jj * (d + 1) + dd] = inside ? to_float(keys[src]) : 0.0f;
                vs[jj * d + dd] = inside ? to_float(values[src]) : 0.0f;
            }
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < kAttnPerWarp; j++) {
            if (!valid[j] || k0 > pos[j]) continue;  // warp-uniform
            const float *qq = qs + (warp * kAttnPerWarp + j) * d;
            const float *kk = ks + lane * (d + 1);
            float s = 0.0f;
            for (int32_t dd = 0; dd < d; dd++) s = fmaf(qq[dd], kk[dd], s);
            const bool visible = k0 + lane <= pos[j] && k0 + lane < k_end;
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
        const size_t query = (size_t)(i / per_kv) * heads + kvh * per_kv + i % per_kv;  // row-major (row, head)
        if (gridDim.z == 1) {
            float *o = out + query * d;
#pragma unroll
            for (int r = 0; r < DR; r++) {
                const int32_t dd = lane + 32 * r;
                if (dd < d) o[dd] = acc[j][r] / l[j];
            }
        } else {  // unnormalised; a split that saw none of this query's keys leaves (−∞, 0, 0)
            const size_t slot = (size_t)blockIdx.z * rows * heads + query;
            float *o = partial.acc + slot * d;
#pragma unroll
            for (int r = 0; r < DR; r++) {
                const int32_t dd = lane + 32 * r;
                if (dd < d) o[dd] = acc[j][r];
            }
            if (lane == 0) partial.ml[slot] = make_float2(m[j], l[j]);
        }
    }
}

// out[query][dd] = Σ_z e^{m_z − M}·acc_z[dd] / Σ_z e^{m_z − M}·l_z over the splits z, M = max m_z.
// grid: one block per query (rows × heads); block: ⌈d / 32⌉ warps, thread dd.
__global__ void attention_combine(AttnPartial partial, float *__restrict__ out, int32_t queries, int32_t splits,
                                  int32_t d) {
    const int32_t query = blockIdx.x, dd = threadIdx.x;
    float mx = -INFINITY;
    for (int32_t z = 0; z < splits; z++) mx = fmaxf(mx, partial.ml[(size_t)z * queries + query].x);
    float sum = 0.0f, acc = 0.0f;
    for (int32_t z = 0; z < splits; z++) {
        const float2 ml = partial.ml[(size_t)z * queries + query];
        if (ml.y == 0.0f) continue;  // no keys of this query in split z (m = −∞)
        const float w = expf(ml.x - mx);
        sum = fmaf(w, ml.y, sum);
        if (dd < d) acc = fmaf(w, partial.acc[((size_t)z * queries + query) * d + dd], acc);
    }
    if (dd < d) out[(size_t)query * d + dd] = acc / sum;
}

template <int DR>
static int set_attention_limit(slim_cuda_context *ctx, int32_t max_head_dim) {
    const size_t bytes = attention_shared_bytes(max_head_dim);
    if (bytes <= 48 * 1024) return 0;
    if (bytes > ctx->shared_memory_optin) return 0;  // launches needing it are refused with a message
    SLIM_CHECK(cudaFuncSetAttribute(attention_kernel<DR, float>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)bytes));
    SLIM_CHECK(cudaFuncSetAttribute(attention_kernel<DR, __half>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)bytes));
    SLIM_CHECK(cudaFuncSetAttribute(attention_kernel<DR, bf16_t>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)bytes));
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

int32_t attention_splits(const slim_cuda_context *ctx, int32_t rows, int32_t heads, int32_t kv_heads,
                         int32_t max_keys) {
    const int64_t queries = (int64_t)heads / kv_heads * rows;
    const int64_t blocks = kv_heads * ((queries + kAttnQueries - 1) / kAttnQueries);
    const int64_t tiles = ((int64_t)max_keys + kAttnKeys - 1) / kAttnKeys;
    // A grid that already covers every SM (prefill) is not split, not even when asked: its
    // partials would need rows × heads × splits × head_dim floats for no gain.
    if (blocks >= ctx->multiprocessors) return 1;
    // Automatic: enough blocks of 4 warps for about 4 per SM (4 × 41 KB of shared memory fit at
    // head_dim 128).
    const int64_t target = 4 * (int64_t)ctx->multiprocessors;
    const int64_t splits = ctx->attn_splits_override > 0 ? ctx->attn_splits_override : (target + blocks - 1) / blocks;
    return (int32_t)std::max<int64_t>(1, std::min<int64_t>({splits, tiles, kAttnMaxSplits}));
}

size_t attention_partial_bytes(const slim_cuda_context *ctx, int32_t rows, int32_t heads, int32_t kv_heads,
                               int32_t head_dim, int32_t max_keys) {
    const int32_t splits = attention_splits(ctx, rows, heads, kv_heads, max_keys);
    return splits == 1 ? 0 : sizeof(float) * (size_t)splits * rows * heads * (head_dim + 2);
}

// One launch of attention_kernel<DR, KV> (the caller checked the shared memory).
template <int DR, typename KV>
static void launch_attention_kernel(slim_cuda_context *ctx, dim3 grid, size_t shared, const float *d_q,
                                    const void *d_keys, const void *d_values, float *d_out, AttnPartial partial,
                                    int32_t rows, const int32_t *d_start, int32_t heads, int32_t kv_heads,
                                    int32_t head_dim, float scale) {
    const bool vec = head_dim % (16 / (int)sizeof(KV)) == 0 &&
                     (reinterpret_cast<uintptr_t>(d_keys) | reinterpret_cast<uintptr_t>(d_values)) % 16 == 0;
    SLIM_LAUNCH(grid, kAttnWarps * 32, shared, ctx->stream, attention_kernel<DR, KV>)(
        d_q, static_cast<const KV *>(d_keys), static_cast<const KV *>(d_values), d_out, partial, rows, d_start, heads,
        kv_heads, head_dim, scale, vec);
}

template <typename KV>
static void launch_attention_dr(slim_cuda_context *ctx, dim3 grid, size_t shared, const float *d_q,
                                const void *d_keys, const void *d_values, float *d_out, AttnPartial partial,
                                int32_t rows, const int32_t *d_start, int32_t heads, int32_t kv_heads,
                                int32_t head_dim, float scale) {
#define SLIM_ATTENTION(DR)                                                                                        \
    launch_attention_kernel<DR, KV>(ctx, grid, shared, d_q, d_keys, d_values, d_out, partial, rows, d_start, heads, \
                                    kv_heads, head_dim, scale)
    if (head_dim <= 32) {
        SLIM_ATTENTION(1);
    } else if (head_dim <= 64) {
        SLIM_ATTENTION(2);
    } else if (head_dim <= 96) {
        SLIM_ATTENTION(3);
    } else if (head_dim <= 128) {
        SLIM_ATTENTION(4);
    } else {
        SLIM_ATTENTION(8);
    }
#undef SLIM_ATTENTION
}

int launch_attention(slim_cuda_context *ctx, const float *d_q, const void *d_keys, const void *d_values,
                     int32_t kv_dtype, float *d_out, int32_t rows, const int32_t *d_start, int32_t heads,
                     int32_t kv_heads, int32_t head_dim, int32_t max_keys, Scratch &partials) {
    if (rows == 0) return 0;
    SLIM_REQUIRE(kv_dtype_supported(kv_dtype), "attention: unsupported KV-cache dtype %d (F32, F16 or BF16)", kv_dtype);
    const size_t shared = attention_shared_bytes(head_dim);
    SLIM_REQUIRE(shared > 0, "attention: head_dim %d is not supported (2…%d)", head_dim, kAttnMaxHeadDim);
    SLIM_REQUIRE(shared <= 48 * 1024 || shared <= ctx->shared_memory_optin,
                 "attention: head_dim %d needs %zu bytes of shared memory, the GPU allows %zu", head_dim, shared,
                 ctx->shared_memory_optin);
    const int32_t queries = heads / kv_heads * rows, splits = attention_splits(ctx, rows, heads, kv_heads, max_keys);
    AttnPartial partial;
    if (splits > 1) {
        const size_t bytes = attention_partial_bytes(ctx, rows, heads, kv_heads, head_dim, max_keys);
        SLIM_TRY(reserve(ctx, partials, bytes, "attention partials"));
        partial.ml = static_cast<float2 *>(partials.ptr);  // first: 8-byte aligned for any head_dim
        partial.acc = static_cast<float *>(partials.ptr) + 2 * (size_t)splits * rows * heads;
    }
    const dim3 grid((unsigned)kv_heads, (unsigned)((queries + kAttnQueries - 1) / kAttnQueries), (unsigned)splits);
    const float scale = (float)std::pow((double)head_dim, -0.5);
    with_kv_type(kv_dtype, [&](auto t) {
        launch_attention_dr<decltype(t)>(ctx, grid, shared, d_q, d_keys, d_values, d_out, partial, rows, d_start, heads,
                                         kv_heads, head_dim, scale);
    });
    SLIM_KERNEL_CHECK(ctx, "attention");
    if (splits > 1) {
        const int32_t total = rows * heads;
        SLIM_LAUNCH(total, (head_dim + 31) / 32 * 32, 0, ctx->stream, attention_combine)(partial, d_out, total, splits,
                                                                                       head_dim);
        SLIM_KERNEL_CHECK(ctx, "attention (combining the key splits)");
    }
    return 0;
}

}  // namespace slim

using namespace slim;

// The position `start` in the context's device int, for the op wrappers.
static int device_start(slim_cuda_context *ctx, int32_t start, const int32_t **d_start) {
    SLIM_TRY(reserve(ctx, ctx->ints, sizeof(int32_t), "position"));
    SLIM_CHECK(cudaMemcpyAsync(ctx->ints.ptr, &start, sizeof(int32_t), cudaMemcpyHostToDevice, ctx->stream));
    *d_start = static_cast<const int32_t *>(ctx->ints.ptr);
    return 0;
}

SLIM_EXPORT int slim_cuda_attention(slim_cuda_context *ctx, const float *d_q, const void *d_keys,
                                    const void *d_values, int32_t kv_dtype, float *d_out, int32_t rows, int32_t start,
                                    int32_t heads, int32_t kv_heads, int32_t head_dim) {
    SLIM_REQUIRE(rows >= 0 && start >= 0 && heads >= 1 && kv_heads >= 1 && heads % kv_heads == 0,
                 "attention: bad arguments (rows %d, start %d, heads %d, kv_heads %d)", rows, start, heads, kv_heads);
    const int32_t *d_start = nullptr;
    SLIM_TRY(device_start(ctx, start, &d_start));
    SLIM_TRY(launch_attention(ctx, d_q, d_keys, d_values, kv_dtype, d_out, rows, d_start, heads, kv_heads, head_dim,
                              start + rows, ctx->attn_partials));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));  // `start` lives on the caller's stack
    return 0;
}

SLIM_EXPORT int slim_cuda_attention_time(slim_cuda_context *ctx, const float *d_q, const void *d_keys,
                                         const void *d_values, int32_t kv_dtype, int64_t cache_stride, int32_t caches,
                                         float *d_out,
                                         int32_t rows, int32_t start, int32_t heads, int32_t kv_heads,
                                         int32_t head_dim, int32_t iterations, double *seconds, int32_t *splits) {
    *seconds = 0;
    *splits = 0;
    SLIM_REQUIRE(rows >= 1 && start >= 0 && heads >= 1 && kv_heads >= 1 && heads % kv_heads == 0 && caches >= 1 &&
                     cache_stride >= 0 && iterations >= 1,
                 "attention_time: bad arguments (rows %d, start %d, heads %d/%d, caches %d, iterations %d)", rows, start,
                 heads, kv_heads, caches, iterations);
    SLIM_REQUIRE(kv_dtype_supported(kv_dtype), "attention_time: unsupported KV-cache dtype %d (F32, F16 or BF16)", kv_dtype);
    const int32_t *d_start = nullptr;
    SLIM_TRY(device_start(ctx, start, &d_start));
    auto launch = [&](int32_t i) {
        const size_t offset = (size_t)(i % caches) * (size_t)cache_stride * dtype_bytes(kv_dtype);
        return launch_attention(ctx, d_q, static_cast<const char *>(d_keys) + offset,
                                static_cast<const char *>(d_values) + offset, kv_dtype, d_out, rows, d_start, heads,
                                kv_heads, head_dim, start + rows, ctx->attn_partials);
    };
    SLIM_TRY(launch(0));  // warm-up; sizes the partials before timing
    float ms = 0;
    SLIM_TRY(time_stream(ctx, [&] {
        for (int32_t i = 1; i <= iterations; i++) SLIM_TRY(launch(i));
        return 0;
    }, &ms));
    *seconds = (double)ms / 1e3 / iterations;
    *splits = attention_splits(ctx, rows, heads, kv_heads, start + rows);
    return 0;
}
