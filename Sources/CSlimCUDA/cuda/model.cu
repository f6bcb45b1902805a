// The whole LLaMA decoder on the GPU: weights, KV cache and activations resident; the host sends
// token ids and receives logits or NLLs. Single-token decode steps replay a CUDA graph (the
// step's ~16 launches per layer become one launch); every kernel reads the position from device
// memory, so one graph serves every step.
#include "common.cuh"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

struct slim_cuda_model {
    slim_cuda_context *ctx = nullptr;
    slim_cuda_model_config cfg{};
    int32_t q_dim = 0, kv_dim = 0;
    // Weights.
    void *embedding = nullptr;
    int32_t embedding_dtype = SLIM_CUDA_F32;
    float *final_norm = nullptr;
    std::vector<float *> input_norm, post_norm;
    std::vector<std::array<slim_cuda_linear *, 7>> linears;
    slim_cuda_linear *lm_head = nullptr;
    // Rotary tables [capacity × head_dim/2], KV cache [layer][capacity × kv_dim] of cfg.kv_dtype.
    float *cos_table = nullptr, *sin_table = nullptr;
    char *cache = nullptr;
    // Activations for max_tokens rows.
    float *hidden = nullptr, *normed = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *attn = nullptr;
    float *gate = nullptr, *up = nullptr, *logits = nullptr;
    int32_t *tokens = nullptr, *start = nullptr, *targets = nullptr;
    double *nll = nullptr;
    int32_t position = 0;
    int64_t device_bytes = 0;
    std::vector<void *> allocations;
    slim::XScratch xprep;
    slim::Scratch attn_partials;  // sized at creation for every row count (no growth while capturing)
    // Decode graph.
    bool use_graph = true, graph_failed = false;
    cudaGraphExec_t decode_graph = nullptr;

    size_t cache_layer_bytes() const { return (size_t)cfg.capacity * kv_dim * slim::dtype_bytes(cfg.kv_dtype); }
    void *keys(int32_t layer) const { return cache + 2 * layer * cache_layer_bytes(); }
    void *values(int32_t layer) const { return cache + (2 * layer + 1) * cache_layer_bytes(); }
};

