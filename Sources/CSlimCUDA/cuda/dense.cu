// Dense linears (fp16, bf16 or fp32 weights [rows × cols], fp32 activations and accumulation): the
// classifier, and every linear of an unquantized checkpoint. One warp per output row and a
// chunk of up to 8 tokens: lanes stride over the columns with 16-byte loads when rows are
// 16-byte aligned, then a shuffle tree sums the lanes.
#include "common.cuh"

namespace slim {

template <typename T>
struct WeightVector;

// 8 fp16 weights per 16-byte load.
template <>
struct WeightVector<__half> {
    static constexpr int width = 8;
    __device__ __forceinline__ static void load(const __half *p, float (&w)[8]) {
        const uint4 v = __ldcs(reinterpret_cast<const uint4 *>(p));
        const uint32_t parts[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&parts[i]));
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    }
    __device__ __forceinline__ static float scalar(const __half *p) { return __half2float(*p); }
};

// 8 bf16 weights per 16-byte load: each 32-bit word holds two, widened by shift and mask.
template <>
struct WeightVector<bf16_t> {
    static constexpr int width = 8;
    __device__ __forceinline__ static void load(const bf16_t *p, float (&w)[8]) {
        const uint4 v = __ldcs(reinterpret_cast<const uint4 *>(p));
        const uint32_t parts[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[2 * i] = __uint_as_float(parts[i] << 16);
            w[2 * i + 1] = __uint_as_float(parts[i] & 0xFFFF0000u);
        }
    }
    __device__ __forceinline__ static float scalar(const bf16_t *p) { return to_float(*p); }
};

// 4 fp32 weights per 16-byte load.
template <>
struct WeightVector<float> {
    static constexpr int width = 4;
    __device__ __forceinline__ static void load(const float *p, float (&w)[4]) {
        const float4 v = __ldcs(reinterpret_cast<const float4 *>(p));
        w[0] = v.x;
        w[1] = v.y;
        w[2] = v.z;
        w[3] = v.w;
    }
    __device__ __forceinline__ static float scalar(const float *p) { return __ldcs(p); }
};

constexpr int kDenseWarps = 8;

// grid: (⌈rows / 8⌉, ⌈tokens / TT⌉); block: 8 warps, warp w owns row blockIdx.x·8 + w.
template <typename T, int TT, bool VEC>
__global__ void __launch_bounds__(kDenseWarps * 32) dense_kernel(const T *__restrict__ w, const float *__restrict__ x,
                                                                 const float *__restrict__ bias, float *y, int32_t rows,
                                                                 int32_t cols, int32_t tokens, int32_t accumulate) {
    const int32_t lane = threadIdx.x & 31;
    const int32_t row = blockIdx.x * kDenseWarps + (threadIdx.x >> 5);
    const int32_t t0 = blockIdx.y * TT;
    if (row >= rows) return;  // whole warps leave together; no block-wide synchronisation below
    const int32_t count = min(TT, tokens - t0);
    const T *wr = w + (size_t)row * cols;
    const float *xr = x + (size_t)t0 * cols;
    float acc[TT];
#pragma unroll
    for (int t = 0; t < TT; t++) acc[t] = 0.0f;
    if (VEC) {
        constexpr int V = WeightVector<T>::width;
#pragma unroll 4
        for (int32_t k = lane * V; k < cols; k += 32 * V) {
            float wv[V];
            WeightVector<T>::load(wr + k, wv);
#pragma unroll
            for (int t = 0; t < TT; t++) {
                if (t < count) {
                    const float4 *xp = reinterpret_cast<const float4 *>(xr + (size_t)t * cols + k);
#pragma unroll
                    for (int i = 0; i < V / 4; i++) {
                        const float4 xv = __ldg(xp + i);
                        acc[t] = fmaf(wv[4 * i], xv.x, acc[t]);
                        acc[t] = fmaf(wv[4 * i + 1], xv.y, acc[t]);
                        acc[t] = fmaf(wv[4 * i + 2], xv.z, acc[t]);
                        acc[t] = fmaf(wv[4 * i + 3], xv.w, acc[t]);
                    }
                }
            }
        }
    } else {
        for (int32_t k = lane; k < cols; k += 32) {
            const float wv = WeightVector<T>::scalar(wr + k);
#pragma unroll
            for (int t = 0; t < TT; t++) {
                if (t < count) acc[t] = fmaf(wv, __ldg(xr + (size_t)t * cols + k), acc[t]);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < TT; t++) {
        const float v = warp_sum(acc[t]);
        if (lane == 0 && t < count) {
            float out = bias != nullptr ? v + bias[row] : v;
            float *dst = y + (size_t)(t0 + t) * rows + row;
            *dst = accumulate ? *dst + out : out;
        }
    }
}

template <typename T, int TT>
static int launch_dense(slim_cuda_context *ctx, const slim_cuda_linear *lin, const float *d_x, int32_t tokens,
                        float *d_y, bool accumulate) {
    const dim3 grid((unsigned)((lin->rows + kDenseWarps - 1) / kDenseWarps), (unsigned)((tokens + TT - 1) / TT));
    const T *w = static_cast<const T *>(lin->weights);
    // 16-byte loads need every row (and x) 16-byte aligned: cols a multiple of the vector width.
    const bool vec = lin->cols % WeightVector<T>::width == 0 && lin->cols % 4 == 0;
    if (vec) {
        SLIM_LAUNCH(grid, kDenseWarps * 32, 0, ctx->stream, dense_kernel<T, TT, true>)(w, d_x, lin->bias, d_y, lin->rows,
                                                                              lin->cols, tokens, accumulate);
    } else {
        SLIM_LAUNCH(grid, kDenseWarps * 32, 0, ctx->stream, dense_kernel<T, TT, false>)(w, d_x, lin->bias, d_y, lin->rows,
                                                                               lin->cols, tokens, accumulate);
    }
    SLIM_KERNEL_CHECK(ctx, "dense_gemm");
    return 0;
}

int dense_gemm(slim_cuda_context *ctx, const slim_cuda_linear *lin, const float *d_x, int32_t tokens, float *d_y,
               bool accumulate) {
    SLIM_REQUIRE(!lin->packed, "dense_gemm: not a dense linear");
    if (lin->rows == 0 || tokens == 0) return 0;
    if (lin->dtype == SLIM_CUDA_F16) {
        if (tokens == 1) return launch_dense<__half, 1>(ctx, lin, d_x, tokens, d_y, accumulate);
        if (tokens <= 4) return launch_dense<__half, 4>(ctx, lin, d_x, tokens, d_y, accumulate);
        return launch_dense<__half, 8>(ctx, lin, d_x, tokens, d_y, accumulate);
    }
    if (lin->dtype == SLIM_CUDA_BF16) {
        if (tokens == 1) return launch_dense<bf16_t, 1>(ctx, lin, d_x, tokens, d_y, accumulate);
        if (tokens <= 4) return launch_dense<bf16_t, 4>(ctx, lin, d_x, tokens, d_y, accumulate);
        return launch_dense<bf16_t, 8>(ctx, lin, d_x, tokens, d_y, accumulate);
    }
    if (tokens == 1) return launch_dense<float, 1>(ctx, lin, d_x, tokens, d_y, accumulate);
    if (tokens <= 4) return launch_dense<float, 4>(ctx, lin, d_x, tokens, d_y, accumulate);
    return launch_dense<float, 8>(ctx, lin, d_x, tokens, d_y, accumulate);
}

}  // namespace slim
