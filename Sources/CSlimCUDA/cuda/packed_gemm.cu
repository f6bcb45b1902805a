// The mixed 1…8-bit packed GEMV (decode) and small-batch GEMM (prefill): tensor-core mma over
// codes decoded to exact fp16 integers, activations as fp16 hi + lo, fp32 accumulation, the
// group's affine map (incl. the 1-bit mean μ) applied per (row, group). Layout and decode:
// include/slim_cuda_layout.h.
//
// Work split: a block owns MT row tiles (16 rows each) × NT n-tiles (4 tokens each); its W warps
// take the groups g = warp, warp + W, … and walk them slab by slab, loading the next slabs' code
// words while the current ones are multiplied (one coalesced 128-byte row per word). Each warp
// keeps its partial sums in registers; the W partials are summed in shared memory in warp order
// (deterministic, no atomics) and written once, scaled back by the token's power of two.
#include "common.cuh"

#include <cstdlib>

namespace slim {

// MARK: - Activation preparation

// One block per token slot t < ntiles·4 (slots ≥ tokens write zeros): the token's power-of-two
// scale, the per-group sums Σx̃, and its hi/lo words of the B fragments.
__global__ void __launch_bounds__(256) prep_x_kernel(const float *__restrict__ x, int32_t tokens, int32_t columns,
                                                     int32_t group_size, int32_t groups, int32_t k_tiles,
                                                     uint32_t *__restrict__ xb, float *__restrict__ sums,
                                                     float *__restrict__ scales) {
    __shared__ float scratch[32];
    const int32_t t = blockIdx.x;
    const bool real = t < tokens;
    const float *row = x + (size_t)(real ? t : 0) * columns;

    float m = 0.0f;
    if (real) {
        for (int32_t c = threadIdx.x; c < columns; c += blockDim.x) m = fmaxf(m, fabsf(row[c]));
    }
    m = block_max(m, scratch);
    int32_t e = 0;
    if (m > 0.0f && isfinite(m)) {
        int32_t exponent;
        frexpf(m, &exponent);           // m = f·2^exponent, f in [0.5, 1)
        e = max(exponent - 14, -100);   // m·2^−e in [2^13, 2^14)
    }
    const float inverse = ldexpf(1.0f, -e);
    if (threadIdx.x == 0) scales[t] = real ? ldexpf(1.0f, e) : 0.0f;

    const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int32_t g = warp; g < groups; g += warps) {
        const int32_t first = g * group_size, width = min(group_size, columns - first);
        float s = 0.0f;
        if (real) {
            for (int32_t j = lane; j < width; j += 32) s += row[first + j] * inverse;
        }
        s = warp_sum(s);
        if (lane == 0) sums[(size_t)t * groups + g] = s;
    }

    // This token is column n0 (hi) and n0 + 1 (lo) of n-tile t / 4: lanes 4·n + tig.
    const int32_t nt = t / 4, n0 = 2 * (t % 4);
    for (int32_t w = threadIdx.x; w < k_tiles * 16; w += blockDim.x) {
        const int32_t kt = w / 16, part = (w / 8) % 2, tig = (w / 2) % 4, j = w % 2;
        const int32_t lane_b = (n0 + part) * 4 + tig;
        uint32_t word = 0;
#pragma unroll
        for (int32_t h = 0; h < 2; h++) {
            const int32_t kp = kt * SLIM_LAYOUT_KTILE + slim_frag_b_k(lane_b, j, h);
            const int32_t c = slim_layout_real_column(kp, group_size, columns);
            const float v = (real && c >= 0) ? row[c] * inverse : 0.0f;
            const __half hi = __float2half_rn(v);
            const __half lo = __float2half_rn(v - __half2float(hi));
            const uint16_t bits = __half_as_ushort(part == 0 ? hi : lo);
            word |= (uint32_t)bits << (16 * h);
        }
        xb[slim_layout_xb_index(nt, kt, k_tiles, lane_b, j)] = word;
    }
}

// MARK: - The mma

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef SLIM_CUDA_EMULATOR
    slim_emu::mma_m16n8k16(c, a, b0, b1);
#else
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

