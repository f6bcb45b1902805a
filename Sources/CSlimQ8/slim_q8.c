// Int8-activation decode GEMV over the packed CPU kernel layout: the scalar reference and the
// AVX2 path (vpmaddubsw/vpmaddwd), which agree bit for bit. See include/slim_q8.h.
#include "slim_q8.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SLIM_Q8_X86 1
#endif

// Explicit fmaf everywhere a product is added: no contraction differences between the paths.
#pragma STDC FP_CONTRACT OFF

int64_t slim_q8_group_bytes(int32_t field_bits, int32_t word_sets) {
    return (int64_t)word_sets * (8 / field_bits) * 32;
}

// MARK: - Activations

void slim_q8_prepare(const slim_q8_matrix *m, const float *padded_x, int8_t *x8, float *scale) {
    for (int32_t g = 0; g < m->groups; g++) {
        const int32_t p = m->field_bits[g], regs = 8 / p, F = m->fields[g], n = m->word_sets[g];
        const float *x = padded_x + m->padded_offset[g];
        int8_t *out = x8 + m->x8_offset[g];
        float *d = scale + m->x8_offset[g] / 32;
        for (int32_t k = 0; k < n; k++)
            for (int32_t s = 0; s < regs; s++) {
                // One block: the 32 values that meet register s of word set k.
                int8_t *block = out + (k * regs + s) * 32;
                float largest = 0.0f;
                int finite = 1;
                for (int32_t j = 0; j < 4; j++) {
                    const int32_t f = j * regs + s;
                    if (f >= F) continue;
                    for (int32_t i = 0; i < 8; i++) {
                        const float v = x[8 * (k * F + f) + i];
                        if (!isfinite(v)) finite = 0;
                        else largest = fmaxf(largest, fabsf(v));
                    }
                }
                memset(block, 0, 32);
                if (!finite) {
                    d[k * regs + s] = NAN;  // y becomes NaN, as the fp32 kernel's would
                    continue;
                }
                d[k * regs + s] = largest / 127.0f;
                if (largest == 0.0f) continue;
                const float inverse = 127.0f / largest;
                for (int32_t i = 0; i < 8; i++)
                    for (int32_t j = 0; j < 4; j++) {
                        const int32_t f = j * regs + s;
                        if (f >= F) continue;
                        long q = lrintf(x[8 * (k * F + f) + i] * inverse);
                        q = q > 127 ? 127 : (q < -127 ? -127 : q);
                        block[4 * i + j] = (int8_t)q;
                    }
            }
    }
}

void slim_q8_dequantize(const slim_q8_matrix *m, const int8_t *x8, const float *scale, float *padded_x) {
    for (int32_t g = 0; g < m->groups; g++) {
        const int32_t p = m->field_bits[g], regs = 8 / p, F = m->fields[g], n = m->word_sets[g];
        float *x = padded_x + m->padded_offset[g];
        const int8_t *in = x8 + m->x8_offset[g];
        const float *d = scale + m->x8_offset[g] / 32;
        for (int32_t k = 0; k < n; k++)
            for (int32_t s = 0; s < regs; s++) {
                const int8_t *block = in + (k * regs + s) * 32;
                const float db = d[k * regs + s];
                for (int32_t i = 0; i < 8; i++)
                    for (int32_t j = 0; j < 4; j++) {
                        const int32_t f = j * regs + s;
                        if (f < F) x[8 * (k * F + f) + i] = db * (float)block[4 * i + j];
                    }
            }
    }
}

// MARK: - Scalar reference

// Σ lanes in the AVX2 path's order: (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7).
static float lane_sum(const float l[8]) {
    const float t0 = l[0] + l[4], t1 = l[1] + l[5], t2 = l[2] + l[6], t3 = l[3] + l[7];
    return (t0 + t2) + (t1 + t3);
}

static void gemv_rows_scalar(const slim_q8_matrix *m, const slim_q8_activations *x, int64_t r0, int64_t r1, float *y,
                             int32_t accumulate) {
    const int32_t K = m->groups;
    for (int64_t r = r0; r < r1; r++) {
        float lanes[8] = {0};
        float offsets = 0.0f;
        for (int32_t g = 0; g < K; g++) {
            const int32_t p = m->field_bits[g], regs = 8 / p, n = m->word_sets[g];
            const uint32_t mask = (1u << p) - 1u;
            const uint32_t *w = m->words + r * m->row_words + m->word_offset[g];
            const int8_t *xg = x->x8 + m->x8_offset[g];
            const float *d = x->scale + m->x8_offset[g] / 32;
            float group[8] = {0};
            for (int32_t k = 0; k < n; k++)
                for (int32_t s = 0; s < regs; s++) {
                    int32_t acc[8] = {0};
                    for (int32_t i = 0; i < 8; i++)
                        for (int32_t j = 0; j < 4; j++) {
                            const int32_t q = (int32_t)((w[8 * k + i] >> (p * (j * regs + s))) & mask);
                            acc[i] += q * xg[(k * regs + s) * 32 + 4 * i + j];
                        }
                    for (int32_t i = 0; i < 8; i++) group[i] = fmaf((float)acc[i], d[k * regs + s], group[i]);
                }
            const float a = m->a[r * K + g];
            for (int32_t i = 0; i < 8; i++) lanes[i] = fmaf(group[i], a, lanes[i]);
            offsets = fmaf(m->o[r * K + g], x->sums[g], offsets);
        }
        const float v = lane_sum(lanes) + offsets;
        y[r] = accumulate ? y[r] + v : v;
    }
}

