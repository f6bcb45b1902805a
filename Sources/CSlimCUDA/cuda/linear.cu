// Linear objects: upload (packed GPU layout or dense fp16/fp32 weights), apply, release.
#include "common.cuh"

#include <cstdio>
#include <new>
#include <vector>

namespace slim {

// Allocates `bytes` of device memory at *d_dst and enqueues a copy of `src` (host or device, as
// `kind` says) into it; the caller synchronises. On failure *d_dst is null.
static int alloc_copy(slim_cuda_context *ctx, void **d_dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                      const char *what) {
    char label[128];
    snprintf(label, sizeof(label), "cudaMalloc(%zu bytes for %s)", bytes, what);
    cudaError_t e = cudaMalloc(d_dst, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
        *d_dst = nullptr;
        set_cuda_error(e, label, __FILE__, __LINE__);
        return 1;
    }
    if (bytes > 0) SLIM_CHECK(cudaMemcpyAsync(*d_dst, src, bytes, kind, ctx->stream));
    return 0;
}

static int upload_copy(slim_cuda_context *ctx, void **d_dst, const void *src, size_t bytes, const char *what) {
    SLIM_TRY(alloc_copy(ctx, d_dst, src, bytes, cudaMemcpyHostToDevice, what));
    SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
    return 0;
}

int linear_forward(slim_cuda_context *ctx, const slim_cuda_linear *lin, const float *d_x, int32_t tokens,
                   const XPrep *prep, float *d_y, bool accumulate) {
    if (!lin->packed) return dense_gemm(ctx, lin, d_x, tokens, d_y, accumulate);
    if (prep != nullptr) return packed_gemm(ctx, lin, *prep, d_y, accumulate);
    XPrep local;
    SLIM_TRY(prepare_x(ctx, ctx->xprep, d_x, tokens, lin->cols, lin->group_size, &local));
    return packed_gemm(ctx, lin, local, d_y, accumulate);
}

// A device copy of d_src (none when d_src is null).
static int device_copy(slim_cuda_context *ctx, void **d_dst, const void *d_src, size_t bytes, const char *what) {
    *d_dst = nullptr;
    return d_src == nullptr ? 0 : alloc_copy(ctx, d_dst, d_src, bytes, cudaMemcpyDeviceToDevice, what);
}

int clone_linear(slim_cuda_context *ctx, const slim_cuda_linear *src, slim_cuda_linear **out) {
    *out = nullptr;
    auto *lin = new (std::nothrow) slim_cuda_linear(*src);
    SLIM_REQUIRE(lin != nullptr, "out of host memory");
    lin->bias = nullptr;
    lin->words = nullptr;
    lin->params = nullptr;
    lin->group_meta = nullptr;
    lin->weights = nullptr;
    lin->owns_weights = true;
    const size_t dense = src->packed ? 0 : (size_t)src->rows * src->cols * dtype_bytes(src->dtype);
    int status = device_copy(ctx, (void **)&lin->bias, src->bias, sizeof(float) * (size_t)src->rows, "a copy of the bias");
    if (status == 0) status = device_copy(ctx, (void **)&lin->words, src->words, 4 * (size_t)src->word_count, "a copy of the packed codes");
    if (status == 0) status = device_copy(ctx, (void **)&lin->params, src->params, 4 * (size_t)src->param_count, "a copy of the packed params");
    if (status == 0) status = device_copy(ctx, (void **)&lin->group_meta, src->group_meta, sizeof(int2) * (size_t)src->groups, "a copy of the group table");
    if (status == 0) status = device_copy(ctx, &lin->weights, src->weights, dense, "a copy of the dense weights");
    if (status == 0) {
        const cudaError_t e = cudaStreamSynchronize(ctx->stream);
        if (e != cudaSuccess) set_cuda_error(e, "cudaStreamSynchronize (copying a linear)", __FILE__, __LINE__);
        status = e == cudaSuccess ? 0 : 1;
    }
    if (status != 0) {
        slim_cuda_linear_destroy(lin);
        return 1;
    }
    *out = lin;
    return 0;
}

}  // namespace slim

using namespace slim;

SLIM_EXPORT void slim_cuda_linear_destroy(slim_cuda_linear *lin) {
    if (lin == nullptr) return;
    cudaDeviceSynchronize();
    cudaFree(lin->bias);
    cudaFree(lin->words);
    cudaFree(lin->params);
    cudaFree(lin->group_meta);
    if (lin->owns_weights) cudaFree(lin->weights);
    delete lin;
}

