// Element-type conversions for loading F16/BF16 checkpoints and writing half-precision outputs.
// IEEE half ↔ single use the hardware conversions (F16C on x86_64) through `SIMD8<Float16>` on
// Linux, where `Float16` is always available; elsewhere the scalar bit-level reference runs.
// bfloat16 is plain bit work.

// MARK: - Public API

extension Kernels {
    /// Converts `count` IEEE binary16 values (raw little-endian bit patterns) to Float.
    /// Exact for every input: subnormals become normal floats, ±Inf stay infinite, NaNs stay NaN
    /// (sign and payload kept; a signalling NaN may come back quieted).
    public static func convertF16ToF32(_ source: UnsafePointer<UInt16>,
                                       _ destination: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count >= 0, "convertF16ToF32: negative count \(count)")
        var i = 0
        #if os(Linux) && (arch(x86_64) || arch(arm64))
        let src = UnsafeRawPointer(source)
        let dst = UnsafeMutableRawPointer(destination)
        while i &+ 8 <= count {
            let halves = src.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<Float16>.self)
            dst.storeBytes(of: SIMD8<Float>(halves), toByteOffset: i &* 4, as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count {
            destination[i] = Float(Float16(bitPattern: source[i]))
            i &+= 1
        }
        #else
        while i < count {
            destination[i] = Reference.f16ToF32(source[i])
            i &+= 1
        }
        #endif
    }

    /// Converts `count` Floats to IEEE binary16 bit patterns with round-to-nearest-even.
    /// Values whose magnitude rounds above 65504 become ±Inf; results below the smallest
    /// subnormal (2⁻²⁴) round to ±0 (ties to even); NaN stays NaN (quiet, sign kept).
    public static func convertF32ToF16(_ source: UnsafePointer<Float>,
                                       _ destination: UnsafeMutablePointer<UInt16>, count: Int) {
        precondition(count >= 0, "convertF32ToF16: negative count \(count)")
        var i = 0
        #if os(Linux) && (arch(x86_64) || arch(arm64))
        let src = UnsafeRawPointer(source)
        let dst = UnsafeMutableRawPointer(destination)
        while i &+ 8 <= count {
            let floats = src.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            dst.storeBytes(of: SIMD8<Float16>(floats), toByteOffset: i &* 2, as: SIMD8<Float16>.self)
            i &+= 8
        }
        while i < count {
            destination[i] = Float16(source[i]).bitPattern
            i &+= 1
        }
        #else
        while i < count {
            destination[i] = Reference.f32ToF16(source[i])
            i &+= 1
        }
        #endif
    }

    /// Converts `count` bfloat16 bit patterns to Float. Exact for every input (a bfloat16 is
    /// the top half of a Float), NaN payloads included.
    public static func convertBF16ToF32(_ source: UnsafePointer<UInt16>,
                                        _ destination: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count >= 0, "convertBF16ToF32: negative count \(count)")
        let src = UnsafeRawPointer(source)
        let dst = UnsafeMutableRawPointer(destination)
        var i = 0
        while i &+ 8 <= count {
            let halves = src.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self)
            let bits = SIMD8<UInt32>(truncatingIfNeeded: halves) &<< 16
            dst.storeBytes(of: bits, toByteOffset: i &* 4, as: SIMD8<UInt32>.self)
            i &+= 8
        }
        while i < count {
            destination[i] = Reference.bf16ToF32(source[i])
            i &+= 1
        }
    }

    /// Converts `count` Floats to bfloat16 bit patterns with round-to-nearest-even.
    /// Finite values may round up to ±Inf (above ≈ 3.39e38); NaN stays NaN (the quiet bit is
    /// set so a payload in the dropped low bits cannot turn it into Inf).
    public static func convertF32ToBF16(_ source: UnsafePointer<Float>,
                                        _ destination: UnsafeMutablePointer<UInt16>, count: Int) {
        precondition(count >= 0, "convertF32ToBF16: negative count \(count)")
        let src = UnsafeRawPointer(source)
        let dst = UnsafeMutableRawPointer(destination)
        let bias = SIMD8<UInt32>(repeating: 0x7FFF)
        let one = SIMD8<UInt32>(repeating: 1)
        let absMask = SIMD8<UInt32>(repeating: 0x7FFF_FFFF)
        let infinity = SIMD8<UInt32>(repeating: 0x7F80_0000)
        let quiet = SIMD8<UInt32>(repeating: 0x0040)
        var i = 0
        while i &+ 8 <= count {
            let bits = src.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<UInt32>.self)
            let high = bits &>> 16
            var rounded = (bits &+ bias &+ (high & one)) &>> 16
            rounded.replace(with: high | quiet, where: (bits & absMask) .> infinity)
            dst.storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: rounded), toByteOffset: i &* 2,
                           as: SIMD8<UInt16>.self)
            i &+= 8
        }
        while i < count {
            destination[i] = Reference.f32ToBF16(source[i])
            i &+= 1
        }
    }

    /// Stores `count` Floats as `format` elements at `destination` (any alignment): a copy for
    /// `.f32`, else `convertF32ToF16` / `convertF32ToBF16`.
    public static func convertF32(_ source: UnsafePointer<Float>, to format: StorageFormat,
                                  _ destination: UnsafeMutableRawPointer, count: Int) {
        switch format {
        case .f32: destination.copyMemory(from: source, byteCount: count &* 4)
        case .f16: convertF32ToF16(source, destination.assumingMemoryBound(to: UInt16.self), count: count)
        case .bf16: convertF32ToBF16(source, destination.assumingMemoryBound(to: UInt16.self), count: count)
        }
    }
}