struct PackedArgs {
    const uint32_t *words;
    const uint2 *params;
    const int2 *groups;      // {word offset within a tile, bits}
    const uint2 *xb;
    const float *sums;
    const float *scales;
    const float *bias;
    float *y;
    int64_t tile_words;
    int32_t rows, tokens, k_count, k_tiles, slabs, row_tiles, ntiles, accumulate;
};

// One slab (4 k-tiles) of b = B bits: decode each lane's pairs and multiply with NT n-tiles.
// WB ≥ B is the word buffer's size (the widest group of the matrix rounded to 4 or 8).
template <int B, int MT, int NT, int WB>
__device__ __forceinline__ void slab_mma(const uint32_t (&w)[MT][WB], const PackedArgs &p, int32_t kt0, int32_t nt0,
                                         int32_t lane, const int32_t (&b_rows)[NT], float (&c)[MT][NT][4]) {
#pragma unroll
    for (int kt = 0; kt < 4; kt++) {
        uint32_t b0[NT], b1[NT];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            uint2 v = make_uint2(0u, 0u);
            // Columns of tokens beyond the batch are zero in xb: lanes holding only those skip the load.
            if ((lane >> 2) < b_rows[nt]) v = __ldg(&p.xb[((size_t)(nt0 + nt) * p.k_tiles + kt0 + kt) * 32 + lane]);
            b0[nt] = v.x;
            b1[nt] = v.y;
        }
#pragma unroll
        for (int m = 0; m < MT; m++) {
            uint32_t a[4];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = slim_layout_decode_pair(w[m], B, kt * 4 + r);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) mma_16816(c[m][nt], a, b0[nt], b1[nt]);
        }
    }
}

template <int MT, int NT, int WB>
__device__ __forceinline__ void slab_dispatch(int32_t bits, const uint32_t (&w)[MT][WB], const PackedArgs &p,
                                              int32_t kt0, int32_t nt0, int32_t lane, const int32_t (&b_rows)[NT],
                                              float (&c)[MT][NT][4]) {
    // Warp-uniform: every row of a group has the same width. With WB = 4 the host guarantees
    // bits ≤ 4, so the wider cases are not even instantiated.
    if constexpr (WB == 4) {
        switch (bits) {
        case 1: slab_mma<1, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 2: slab_mma<2, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 3: slab_mma<3, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        default: slab_mma<4, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        }
    } else {
        static_assert(WB == 8, "slab buffers hold 4 or 8 words");
        switch (bits) {
        case 1: slab_mma<1, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 2: slab_mma<2, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 3: slab_mma<3, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 4: slab_mma<4, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 5: slab_mma<5, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 6: slab_mma<6, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        case 7: slab_mma<7, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        default: slab_mma<8, MT, NT, WB>(w, p, kt0, nt0, lane, b_rows, c); break;
        }
    }
}

// Loads a lane's words of slab s of group g for MT row tiles (rows beyond the matrix read 0).
template <int MT, int WB>
__device__ __forceinline__ int32_t load_slab(const PackedArgs &p, int32_t tile0, int32_t g, int32_t s, int32_t lane,
                                             uint32_t (&w)[MT][WB]) {
    const int2 meta = __ldg(&p.groups[g]);
    const int32_t b = meta.y;
#pragma unroll
    for (int m = 0; m < MT; m++) {
        const bool inside = tile0 + m < p.row_tiles;
        const uint32_t *base = p.words + (size_t)(tile0 + m) * p.tile_words + meta.x + (size_t)s * b * 32 + lane;
#pragma unroll
        for (int i = 0; i < WB; i++) w[m][i] = (inside && i < b) ? __ldcs(base + i * 32) : 0u;
    }
    return b;
}

// Per-warp state of the group being accumulated: its affine maps, Σx̃ of the lane's tokens and
// the mma accumulators, and the running outputs.
template <int MT, int NT>
struct WarpState {
    float a[MT][2], o[MT][2], sx[NT], c[MT][NT][4];
    float y[MT][NT][2];
};

// Unit u of a warp (its u-th slab): group warp + (u / slabs)·W, slab u mod slabs.
__device__ __forceinline__ void unit_position(const PackedArgs &p, int32_t warp, int32_t warps, int32_t u, int32_t *g,
                                              int32_t *s) {
    *g = warp + (u / p.slabs) * warps;
    *s = u % p.slabs;
}