namespace slim {

static int model_alloc(slim_cuda_model *m, void **out, size_t bytes, const char *what) {
    char label[160];
    snprintf(label, sizeof(label), "cudaMalloc(%zu bytes for the model's %s)", bytes, what);
    cudaError_t e = cudaMalloc(out, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
        *out = nullptr;
        set_cuda_error(e, label, __FILE__, __LINE__);
        return 1;
    }
    m->allocations.push_back(*out);
    m->device_bytes += (int64_t)bytes;
    return 0;
}

// Copies host memory to the device on the context's stream and waits (the source is the caller's).
static int upload_sync(slim_cuda_context *ctx, void *d_dst, const void *src, size_t bytes, const char *what) {
    char label[160];
    snprintf(label, sizeof(label), "upload of %s", what);
    cudaError_t e = cudaMemcpyAsync(d_dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(ctx->stream);
    if (e != cudaSuccess) {
        set_cuda_error(e, label, __FILE__, __LINE__);
        return 1;
    }
    return 0;
}

static const char *const kind_names[8] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                          "gate_proj", "up_proj", "down_proj", "lm_head"};

// Weights changed: a captured decode graph would still use the old ones.
static void drop_graph(slim_cuda_model *m) {
    if (m->decode_graph != nullptr) {
        cudaStreamSynchronize(m->ctx->stream);
        cudaGraphExecDestroy(m->decode_graph);
        m->decode_graph = nullptr;
    }
}

static int check_complete(const slim_cuda_model *m) {
    SLIM_REQUIRE(m->embedding != nullptr, "model: the embedding was not uploaded");
    SLIM_REQUIRE(m->final_norm != nullptr, "model: the final norm was not uploaded");
    SLIM_REQUIRE(m->lm_head != nullptr, "model: the classifier (lm_head) was not uploaded");
    for (int32_t l = 0; l < m->cfg.layers; l++) {
        SLIM_REQUIRE(m->input_norm[l] && m->post_norm[l], "model: layer %d norms were not uploaded", l);
        for (int kind = 0; kind < 7; kind++) {
            SLIM_REQUIRE(m->linears[l][kind] != nullptr, "model: layer %d %s was not uploaded", l, kind_names[kind]);
        }
    }
    return 0;
}

// Prepares x once for the packed linears among `lins` (none when all are dense).
static int prepare_for(slim_cuda_model *m, const float *x, int32_t rows, int32_t columns,
                       std::initializer_list<const slim_cuda_linear *> lins, XPrep *prep, bool *prepared) {
    *prepared = false;
    for (const slim_cuda_linear *lin : lins) {
        if (lin->packed) {
            SLIM_TRY(prepare_x(m->ctx, m->xprep, x, rows, columns, m->cfg.group_size, prep));
            *prepared = true;
            return 0;
        }
    }
    return 0;
}

// One decoder layer on `rows` rows at positions *start … (tokens and start already on device).
static int run_layer(slim_cuda_model *m, int32_t l, int32_t rows) {
    slim_cuda_context *ctx = m->ctx;
    const slim_cuda_model_config &c = m->cfg;
    const auto &w = m->linears[l];
    XPrep prep;
    bool prepared = false;

    SLIM_TRY(launch_rmsnorm(ctx, m->hidden, m->input_norm[l], m->normed, rows, c.hidden, c.rms_eps));
    SLIM_TRY(prepare_for(m, m->normed, rows, c.hidden, {w[SLIM_CUDA_Q], w[SLIM_CUDA_K], w[SLIM_CUDA_V]}, &prep, &prepared));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_Q], m->normed, rows, prepared ? &prep : nullptr, m->q, false));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_K], m->normed, rows, prepared ? &prep : nullptr, m->k, false));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_V], m->normed, rows, prepared ? &prep : nullptr, m->v, false));
    SLIM_TRY(launch_rope(ctx, m->q, rows, m->q_dim, c.heads, c.head_dim, m->cos_table, m->sin_table, m->start, m->q,
                         SLIM_CUDA_F32, m->q_dim, false));
    SLIM_TRY(launch_rope(ctx, m->k, rows, m->kv_dim, c.kv_heads, c.head_dim, m->cos_table, m->sin_table, m->start,
                         m->keys(l), c.kv_dtype, m->kv_dim, true));
    SLIM_TRY(launch_copy_rows(ctx, m->v, rows, m->kv_dim, m->start, m->values(l), c.kv_dtype));
    SLIM_TRY(launch_attention(ctx, m->q, m->keys(l), m->values(l), c.kv_dtype, m->attn, rows, m->start, c.heads,
                              c.kv_heads, c.head_dim, c.capacity, m->attn_partials));
    SLIM_TRY(prepare_for(m, m->attn, rows, m->q_dim, {w[SLIM_CUDA_O]}, &prep, &prepared));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_O], m->attn, rows, prepared ? &prep : nullptr, m->hidden, true));

    SLIM_TRY(launch_rmsnorm(ctx, m->hidden, m->post_norm[l], m->normed, rows, c.hidden, c.rms_eps));
    SLIM_TRY(prepare_for(m, m->normed, rows, c.hidden, {w[SLIM_CUDA_GATE], w[SLIM_CUDA_UP]}, &prep, &prepared));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_GATE], m->normed, rows, prepared ? &prep : nullptr, m->gate, false));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_UP], m->normed, rows, prepared ? &prep : nullptr, m->up, false));
    SLIM_TRY(launch_silu_mul(ctx, m->gate, m->up, m->gate, (int64_t)rows * c.intermediate));
    SLIM_TRY(prepare_for(m, m->gate, rows, c.intermediate, {w[SLIM_CUDA_DOWN]}, &prep, &prepared));
    SLIM_TRY(linear_forward(ctx, w[SLIM_CUDA_DOWN], m->gate, rows, prepared ? &prep : nullptr, m->hidden, true));
    return 0;
}

