// SBA: constructed cases with a known argmin, incremental vs straightforward candidate outputs,
// the bit histogram of every candidate, and an end-to-end SliM-LLM run.

import Foundation
import SlimKernels
@testable import SlimQuant
import XCTest

final class BitAllocationSearchTests: XCTestCase {
    /// Hessian of `xs` through the public accumulator.
    private func hessian(_ xs: [[Float]], columns: Int) throws -> [Float] {
        let acc = try HessianAccumulator(columns: columns)
        for x in xs { try acc.add(x) }
        return acc.hessian()
    }

    private func search(_ q: LinearQuantizer, _ xs: [[Float]], bias: [Float]? = nil,
                        strategy: SBAStrategy = .incremental) throws -> (BitAllocationSearch, SBAResult?) {
        let s = try q.makeBitSearch(bias: bias, strategy: strategy)
        for x in xs { try x.withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: x.count / q.columns) } }
        return (s, s.result())
    }

    /// Rows whose groups sit exactly on the 2-bit min-max grid {−s, 0, s, 2s} (both ends
    /// present), s a power of two, so RTN at N = 2 reproduces them bit for bit.
    private func exactTwoBitWeight(rows: Int, columns: Int, groupSize: Int, seed: UInt64) -> [Float] {
        var rng = TestRandom(seed: seed)
        var w = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for g0 in stride(from: 0, to: columns, by: groupSize) {
                let s: Float = [0.25, 0.5, 0.125][Int(rng.next() % 3)]
                for j in g0..<min(columns, g0 + groupSize) { w[r * columns + j] = s * Float(Int(rng.next() % 4) - 1) }
                w[r * columns + g0] = -s
                w[r * columns + g0 + 1] = 2 * s
            }
        }
        return w
    }

    func testUniformIsChosenWhenNBitsIsExact() throws {
        let (rows, columns, g) = (12, 48, 8)
        let w = exactTwoBitWeight(rows: rows, columns: columns, groupSize: g, seed: 1)
        let xs = makeActivations(samples: 3, tokens: 24, columns: columns, seed: 2)
        let q = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: try hessian(xs, columns: columns),
                                    options: QuantizationOptions(method: .slim, bits: 2, groupSize: g))
        for strategy in [SBAStrategy.incremental, .straightforward] {
            let (_, result) = try search(q, xs, strategy: strategy)
            let r = try XCTUnwrap(result)
            XCTAssertEqual(r.candidates, [0, 1, 2, 3])
            XCTAssertEqual(r.klSums[0], 0, "Ŵ = W exactly: P = Q")
            XCTAssertTrue(r.klSums.dropFirst().allSatisfy { $0 > 0 })
            XCTAssertEqual(r.best, 0)
            XCTAssertEqual(r.samples, 3)
        }
        // The reference range never tries i = 0.
        var options = q.options
        options.compat = [.searchRange]
        let reference = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: try hessian(xs, columns: columns),
                                            options: options)
        let r = try XCTUnwrap(try search(reference, xs).1)
        XCTAssertEqual(r.candidates, [1, 2])
        XCTAssertNotEqual(r.best, 0)
    }

    func testMaximumMixingIsChosenWhenLowGroupsAreExactInOneBit() throws {
        // Groups 0, 2, 4: tiny ±a with zero row mean (exact at 1 bit, not at 2). Groups 1, 3, 5:
        // large random weights that gain from 3 bits. Every step of i helps: i* = K/2.
        let (rows, columns, g) = (16, 48, 8)
        var rng = TestRandom(seed: 3)
        var w = rng.normals(rows * columns)
        for r in 0..<rows {
            for group in [0, 2, 4] {
                for c in 0..<g { w[r * columns + group * g + c] = (c % 2 == 0 ? 1 : -1) * 0.001 }
            }
        }
        let xs = makeActivations(samples: 3, tokens: 32, columns: columns, seed: 4, channelSpread: 0)
        let q = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: try hessian(xs, columns: columns),
                                    options: QuantizationOptions(method: .slim, bits: 2, groupSize: g))
        let (s, result) = try search(q, xs)
        let r = try XCTUnwrap(result)
        XCTAssertEqual(Set(s.groupOrder.prefix(3)), [0, 2, 4], "the tiny groups rank lowest")
        XCTAssertEqual(r.best, 3)
        for i in 1..<r.klSums.count { XCTAssertLessThan(r.klSums[i], r.klSums[i - 1]) }
        // The final allocation follows: tiny groups 1 bit, the others 3 bits.
        let out = try q.quantize(allocation: .mixed(count: r.best))
        XCTAssertEqual(out.bits, [1, 3, 1, 3, 1, 3])
        for r0 in 0..<rows { for group in [0, 2, 4] { for c in 0..<g {
            let x = r0 * columns + group * g + c
            // Group 0 is quantized before any error feedback reaches it: exact in one bit.
            // (α = 0.001 as fp16, the stored precision.)
            if group == 0 { XCTAssertEqual(out.dequantized[x], Float(Float16(w[x]))) }
            XCTAssertTrue([1, 3].contains(out.codes[x]))
        } } }
    }

    func testIncrementalAndStraightforwardAgree() throws {
        // 104 columns in groups of 16: K = 7 (last group 8 wide; ranked with rankShortGroup only),
        // bias present.
        let (rows, columns, g) = (40, 104, 16)
        var rng = TestRandom(seed: 5)
        let w = rng.normals(rows * columns, scale: 0.2)
        let bias = rng.normals(rows, scale: 0.5)
        let xs = makeActivations(samples: 3, tokens: 48, columns: columns, seed: 6)
        let h = try hessian(xs, columns: columns)
        for (bits, compat) in [(3, ReferenceCompat()), (2, ReferenceCompat.searchRange), (2, ReferenceCompat()),
                               (2, ReferenceCompat.rankShortGroup)] {
            let q = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                        options: QuantizationOptions(method: .slim, bits: bits, groupSize: g, compat: compat))
            let fast = try XCTUnwrap(try search(q, xs, bias: bias, strategy: .incremental).1)
            let slow = try XCTUnwrap(try search(q, xs, bias: bias, strategy: .straightforward).1)
            XCTAssertEqual(fast.candidates, slow.candidates)
            XCTAssertEqual(fast.best, slow.best)
            for (a, b) in zip(fast.klSums, slow.klSums) { XCTAssertEqual(a, b, accuracy: 1e-4 * b) }
            XCTAssertEqual(fast.klSums[0], slow.klSums[0], "the first candidate is the same full GEMM")
        }
    }

    func testEveryCandidateAveragesExactlyNBitsPerWeight() throws {
        let g = 8, rows = 4
        for k in [1, 2, 3, 5, 7, 12] {
            for ragged in [true, false] {
                let columns = ragged ? g * k - 3 : g * k      // a 5-wide last group, or none
                let f = ragged ? k - 1 : k                   // the short group is not ranked
                var rng = TestRandom(seed: UInt64(k))
                let w = rng.normals(rows * columns)
                let h = try hessian(makeActivations(samples: 2, tokens: 16, columns: columns, seed: UInt64(k)),
                                    columns: columns)
                for n in [2, 3] {
                    let q = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                                options: QuantizationOptions(method: .slim, bits: n, groupSize: g))
                    XCTAssertEqual(q.groupCount, k)
                    XCTAssertEqual(q.rankedGroupCount, f)
                    XCTAssertEqual(Salience.searchCandidates(rankedGroups: f), f == 0 ? [] : Array(0...(f / 2)))
                    for i in 0...(f / 2) {
                        let out = try q.quantize(allocation: .mixed(count: i))
                        let what = "K \(k) ragged \(ragged) N \(n) i \(i)"
                        XCTAssertEqual(out.bits.count, k)
                        XCTAssertEqual(out.bits.filter { Int($0) == n - 1 }.count, i, what)
                        XCTAssertEqual(out.bits.filter { Int($0) == n + 1 }.count, i, what)
                        if ragged { XCTAssertEqual(Int(out.bits[k - 1]), n, "the short last group stays at N: \(what)") }
                        XCTAssertEqual(out.averageBits, Double(n), "width-weighted mean: \(what)")
                        XCTAssertEqual(out.reconstruct(), out.dequantized)
                    }
                    XCTAssertThrowsError(try q.quantize(allocation: .mixed(count: f / 2 + 1)))
                }
            }
        }
    }

    /// The short last group is by far the most salient, so ranking it (the reference) puts it at
    /// N+1 and the width-weighted mean above N; the clean search and allocation leave it at N.
    func testShortLastGroupIsNeverRanked() throws {
        // 44 columns in groups of 8: five full groups and a 4-wide group 5 with 30× larger weights.
        let (rows, columns, g, n) = (8, 44, 8, 2)
        var rng = TestRandom(seed: 9)
        var w = rng.normals(rows * columns, scale: 0.1)
        for r in 0..<rows { for j in 40..<44 { w[r * columns + j] *= 30 } }
        let xs = makeActivations(samples: 2, tokens: 32, columns: columns, seed: 10)
        let h = try hessian(xs, columns: columns)

        let clean = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                        options: QuantizationOptions(method: .slim, bits: n, groupSize: g))
        let salience = try clean.searchSalience()
        XCTAssertEqual(salience.count, 6)
        XCTAssertEqual(salience.firstIndex(of: salience.max()!), 5, "the short group is the most salient")
        for strategy in [SBAStrategy.incremental, .straightforward] {
            let (s, result) = try search(clean, xs, strategy: strategy)
            XCTAssertEqual(s.groupCount, 6)
            XCTAssertEqual(s.rankedGroupCount, 5)
            XCTAssertEqual(Set(s.groupOrder), Set(0..<5), "group 5 is not ranked")
            XCTAssertEqual(try XCTUnwrap(result).candidates, [0, 1, 2])
        }
        for i in 1...2 {
            let out = try clean.quantize(allocation: .mixed(count: i))
            XCTAssertEqual(out.bits[5], 2)
            XCTAssertEqual(out.averageBits, 2)
        }
        XCTAssertThrowsError(try clean.quantize(allocation: .mixed(count: 3))) {
            XCTAssertTrue("\($0)".contains("out of 5 ranked groups (the short last group is not ranked)"), "\($0)")
        }

        // Reference: all six groups ranked, the salient short group at N+1, the mean over groups
        // N but the mean over weights not.
        let reference = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                            options: QuantizationOptions(method: .slim, bits: n, groupSize: g,
                                                                         compat: .rankShortGroup))
        XCTAssertEqual(reference.rankedGroupCount, 6)
        let (s, result) = try search(reference, xs)
        XCTAssertEqual(s.groupOrder.last, 5)
        XCTAssertEqual(try XCTUnwrap(result).candidates, [0, 1, 2, 3])
        let out = try reference.quantize(allocation: .mixed(count: 1))
        XCTAssertEqual(out.bits[5], 3)
        XCTAssertEqual(out.bits.map(Int.init).reduce(0, +), 2 * 6)
        // The 1-bit group saves 8 bits per row, the 3-bit short group costs only 4: 84/44 = 1.909….
        XCTAssertEqual(out.averageBits, Double(4 * 8 * 2 + 8 * 1 + 4 * 3) / 44)
    }

    func testEndToEndSliMBeatsRTNOnCalibrationOutputs() throws {
        let (rows, columns, g) = (32, 96, 32)
        var rng = TestRandom(seed: 7)
        let w = rng.normals(rows * columns, scale: 0.1)
        let xs = makeActivations(samples: 4, tokens: 64, columns: columns, seed: 8)
        let h = try hessian(xs, columns: columns)
        func outputError(_ what: [Float]) -> Double {
            var total = 0.0
            for x in xs {
                let tokens = x.count / columns
                var y = [Float](repeating: 0, count: tokens * rows)
                let diff = zip(w, what).map { $0 - $1 }
                Kernels.Reference.sgemmNT(m: tokens, n: rows, k: columns, a: x, lda: columns, b: diff, ldb: columns, c: &y, ldc: rows)
                total += y.reduce(0) { $0 + Double($1) * Double($1) }
            }
            return total
        }
        let rtn = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: nil,
                                      options: QuantizationOptions(method: .rtn, bits: 2, groupSize: g)).quantize()
        let gptq = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                       options: QuantizationOptions(method: .gptq, bits: 2, groupSize: g)).quantize()
        let slimQ = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                        options: QuantizationOptions(method: .slim, bits: 2, groupSize: g))
        let r = try XCTUnwrap(try search(slimQ, xs).1)
        let slim = try slimQ.quantize(allocation: .mixed(count: r.best))
        XCTAssertEqual(slim.averageBits, 2)
        XCTAssertLessThan(outputError(gptq.dequantized), outputError(rtn.dequantized), "GPTQ error feedback")
        XCTAssertLessThan(outputError(slim.dequantized), outputError(rtn.dequantized))
        XCTAssertGreaterThan(slim.stats.seconds, 0)
        XCTAssertGreaterThan(gptq.stats.damping, 0)
    }

    func testSearchValidatesInput() throws {
        XCTAssertThrowsError(try BitAllocationSearch(weight: [1, 2], rows: 1, columns: 2, groupOrder: [0], targetBits: 2,
                                                     groupSize: 2, candidates: [0, 0]))
        XCTAssertThrowsError(try BitAllocationSearch(weight: [1, 2], rows: 1, columns: 2, groupOrder: [1], targetBits: 2,
                                                     groupSize: 2, candidates: [0]))
        XCTAssertThrowsError(try BitAllocationSearch(weight: [1, 2], rows: 1, columns: 2, bias: [1, 2], groupOrder: [0],
                                                     targetBits: 2, groupSize: 2, candidates: [0]))
        XCTAssertThrowsError(try BitAllocationSearch(weight: [1, 2], rows: 1, columns: 2, groupOrder: [0], targetBits: 1,
                                                     groupSize: 2, candidates: [0]))
        let s = try BitAllocationSearch(weight: [1, 2, 3, 4], rows: 2, columns: 2, groupOrder: [0], targetBits: 2,
                                        groupSize: 2, candidates: [0])
        XCTAssertNil(s.result(), "no samples yet")
        let bad: [Float] = [.nan, 1]
        XCTAssertThrowsError(try bad.withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: 1) })
        XCTAssertEqual(s.sampleCount, 0)
        let gptq = try LinearQuantizer(weight: [1, 2], rows: 1, columns: 2, hessian: [1, 0, 0, 1],
                                       options: QuantizationOptions(method: .gptq, bits: 2))
        XCTAssertThrowsError(try gptq.makeBitSearch())
    }
}
