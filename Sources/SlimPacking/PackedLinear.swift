// One packed linear in the file layout (PackedFormat.swift): encode from quantizer output,
// validate what a file holds, and the scalar reference decode every fast path is tested against.

import SlimIO
import SlimKernels

/// A quantized linear layer in the slim-packed file layout.
///
/// Storage is exactly what the safetensors file holds (fp16 values as their bit patterns), so
/// writing is a copy and reading is a validation. Decoding (`dequantize`) is the scalar
/// reference of the format: ŵ = s·(q − z) for b ≥ 2 and α·(2q − 1) + μ for b = 1, in fp32.
public struct PackedLinear: Sendable {
    public let geometry: PackedGeometry
    /// R × Bw code bytes.
    public let qweight: [UInt8]
    /// R × K fp16 bit patterns (s or α).
    public let scales: [UInt16]
    /// R × Bz zero-point bytes.
    public let qzeros: [UInt8]
    /// R × K1 fp16 bit patterns (μ of the 1-bit groups).
    public let means: [UInt16]

    public var rows: Int { geometry.rows }
    public var columns: Int { geometry.columns }
    public var groupSize: Int { geometry.groupSize }
    public var bits: [UInt8] { geometry.bits }

    /// Wraps stored buffers after checking their sizes and contents: scales and means finite.
    /// - Throws: `PackedFormatError` naming the first inconsistency.
    public init(geometry: PackedGeometry, qweight: [UInt8], scales: [UInt16], qzeros: [UInt8],
                means: [UInt16]) throws(PackedFormatError) {
        let g = geometry
        guard qweight.count == g.rows * g.codeBytesPerRow else {
            throw .invalid("qweight has \(qweight.count) bytes, expected \(g.rows)×\(g.codeBytesPerRow)")
        }
        guard scales.count == g.rows * g.groupCount else {
            throw .invalid("scales has \(scales.count) values, expected \(g.rows)×\(g.groupCount)")
        }
        guard qzeros.count == g.rows * g.zeroBytesPerRow else {
            throw .invalid("qzeros has \(qzeros.count) bytes, expected \(g.rows)×\(g.zeroBytesPerRow)")
        }
        guard means.count == g.rows * g.oneBitGroups else {
            throw .invalid("means has \(means.count) values, expected \(g.rows)×\(g.oneBitGroups)")
        }
        // fp16 exponent all ones = Inf/NaN.
        if let bad = scales.firstIndex(where: { $0 & 0x7C00 == 0x7C00 }) {
            throw .invalid("scale of row \(bad / g.groupCount), group \(bad % g.groupCount) is not finite")
        }
        if let bad = means.firstIndex(where: { $0 & 0x7C00 == 0x7C00 }) {
            throw .invalid("mean of row \(bad / max(g.oneBitGroups, 1)) is not finite")
        }
        self.geometry = g
        self.qweight = qweight
        self.scales = scales
        self.qzeros = qzeros
        self.means = means
    }