// Embedding, every layer, then the final norm and classifier for rows first … first + count − 1
// into m->logits (count = 0: none).
static int run_block(slim_cuda_model *m, int32_t rows, int32_t first, int32_t count) {
    const slim_cuda_model_config &c = m->cfg;
    SLIM_TRY(launch_embed(m->ctx, m->embedding, m->embedding_dtype, m->tokens, rows, c.hidden, m->hidden));
    for (int32_t l = 0; l < c.layers; l++) SLIM_TRY(run_layer(m, l, rows));
    if (count == 0) return 0;
    SLIM_TRY(launch_rmsnorm(m->ctx, m->hidden + (size_t)first * c.hidden, m->final_norm, m->normed, count, c.hidden,
                            c.rms_eps));
    // The model's own scratch, as every linear of it: the context's could be regrown (freed) by a
    // later caller while a captured decode graph still points into it.
    XPrep prep;
    bool prepared = false;
    SLIM_TRY(prepare_for(m, m->normed, count, c.hidden, {m->lm_head}, &prep, &prepared));
    return linear_forward(m->ctx, m->lm_head, m->normed, count, prepared ? &prep : nullptr, m->logits, false);
}

static int set_position(slim_cuda_model *m, const int32_t *tokens, int32_t rows) {
    slim_cuda_context *ctx = m->ctx;
    SLIM_CHECK(cudaMemcpyAsync(m->tokens, tokens, sizeof(int32_t) * rows, cudaMemcpyHostToDevice, ctx->stream));
    SLIM_CHECK(cudaMemcpyAsync(m->start, &m->position, sizeof(int32_t), cudaMemcpyHostToDevice, ctx->stream));
    return 0;
}

// One decode step through the captured graph (captured on first use; direct launches when
// capture is impossible, e.g. under SLIM_CUDA_SYNC=1).
static int decode_step(slim_cuda_model *m, int32_t token) {
    slim_cuda_context *ctx = m->ctx;
    SLIM_TRY(set_position(m, &token, 1));
    if (!m->use_graph || m->graph_failed || ctx->debug_sync) return run_block(m, 1, 0, 1);
    if (m->decode_graph == nullptr) {
        cudaGraph_t graph = nullptr;
        SLIM_CHECK(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal));
        ctx->capturing = true;
        const int status = run_block(m, 1, 0, 1);
        ctx->capturing = false;
        const cudaError_t end = cudaStreamEndCapture(ctx->stream, &graph);
        cudaError_t inst = cudaErrorUnknown;
        if (status == 0 && end == cudaSuccess) inst = cudaGraphInstantiate(&m->decode_graph, graph, 0);
        if (graph != nullptr) cudaGraphDestroy(graph);
        if (status != 0 || end != cudaSuccess || inst != cudaSuccess) {
            (void)cudaGetLastError();  // capture problems are not sticky: run without a graph
            m->decode_graph = nullptr;
            m->graph_failed = true;
            fprintf(stderr, "slim-cuda: decode graph unavailable (%s); launching kernels directly\n",
                    status != 0 ? slim_cuda_last_error() : cudaGetErrorString(end != cudaSuccess ? end : inst));
            return run_block(m, 1, 0, 1);
        }
    }
    SLIM_CHECK(cudaGraphLaunch(m->decode_graph, ctx->stream));
    return 0;
}

}  // namespace slim

using namespace slim;

SLIM_EXPORT void slim_cuda_model_destroy(slim_cuda_model *m) {
    if (m == nullptr) return;
    if (m->ctx != nullptr) cudaStreamSynchronize(m->ctx->stream);
    if (m->decode_graph != nullptr) cudaGraphExecDestroy(m->decode_graph);
    for (auto &layer : m->linears)
        for (slim_cuda_linear *lin : layer) slim_cuda_linear_destroy(lin);
    slim_cuda_linear_destroy(m->lm_head);
    for (void *p : m->allocations) cudaFree(p);
    release(m->xprep.xb);
    release(m->xprep.sums);
    release(m->xprep.scales);
    release(m->attn_partials);
    delete m;
}

