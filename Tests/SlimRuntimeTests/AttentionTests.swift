import Foundation
import SlimKernels
@testable import SlimRuntime
import XCTest

/// `CausalAttention` against the float64 reference, row by row: decode steps (the chunked
/// kernel, one or several chunks per row) and prefills (GEMM tiles, a partial last tile of
/// fewer than 4 rows), with grouped-query heads; decode results do not depend on threads.
final class AttentionTests: XCTestCase {
    private func uniform(_ rng: inout SplitMix64, _ count: Int, scale: Float) -> [Float] {
        (0..<count).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 23) * scale }
    }

    private struct Problem {
        let attention: CausalAttention
        let rows, start: Int
        let q, cache: [Float]  // cache: keys then values, (start + rows) × kvDim each
        var positions: Int { start + rows }
        var qDim: Int { attention.heads * attention.headDim }
        var kvDim: Int { attention.kvHeads * attention.headDim }

        func run(threads: Int) -> [Float] {
            var out = [Float](repeating: .nan, count: rows * qDim)
            cache.withUnsafeBytes { c in
                attention.run(q: q, keys: c.baseAddress!, values: c.baseAddress! + positions * kvDim * 4, format: .f32,
                              out: &out, rows: rows, start: start, threads: threads)
            }
            return out
        }
    }

    private func problem(heads: Int, kvHeads: Int, headDim: Int, rows: Int, start: Int, seed: UInt64) -> Problem {
        var rng = SplitMix64(seed: seed)
        let attention = CausalAttention(heads: heads, kvHeads: kvHeads, headDim: headDim)
        return Problem(attention: attention, rows: rows, start: start,
                       q: uniform(&rng, rows * heads * headDim, scale: 2),
                       cache: uniform(&rng, 2 * (start + rows) * kvHeads * headDim, scale: 1))
    }

    /// Every row within ¼·(visible + headDim + 8)·ε·Σp|v| of the float64 attention over its
    /// visible positions (the kernel test's bound); NaN never passes.
    private func checkRows(_ p: Problem, _ out: [Float], label: String) {
        let a = p.attention
        p.cache.withUnsafeBufferPointer { c in
            p.q.withUnsafeBufferPointer { q in
                for t in 0..<p.rows {
                    let visible = p.start + t + 1
                    let reference = Kernels.Reference.attentionRow64(
                        q: q.baseAddress! + t * p.qDim, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim,
                        scale: a.scale, keys: c.baseAddress!, values: c.baseAddress! + p.positions * p.kvDim,
                        ld: p.kvDim, count: visible)
                    let unit = Double(visible + a.headDim + 8) * Double(Float.ulpOfOne)
                    for i in 0..<p.qDim {
                        let value = out[t * p.qDim + i]
                        let error = abs(Double(value) - reference.out[i])
                        if !(error <= 0.25 * unit * reference.magnitude[i]) {
                            return XCTFail("\(label) row \(t) element \(i): \(value) vs \(reference.out[i])")
                        }
                    }
                }
            }
        }
    }

    func testDecodeRowsMatchFloat64Reference() {
        for (index, (rows, start)) in [(1, 0), (1, 5), (2, 130), (3, 700)].enumerated() {
            for (heads, kvHeads, headDim) in [(9, 3, 64), (4, 4, 32), (6, 2, 20)] {
                let p = problem(heads: heads, kvHeads: kvHeads, headDim: headDim, rows: rows, start: start,
                                seed: UInt64(index * 31 + heads))
                checkRows(p, p.run(threads: 2), label: "\(heads)/\(kvHeads)×\(headDim) rows \(rows) start \(start)")
            }
        }
    }

    func testPrefillTilesIncludingAShortLastTileMatchFloat64Reference() {
        for (rows, start) in [(66, 0), (4, 10), (67, 40)] {
            let p = problem(heads: 6, kvHeads: 2, headDim: 24, rows: rows, start: start, seed: UInt64(rows + start))
            checkRows(p, p.run(threads: 2), label: "prefill rows \(rows) start \(start)")
        }
    }

    func testDecodeDoesNotDependOnThreads() {
        for rows in [1, 3] {
            let p = problem(heads: 9, kvHeads: 3, headDim: 64, rows: rows, start: 1500, seed: 0x7D + UInt64(rows))
            let one = p.run(threads: 1)
            XCTAssertFalse(one.contains { !$0.isFinite })
            for threads in [2, 3, 8] {
                XCTAssertEqual(p.run(threads: threads).map(\.bitPattern), one.map(\.bitPattern), "rows \(rows), \(threads) threads")
            }
        }
    }
}