// Multiplies one unit (slab s of group g, words `w`) into the state: group start loads the
// affine maps and Σx̃, group end folds the group into the outputs.
template <int MT, int NT, int WB>
__device__ __forceinline__ void process_unit(const PackedArgs &p, int32_t g, int32_t s, int32_t bits,
                                             const uint32_t (&w)[MT][WB], int32_t tile0, int32_t nt0, int32_t lane,
                                             const int32_t (&b_rows)[NT], WarpState<MT, NT> &st) {
    if (s == 0) {
#pragma unroll
        for (int m = 0; m < MT; m++) {
            uint2 prm = make_uint2(0u, 0u);
            if (tile0 + m < p.row_tiles) prm = __ldg(&p.params[((size_t)(tile0 + m) * p.k_count + g) * 8 + (lane >> 2)]);
            slim_layout_affine(prm.x, bits, &st.a[m][0], &st.o[m][0]);
            slim_layout_affine(prm.y, bits, &st.a[m][1], &st.o[m][1]);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) st.c[m][nt][0] = st.c[m][nt][1] = st.c[m][nt][2] = st.c[m][nt][3] = 0.0f;
        }
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int32_t token = 4 * (nt0 + nt) + (lane & 3);
            st.sx[nt] = token < p.tokens ? __ldg(&p.sums[(size_t)token * p.k_count + g]) : 0.0f;
        }
    }
    slab_dispatch<MT, NT, WB>(bits, w, p, (g * p.slabs + s) * 4, nt0, lane, b_rows, st.c);
    if (s == p.slabs - 1) {  // y += a·Σq·x̃ + o·Σx̃ (the hi and lo columns summed)
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                st.y[m][nt][0] += st.a[m][0] * (st.c[m][nt][0] + st.c[m][nt][1]) + st.o[m][0] * st.sx[nt];
                st.y[m][nt][1] += st.a[m][1] * (st.c[m][nt][2] + st.c[m][nt][3]) + st.o[m][1] * st.sx[nt];
            }
    }
}

// UNITS slabs are processed per step while the next UNITS are loaded: the decode GEMV is bound by
// how many bytes of code words are in flight, so it keeps 2–8 slabs loading per warp (WB words
// per slab in registers: 4 when every group has ≤ 4 bits, which halves the buffer and lets twice
// the slabs fit); prefill is compute-bound and takes 1. MINB: blocks per SM to fit registers for.
template <int MT, int NT, int UNITS, int WB, int MINB>
__global__ void __launch_bounds__(256, MINB) packed_gemm_kernel(PackedArgs p) {
    SLIM_DYNAMIC_SHARED(float, partial);  // [W][MT·16][NT·4]
    constexpr int RT = MT * 16, TT = NT * 4;
    const int32_t warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int32_t tile0 = blockIdx.x * MT, nt0 = blockIdx.y * NT;
    int32_t b_rows[NT];  // B-fragment columns (n) holding real tokens: 2 per token
#pragma unroll
    for (int nt = 0; nt < NT; nt++) b_rows[nt] = 2 * max(0, min(4, p.tokens - 4 * (nt0 + nt)));

    WarpState<MT, NT> st;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) st.y[m][nt][0] = st.y[m][nt][1] = 0.0f;

    // This warp's slabs: groups warp, warp + W, … each of `slabs` slabs.
    const int32_t units = warp < p.k_count ? (p.k_count - warp + warps - 1) / warps * p.slabs : 0;
    uint32_t cur[UNITS][MT][WB], next[UNITS][MT][WB];
    int32_t cur_bits[UNITS], next_bits[UNITS];
