/*
 * slim_q8.h — decode GEMV of a packed matrix (the CPU kernel layout, SlimPacking/PackedMatrix.swift)
 * with int8 activations: x is quantized in blocks of 32 values to x8 = round(x / d_b),
 * d_b = max|x_b| / 127 (llama.cpp's Q8_0 granularity: LLM activations have outlier channels, and a
 * block holding one only coarsens its own 31 neighbours), and the codes meet x8 in integer
 * multiply-adds (AVX2: vpmaddubsw + vpmaddwd, 32 codes per instruction). A row costs a shift, a
 * mask, two multiply-adds, a convert and an FMA per 32 weights instead of five float instructions
 * per eight. The group's affine map is applied once per (row, group):
 *
 *     y_r = Σ_g a_rg · Σ_b∈g d_b · (q_b · x8_b) + o_rg · Σx_g      (Σx_g from the fp32 x, exact)
 *
 * The only approximation is x8: |error of y_r| ≤ Σ_g |a_rg| · Σ_b∈g (d_b / 2) · Σ_j∈b q_j.
 *
 * One scalar reference (slim_q8_gemv_rows with simd = 0) and the AVX2 path compute the same integer
 * lane sums and then the same float operations in the same order, so they agree bit for bit.
 *
 * Activation order: per group, per word set k, per register s < 8/p, one block of 32 bytes where
 * byte 4·i + j is the code at bits p·(j·8/p + s) of lane word i, i.e. field f = j·(8/p) + s, padded
 * column 8·(k·F + f) + i. Fields f ≥ F (unused bits of the lane words) meet 0. Block b of the
 * whole x8 (byte offset 32·b) has scale[b].
 */
#ifndef SLIM_Q8_H
#define SLIM_Q8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A packed matrix in the kernel layout, and the prepared activations of one token. */
typedef struct {
    const uint32_t *words;         /* rows × row_words */
    const float *a, *o;            /* rows × groups: ŵ = a·q + o */
    int64_t row_words;
    int32_t groups;
    const int32_t *field_bits;     /* [groups] p ∈ {1, 2, 4, 8} */
    const int32_t *fields;         /* [groups] F, fields used per lane word */
    const int32_t *word_sets;      /* [groups] n */
    const int32_t *word_offset;    /* [groups] within a row */
    const int32_t *padded_offset;  /* [groups] first padded column */
    const int32_t *x8_offset;      /* [groups] first byte in x8 (slim_q8_x8_bytes per group) */
} slim_q8_matrix;

typedef struct {
    const int8_t *x8;              /* Σ_g slim_q8_group_bytes bytes, 32-byte aligned */
    const float *scale;            /* [x8 bytes / 32] d_b, one per block */
    const float *sums;             /* [groups] Σx_g in fp32 */
} slim_q8_activations;

/* Bytes of x8 for a group with field width p and n word sets: n · (8/p) · 32. */
int64_t slim_q8_group_bytes(int32_t field_bits, int32_t word_sets);

/* Quantizes the padded activations (m's padded column order, zeros in the padding) into x8 and
 * scale (d_b = max|x_b| / 127; 0 for an all-zero block). A non-finite input gives its block the
 * scale NaN (the row's output becomes NaN, as with fp32 activations). */
void slim_q8_prepare(const slim_q8_matrix *m, const float *padded_x, int8_t *x8, float *scale);

/* The activations the kernel multiplies with, back in m's padded column order: d_b · x8 at every
 * column a block covers, 0 in the padding (fields past F). For the several-token path, which
 * multiplies these with the fp32 kernels (SlimPacking/PackedQ8.swift). */
void slim_q8_dequantize(const slim_q8_matrix *m, const int8_t *x8, const float *scale, float *padded_x);
/* y[r] (+)= row r · x for r in [row_begin, row_end); simd = 0: the scalar reference, else the
 * AVX2 path when the CPU has it (the reference otherwise). */
void slim_q8_gemv_rows(const slim_q8_matrix *m, const slim_q8_activations *x, int64_t row_begin, int64_t row_end,
                       float *y, int32_t accumulate, int32_t simd);

/* 1 when slim_q8_gemv_rows with simd != 0 runs the AVX2 path on this CPU. */
int32_t slim_q8_simd_available(void);

#ifdef __cplusplus
}
#endif

#endif /* SLIM_Q8_H */
