// The slim-packed checkpoint format, version 1 — the single source of truth for tensor names,
// dtypes, shapes and the bit-stream layout (docs/FORMAT.md describes the same thing in prose).
//
// Per quantized linear layer with prefix P (the HF weight name without ".weight"), R output
// rows, C input columns, group size G, K = ⌈C/G⌉ groups of width w_g (the last may be shorter)
// and b_g ∈ 1…8 bits per group:
//
//   P.bits     U8  [K]        b_g
//   P.qweight  U8  [R, Bw]    codes: per row a little-endian bit stream, group g's codes at
//                             bit offset o_g = Σ_{h<g} w_h·b_h, code j at o_g + j·b_g, LSB first
//   P.scales   F16 [R, K]     s (b ≥ 2) or α (b = 1)
//   P.qzeros   U8  [R, Bz]    zero points of the b ≥ 2 groups, a bit stream of b_g bits each
//   P.means    F16 [R, K1]    μ of the K1 one-bit groups, in group order
//   P.bias     model dtype [R] when the layer has one
//
//   Bw = ⌈Σ_g w_g·b_g / 8⌉, Bz = ⌈Σ_{g: b_g ≥ 2} b_g / 8⌉.
//   b ≥ 2: ŵ = s·(q − z), q, z ∈ [0, 2^b − 1].   b = 1: ŵ = α·(2q − 1) + μ, q ∈ {0, 1}.

import SlimIO

/// Names and constants of the slim-packed format.
public enum PackedFormat {
    /// `quantization_config.format` in config.json and `slim_quant.format` in the safetensors
    /// metadata.
    public static let name = "slim-packed"
    /// Bumped on any incompatible layout change; readers refuse other versions.
    public static let version = 1

    /// safetensors `__metadata__` keys (values are strings, as the format requires).
    public enum MetadataKey {
        public static let format = "slim_quant.format"
        public static let version = "slim_quant.format_version"
        public static let groupSize = "slim_quant.group_size"
        public static let bits = "slim_quant.bits"
        public static let method = "slim_quant.method"
    }

    /// Tensor-name suffixes of one packed linear.
    public enum Suffix {
        public static let bits = ".bits"
        public static let qweight = ".qweight"
        public static let scales = ".scales"
        public static let qzeros = ".qzeros"
        public static let means = ".means"
        public static let bias = ".bias"
        /// Every suffix a packed linear owns (bias only when present).
        public static let all = [bits, qweight, scales, qzeros, means]
    }

    /// The prefix of a linear given its HF weight name ("….q_proj.weight" → "….q_proj").
    public static func prefix(ofWeight name: String) -> String {
        name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
    }

    /// True when `source` holds packed tensors for the linear whose weight is `weightName`.
    public static func isPacked(_ source: any TensorSource, weightName: String) -> Bool {
        source.tensorInfo(prefix(ofWeight: weightName) + Suffix.qweight) != nil
    }
}