// MARK: - Scalar references

extension Kernels.Reference {
    /// Float → the bits of a 16-bit `format` (`f32ToF16` or `f32ToBF16`).
    /// - Precondition: `format` is `.f16` or `.bf16`.
    public static func f32ToHalf(_ f: Float, _ format: StorageFormat) -> UInt16 {
        precondition(format != .f32, "f32ToHalf: \(format) is not a 16-bit format")
        return format == .f16 ? f32ToF16(f) : f32ToBF16(f)
    }

    /// The bits of a 16-bit `format` → Float (`f16ToF32` or `bf16ToF32`; exact).
    /// - Precondition: `format` is `.f16` or `.bf16`.
    public static func halfToF32(_ h: UInt16, _ format: StorageFormat) -> Float {
        precondition(format != .f32, "halfToF32: \(format) is not a 16-bit format")
        return format == .f16 ? f16ToF32(h) : bf16ToF32(h)
    }
}

extension Kernels.Reference {
    /// binary16 bits → Float by explicit field manipulation (no hardware conversion).
    public static func f16ToF32(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        var mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {
            // Inf or NaN: all-ones exponent, payload moved to the top of the Float mantissa.
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }
            // Subnormal: value = mantissa · 2⁻²⁴; normalise into a Float.
            var e = -14
            while mantissa & 0x400 == 0 {
                mantissa <<= 1
                e -= 1
            }
            mantissa &= 0x3FF
            return Float(bitPattern: sign | (UInt32(e + 127) << 23) | (mantissa << 13))
        }
        return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
    }

    /// Float → binary16 bits, round-to-nearest-even, by explicit field manipulation.
    public static func f32ToF16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        let mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF {
            // Inf keeps its sign; NaN keeps the top payload bits and is made quiet.
            return mantissa == 0 ? sign | 0x7C00 : sign | 0x7E00 | UInt16(mantissa >> 13)
        }
        if exponent == 0 { return sign }  // Float zero or subnormal (< 2⁻¹²⁶): rounds to ±0.
        let unbiased = exponent - 127
        if unbiased > 15 { return sign | 0x7C00 }
        let significand = mantissa | 0x80_0000
        // Number of low significand bits that do not fit: 13 for normal halves, more below.
        let shift = unbiased >= -14 ? 13 : -(unbiased + 1)
        if shift > 25 { return sign }
        var value = UInt32(significand >> UInt32(shift))
        let remainder = significand & ((1 << UInt32(shift)) - 1)
        let half = UInt32(1) << UInt32(shift - 1)
        if unbiased >= -14 {
            // Drop the implicit bit and insert the exponent; a carry out of the mantissa
            // correctly bumps the exponent (up to Inf at 0x7C00).
            value = (UInt32(unbiased + 15) << 10) | (value & 0x3FF)
        }
        if remainder > half || (remainder == half && value & 1 == 1) { value += 1 }
        return sign | UInt16(value)
    }

    /// bfloat16 bits → Float: the bits are the top half of the Float.
    @inline(__always)
    public static func bf16ToF32(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Float → bfloat16 bits, round-to-nearest-even; NaN is kept NaN (quiet bit set).
    @inline(__always)
    public static func f32ToBF16(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(bits >> 16) | 0x0040 }
        return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }
}
