// Quantizer primitives: τ grid (torch golden), min-max RTN with round-half-even, the binary
// quantizer, the salient-element mask, the SQC search and the vectorised |x|^2.4.

import Foundation
@testable import SlimQuant
import SlimTestSupport
import XCTest

final class QuantPrimitivesTests: XCTestCase {
    // MARK: τ grid

    func testTauGridMatchesTorchGoldenExactlyAndInOrder() throws {
        guard let doc = try loadFixtureJSON("tau_grid_golden.json") as? [String: Any] else {
            throw FixtureError("tau_grid_golden.json: not an object")
        }
        let bits = try jsonInts(doc["bits"], "bits")
        XCTAssertEqual(bits.count, 101)
        let grid = QuantPrimitives.tauGrid
        XCTAssertEqual(grid.count, 101)
        XCTAssertEqual(grid.map { Int($0.bitPattern) }, bits, "τ grid differs from torch.linspace float32 values")
        // Structure: 1.0 first, then 1.002…1.1 ascending, then 0.998…0.9 descending.
        XCTAssertEqual(grid[0], 1.0)
        XCTAssertEqual(grid[50], Float(1.1))
        XCTAssertEqual(grid[100], Float(0.9))
        XCTAssertEqual(Double(grid[1]), 1.002, accuracy: 1e-6)
        XCTAssertEqual(Double(grid[51]), 0.998, accuracy: 1e-6)
        for i in 1..<50 { XCTAssertLessThan(grid[i], grid[i + 1]) }
        for i in 51..<100 { XCTAssertGreaterThan(grid[i], grid[i + 1]) }
        XCTAssertEqual(grid.filter { $0 == 1 }.count, 1)
    }

    // MARK: RTN

    func testMinMaxRoundHalfToEvenAndClampAfterZero() {
        // Range [−1, 2] at 2 bits: s = 1, z = 1, grid {−1, 0, 1, 2}.
        let row: [Float] = [-1, 0.5, 1.5, 2, -0.5, 0.49]
        let p = row.withUnsafeBufferPointer { QuantPrimitives.fitRow($0.baseAddress!, count: row.count, bits: 2, fit: .minMax) }
        XCTAssertEqual(p, RowParameters(scale: 1, zero: 1))
        let out = row.map { QuantPrimitives.quantize($0, bits: 2, parameters: p) }
        // 0.5 → round(0.5) = 0 (even) → code 1 → 0; 1.5 → 2 → code 3 → 2; −0.5 → −0 → code 1 → 0.
        XCTAssertEqual(out.map(\.code), [0, 1, 3, 3, 1, 1])
        XCTAssertEqual(out.map(\.value), [-1, 0, 2, 2, 0, 0])
        // Zero point itself rounds half to even: −xmin/s = 2.5 → 2.
        XCTAssertEqual(QuantPrimitives.affineParameters(xmin: -2.5, xmax: 4.5, bits: 3, symmetricZero: false).zero, 2)
        // Clamp after adding the zero point: a value beyond the range saturates at maxq.
        XCTAssertEqual(QuantPrimitives.quantize(7, bits: 2, parameters: p).code, 3)
        XCTAssertEqual(QuantPrimitives.quantize(-9, bits: 2, parameters: p).code, 0)
    }

    func testMinMaxRangeIncludesZeroAndAllZeroRowUsesUnitRange() {
        let positive: [Float] = [0.5, 1, 3]
        positive.withUnsafeBufferPointer {
            let r = QuantPrimitives.minMaxRange($0.baseAddress!, count: 3)
            XCTAssertEqual(r.xmin, 0)
            XCTAssertEqual(r.xmax, 3)
        }
        let zeros: [Float] = [0, 0, 0, 0]
        zeros.withUnsafeBufferPointer {
            let r = QuantPrimitives.minMaxRange($0.baseAddress!, count: 4)
            XCTAssertEqual(r.xmin, -1)
            XCTAssertEqual(r.xmax, 1)
            let p = QuantPrimitives.fitRow($0.baseAddress!, count: 4, bits: 3, fit: .sqc(lambda: 1))
            XCTAssertEqual(QuantPrimitives.quantize(0, bits: 3, parameters: p).value, 0)
        }
    }

