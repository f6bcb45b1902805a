import Foundation
import XCTest
@testable import SlimKernels

/// Chunked decode attention (`Kernels.attentionChunk` + `combineAttentionChunks`) against the
/// float64 reference, for every cache format, head geometry and chunking the runtime can use.
final class DecodeAttentionTests: XCTestCase {
    private struct Case {
        let heads, kvHeads, headDim, count: Int
        var kvDim: Int { kvHeads * headDim }
    }

    /// Random q, keys and values (keys and values rounded to `format`, returned widened).
    private func inputs(_ c: Case, format: StorageFormat, seed: UInt64) -> (q: [Float], keys: [Float], values: [Float]) {
        var rng = SplitMix64(seed: seed)
        let q = rng.floats(c.heads * c.headDim).map { $0 * 2 }
        func rounded(_ x: [Float]) -> [Float] {
            switch format {
            case .f32: return x
            case .f16: return x.map { Float(Float16($0)) }
            case .bf16: return x.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) }
            }
        }
        return (q, rounded(rng.floats(c.count * c.kvDim)), rounded(rng.floats(c.count * c.kvDim)))
    }

    /// `values` stored as `format` (exact: they were rounded to it).
    private func stored(_ values: [Float], _ format: StorageFormat) -> [UInt8] {
        switch format {
        case .f32: return values.withUnsafeBytes { Array($0) }
        case .f16: return values.map { Float16($0).bitPattern }.withUnsafeBytes { Array($0) }
        case .bf16: return values.map { UInt16($0.bitPattern >> 16) }.withUnsafeBytes { Array($0) }
        }
    }

    /// The chunked kernel over `chunks` (consecutive ranges covering 0..<count); outputs and
    /// partials are poisoned with NaN first so an unwritten element fails.
    private func chunked(_ c: Case, q: [Float], keys: [UInt8], values: [UInt8], format: StorageFormat,
                         chunks: [Range<Int>]) -> [Float] {
        let shape = AttentionHeads(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                   scale: Float(Foundation.pow(Double(c.headDim), -0.5)))
        let longest = chunks.map(\.count).max() ?? 0
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: c.heads * max(1, longest))
        let maxima = UnsafeMutablePointer<Float>.allocate(capacity: chunks.count * c.heads)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: chunks.count * c.heads)
        let weighted = UnsafeMutablePointer<Float>.allocate(capacity: chunks.count * c.heads * c.headDim)
        defer { for p in [scores, maxima, sums, weighted] { p.deallocate() } }
        scores.initialize(repeating: .nan, count: c.heads * max(1, longest))
        maxima.initialize(repeating: .nan, count: chunks.count * c.heads)
        sums.initialize(repeating: .nan, count: chunks.count * c.heads)
        weighted.initialize(repeating: .nan, count: chunks.count * c.heads * c.headDim)
        var out = [Float](repeating: .nan, count: c.heads * c.headDim)
        keys.withUnsafeBytes { k in
            values.withUnsafeBytes { v in
                for (index, range) in chunks.enumerated() {
                    Kernels.attentionChunk(q: q, heads: shape, keys: k.baseAddress!, values: v.baseAddress!,
                                           format: format, positions: range, scores: scores,
                                           maxima: maxima + index * c.heads, sums: sums + index * c.heads,
                                           weighted: weighted + index * c.heads * c.headDim)
                }
            }
        }
        Kernels.combineAttentionChunks(chunks: chunks.count, heads: c.heads, headDim: c.headDim, maxima: maxima,
                                       sums: sums, weighted: weighted, out: &out)
        return out
    }

    private func split(_ count: Int, length: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: length).map { $0..<min(count, $0 + length) }
    }

    /// |fast − exact| ≤ ¼·(count + headDim + 8)·ε·Σ p|v| per element (measured worst: 0.024 of
    /// (count + headDim + 8)·ε·Σ p|v|); NaN never passes.
    private func check(_ fast: [Float], _ c: Case, q: [Float], keys: [Float], values: [Float], label: String) {
        let reference = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                Kernels.Reference.attentionRow64(q: q, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim,
                                                 scale: Float(Foundation.pow(Double(c.headDim), -0.5)),
                                                 keys: k.baseAddress!, values: v.baseAddress!, ld: c.kvDim, count: c.count)
            }
        }
        let unit = Double(c.count + c.headDim + 8) * Double(Float.ulpOfOne)
        var worst = 0.0
        for i in 0..<fast.count {
            let error = abs(Double(fast[i]) - reference.out[i])
            guard !error.isNaN else { return XCTFail("\(label): NaN at \(i) (fast \(fast[i]), exact \(reference.out[i]))") }
            worst = max(worst, error / (unit * max(reference.magnitude[i], .leastNormalMagnitude)))
        }
        XCTAssertLessThanOrEqual(worst, 0.25, "\(label): worst error \(worst)·(count+d+8)·ε·Σp|v|")
    }

    private let cases = [
        Case(heads: 1, kvHeads: 1, headDim: 8, count: 1),
        Case(heads: 9, kvHeads: 3, headDim: 64, count: 7),
        Case(heads: 9, kvHeads: 3, headDim: 64, count: 300),
        Case(heads: 4, kvHeads: 1, headDim: 128, count: 65),
        Case(heads: 6, kvHeads: 2, headDim: 20, count: 130),  // columns past the 8-wide blocks
        Case(heads: 8, kvHeads: 8, headDim: 40, count: 64),   // 32-wide block + an 8-wide one
    ]

    func testChunkedAttentionMatchesFloat64ReferenceForEveryFormatAndChunking() {
        for (index, c) in cases.enumerated() {
            for format in [StorageFormat.f32, .f16, .bf16] {
                let (q, keys, values) = inputs(c, format: format, seed: 0xA77E + UInt64(index))
                let k = stored(keys, format), v = stored(values, format)
                let lengths = Set([Kernels.attentionChunkLength(positions: c.count), 1, 3, 8, 9, c.count])
                for length in lengths.sorted() {
                    let out = chunked(c, q: q, keys: k, values: v, format: format, chunks: split(c.count, length: length))
                    check(out, c, q: q, keys: keys, values: values,
                          label: "\(format) \(c.heads)/\(c.kvHeads)×\(c.headDim), \(c.count) positions, chunks of \(length)")
                }
            }
        }
    }

    func testHalfCacheIsBitForBitItsWidening() {
        let c = Case(heads: 9, kvHeads: 3, headDim: 64, count: 150)
        for format in [StorageFormat.f16, .bf16] {
            let (q, keys, values) = inputs(c, format: format, seed: 0x16)
            let chunks = split(c.count, length: 64)
            let half = chunked(c, q: q, keys: stored(keys, format), values: stored(values, format), format: format, chunks: chunks)
            let wide = chunked(c, q: q, keys: stored(keys, .f32), values: stored(values, .f32), format: .f32, chunks: chunks)
            XCTAssertEqual(half.map(\.bitPattern), wide.map(\.bitPattern), "\(format)")
        }
    }

    func testEmptyChunkIsNeutral() {
        let c = Case(heads: 4, kvHeads: 2, headDim: 16, count: 40)
        let (q, keys, values) = inputs(c, format: .f32, seed: 0xE)
        let k = stored(keys, .f32), v = stored(values, .f32)
        let one = chunked(c, q: q, keys: k, values: v, format: .f32, chunks: [0..<40])
        let padded = chunked(c, q: q, keys: k, values: v, format: .f32, chunks: [0..<40, 40..<40])
        XCTAssertEqual(one.map(\.bitPattern), padded.map(\.bitPattern))
    }

    func testNaNInAKeyOrValueReachesItsGroupOnly() {
        let c = Case(heads: 6, kvHeads: 3, headDim: 16, count: 100)
        var (q, keys, values) = inputs(c, format: .f32, seed: 0x4A4E)
        keys[70 * c.kvDim + 1 * c.headDim + 5] = .nan   // KV head 1: query heads 2, 3
        values[20 * c.kvDim + 2 * c.headDim + 7] = .nan // KV head 2, column 7: query heads 4, 5
        let out = chunked(c, q: q, keys: stored(keys, .f32), values: stored(values, .f32), format: .f32,
                          chunks: split(c.count, length: 64))
        for h in 0..<c.heads {
            for d in 0..<c.headDim {
                let value = out[h * c.headDim + d]
                let poisoned = h == 2 || h == 3 || ((h == 4 || h == 5) && d == 7)
                XCTAssertEqual(value.isNaN, poisoned, "head \(h) column \(d): \(value)")
            }
        }
    }

    func testChunkLengthDependsOnPositionsOnly() {
        XCTAssertEqual(Kernels.attentionChunkLength(positions: 1), 64)
        XCTAssertEqual(Kernels.attentionChunkLength(positions: 2048), 128)
        XCTAssertEqual(Kernels.attentionChunkLength(positions: 1 << 20), 256)
        for n in [1, 100, 1000, 5000, 100_000] {
            let length = Kernels.attentionChunkLength(positions: n)
            XCTAssert(length % 8 == 0 && (64...256).contains(length), "\(n): \(length)")
        }
    }

    func testAccumulatingWeightedRowSumContinuesTheSameSum() {
        var rng = SplitMix64(seed: 0x5EED)
        let count = 37, width = 44, ld = 50
        let p = rng.floats(count), rows = rng.floats(count * ld)
        rows.withUnsafeBytes { raw in
            var whole = [Float](repeating: .nan, count: width)
            Kernels.weightedRowSum(p, count: count, rows: raw.baseAddress!, format: .f32, ld: ld, width: width, out: &whole)
            var parts = [Float](repeating: .nan, count: width)
            Kernels.weightedRowSum(p, count: 20, rows: raw.baseAddress!, format: .f32, ld: ld, width: width, out: &parts)
            p.withUnsafeBufferPointer { pp in
                Kernels.weightedRowSum(pp.baseAddress! + 20, count: count - 20, rows: raw.baseAddress! + 20 * ld * 4,
                                       format: .f32, ld: ld, width: width, out: &parts, accumulate: true)
            }
            XCTAssertEqual(parts.map(\.bitPattern), whole.map(\.bitPattern))
        }
    }
}