#pragma unroll
    for (int k = 0; k < UNITS; k++) {
        cur_bits[k] = 0;
        if (k < units) {
            int32_t g, s;
            unit_position(p, warp, warps, k, &g, &s);
            cur_bits[k] = load_slab<MT, WB>(p, tile0, g, s, lane, cur[k]);
        }
    }
    for (int32_t u0 = 0; u0 < units; u0 += UNITS) {
#pragma unroll
        for (int k = 0; k < UNITS; k++) {  // prefetch
            next_bits[k] = 0;
            if (u0 + UNITS + k < units) {
                int32_t g, s;
                unit_position(p, warp, warps, u0 + UNITS + k, &g, &s);
                next_bits[k] = load_slab<MT, WB>(p, tile0, g, s, lane, next[k]);
            }
        }
#pragma unroll
        for (int k = 0; k < UNITS; k++) {
            if (u0 + k < units) {
                int32_t g, s;
                unit_position(p, warp, warps, u0 + k, &g, &s);
                process_unit<MT, NT, WB>(p, g, s, cur_bits[k], cur[k], tile0, nt0, lane, b_rows, st);
            }
        }
#pragma unroll
        for (int k = 0; k < UNITS; k++) {
            cur_bits[k] = next_bits[k];
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int i = 0; i < WB; i++) cur[k][m][i] = next[k][m][i];
        }
    }
    const auto &yacc = st.y;

    // Cross-warp reduction in warp order; one thread per (row, token) writes the result.
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const int32_t r0 = m * 16 + slim_frag_c_row(lane, 0), r1 = m * 16 + slim_frag_c_row(lane, 2);
            const int32_t col = nt * 4 + (lane & 3);
            partial[((size_t)warp * RT + r0) * TT + col] = yacc[m][nt][0];
            partial[((size_t)warp * RT + r1) * TT + col] = yacc[m][nt][1];
        }
    __syncthreads();
    for (int32_t e = threadIdx.x; e < RT * TT; e += blockDim.x) {
        const int32_t row = tile0 * 16 + e / TT, token = nt0 * 4 + e % TT;
        if (row >= p.rows || token >= p.tokens) continue;
        float sum = 0.0f;
        for (int32_t w = 0; w < warps; w++) sum += partial[(size_t)w * RT * TT + e];
        float v = sum * p.scales[token];
        if (p.bias != nullptr) v += p.bias[row];
        float *dst = p.y + (size_t)token * p.rows + row;
        *dst = p.accumulate ? *dst + v : v;
    }
}

// MARK: - Host side

static int next_pow2(int v) {
    int p = 1;
    while (p < v) p <<= 1;
    return p;
}

int reserve_xprep(slim_cuda_context *ctx, XScratch &scratch, int32_t tokens, int32_t columns, int32_t group_size) {
    const int32_t k = slim_layout_groups(columns, group_size);
    const int64_t k_tiles = (int64_t)k * slim_layout_padded_group(group_size) / SLIM_LAYOUT_KTILE;
    const int64_t ntiles = (tokens + 3) / 4;
    SLIM_TRY(reserve(ctx, scratch.xb, sizeof(uint2) * (size_t)(ntiles * k_tiles * 32), "activation"));
    SLIM_TRY(reserve(ctx, scratch.sums, sizeof(float) * (size_t)(ntiles * 4 * k), "group-sum"));
    SLIM_TRY(reserve(ctx, scratch.scales, sizeof(float) * (size_t)(ntiles * 4), "token-scale"));
    return 0;
}

int prepare_x(slim_cuda_context *ctx, XScratch &scratch, const float *d_x, int32_t tokens, int32_t columns,
              int32_t group_size, XPrep *out) {
    SLIM_REQUIRE(tokens >= 1 && columns >= 1 && group_size >= 1, "prepare_x: bad shape %d×%d (group size %d)", tokens,
                 columns, group_size);
    SLIM_TRY(reserve_xprep(ctx, scratch, tokens, columns, group_size));
    const int32_t k = slim_layout_groups(columns, group_size);
    const int32_t k_tiles = k * slim_layout_padded_group(group_size) / SLIM_LAYOUT_KTILE;
    const int32_t slots = (tokens + 3) / 4 * 4;
    SLIM_LAUNCH(slots, 256, 0, ctx->stream, prep_x_kernel)(d_x, tokens, columns, group_size, k, k_tiles, (uint32_t *)scratch.xb.ptr,
                                                  (float *)scratch.sums.ptr, (float *)scratch.scales.ptr);
    SLIM_KERNEL_CHECK(ctx, "prep_x");
    out->xb = (const uint2 *)scratch.xb.ptr;
    out->sums = (const float *)scratch.sums.ptr;
    out->scales = (const float *)scratch.scales.ptr;
    out->tokens = tokens;
    out->columns = columns;
    out->group_size = group_size;
    return 0;
}

