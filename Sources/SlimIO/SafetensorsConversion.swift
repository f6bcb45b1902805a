import Foundation

// Scalar conversions between stored floating-point formats and Float. Simple and exact; the
// hot quantization paths get vectorized versions elsewhere.

// MARK: - Element codecs

/// bfloat16: the top 16 bits of an IEEE binary32.
public enum BF16 {
    /// Rounds to nearest, ties to even, exactly as PyTorch's `Tensor.to(torch.bfloat16)`:
    /// finite values too large for bfloat16 become ±infinity, infinities stay infinities, and
    /// every NaN becomes 0xFFFF (the pattern PyTorch's x86 AVX2/AVX-512 conversion kernels write;
    /// its scalar `c10::BFloat16` path writes 0x7FC0 instead: both are NaN).
    @inline(__always)
    public static func encode(_ x: Float) -> UInt16 {
        if x.isNaN { return 0xFFFF }
        let u = x.bitPattern
        // Adding 0x7FFF plus the lowest kept bit rounds half-way cases to the even neighbour;
        // it cannot wrap because the largest non-NaN pattern is 0xFF800000.
        let rounded = u &+ (0x7FFF &+ ((u >> 16) & 1))
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// Exact widening: every bfloat16 value (NaN payloads included) is a Float.
    @inline(__always)
    public static func decode(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}

/// IEEE binary16 through Swift's `Float16` (round to nearest, ties to even; overflow becomes
/// infinity; NaN stays NaN, quieted, with its sign).
public enum F16 {
    @inline(__always)
    public static func encode(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// Exact widening.
    @inline(__always)
    public static func decode(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
}

// MARK: - Tensor conversion

/// A tensor that cannot be converted: a non-float dtype, or a view whose byte count does not
/// match its shape.
public struct TensorConversionError: Error, Equatable, Sendable, CustomStringConvertible {
    public let tensor: String
    public let message: String

    public init(tensor: String, message: String) {
        self.tensor = tensor
        self.message = message
    }

    public var description: String { "tensor \"\(tensor)\": \(message)" }
}

/// The elements of a floating-point tensor as Float, in row-major order.
///
/// Accepts F32 (copied), F16 and BF16 (widened exactly) and F64 (rounded to nearest; values
/// beyond Float's range become ±infinity). NaN and infinities are preserved. Reads are
/// unaligned-safe, so views into files with unpadded headers work.
/// - Throws: `TensorConversionError` for integer/bool dtypes, negative dimensions, or a byte
///   count that does not match dtype × shape.
public func floatArray(_ view: TensorView) throws -> [Float] {
    guard view.dtype.isFloatingPoint else {
        throw TensorConversionError(tensor: view.name, message: "dtype \(view.dtype.rawValue) is not a floating-point type")
    }
    var count = 1
    for d in view.shape {
        let (p, overflow) = count.multipliedReportingOverflow(by: d)
        guard d >= 0, !overflow else {
            throw TensorConversionError(tensor: view.name, message: "invalid shape \(view.shape)")
        }
        count = p
    }
    let (byteCount, overflow) = count.multipliedReportingOverflow(by: view.dtype.byteSize)
    guard !overflow, byteCount == view.bytes.count else {
        throw TensorConversionError(
            tensor: view.name,
            message: "has \(view.bytes.count) bytes but \(view.dtype.rawValue) \(view.shape) needs \(overflow ? "more" : String(byteCount))")
    }
    guard count > 0, let src = view.bytes.baseAddress else { return [] }
    let raw = view.bytes
    return [Float](unsafeUninitializedCapacity: count) { out, initialized in
        switch view.dtype {
        case .f32:
            #if _endian(little)
            memcpy(out.baseAddress!, src, byteCount)
            #else
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
            #endif
        case .f16:
            for i in 0..<count {
                out[i] = F16.decode(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<count {
                out[i] = BF16.decode(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        default:  // .f64: the guard above admits only the four float types
            for i in 0..<count {
                out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        }
        initialized = count
    }
}

/// The elements of a floating-point tensor re-encoded as little-endian `dtype` (F32, F16, BF16 or
/// F64), rounding to nearest even.
/// - Throws: `TensorConversionError` as `floatArray`, for a non-float `dtype`, and when a finite
///   value is not finite in `dtype` (F16 above 65504 in magnitude: nothing is silently made
///   infinite; BF16 covers Float's range).
public func encodedBytes(_ view: TensorView, as dtype: DType) throws -> [UInt8] {
    guard dtype.isFloatingPoint else {
        throw TensorConversionError(tensor: view.name, message: "cannot encode as \(dtype.rawValue), not a floating-point type")
    }
    let floats = try floatArray(view)
    // Round to nearest even sends |x| ≥ 65520 (halfway from 65504 to 2^16) to infinity in F16.
    if dtype == .f16, let i = floats.firstIndex(where: { $0.isFinite && abs($0) >= 65520 }) {
        throw TensorConversionError(tensor: view.name, message: "element \(i) = \(floats[i]) is outside the F16 range (±65504)")
    }
    var out = [UInt8](repeating: 0, count: floats.count * dtype.byteSize)
    floats.withUnsafeBufferPointer { f in out.withUnsafeMutableBytes { encodeFloats(f, as: dtype, into: $0) } }
    return out
}

/// Encodes `floats` as little-endian `dtype` elements into `out` (`floats.count * byteSize`
/// bytes). `dtype` must be F32, F16, BF16 or F64.
func encodeFloats(_ floats: UnsafeBufferPointer<Float>, as dtype: DType, into out: UnsafeMutableRawBufferPointer) {
    precondition(out.count == floats.count * dtype.byteSize, "encodeFloats: output size mismatch")
    switch dtype {
    case .f32:
        for (i, x) in floats.enumerated() { out.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
    case .f16:
        for (i, x) in floats.enumerated() { out.storeBytes(of: F16.encode(x).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
    case .bf16:
        for (i, x) in floats.enumerated() { out.storeBytes(of: BF16.encode(x).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
    case .f64:
        for (i, x) in floats.enumerated() {
            out.storeBytes(of: Double(x).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
        }
    default:
        preconditionFailure("encodeFloats: \(dtype.rawValue) is not a float type")
    }
}
