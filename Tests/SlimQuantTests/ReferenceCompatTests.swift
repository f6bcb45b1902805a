// Each ReferenceCompat flag changes behaviour exactly where the spec says (§1.6, §3.3, §6.4)
// and nowhere else.

import Foundation
@testable import SlimQuant
import XCTest

final class ReferenceCompatTests: XCTestCase {
    private func hessian(_ xs: [[Float]], columns: Int) throws -> [Float] {
        let acc = try HessianAccumulator(columns: columns)
        for x in xs { try acc.add(x) }
        return acc.hessian()
    }

    func testDoubleDampAddsAbsoluteThenRelativeDampingOnlyForSBARuns() throws {
        let (rows, columns) = (6, 32)
        var xs = makeActivations(samples: 2, tokens: 40, columns: columns, seed: 1)
        for s in xs.indices { for t in 0..<40 { xs[s][t * columns + 3] = 0 } }      // column 3 dead
        let h = try hessian(xs, columns: columns)
        var rng = TestRandom(seed: 2)
        let w = rng.normals(rows * columns)
        var diag = (0..<columns).map { Double(h[$0 * columns + $0]) }
        diag[3] = 1                                                              // dead → 1
        let mean = diag.reduce(0, +) / Double(columns)

        // N = 3: every group has ≥ 2 bits, whose grid contains 0 exactly (a 1-bit group would
        // map a zeroed column to sign(−μ)·α + μ, in the reference too).
        let clean = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                        options: QuantizationOptions(method: .slim, bits: 3, groupSize: 8))
        let cleanMixed = try clean.quantize(allocation: .mixed(count: 1))
        XCTAssertEqual(cleanMixed.stats.damping, 0.01 * mean, accuracy: 1e-9 * mean)
        XCTAssertEqual(try clean.searchFactor().damping, 0.01 * mean, accuracy: 1e-9 * mean)
        for r in 0..<rows { XCTAssertEqual(cleanMixed.dequantized[r * columns + 3], 0, "clean: dead column zeroed") }