    func testRTNCodesStayInRangeForEveryBitWidth() {
        var rng = TestRandom(seed: 11)
        let row = rng.normals(257, scale: 3)
        for bits in 2...8 {
            let maxq = (1 << bits) - 1
            row.withUnsafeBufferPointer { w in
                for fit in [GroupFit.minMax, .sqc(lambda: 1)] {
                    let p = QuantPrimitives.fitRow(w.baseAddress!, count: row.count, bits: bits, fit: fit)
                    XCTAssertEqual(p.zero, p.zero.rounded(), "zero point must be an integer")
                    XCTAssertTrue((0...Float(maxq)).contains(p.zero))
                    var maxError: Float = 0
                    for x in row {
                        let (code, value) = QuantPrimitives.quantize(x, bits: bits, parameters: p)
                        XCTAssertLessThanOrEqual(Int(code), maxq)
                        XCTAssertEqual(value, p.scale * (Float(code) - p.zero))
                        maxError = max(maxError, abs(value - x))
                    }
                    // Every value lies in the (τ-scaled) range, so the error is at most ~half a step
                    // (min-max) or bounded by the 10 % range change (SQC).
                    XCTAssertLessThanOrEqual(maxError, p.scale * (fit == .minMax ? 0.5001 : 0.5001 + Float(maxq) * 0.1 + 1))
                }
            }
        }
    }

    // MARK: Binary

    func testBinaryQuantizerUsesRowMeanAndMeanAbsolute() {
        let row: [Float] = [1, 2, -3, 4, 2]   // μ = 1.2, α = 2.4
        let p = row.withUnsafeBufferPointer { QuantPrimitives.fitRow($0.baseAddress!, count: 5, bits: 1, fit: .sqc(lambda: 1)) }
        XCTAssertEqual(p.scale, 2.4, accuracy: 1e-6)
        XCTAssertEqual(p.zero, 1.2, accuracy: 1e-6)
        let out = row.map { QuantPrimitives.quantize($0, bits: 1, parameters: p) }
        XCTAssertEqual(out.map(\.code), [3, 1, 3, 1, 1])
        XCTAssertEqual(out[0].value, -p.scale + p.zero)
        XCTAssertEqual(out[1].value, p.scale + p.zero)
        // Clean: a weight equal to the mean is +1 (binary); ternarySign keeps torch's sign(0) = 0.
        let exact = QuantPrimitives.quantize(p.zero, bits: 1, parameters: p)
        XCTAssertEqual(exact.code, 1)
        XCTAssertEqual(exact.value, p.scale + p.zero)
        let ternary = QuantPrimitives.quantize(p.zero, bits: 1, parameters: p, ternary: true)
        XCTAssertEqual(ternary.code, 0)
        XCTAssertEqual(ternary.value, p.zero)
        XCTAssertEqual(QuantPrimitives.binarySign(code: 3), -1)
        XCTAssertEqual(QuantPrimitives.binarySign(code: 0), 0)
    }

    // MARK: Salience mask

    func testSalienceThresholdWithAndWithoutOutliers() {
        // 100 ones and one 100: only the 100 is beyond 2σ.
        var withOutlier = [Float](repeating: 1, count: 100)
        withOutlier.append(100)
        XCTAssertEqual(withOutlier.withUnsafeBufferPointer { QuantPrimitives.salienceThreshold($0.baseAddress!, count: 101) }, 100)
        // Two high outliers: the threshold is the smaller one.
        var two = [Float](repeating: 1, count: 200)
        two += [50, 80]
        XCTAssertEqual(two.withUnsafeBufferPointer { QuantPrimitives.salienceThreshold($0.baseAddress!, count: two.count) }, 50)
        // Uniform 1…10: max |z| ≈ 1.57 < 2, no outliers → nil (reference would raise).
        let uniform = (1...10).map(Float.init)
        XCTAssertNil(uniform.withUnsafeBufferPointer { QuantPrimitives.salienceThreshold($0.baseAddress!, count: 10) })
        // Constant (σ = 0) and single element → nil.
        let constant = [Float](repeating: 3, count: 16)
        XCTAssertNil(constant.withUnsafeBufferPointer { QuantPrimitives.salienceThreshold($0.baseAddress!, count: 16) })
        XCTAssertNil([Float(1)].withUnsafeBufferPointer { QuantPrimitives.salienceThreshold($0.baseAddress!, count: 1) })
        // A low outlier becomes the threshold (the reference's |z| rule): everything is salient.
        var low = [Float](repeating: 10, count: 100)
        low.append(0)
        XCTAssertEqual(low.withUnsafeBufferPointer { QuantPrimitives.salienceThreshold($0.baseAddress!, count: 101) }, 0)
    }

    // MARK: SQC

