/*
 * slim_cuda_layout.h — the GPU layout of a slim-packed linear: the single source of truth.
 *
 * The host repack (slim_cuda_layout.c), the CUDA kernels (cuda/packed_gemm.cu) and the tests'
 * emulation of the kernel (Tests/SlimCUDATests) all call the inline functions below, so the
 * layout is defined exactly once. docs/FORMAT.md ("GPU layout") describes it in prose.
 *
 * The kernel multiplies with tensor cores: mma.sync.m16n8k16, A = decoded codes (fp16, exact
 * small integers), B = activations split into fp16 hi + lo parts (x = hi + lo to ~22 bits), fp32
 * accumulation; the group's affine map ŵ = a·q + o is applied per (row, group) afterwards:
 *   y_r = Σ_g a_rg·(Σ_j q_rj·x_j) + o_rg·(Σ_j x_j).
 *
 * Geometry (R rows, C columns, group size G, K groups, b_g bits):
 * - Rows are cut into row tiles of 16 (the last padded with zero rows).
 * - Each group is padded to Gp = ⌈G/64⌉·64 columns (padding codes 0, met by zero activations),
 *   cut into slabs of 64 columns = 4 k-tiles of 16.
 * - A lane of the warp holds, per slab, 4 k-tiles × 4 A registers = 16 register "pairs"
 *   P = 4·kt + r (r = the mma A register 0…3); each pair is two codes (first = lower column).
 * - A b-bit code is split into planes of 4, 2 and 1 bits, largest first (1:[1] 2:[2] 3:[2,1]
 *   4:[4] 5:[4,1] 6:[4,2] 7:[4,2,1] 8:[4,4]); plane p (width w, bit offset o = Σ earlier widths)
 *   holds bits o…o+w−1 of each code. Per slab a lane has b words: plane p owns words o…o+w−1;
 *   its word o + P/(16/w) holds pair P at bits w·(P mod 16/w) (first code) and 16 + the same
 *   (second code). So `(word >> shift) & (mask·0x00010001)` puts both codes of a pair in the two
 *   fp16 halves of a register, and OR-ing 0x6400 (1024.0) makes them exact fp16 numbers.
 * - Words: tile-major, then group, slab, word, lane:
 *     index = tile·tile_words + group_offset[g] + (slab·b_g + word)·32 + lane,
 *   group_offset[g] = 32·slabs·Σ_{h<g} b_h, tile_words = 32·slabs·Σ_h b_h. A warp reads one word
 *   per lane: 128 contiguous bytes.
 * - Params: one 32-bit word per (row, group): b ≥ 2: fp16 s | z << 16; b = 1: fp16 α | fp16 μ << 16;
 *   stored [tile][g][row mod 8][row / 8 within the tile] so a lane (rows gid, gid + 8) reads one
 *   uint2. Folded as the CPU kernels fold them: b ≥ 2: a = s, o = −(s·z); b = 1: a = 2α, o = μ − α.
 *
 * Activations (B operand, prepared per call by the x-prep kernel): per token t a power-of-two
 * scale 2^e_t brings max|x| into [2^13, 2^14) (so hi never overflows and lo rarely underflows),
 * x̃ = x·2^−e_t, hi = fp16(x̃), lo = fp16(x̃ − hi). n-tile nt holds tokens 4·nt … 4·nt + 3:
 * column 2·(t mod 4) = hi, 2·(t mod 4) + 1 = lo. Stored as uint32 half pairs
 *   xb[((nt·KT + kt)·32 + lane)·2 + j], KT = K·Gp/16 k-tiles over the padded columns,
 * plus Σx̃ per (token, group) and the scale per token; the output is y = 2^e_t·(…).
 */
#ifndef SLIM_CUDA_LAYOUT_H
#define SLIM_CUDA_LAYOUT_H

#include <stdint.h>