SLIM_EXPORT int slim_cuda_linear_create_packed(slim_cuda_context *ctx, const slim_cuda_packed_desc *d,
                                               slim_cuda_linear **out) {
    *out = nullptr;
    SLIM_REQUIRE(d->rows >= 1 && d->columns >= 1 && d->group_size >= 1,
                 "linear_create_packed: bad shape %d×%d with group size %d", d->rows, d->columns, d->group_size);
    const int32_t k = slim_layout_groups(d->columns, d->group_size);
    const int64_t words = slim_layout_word_count(d->rows, d->columns, d->group_size, d->bits);
    SLIM_REQUIRE(words >= 0, "linear_create_packed: a group has bits outside 1…8");
    SLIM_REQUIRE(words == d->word_count, "linear_create_packed: %lld code words given, the layout of %d×%d needs %lld",
                 (long long)d->word_count, d->rows, d->columns, (long long)words);
    const int64_t params = slim_layout_param_count(d->rows, d->columns, d->group_size);
    SLIM_REQUIRE(params == d->param_count, "linear_create_packed: %lld param words given, expected %lld",
                 (long long)d->param_count, (long long)params);

    auto *lin = new (std::nothrow) slim_cuda_linear();
    SLIM_REQUIRE(lin != nullptr, "out of host memory");
    lin->packed = true;
    lin->rows = d->rows;
    lin->cols = d->columns;
    lin->group_size = d->group_size;
    lin->groups = k;
    lin->slabs = slim_layout_slabs(d->group_size);
    lin->row_tiles = slim_layout_row_tiles(d->rows);
    lin->word_count = words;
    lin->param_count = params;
    std::vector<int2> meta((size_t)k);
    int64_t offset = 0;
    for (int32_t g = 0; g < k; g++) {
        meta[(size_t)g] = make_int2((int)offset, d->bits[g]);
        lin->max_bits = d->bits[g] > lin->max_bits ? d->bits[g] : lin->max_bits;
        offset += 32 * (int64_t)lin->slabs * d->bits[g];
    }
    lin->tile_words = offset;
    int status = offset <= INT32_MAX ? 0 : 1;
    if (status != 0) set_error("linear_create_packed: a row tile of %lld words is too large", (long long)offset);
    if (status == 0) status = upload_copy(ctx, (void **)&lin->words, d->words, sizeof(uint32_t) * (size_t)words, "packed codes");
    if (status == 0) status = upload_copy(ctx, (void **)&lin->params, d->params, sizeof(uint32_t) * (size_t)params, "packed params");
    if (status == 0) status = upload_copy(ctx, (void **)&lin->group_meta, meta.data(), sizeof(int2) * meta.size(), "group table");
    if (status == 0 && d->bias != nullptr) {
        status = upload_copy(ctx, (void **)&lin->bias, d->bias, sizeof(float) * (size_t)d->rows, "bias");
    }
    if (status != 0) {
        slim_cuda_linear_destroy(lin);
        return 1;
    }
    *out = lin;
    return 0;
}

SLIM_EXPORT int slim_cuda_linear_create_dense(slim_cuda_context *ctx, int32_t rows, int32_t cols, int32_t dtype,
                                              const void *weights, const float *bias, slim_cuda_linear **out) {
    *out = nullptr;
    SLIM_REQUIRE(rows >= 1 && cols >= 1, "linear_create_dense: bad shape %d×%d", rows, cols);
    SLIM_REQUIRE(dtype_bytes(dtype) != 0, "linear_create_dense: unknown dtype %d", dtype);
    auto *lin = new (std::nothrow) slim_cuda_linear();
    SLIM_REQUIRE(lin != nullptr, "out of host memory");
    lin->rows = rows;
    lin->cols = cols;
    lin->dtype = dtype;
    const size_t bytes = (size_t)rows * cols * dtype_bytes(dtype);
    int status = upload_copy(ctx, &lin->weights, weights, bytes, "dense weights");
    if (status == 0 && bias != nullptr) status = upload_copy(ctx, (void **)&lin->bias, bias, sizeof(float) * rows, "bias");
    if (status != 0) {
        slim_cuda_linear_destroy(lin);
        return 1;
    }
    *out = lin;
    return 0;
}

SLIM_EXPORT int slim_cuda_linear_apply(slim_cuda_context *ctx, slim_cuda_linear *lin, const float *d_x, int32_t tokens,
                                       float *d_y, int32_t accumulate) {
    SLIM_REQUIRE(tokens >= 0, "linear_apply: negative token count %d", tokens);
    if (tokens == 0) return 0;
    return linear_forward(ctx, lin, d_x, tokens, nullptr, d_y, accumulate != 0);
}

SLIM_EXPORT int64_t slim_cuda_linear_weight_bytes(const slim_cuda_linear *lin) {
    int64_t bias = lin->bias != nullptr ? 4 * (int64_t)lin->rows : 0;
    if (lin->packed) return 4 * (lin->word_count + lin->param_count) + bias;
    return (int64_t)lin->rows * lin->cols * (int64_t)dtype_bytes(lin->dtype) + bias;
}