    /// Brute-force SQC in Double (independent of the vectorised loss) on random rows.
    func testSQCPicksTheFirstMinimumOfTheL24Loss() {
        var rng = TestRandom(seed: 5)
        var mismatches = 0
        for trial in 0..<60 {
            let count = [7, 32, 128, 100][trial % 4]
            let bits = 2 + trial % 3
            let row = rng.normals(count, scale: 0.02)
            let maxq = Double((1 << bits) - 1)
            let xmin = Double(min(row.min()!, 0)), xmax = Double(max(row.max()!, 0))
            var losses: [Double] = []
            for tau in QuantPrimitives.tauGrid {
                let t = Double(tau)
                let s = (t * xmax - t * xmin) / maxq
                let z = (-t * xmin / s).rounded(.toNearestOrEven)
                losses.append(row.reduce(0.0) { acc, w in
                    let q = min(max((Double(w) / s).rounded(.toNearestOrEven) + z, 0), maxq)
                    return acc + Foundation.pow(abs(s * (q - z) - Double(w)), 2.4)
                })
            }
            let bestLoss = losses.min()!
            let expected = losses.firstIndex(of: bestLoss)!
            let got = row.withUnsafeBufferPointer {
                QuantPrimitives.sqcFit($0.baseAddress!, count: count, bits: bits, xmin: Float(xmin), xmax: Float(xmax),
                                       symmetricZero: false, elementWeights: nil).tauIndex
            }
            if got != expected {
                // Only acceptable in a near-tie of the two losses (fp32 vs fp64 evaluation).
                XCTAssertEqual(losses[got], bestLoss, accuracy: bestLoss * 1e-5, "trial \(trial)")
                mismatches += 1
            }
        }
        XCTAssertLessThanOrEqual(mismatches, 2)
    }

    func testSQCLambdaWeightsSalientElements() {
        // Two elements with a large error at τ = 1 and one salient element: a huge λ must make
        // the fit prefer the τ that serves the salient element best.
        var rng = TestRandom(seed: 9)
        let row = rng.normals(64, scale: 1)
        let ones = [Float](repeating: 1, count: 64)
        var weights = ones
        weights[5] = 1e6
        let (xmin, xmax) = row.withUnsafeBufferPointer { QuantPrimitives.minMaxRange($0.baseAddress!, count: 64) }
        let plain = row.withUnsafeBufferPointer { w in ones.withUnsafeBufferPointer {
            QuantPrimitives.sqcFit(w.baseAddress!, count: 64, bits: 2, xmin: xmin, xmax: xmax, symmetricZero: false,
                                   elementWeights: $0.baseAddress!) } }
        let none = row.withUnsafeBufferPointer {
            QuantPrimitives.sqcFit($0.baseAddress!, count: 64, bits: 2, xmin: xmin, xmax: xmax, symmetricZero: false,
                                   elementWeights: nil) }
        XCTAssertEqual(plain.0, none.0, "unit weights equal no weights")
        let weighted = row.withUnsafeBufferPointer { w in weights.withUnsafeBufferPointer {
            QuantPrimitives.sqcFit(w.baseAddress!, count: 64, bits: 2, xmin: xmin, xmax: xmax, symmetricZero: false,
                                   elementWeights: $0.baseAddress!) } }
        // The salient element's own error is (nearly) minimal over the grid with the weighted fit.
        func error(_ p: RowParameters) -> Float { abs(QuantPrimitives.quantize(row[5], bits: 2, parameters: p).value - row[5]) }
        let bestPossible = QuantPrimitives.tauGrid.map { tau -> Float in
            let p = QuantPrimitives.affineParameters(xmin: tau * xmin, xmax: tau * xmax, bits: 2, symmetricZero: false)
            return error(p)
        }.min()!
        XCTAssertLessThanOrEqual(error(weighted.0), bestPossible + 1e-3)
    }

    // MARK: |x|^2.4

    func testPow24MatchesFoundationPow() {
        var worst = 0.0
        var values: [Float] = [0, 1e-30, 1e-10, 1e-3, 0.1, 1, 2.5, 100, 1e10]
        var rng = TestRandom(seed: 3)
        for _ in 0..<4000 { values.append(Float(Foundation.exp(rng.uniform() * 40 - 30))) }
        for (index, value) in values.enumerated() {
            let got = FastMath.pow24(index % 2 == 0 ? value : -value)
            let expected = Foundation.pow(Double(value), 2.4)
            // Below the Float normal range only "tiny" is meaningful (x² underflows first).
            if expected < 1e-34 { XCTAssertLessThan(abs(got), 1e-33); continue }
            worst = max(worst, abs(Double(got) - expected) / expected)
        }
        XCTAssertLessThan(worst, 1e-6, "relative error of pow24")
    }

    func testTorchLinspaceEdgeCases() {
        XCTAssertEqual(QuantPrimitives.torchLinspace(start: 0, end: 1, steps: 0), [])
        XCTAssertEqual(QuantPrimitives.torchLinspace(start: 2, end: 3, steps: 1), [2])
        XCTAssertEqual(QuantPrimitives.torchLinspace(start: 0, end: 1, steps: 5), [0, 0.25, 0.5, 0.75, 1])
    }
}