#if defined(__CUDACC__)
#define SLIM_HD __host__ __device__ __forceinline__
#else
#define SLIM_HD static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SLIM_LAYOUT_TILE_ROWS = 16,   /* rows per row tile (mma M) */
    SLIM_LAYOUT_KTILE = 16,       /* columns per k-tile (mma K) */
    SLIM_LAYOUT_SLAB = 64,        /* padded columns per slab (4 k-tiles) */
    SLIM_LAYOUT_MAX_BITS = 8
};

/* fp16 bit patterns used by the decode: 1024.0 in both halves. */
#define SLIM_HALF2_1024 0x64006400u

/* MARK: - Geometry */

SLIM_HD int32_t slim_layout_padded_group(int32_t group_size) {
    return (group_size + SLIM_LAYOUT_SLAB - 1) / SLIM_LAYOUT_SLAB * SLIM_LAYOUT_SLAB;
}

SLIM_HD int32_t slim_layout_slabs(int32_t group_size) {
    return slim_layout_padded_group(group_size) / SLIM_LAYOUT_SLAB;
}

SLIM_HD int32_t slim_layout_row_tiles(int32_t rows) {
    return (rows + SLIM_LAYOUT_TILE_ROWS - 1) / SLIM_LAYOUT_TILE_ROWS;
}

SLIM_HD int32_t slim_layout_groups(int32_t columns, int32_t group_size) {
    return (columns + group_size - 1) / group_size;
}

/* Planes of a b-bit code (largest first, at most 3 for b ≤ 8): width and bit offset of plane p.
 * Closed forms without loops, so that they fold to constants in the kernel's instantiations. */
SLIM_HD int32_t slim_layout_greedy_width(int32_t left) {
    return left >= 4 ? 4 : (left >= 2 ? 2 : (left >= 1 ? 1 : 0));
}

SLIM_HD int32_t slim_layout_plane_width(int32_t bits, int32_t plane) {
    const int32_t w0 = slim_layout_greedy_width(bits);
    const int32_t w1 = slim_layout_greedy_width(bits - w0);
    const int32_t w2 = slim_layout_greedy_width(bits - w0 - w1);
    return plane == 0 ? w0 : (plane == 1 ? w1 : (plane == 2 ? w2 : 0));
}

SLIM_HD int32_t slim_layout_plane_count(int32_t bits) {
    return (slim_layout_plane_width(bits, 0) > 0) + (slim_layout_plane_width(bits, 1) > 0) +
           (slim_layout_plane_width(bits, 2) > 0);
}

SLIM_HD int32_t slim_layout_plane_offset(int32_t bits, int32_t plane) {
    return plane == 0 ? 0
                      : (plane == 1 ? slim_layout_plane_width(bits, 0)
                                    : slim_layout_plane_width(bits, 0) + slim_layout_plane_width(bits, 1));
}

/* The real column of padded column `kp` (counted over all groups), or -1 for padding. */
SLIM_HD int32_t slim_layout_real_column(int32_t kp, int32_t group_size, int32_t columns) {
    int32_t gp = slim_layout_padded_group(group_size);
    int32_t g = kp / gp, j = kp % gp;
    if (j >= group_size) return -1;
    int32_t c = g * group_size + j;
    return c < columns ? c : -1;
}

/* MARK: - mma.m16n8k16 fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16", .f16) */

/* A (16×16): register r (0…3) of a lane holds two elements e = 0, 1 (low half first). */
SLIM_HD int32_t slim_frag_a_row(int32_t lane, int32_t r) { return (lane >> 2) + 8 * (r & 1); }
SLIM_HD int32_t slim_frag_a_col(int32_t lane, int32_t r, int32_t e) { return 2 * (lane & 3) + 8 * (r >> 1) + e; }
/* B (16×8): register j (0, 1), element e: row k, column n. */
SLIM_HD int32_t slim_frag_b_k(int32_t lane, int32_t j, int32_t e) { return 2 * (lane & 3) + 8 * j + e; }
SLIM_HD int32_t slim_frag_b_n(int32_t lane) { return lane >> 2; }
/* C/D (16×8 fp32): element i (0…3). */
SLIM_HD int32_t slim_frag_c_row(int32_t lane, int32_t i) { return (lane >> 2) + 8 * (i >> 1); }
SLIM_HD int32_t slim_frag_c_col(int32_t lane, int32_t i) { return 2 * (lane & 3) + (i & 1); }