/// The geometry of one packed linear: everything derived from (R, C, G, bits), shared by the
/// encoder, the scalar reference decoder, the loader's validation and the size accounting.
public struct PackedGeometry: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    public let groupSize: Int
    /// b_g per group (1…8).
    public let bits: [UInt8]
    /// Bit offset of each group's codes within a row's qweight stream (K + 1 entries; the last
    /// is the row's total code bits).
    public let codeBitOffsets: [Int]
    /// Bit offset of each group's zero point within a row's qzeros stream (K + 1 entries; 1-bit
    /// groups take no bits).
    public let zeroBitOffsets: [Int]
    /// For each group, its index among the 1-bit groups, or −1.
    public let meanIndex: [Int]
    /// K1, the number of 1-bit groups.
    public let oneBitGroups: Int

    /// - Throws: `PackedFormatError.invalid` for non-positive sizes, a group count that does
    ///   not match ⌈C/G⌉, or bits outside 1…8.
    public init(rows: Int, columns: Int, groupSize: Int, bits: [UInt8]) throws(PackedFormatError) {
        guard rows >= 0, columns >= 1, groupSize >= 1 else {
            throw .invalid("bad shape \(rows)×\(columns) with group size \(groupSize)")
        }
        let k = (columns + groupSize - 1) / groupSize
        guard bits.count == k else {
            throw .invalid("\(bits.count) group bit widths for \(columns) columns in groups of \(groupSize) (expected \(k))")
        }
        if let bad = bits.firstIndex(where: { !(1...8).contains($0) }) {
            throw .invalid("group \(bad) has \(bits[bad]) bits (allowed 1…8)")
        }
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        self.bits = bits
        var code = [0], zero = [0], means = [Int](repeating: -1, count: k)
        var ones = 0
        for g in 0..<k {
            let b = Int(bits[g]), width = min(columns, (g + 1) * groupSize) - g * groupSize
            code.append(code[g] + width * b)
            zero.append(zero[g] + (b >= 2 ? b : 0))
            if b == 1 {
                means[g] = ones
                ones += 1
            }
        }
        codeBitOffsets = code
        zeroBitOffsets = zero
        meanIndex = means
        oneBitGroups = ones
    }

    /// K.
    public var groupCount: Int { bits.count }
    /// The columns of group g.
    public func columnRange(group g: Int) -> Range<Int> { (g * groupSize)..<min(columns, (g + 1) * groupSize) }
    /// Bw: bytes of one row of `qweight`.
    public var codeBytesPerRow: Int { (codeBitOffsets[groupCount] + 7) / 8 }
    /// Bz: bytes of one row of `qzeros`.
    public var zeroBytesPerRow: Int { (zeroBitOffsets[groupCount] + 7) / 8 }

    /// Bytes of the packed tensors (without bias): R·(Bw + Bz + 2K + 2K1) + K.
    public var storageBytes: Int {
        rows * (codeBytesPerRow + zeroBytesPerRow + 2 * groupCount + 2 * oneBitGroups) + groupCount
    }

    /// Storage split by component, in bytes.
    public var storageBreakdown: (codes: Int, scales: Int, zeros: Int, means: Int, bitMap: Int) {
        (rows * codeBytesPerRow, rows * 2 * groupCount, rows * zeroBytesPerRow, rows * 2 * oneBitGroups, groupCount)
    }

    /// Mean code bits per weight (Σ w_g·b_g / C), exactly the allocation's average.
    public var averageCodeBits: Double { Double(codeBitOffsets[groupCount]) / Double(columns) }

    /// The (dtype, shape) of every packed tensor, by suffix.
    public var tensorShapes: [(suffix: String, dtype: DType, shape: [Int])] {
        [(PackedFormat.Suffix.bits, .u8, [groupCount]),
         (PackedFormat.Suffix.qweight, .u8, [rows, codeBytesPerRow]),
         (PackedFormat.Suffix.scales, .f16, [rows, groupCount]),
         (PackedFormat.Suffix.qzeros, .u8, [rows, zeroBytesPerRow]),
         (PackedFormat.Suffix.means, .f16, [rows, oneBitGroups])]
    }

    /// GPTQ's uniform layout at `bits` for the same shape, in bytes: b-bit codes, an fp16 scale
    /// and a b-bit zero per (row, group) (AutoGPTQ packs zeros at the code width).
    public static func uniformGPTQBytes(rows: Int, columns: Int, groupSize: Int, bits: Int) -> Int {
        let k = (columns + groupSize - 1) / groupSize
        return rows * ((columns * bits + 7) / 8 + 2 * k + (k * bits + 7) / 8)
    }
}

/// A packed linear that violates the format.
public struct PackedFormatError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public static func invalid(_ message: String) -> PackedFormatError { PackedFormatError(message) }
    public var description: String { message }
}

// MARK: - Bit streams

/// Little-endian bit streams: bit i of a stream is bit (i mod 8) of byte i/8.
public enum BitStream {
    /// Reads `width` (1…8) bits at bit `offset`.
    @inline(__always)
    public static func read(_ bytes: UnsafePointer<UInt8>, bitOffset offset: Int, width: Int) -> UInt8 {
        let byte = offset >> 3, shift = offset & 7
        var v = UInt16(bytes[byte]) >> UInt16(shift)
        if shift + width > 8 { v |= UInt16(bytes[byte + 1]) << UInt16(8 - shift) }
        return UInt8(truncatingIfNeeded: v & ((1 << UInt16(width)) - 1))
    }

    /// ORs the low `width` bits of `value` in at bit `offset` (the target bits must be zero).
    @inline(__always)
    public static func write(_ bytes: UnsafeMutablePointer<UInt8>, bitOffset offset: Int, width: Int, value: UInt8) {
        let v = UInt16(value) & ((1 << UInt16(width)) - 1)
        let byte = offset >> 3, shift = offset & 7
        bytes[byte] |= UInt8(truncatingIfNeeded: v << UInt16(shift))
        if shift + width > 8 { bytes[byte + 1] |= UInt8(truncatingIfNeeded: v >> UInt16(8 - shift)) }
    }
}
