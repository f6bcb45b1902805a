// Host side of the GPU layout (defined in Sources/CSlimCUDA/include/slim_cuda_layout.h): the
// repack of a slim-packed linear, and random layouts for speed runs.

import CSlimCUDA
import SlimKernels
import SlimPacking

/// A packed linear in the GPU layout, ready for upload: code words in mma-fragment order and
/// one param word per (row, group). Built from the file layout by the C repack that shares its
/// index functions with the kernel.
public struct GPUPackedLayout: Sendable {
    public let rows: Int
    public let columns: Int
    public let groupSize: Int
    public let bits: [UInt8]
    public let words: [UInt32]
    public let params: [UInt32]

    /// Repacks `packed` (already validated by `PackedLinear`).
    public init(_ packed: PackedLinear) {
        let rows = packed.rows, columns = packed.columns, groupSize = packed.groupSize, bits = packed.bits
        let wordCount = Int(slim_layout_word_count(Int32(rows), Int32(columns), Int32(groupSize), bits))
        let paramCount = Int(slim_layout_param_count(Int32(rows), Int32(columns), Int32(groupSize)))
        precondition(wordCount >= 0 && paramCount >= 0, "GPUPackedLayout: PackedLinear admitted an invalid geometry")
        var words = [UInt32](repeating: 0, count: wordCount)
        var params = [UInt32](repeating: 0, count: paramCount)
        let status = bits.withUnsafeBufferPointer { b in
            packed.qweight.withUnsafeBufferPointer { qw in
                packed.scales.withUnsafeBufferPointer { sc in
                    packed.qzeros.withUnsafeBufferPointer { qz in
                        packed.means.withUnsafeBufferPointer { mu in
                            var source = slim_layout_source(rows: Int32(rows), columns: Int32(columns),
                                                            group_size: Int32(groupSize), bits: b.baseAddress,
                                                            qweight: qw.baseAddress, scales: sc.baseAddress,
                                                            qzeros: qz.baseAddress, means: mu.baseAddress)
                            return words.withUnsafeMutableBufferPointer { w in
                                params.withUnsafeMutableBufferPointer { p in
                                    slim_layout_pack(&source, w.baseAddress, p.baseAddress)
                                }
                            }
                        }
                    }
                }
            }
        }
        precondition(status == 0, "GPUPackedLayout: repack refused a validated PackedLinear")
        self.init(rows: rows, columns: columns, groupSize: groupSize, bits: bits, words: words, params: params)
    }

    init(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], words: [UInt32], params: [UInt32]) {
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        self.bits = bits
        self.words = words
        self.params = params
    }

    /// A random layout for speed measurements: uniformly random codes, zero points in the middle
    /// of the code range, fp16 scales so that the weights have standard deviation ≈ `weightStd`
    /// (b ≥ 2: s = weightStd·√12 / 2^b; b = 1: α = weightStd, μ small).
    /// - Precondition: every bit width is in 1…8 and the shape is positive.
    public static func random(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], weightStd: Float,
                              seed: UInt64) -> GPUPackedLayout {
        let wordCount = Int(slim_layout_word_count(Int32(rows), Int32(columns), Int32(groupSize), bits))
        let paramCount = Int(slim_layout_param_count(Int32(rows), Int32(columns), Int32(groupSize)))
        precondition(wordCount >= 0 && paramCount >= 0 && rows >= 1, "GPUPackedLayout.random: invalid geometry")
        var rng = SplitMix64(seed: seed)
        var words = [UInt32](repeating: 0, count: wordCount)
        words.withUnsafeMutableBufferPointer { w in
            var i = 0
            while i + 1 < w.count {
                let r = rng.next()
                w[i] = UInt32(truncatingIfNeeded: r)
                w[i + 1] = UInt32(truncatingIfNeeded: r >> 32)
                i += 2
            }
            if i < w.count { w[i] = UInt32(truncatingIfNeeded: rng.next()) }
        }
        let k = bits.count
        var params = [UInt32](repeating: 0, count: paramCount)
        for p in 0..<paramCount {
            let g = (p / Int(SLIM_LAYOUT_TILE_ROWS)) % k, b = Int(bits[g])
            let jitter = 0.75 + 0.5 * Float(rng.next() >> 40) / Float(1 << 24)
            if b == 1 {
                let alpha = UInt32(Kernels.Reference.f32ToF16(weightStd * jitter))
                let mu = UInt32(Kernels.Reference.f32ToF16(weightStd * (jitter - 1) * 0.2))
                params[p] = alpha | mu << 16
            } else {
                let s = UInt32(Kernels.Reference.f32ToF16(weightStd * jitter * Float(12).squareRoot() / Float(1 << b)))
                params[p] = s | UInt32((1 << b) / 2) << 16
            }
        }
        return GPUPackedLayout(rows: rows, columns: columns, groupSize: groupSize, bits: bits, words: words, params: params)
    }

    /// Device bytes of the layout (what one GEMV reads, besides the activations).
    public var byteCount: Int { 4 * (words.count + params.count) }
}