/* Where a code lives: for a lane's pair P (0…15 within the slab) and plane (width w, offset o),
 * the word within the lane's b words of the slab and the bit of the first code. */
SLIM_HD int32_t slim_layout_pair_word(int32_t plane_width, int32_t plane_offset, int32_t pair) {
    return plane_offset + pair / (16 / plane_width);
}
SLIM_HD int32_t slim_layout_pair_shift(int32_t plane_width, int32_t pair) {
    return plane_width * (pair % (16 / plane_width));
}

/* Index of activation word (n-tile nt, k-tile kt, lane, register j) in the xb buffer. */
SLIM_HD int64_t slim_layout_xb_index(int32_t nt, int32_t kt, int32_t k_tiles, int32_t lane, int32_t j) {
    return (((int64_t)nt * k_tiles + kt) * 32 + lane) * 2 + j;
}

/* MARK: - fp16 helpers (host side; the device uses the hardware conversions) */

#if !defined(__CUDA_ARCH__)
/* Exact fp16 → fp32. */
static inline float slim_half_to_float_host(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int32_t e = -1;
            do { man <<= 1; e++; } while ((man & 0x400u) == 0);
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3FFu) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    union { uint32_t u; float f; } v;
    v.u = bits;
    return v.f;
}

/* fp32 → fp16, round to nearest even (Inf for overflow, NaN kept). */
static inline uint16_t slim_float_to_half_host(float f) {
    union { float f; uint32_t u; } v;
    v.f = f;
    uint32_t x = v.u, sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xFFu, man = x & 0x7FFFFFu;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (man ? 0x200u : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e), half = man >> shift, rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | (uint32_t)e << 10 | man >> 13, rest = man & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return (uint16_t)half;
}

/* f16x2 arithmetic emulated in fp64 with one rounding to fp16, as the hardware rounds. */
static inline uint32_t slim_h2_host_op(uint32_t a, uint32_t b, uint32_t c, int op) {
    uint32_t out = 0;
    for (int i = 0; i < 2; i++) {
        double x = slim_half_to_float_host((uint16_t)(a >> (16 * i)));
        double y = slim_half_to_float_host((uint16_t)(b >> (16 * i)));
        double z = slim_half_to_float_host((uint16_t)(c >> (16 * i)));
        double r = op == 0 ? x - y : (op == 1 ? x + y : x * y + z);
        out |= (uint32_t)slim_float_to_half_host((float)r) << (16 * i);
    }
    return out;
}
#endif

/* MARK: - The decode (kernel and emulation share it) */

SLIM_HD uint32_t slim_h2_sub(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    uint32_t r;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return slim_h2_host_op(a, b, 0, 0);
#endif
}

SLIM_HD uint32_t slim_h2_add(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
    uint32_t r;
    asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return slim_h2_host_op(a, b, 0, 1);
#endif
}

SLIM_HD uint32_t slim_h2_fma(uint32_t a, uint32_t b, uint32_t c) {
#if defined(__CUDA_ARCH__)
    uint32_t r;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#else
    return slim_h2_host_op(a, b, c, 2);
#endif
}

/* Both codes of a pair of one plane as fp16 1024 + v (exact). */
SLIM_HD uint32_t slim_layout_extract(uint32_t word, int32_t shift, int32_t plane_width) {
    uint32_t mask = ((1u << plane_width) - 1u) * 0x00010001u;
    return ((word >> shift) & mask) | SLIM_HALF2_1024;
}

