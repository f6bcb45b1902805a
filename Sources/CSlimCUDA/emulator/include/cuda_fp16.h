// The fp16 subset of CUDA's cuda_fp16.h that libslimcuda uses, for the CPU emulator build
// (scripts/build-cuda-emulator.sh). Conversions round to nearest even with subnormals, ±Inf and
// NaN, as the GPU's cvt.rn.f16.f32 does.
#pragma once

#include <cstdint>
#include <cstring>

#include "vector_types.h"

struct __half {
    uint16_t bits;
    __half() = default;
    operator float() const;
};

struct alignas(4) __half2 {
    __half x, y;
};

namespace slim_emu {

/// fp32 → fp16, round to nearest even (overflow to ±Inf, NaN stays NaN).
inline uint16_t float_to_half_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) return (uint16_t)(sign | (abs > 0x7F800000u ? 0x7E00u : 0x7C00u));
    if (abs >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);  // rounds to ≥ 65520: Inf
    if (abs < 0x38800000u) {                                     // below 2^-14: subnormal or zero
        if (abs < 0x33000000u) return (uint16_t)sign;            // below 2^-25: rounds to 0
        const uint32_t exponent = abs >> 23, mantissa = (abs & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126 - exponent;                   // value = mantissa · 2^(exponent − 150)
        uint32_t half = mantissa >> shift;                       // in units of 2^-24
        const uint32_t rest = mantissa & ((1u << shift) - 1), midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half & 1u))) half += 1;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((abs - 0x38000000u) >> 13);  // rebias 127 → 15
    const uint32_t rest = abs & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half += 1;
    return (uint16_t)(sign | half);
}

/// fp16 → fp32 (exact).
inline float half_bits_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    uint32_t u;
    if (exponent == 0x1F) {
        u = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        u = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        u = sign;
    } else {  // subnormal: normalise
        int e = -1;
        uint32_t m = mantissa;
        do {
            e++;
            m <<= 1;
        } while ((m & 0x400u) == 0);
        u = sign | ((uint32_t)(112 - e) << 23) | ((m & 0x3FFu) << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

}  // namespace slim_emu

inline __half::operator float() const { return slim_emu::half_bits_to_float(bits); }

inline __half __float2half_rn(float f) {
    __half h;
    h.bits = slim_emu::float_to_half_bits(f);
    return h;
}
inline float __half2float(__half h) { return slim_emu::half_bits_to_float(h.bits); }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