    /// Packs quantizer output (the convention of SlimQuant's `QuantizedLinear`).
    /// - Parameters:
    ///   - scales, zeros: rows × K fp32. b ≥ 2: s and the integer zero z; b = 1: α and μ.
    ///     They are stored as fp16, so they must already be fp16 values (the quantizer rounds
    ///     them when it fits) for the packed model to equal the fake-quantized one.
    ///   - codes: rows × columns. b ≥ 2: q ∈ [0, 2^b − 1]; b = 1: 1 for +1, 3 for −1 (the
    ///     two's-complement field of the reference), 0 (sign 0) is refused.
    /// - Throws: `PackedFormatError` for codes or zero points out of range, a 1-bit sign of 0,
    ///   or parameters that are not exactly representable in fp16.
    public init(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], scales: [Float], zeros: [Float],
                codes: [UInt8]) throws(PackedFormatError) {
        let g = try PackedGeometry(rows: rows, columns: columns, groupSize: groupSize, bits: bits)
        let k = g.groupCount
        guard scales.count == rows * k, zeros.count == rows * k, codes.count == rows * columns else {
            throw .invalid("parameter or code arrays do not match \(rows)×\(columns) in \(k) groups")
        }
        var qweight = [UInt8](repeating: 0, count: rows * g.codeBytesPerRow)
        var qzeros = [UInt8](repeating: 0, count: rows * g.zeroBytesPerRow)
        var scales16 = [UInt16](repeating: 0, count: rows * k)
        var means16 = [UInt16](repeating: 0, count: rows * g.oneBitGroups)
        func half(_ x: Float, _ what: String, _ r: Int, _ group: Int) throws(PackedFormatError) -> UInt16 {
            let h = Kernels.Reference.f32ToF16(x)
            guard x.isFinite, Kernels.Reference.f16ToF32(h) == x else {
                throw .invalid("\(what) \(x) of row \(r), group \(group) is not an fp16 value")
            }
            return h
        }
        for r in 0..<rows {
            let codeRow = r * g.codeBytesPerRow, zeroRow = r * g.zeroBytesPerRow
            for group in 0..<k {
                let b = Int(bits[group])
                let p = r * k + group
                scales16[p] = try half(scales[p], b == 1 ? "α" : "scale", r, group)
                if b == 1 {
                    means16[r * g.oneBitGroups + g.meanIndex[group]] = try half(zeros[p], "μ", r, group)
                } else {
                    let z = zeros[p]
                    guard z >= 0, z <= Float((1 << b) - 1), z == z.rounded() else {
                        throw .invalid("zero point \(z) of row \(r), group \(group) is not an integer in 0…\((1 << b) - 1)")
                    }
                    qzeros.withUnsafeMutableBufferPointer {
                        BitStream.write($0.baseAddress! + zeroRow, bitOffset: g.zeroBitOffsets[group], width: b, value: UInt8(z))
                    }
                }
                let range = g.columnRange(group: group)
                for (j, c) in range.enumerated() {
                    var code = codes[r * columns + c]
                    if b == 1 {
                        guard code == 1 || code == 3 else {
                            throw .invalid("1-bit weight [\(r), \(c)] has sign 0 (code \(code)); the packed format stores ±1 only")
                        }
                        code = code == 1 ? 1 : 0
                    } else if Int(code) >= 1 << b {
                        throw .invalid("code \(code) of weight [\(r), \(c)] does not fit \(b) bits")
                    }
                    qweight.withUnsafeMutableBufferPointer {
                        BitStream.write($0.baseAddress! + codeRow, bitOffset: g.codeBitOffsets[group] + j * b, width: b, value: code)
                    }
                }
            }
        }
        self.geometry = g
        self.qweight = qweight
        self.scales = scales16
        self.qzeros = qzeros
        self.means = means16
    }
}

// MARK: - Scalar reference decode

extension PackedLinear {
    /// The code q of weight [r, c] (b = 1: 0 or 1).
    @inline(__always)
    public func code(row r: Int, column c: Int) -> UInt8 {
        let g = c / groupSize
        let b = Int(bits[g])
        return qweight.withUnsafeBufferPointer {
            BitStream.read($0.baseAddress! + r * geometry.codeBytesPerRow,
                           bitOffset: geometry.codeBitOffsets[g] + (c - g * groupSize) * b, width: b)
        }
    }

    /// The parameters of (row, group): (s, z) for b ≥ 2, (α, μ) for b = 1, as Floats.
    public func parameters(row r: Int, group g: Int) -> (scale: Float, zero: Float) {
        let s = Kernels.Reference.f16ToF32(scales[r * geometry.groupCount + g])
        let b = Int(bits[g])
        if b == 1 {
            return (s, Kernels.Reference.f16ToF32(means[r * geometry.oneBitGroups + geometry.meanIndex[g]]))
        }
        let z = qzeros.withUnsafeBufferPointer {
            BitStream.read($0.baseAddress! + r * geometry.zeroBytesPerRow, bitOffset: geometry.zeroBitOffsets[g], width: b)
        }
        return (s, Float(z))
    }

    /// Decodes row r into `out` (C Floats), by the definition.
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        for g in 0..<geometry.groupCount {
            let (s, z) = parameters(row: r, group: g)
            let one = bits[g] == 1
            for c in geometry.columnRange(group: g) {
                let q = Float(code(row: r, column: c))
                out[c] = one ? s * (2 * q - 1) + z : s * (q - z)
            }
        }
    }

    /// The whole weight, rows × columns row-major: the scalar reference every kernel is
    /// tested against (and what `convert --dequantize` writes).
    public func dequantize() -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows { dequantizeRow(r, into: o.baseAddress! + r * columns) }
        }
        return out
    }
}