/*
 * The codes q of pair P (0…15) of a lane's slab, `words` = the lane's b words of that slab, as
 * an f16x2 register (first code in the low half). Every step is exact in fp16:
 *   plane 0: q = h0 − 1024;  plane 1 (offset o ≤ 4): q = h0 + (2^o·h1 − (2^o + 1)·1024);
 *   plane 2: q += 2^o·(h2 − 1024).
 * `bits` is a compile-time constant in the kernel (one instantiation per width).
 */
SLIM_HD uint32_t slim_layout_decode_pair(const uint32_t *words, int32_t bits, int32_t pair) {
    int32_t w0 = slim_layout_plane_width(bits, 0);
    uint32_t h0 = slim_layout_extract(words[slim_layout_pair_word(w0, 0, pair)], slim_layout_pair_shift(w0, pair), w0);
    int32_t w1 = slim_layout_plane_width(bits, 1);
    if (w1 == 0) return slim_h2_sub(h0, SLIM_HALF2_1024);
    int32_t o1 = w0;
    uint32_t h1 = slim_layout_extract(words[slim_layout_pair_word(w1, o1, pair)], slim_layout_pair_shift(w1, pair), w1);
    /* 2^o1 and −(2^o1 + 1)·1024 as fp16 pairs (o1 is 2 or 4). */
    uint32_t scale1 = o1 == 2 ? 0x44004400u : 0x4C004C00u;       /* 4.0 | 16.0 */
    uint32_t bias1 = o1 == 2 ? 0xED00ED00u : 0xF440F440u;        /* −5120 | −17408 */
    uint32_t q = slim_h2_add(h0, slim_h2_fma(h1, scale1, bias1));
    int32_t w2 = slim_layout_plane_width(bits, 2);
    if (w2 == 0) return q;
    int32_t o2 = w0 + w1; /* 6 (bits = 7) */
    uint32_t h2 = slim_layout_extract(words[slim_layout_pair_word(w2, o2, pair)], slim_layout_pair_shift(w2, pair), w2);
    return slim_h2_fma(slim_h2_sub(h2, SLIM_HALF2_1024), 0x54005400u /* 64.0 */, q);
}

/* The folded affine map of a param word: ŵ = a·q + o. */
SLIM_HD void slim_layout_affine(uint32_t param, int32_t bits, float *a, float *o) {
#if defined(__CUDA_ARCH__)
    float s = __half2float(__ushort_as_half((unsigned short)(param & 0xFFFFu)));
    float hi = __half2float(__ushort_as_half((unsigned short)(param >> 16)));
#else
    float s = slim_half_to_float_host((uint16_t)(param & 0xFFFFu));
    float hi = slim_half_to_float_host((uint16_t)(param >> 16));
#endif
    if (bits == 1) {
        *a = 2.0f * s;
        *o = hi - s;
    } else {
        float z = (float)(param >> 16);
        *a = s;
        *o = -(s * z);
    }
}

/* MARK: - Host repack (slim_cuda_layout.c) */

/* A packed linear in the file layout (docs/FORMAT.md), as the safetensors tensors hold it. */
typedef struct {
    int32_t rows, columns, group_size;
    const uint8_t *bits;      /* [K] */
    const uint8_t *qweight;   /* [rows × Bw] */
    const uint16_t *scales;   /* [rows × K] fp16 bits */
    const uint8_t *qzeros;    /* [rows × Bz] */
    const uint16_t *means;    /* [rows × K1] fp16 bits */
} slim_layout_source;

/* Words of the GPU layout; -1 for invalid geometry (non-positive sizes, bits outside 1…8). */
int64_t slim_layout_word_count(int32_t rows, int32_t columns, int32_t group_size, const uint8_t *bits);
/* Param words: row_tiles · K · 16. */
int64_t slim_layout_param_count(int32_t rows, int32_t columns, int32_t group_size);
/* Repacks `src` into `words` and `params` (sized by the two functions above). 0, or -1 for
 * invalid geometry. */
int slim_layout_pack(const slim_layout_source *src, uint32_t *words, uint32_t *params);

#ifdef __cplusplus
}
#endif

#endif /* SLIM_CUDA_LAYOUT_H */