// MARK: - AVX2

#ifdef SLIM_Q8_X86
#define SLIM_AVX2 __attribute__((target("avx2,fma")))

// One block: the integer lane sums of register q against 32 bytes of x8, times the block's scale,
// added to the group's lanes (lane i = lane word i of every word set).
#define SLIM_Q8_BLOCK(q, xp, dp)                                                                        \
    group = _mm256_fmadd_ps(                                                                           \
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16((q), _mm256_loadu_si256((const __m256i *)(xp))), \
                                             ones)),                                                   \
        _mm256_broadcast_ss(dp), group)

// Σ over a group's blocks of d_b · (q_b · x8_b), per lane, for field width P ∈ {1, 2, 4}: word set
// k is 8/P registers, register s the byte-masked fields at shift P·s (inlined with P constant, so
// the loop unrolls into constant shifts). vpmaddubsw cannot saturate: 2·15·127 < 2¹⁵.
SLIM_AVX2 __attribute__((always_inline)) static inline __m256 group_dot_narrow(const uint32_t *w, const int8_t *xg,
                                                                               const float *d, int32_t n, const int P) {
    const __m256i ones = _mm256_set1_epi16(1), bm = _mm256_set1_epi8((char)((1 << P) - 1));
    __m256 group = _mm256_setzero_ps();
    for (int32_t k = 0; k < n; k++, xg += 256 / P, d += 8 / P) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 8 * k));
        for (int s = 0; s < 8 / P; s++) SLIM_Q8_BLOCK(_mm256_and_si256(_mm256_srli_epi32(v, P * s), bm), xg + 32 * s, d + s);
    }
    return group;
}

// p = 8 splits codes into 7 low bits and the top bit (vpmaddubsw would saturate at 2·255·127).
SLIM_AVX2 static inline __m256 group_dot_avx2(const uint32_t *w, const int8_t *xg, const float *d, int32_t p,
                                              int32_t n) {
    switch (p) {
    case 1: return group_dot_narrow(w, xg, d, n, 1);
    case 2: return group_dot_narrow(w, xg, d, n, 2);
    case 4: return group_dot_narrow(w, xg, d, n, 4);
    default: break;
    }
    const __m256i ones = _mm256_set1_epi16(1), low7 = _mm256_set1_epi8(0x7F), top = _mm256_set1_epi8(0x01);
    const __m256i weight = _mm256_set1_epi16(128);
    __m256 group = _mm256_setzero_ps();
    for (int32_t k = 0; k < n; k++, xg += 32, d += 1) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 8 * k));
        const __m256i xv = _mm256_loadu_si256((const __m256i *)xg);
        const __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(v, low7), xv);
        const __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi32(v, 7), top), xv);
        const __m256i acc = _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, weight));
        group = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_broadcast_ss(d), group);
    }
    return group;
}

SLIM_AVX2 static void gemv_rows_avx2(const slim_q8_matrix *m, const slim_q8_activations *x, int64_t r0, int64_t r1,
                                     float *y, int32_t accumulate) {
    const int32_t K = m->groups;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = m->words + r * m->row_words;
        __m256 lanes = _mm256_setzero_ps();
        float offsets = 0.0f;
        for (int32_t g = 0; g < K; g++) {
            const int32_t at = m->x8_offset[g];
            const __m256 group = group_dot_avx2(row + m->word_offset[g], x->x8 + at, x->scale + at / 32,
                                                m->field_bits[g], m->word_sets[g]);
            lanes = _mm256_fmadd_ps(group, _mm256_set1_ps(m->a[r * K + g]), lanes);
            offsets = fmaf(m->o[r * K + g], x->sums[g], offsets);
        }
        const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(lanes), _mm256_extractf128_ps(lanes, 1));
        const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        const float v = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1))) + offsets;
        y[r] = accumulate ? y[r] + v : v;
    }
}
#endif

// MARK: - Dispatch

int32_t slim_q8_simd_available(void) {
#ifdef SLIM_Q8_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

void slim_q8_gemv_rows(const slim_q8_matrix *m, const slim_q8_activations *x, int64_t row_begin, int64_t row_end,
                       float *y, int32_t accumulate, int32_t simd) {
#ifdef SLIM_Q8_X86
    if (simd && slim_q8_simd_available()) {
        gemv_rows_avx2(m, x, row_begin, row_end, y, accumulate);
        return;
    }
#endif
    gemv_rows_scalar(m, x, row_begin, row_end, y, accumulate);
}