SLIM_EXPORT int slim_cuda_model_create(slim_cuda_context *ctx, const slim_cuda_model_config *config,
                                       const float *rope_cos, const float *rope_sin, slim_cuda_model **out) {
    *out = nullptr;
    const slim_cuda_model_config c = *config;
    SLIM_REQUIRE(c.hidden >= 1 && c.intermediate >= 1 && c.layers >= 1 && c.heads >= 1 && c.kv_heads >= 1 &&
                     c.heads % c.kv_heads == 0 && c.vocab >= 1 && c.capacity >= 1 && c.max_tokens >= 1 &&
                     c.group_size >= 0,
                 "model_create: invalid configuration");
    SLIM_REQUIRE(attention_shared_bytes(c.head_dim) > 0 && c.head_dim % 2 == 0,
                 "model_create: head_dim %d is not supported on the GPU (even, 2…256)", c.head_dim);
    SLIM_REQUIRE(kv_dtype_supported(c.kv_dtype), "model_create: KV-cache dtype %d is not supported (F32, F16 or BF16)",
                 c.kv_dtype);
    auto *m = new (std::nothrow) slim_cuda_model();
    SLIM_REQUIRE(m != nullptr, "out of host memory");
    m->ctx = ctx;
    m->cfg = c;
    m->q_dim = c.heads * c.head_dim;
    m->kv_dim = c.kv_heads * c.head_dim;
    m->input_norm.assign((size_t)c.layers, nullptr);
    m->post_norm.assign((size_t)c.layers, nullptr);
    m->linears.assign((size_t)c.layers, {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr});
    const char *graphs = getenv("SLIM_CUDA_GRAPHS");
    m->use_graph = !(graphs != nullptr && graphs[0] == '0');

    const size_t t = (size_t)c.max_tokens, half = (size_t)c.head_dim / 2;
    const size_t widest = (size_t)std::max(std::max(c.hidden, m->q_dim), c.intermediate);
    int s = 0;
    auto alloc = [&](void *field, size_t bytes, const char *what) {
        if (s == 0) s = model_alloc(m, (void **)field, bytes, what);
    };
    alloc(&m->cos_table, sizeof(float) * c.capacity * half, "rotary table");
    alloc(&m->sin_table, sizeof(float) * c.capacity * half, "rotary table");
    alloc(&m->cache, 2 * (size_t)c.layers * m->cache_layer_bytes(), "KV cache");
    alloc(&m->hidden, sizeof(float) * t * c.hidden, "activations");
    alloc(&m->normed, sizeof(float) * t * c.hidden, "activations");
    alloc(&m->q, sizeof(float) * t * m->q_dim, "activations");
    alloc(&m->k, sizeof(float) * t * m->kv_dim, "activations");
    alloc(&m->v, sizeof(float) * t * m->kv_dim, "activations");
    alloc(&m->attn, sizeof(float) * t * m->q_dim, "activations");
    alloc(&m->gate, sizeof(float) * t * c.intermediate, "activations");
    alloc(&m->up, sizeof(float) * t * c.intermediate, "activations");
    alloc(&m->logits, sizeof(float) * t * c.vocab, "logits");
    alloc(&m->tokens, sizeof(int32_t) * t, "token ids");
    alloc(&m->targets, sizeof(int32_t) * t, "token ids");
    alloc(&m->start, sizeof(int32_t), "position");
    alloc(&m->nll, sizeof(double) * t, "NLL");
    // Scratch sized now so that no allocation happens while a decode graph is captured.
    if (s == 0 && c.group_size > 0) s = reserve_xprep(ctx, m->xprep, c.max_tokens, (int32_t)widest, c.group_size);
    size_t partial_bytes = 0;
    for (int32_t rows = 1; rows <= c.max_tokens; rows++) {
        partial_bytes = std::max(partial_bytes, attention_partial_bytes(ctx, rows, c.heads, c.kv_heads, c.head_dim,
                                                                        c.capacity));
    }
    if (s == 0) s = reserve(ctx, m->attn_partials, partial_bytes, "attention partials");
    // On the context's stream (non-blocking: a plain cudaMemcpy on the legacy stream would not be
    // ordered before its kernels), then waited for: the tables are the caller's memory.
    if (s == 0) s = upload_sync(ctx, m->cos_table, rope_cos, sizeof(float) * c.capacity * half, "the rotary tables");
    if (s == 0) s = upload_sync(ctx, m->sin_table, rope_sin, sizeof(float) * c.capacity * half, "the rotary tables");
    if (s != 0) {
        slim_cuda_model_destroy(m);
        return 1;
    }
    *out = m;
    return 0;
}