        let reference = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: h,
                                            options: QuantizationOptions(method: .slim, bits: 3, groupSize: 8, compat: [.doubleDamp]))
        // Search: H_dead + 0.01·I only. GPTQ after SBA: + 0.01 + 0.01·mean(diag + 0.01).
        XCTAssertEqual(try reference.searchFactor().damping, 0.01, accuracy: 1e-12)
        let mixed = try reference.quantize(allocation: .mixed(count: 1))
        XCTAssertEqual(mixed.stats.damping, 0.01 + 0.01 * (mean + 0.01), accuracy: 1e-9 * mean)
        XCTAssertTrue((0..<rows).contains { mixed.dequantized[$0 * columns + 3] != 0 },
                      "reference: the dead column is no longer detected, so it is quantized, not zeroed")
        // Without SBA (fixed or uniform allocation) the reference path is the clean one.
        let fixed = try reference.quantize(allocation: .fixed([2, 3, 4, 3]))
        XCTAssertEqual(fixed.stats.damping, 0.01 * mean, accuracy: 1e-9 * mean)
        XCTAssertEqual(fixed.dequantized, try clean.quantize(allocation: .fixed([2, 3, 4, 3])).dequantized)
    }

    /// N = 3, groups: g0 tiny, g1 large, g2 tiny, g3 medium; weights skewed positive so the
    /// asymmetric zero point is 0, never the symmetric 2.
    private func symLeakCase(bits: Int, compat: ReferenceCompat, count: Int) throws -> QuantizedLinear {
        let (rows, columns, g) = (8, 64, 16)
        var rng = TestRandom(seed: 3)
        var w = [Float](repeating: 0, count: rows * columns)
        let scale: [Float] = [0.01, 1, 0.02, 0.5]
        for r in 0..<rows { for j in 0..<columns {
            w[r * columns + j] = scale[j / g] * Float(rng.uniform() * 1.1 - 0.1)
        } }
        let xs = makeActivations(samples: 2, tokens: 64, columns: columns, seed: 4, channelSpread: 0)
        let q = try LinearQuantizer(weight: w, rows: rows, columns: columns, hessian: try hessian(xs, columns: columns),
                                    options: QuantizationOptions(method: .slim, bits: bits, groupSize: g, compat: compat))
        return try q.quantize(allocation: .mixed(count: count))
    }

    func testSymLeakMakesLeadingLowBitGroupsSymmetricForN3() throws {
        let leak = try symLeakCase(bits: 3, compat: [.symLeak], count: 2)
        let clean = try symLeakCase(bits: 3, compat: [], count: 2)
        XCTAssertEqual(leak.bits, [2, 4, 2, 4])
        XCTAssertEqual(clean.bits, leak.bits)
        let k = 4
        for r in 0..<8 {
            XCTAssertEqual(leak.zeros[r * k + 0], 2, "g0 precedes every N/N+1 group: symmetric zero (maxq+1)/2")
        }
        // Asymmetric zero points of these positive-skewed groups are mostly 0 or 1.
        XCTAssertLessThan((0..<8).filter { clean.zeros[$0 * k + 0] == 2 }.count, 8)
        XCTAssertLessThan((0..<8).filter { leak.zeros[$0 * k + 2] == 2 }.count, 8, "g2 follows a 4-bit group: asymmetric")
        XCTAssertNotEqual(leak.dequantized, clean.dequantized)
        XCTAssertEqual(leak.reconstruct(), leak.dequantized)
        // Uniform allocations never leak; N = 2 low groups are 1-bit, where sym is irrelevant.
        XCTAssertEqual(try symLeakCase(bits: 2, compat: [.symLeak], count: 2).dequantized,
                       try symLeakCase(bits: 2, compat: [], count: 2).dequantized)
        XCTAssertEqual(try symLeakCase(bits: 3, compat: [.symLeak], count: 0).dequantized,
                       try symLeakCase(bits: 3, compat: [], count: 0).dequantized)
    }

    func testSearchRangeCandidates() {
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 12), Array(0...6))
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 12, compat: .searchRange), Array(1...5))
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 7, compat: .searchRange), [1, 2])
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 3, compat: .searchRange), [], "reference crashes for K ≤ 3")
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 3), [0, 1])
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 1), [0])
        XCTAssertEqual(Salience.searchCandidates(rankedGroups: 0), [])
    }

    func testRankShortGroupRanksTheShortLastGroup() {
        // SmolLM2 (576 in groups of 128), stories260K's down_proj (172 in groups of 32), a layer
        // narrower than one group, and widths that divide evenly (the flag changes nothing).
        for (columns, g, clean, reference) in [(576, 128, 4, 5), (172, 32, 5, 6), (64, 128, 0, 1), (512, 128, 4, 4),
                                               (64, 32, 2, 2), (0, 32, 0, 0)] {
            XCTAssertEqual(Salience.rankedGroupCount(columns: columns, groupSize: g), clean, "\(columns)/\(g)")
            XCTAssertEqual(Salience.rankedGroupCount(columns: columns, groupSize: g, compat: .rankShortGroup), reference)
            XCTAssertEqual(Salience.rankedGroupCount(columns: columns, groupSize: g, compat: .all), reference)
        }
        // Unranked groups (past the order) stay at N.
        XCTAssertEqual(Salience.mixedBits(order: [2, 0, 1, 3], count: 1, targetBits: 3, groupCount: 5), [3, 3, 2, 4, 3])
        XCTAssertEqual(Salience.mixedBits(order: [2, 0, 1, 3], count: 2, targetBits: 2), [1, 3, 1, 3])
        XCTAssertTrue(ReferenceCompat.all.contains(.rankShortGroup))
    }

    func testSearchWithNoCandidateReturnsNil() throws {
        let columns = 24
        let xs = makeActivations(samples: 1, tokens: 8, columns: columns, seed: 5)
        var rng = TestRandom(seed: 6)
        let q = try LinearQuantizer(weight: rng.normals(4 * columns), rows: 4, columns: columns,
                                    hessian: try hessian(xs, columns: columns),
                                    options: QuantizationOptions(method: .slim, bits: 2, groupSize: 8, compat: .searchRange))
        let s = try q.makeBitSearch()
        XCTAssertEqual(s.candidates, [])
        try xs[0].withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: 8) }
        XCTAssertNil(s.result(), "K = 3 with the reference range: caller falls back to .uniform")
    }

    func testKLBiasOnlyInReference() throws {
        // W exactly representable at 2 bits, so candidate 0 reproduces the full-precision output:
        // with the bias on both sides KL = 0; with the reference quirk the bias is missing on the
        // quantized side and KL > 0.
        let (rows, columns, g) = (6, 16, 8)
        var w = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows { for j in 0..<columns { w[r * columns + j] = 0.25 * Float((r + j) % 4 - 1) } }
        let bias: [Float] = [0.5, -1, 2, 0, 0.25, -0.75]
        let xs = makeActivations(samples: 2, tokens: 8, columns: columns, seed: 7)
        var results: [SBAResult] = []
        for compat in [ReferenceCompat(), .klBiasOnlyInReference] {
            let s = try BitAllocationSearch(weight: w, rows: rows, columns: columns, bias: bias, groupOrder: [0, 1],
                                            targetBits: 2, groupSize: g, candidates: [0, 1], compat: compat)
            for x in xs { try x.withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: 8) } }
            results.append(try XCTUnwrap(s.result()))
        }
        XCTAssertEqual(results[0].klSums[0], 0)
        XCTAssertGreaterThan(results[1].klSums[0], 0)
        XCTAssertNotEqual(results[0].klSums[1], results[1].klSums[1])
    }
}