template <int MT, int NT, int UNITS, int WB, int MINB>
static int launch_packed(slim_cuda_context *ctx, const PackedArgs &args, int32_t max_warps) {
    const dim3 grid((unsigned)((args.row_tiles + MT - 1) / MT), (unsigned)((args.ntiles + NT - 1) / NT));
    const int64_t blocks = (int64_t)grid.x * grid.y;
    // Aim for ~32 resident warps per SM (enough loads in flight to stream HBM); at most one
    // warp per group.
    int32_t warps = ctx->warps_override > 0 ? ctx->warps_override
                                             : next_pow2((int)((ctx->multiprocessors * 32 + blocks - 1) / blocks));
    warps = max(1, min(warps, min(max_warps, args.k_count)));
    const size_t shared = sizeof(float) * (size_t)warps * MT * 16 * NT * 4;
    SLIM_LAUNCH(grid, warps * 32, shared, ctx->stream, packed_gemm_kernel<MT, NT, UNITS, WB, MINB>)(args);
    SLIM_KERNEL_CHECK(ctx, "packed_gemm");
    return 0;
}

// The kernel for slab buffers of WB words (4: every group ≤ 4 bits) and this many tokens.
template <int WB>
static int launch_width(slim_cuda_context *ctx, const PackedArgs &p) {
    if (p.tokens <= 4) {
        // Slabs in flight per warp (SLIM_CUDA_DEPTH). Automatic: 8 for ≤ 4-bit matrices (124
        // registers, 2 blocks of 8 warps per SM: ~32 KB of 2-bit codes in flight per SM, what
        // Little's law asks of HBM3 at ~1 µs loaded latency; depth 4 keeps 3 blocks but half
        // the bytes per warp), 4 for wider ones (8-word buffers; depth 8 is not built for them).
        // A model-based choice until `slim-gpu-check --sweep` has been run on a GPU.
        const int32_t depth = ctx->depth_override > 0 ? ctx->depth_override : (WB == 4 ? 8 : 4);
        if (depth == 2) return launch_packed<1, 1, 2, WB, 3>(ctx, p, 8);
        if constexpr (WB == 4) {
            if (depth == 8) return launch_packed<1, 1, 8, WB, 2>(ctx, p, 8);
        }
        return launch_packed<1, 1, 4, WB, WB == 4 ? 3 : 2>(ctx, p, 8);
    }
    if (p.tokens <= 8) return launch_packed<2, 2, 1, WB, 1>(ctx, p, 8);
    return launch_packed<2, 4, 1, WB, 1>(ctx, p, 8);
}

int packed_gemm(slim_cuda_context *ctx, const slim_cuda_linear *lin, const XPrep &x, float *d_y, bool accumulate) {
    SLIM_REQUIRE(lin->packed, "packed_gemm: not a packed linear");
    SLIM_REQUIRE(x.columns == lin->cols && x.group_size == lin->group_size,
                 "packed_gemm: activations prepared for %d columns in groups of %d, linear has %d in groups of %d",
                 x.columns, x.group_size, lin->cols, lin->group_size);
    PackedArgs p;
    p.words = lin->words;
    p.params = lin->params;
    p.groups = lin->group_meta;
    p.xb = x.xb;
    p.sums = x.sums;
    p.scales = x.scales;
    p.bias = lin->bias;
    p.y = d_y;
    p.tile_words = lin->tile_words;
    p.rows = lin->rows;
    p.tokens = x.tokens;
    p.k_count = lin->groups;
    p.k_tiles = lin->groups * lin->slabs * 4;
    p.slabs = lin->slabs;
    p.row_tiles = lin->row_tiles;
    p.ntiles = (x.tokens + 3) / 4;
    p.accumulate = accumulate ? 1 : 0;
    if (lin->rows == 0) return 0;
    return lin->max_bits <= 4 ? launch_width<4>(ctx, p) : launch_width<8>(ctx, p);
}

}  // namespace slim