SLIM_EXPORT int slim_cuda_model_set_embedding(slim_cuda_model *m, int32_t dtype, const void *weights,
                                              int32_t tied_lm_head) {
    SLIM_REQUIRE(dtype_bytes(dtype) != 0, "model_set_embedding: unknown dtype %d", dtype);
    SLIM_REQUIRE(m->embedding == nullptr, "model_set_embedding: the embedding is already set");
    drop_graph(m);
    const size_t bytes = (size_t)m->cfg.vocab * m->cfg.hidden * dtype_bytes(dtype);
    SLIM_TRY(model_alloc(m, &m->embedding, bytes, "embedding"));
    SLIM_TRY(upload_sync(m->ctx, m->embedding, weights, bytes, "the embedding"));
    m->embedding_dtype = dtype;
    if (tied_lm_head) {
        auto *head = new (std::nothrow) slim_cuda_linear();
        SLIM_REQUIRE(head != nullptr, "out of host memory");
        head->rows = m->cfg.vocab;
        head->cols = m->cfg.hidden;
        head->dtype = dtype;
        head->weights = m->embedding;
        head->owns_weights = false;
        slim_cuda_linear_destroy(m->lm_head);
        m->lm_head = head;
    }
    return 0;
}

SLIM_EXPORT int slim_cuda_model_set_norm(slim_cuda_model *m, int32_t layer, int32_t which, const float *weights) {
    SLIM_REQUIRE(layer >= -1 && layer < m->cfg.layers && (layer == -1 || which == 0 || which == 1),
                 "model_set_norm: no norm %d in layer %d", which, layer);
    drop_graph(m);
    float *&slot = layer == -1 ? m->final_norm : (which == 0 ? m->input_norm[layer] : m->post_norm[layer]);
    if (slot == nullptr) SLIM_TRY(model_alloc(m, (void **)&slot, sizeof(float) * m->cfg.hidden, "norm weights"));
    SLIM_TRY(upload_sync(m->ctx, slot, weights, sizeof(float) * m->cfg.hidden, "norm weights"));
    return 0;
}

SLIM_EXPORT int slim_cuda_model_set_linear(slim_cuda_model *m, int32_t layer, int32_t kind, slim_cuda_linear *lin) {
    const slim_cuda_model_config &c = m->cfg;
    const bool head = layer == -1 && kind == SLIM_CUDA_LM_HEAD;
    SLIM_REQUIRE(head || (layer >= 0 && layer < c.layers && kind >= 0 && kind < 7),
                 "model_set_linear: no slot %d in layer %d", kind, layer);
    int32_t rows = 0, cols = c.hidden;
    switch (kind) {
    case SLIM_CUDA_Q: rows = m->q_dim; break;
    case SLIM_CUDA_K:
    case SLIM_CUDA_V: rows = m->kv_dim; break;
    case SLIM_CUDA_O: rows = c.hidden; cols = m->q_dim; break;
    case SLIM_CUDA_GATE:
    case SLIM_CUDA_UP: rows = c.intermediate; break;
    case SLIM_CUDA_DOWN: rows = c.hidden; cols = c.intermediate; break;
    default: rows = c.vocab; break;
    }
    SLIM_REQUIRE(lin->rows == rows && lin->cols == cols, "model_set_linear: layer %d %s is %d×%d, expected %d×%d", layer,
                 kind_names[kind], lin->rows, lin->cols, rows, cols);
    SLIM_REQUIRE(!lin->packed || lin->group_size == c.group_size,
                 "model_set_linear: layer %d %s has group size %d, the model %d", layer, kind_names[kind],
                 lin->group_size, c.group_size);
    drop_graph(m);
    slim_cuda_linear *&slot = head ? m->lm_head : m->linears[layer][kind];
    if (slot != nullptr && slot->owns_weights) m->device_bytes -= slim_cuda_linear_weight_bytes(slot);
    slim_cuda_linear_destroy(slot);
    slot = lin;
    m->device_bytes += slim_cuda_linear_weight_bytes(lin);
    return 0;
}

SLIM_EXPORT int slim_cuda_model_reset(slim_cuda_model *m) {
    m->position = 0;
    return 0;
}

SLIM_EXPORT int slim_cuda_model_position(slim_cuda_model *m, int32_t *out) {
    *out = m->position;
    return 0;
}

static int validate_tokens(const slim_cuda_model *m, const int32_t *tokens, int32_t count) {
    SLIM_REQUIRE(count >= 1, "model: no tokens");
    SLIM_REQUIRE(count <= m->cfg.capacity - m->position,
                 "context full: %d + %d tokens exceed the GPU KV cache capacity %d", m->position, count, m->cfg.capacity);
    for (int32_t i = 0; i < count; i++) {
        SLIM_REQUIRE(tokens[i] >= 0 && tokens[i] < m->cfg.vocab,
                     "token id %d at position %d is outside the vocabulary (0..<%d)", tokens[i], i, m->cfg.vocab);
    }
    return check_complete(m);
}

SLIM_EXPORT int slim_cuda_model_forward(slim_cuda_model *m, const int32_t *tokens, int32_t count, int32_t logits_mode,
                                        float *logits) {
    SLIM_TRY(validate_tokens(m, tokens, count));
    SLIM_REQUIRE(logits_mode >= SLIM_CUDA_LOGITS_NONE && logits_mode <= SLIM_CUDA_LOGITS_ALL,
                 "model_forward: unknown logits mode %d", logits_mode);
    slim_cuda_context *ctx = m->ctx;
    const size_t vocab = (size_t)m->cfg.vocab;
    if (count == 1 && logits_mode == SLIM_CUDA_LOGITS_LAST) {
        SLIM_TRY(decode_step(m, tokens[0]));
        m->position += 1;
        SLIM_CHECK(cudaMemcpyAsync(logits, m->logits, sizeof(float) * vocab, cudaMemcpyDeviceToHost, ctx->stream));
        SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
        return 0;
    }
    for (int32_t offset = 0; offset < count;) {
        const int32_t rows = std::min(m->cfg.max_tokens, count - offset);
        const bool final_block = offset + rows == count;
        int32_t first = 0, n = 0;
        if (logits_mode == SLIM_CUDA_LOGITS_ALL) n = rows;
        if (logits_mode == SLIM_CUDA_LOGITS_LAST && final_block) {
            first = rows - 1;
            n = 1;
        }
        SLIM_TRY(set_position(m, tokens + offset, rows));
        SLIM_TRY(run_block(m, rows, first, n));
        m->position += rows;
        if (n > 0) {
            float *dst = logits + (logits_mode == SLIM_CUDA_LOGITS_ALL ? (size_t)offset * vocab : 0);
            SLIM_CHECK(cudaMemcpyAsync(dst, m->logits, sizeof(float) * n * vocab, cudaMemcpyDeviceToHost, ctx->stream));
        }
        SLIM_CHECK(cudaStreamSynchronize(ctx->stream));  // the token upload reads the caller's buffer
        offset += rows;
    }
    return 0;
}

SLIM_EXPORT int slim_cuda_model_nll(slim_cuda_model *m, const int32_t *tokens, int32_t count, double *nll) {
    m->position = 0;
    SLIM_TRY(validate_tokens(m, tokens, count));
    slim_cuda_context *ctx = m->ctx;
    for (int32_t offset = 0; offset < count;) {
        const int32_t rows = std::min(m->cfg.max_tokens, count - offset);
        // Row r predicts token offset + r + 1; the window's last row has no target.
        const int32_t scored = std::min(rows, count - 1 - offset);
        SLIM_TRY(set_position(m, tokens + offset, rows));
        SLIM_TRY(run_block(m, rows, 0, scored));
        if (scored > 0) {
            SLIM_CHECK(cudaMemcpyAsync(m->targets, tokens + offset + 1, sizeof(int32_t) * scored, cudaMemcpyHostToDevice,
                                       ctx->stream));
            SLIM_TRY(launch_nll(ctx, m->logits, m->targets, scored, m->cfg.vocab, m->nll));
            SLIM_CHECK(cudaMemcpyAsync(nll + offset, m->nll, sizeof(double) * scored, cudaMemcpyDeviceToHost, ctx->stream));
        }
        SLIM_CHECK(cudaStreamSynchronize(ctx->stream));
        m->position += rows;
        offset += rows;
    }
    return 0;
}

SLIM_EXPORT int64_t slim_cuda_model_device_bytes(const slim_cuda_model *m) { return m->device_bytes; }
