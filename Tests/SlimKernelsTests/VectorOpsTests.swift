import Foundation
import XCTest
import SlimKernels

final class VectorOpsTests: XCTestCase {
    private let epsilon = Float.ulpOfOne
    private let lengths = [0, 1, 7, 8, 9, 31, 32, 33, 100, 1000]

    // MARK: exp

    /// Dense sweep over every binade of the domain, subnormal results included: at most 2 ulp
    /// from the correctly rounded result.
    func testExpWithinTwoUlp() {
        var inputs: [Float] = []
        var x: Float = -104
        while x < 89 {
            inputs.append(x)
            x += 0.000_97
        }
        var rng = SplitMix64(seed: 1500)
        for _ in 0..<20_000 { inputs.append(rng.nextFloat() * 1e-3) }  // tiny |x|: e^x ≈ 1 + x
        var out = [Float](repeating: 0, count: inputs.count)
        Kernels.exp(inputs, output: &out, count: inputs.count)
        var worst = 0
        for (index, value) in inputs.enumerated() {
            let expected = Kernels.Reference.exp(value)
            let distance = ulpDistance(out[index], expected)
            if distance > worst { worst = distance }
            if distance > 2 {
                XCTFail("exp(\(value)) = \(out[index]), expected \(expected) (\(distance) ulp)")
                return
            }
        }
        XCTAssertLessThanOrEqual(worst, 2)
    }

    func testExpSpecialValues() {
        let inputs: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, 88.8, 88.72, -87.5, -103.5, -104.5, -1000, 1000]
        var out = [Float](repeating: 0, count: inputs.count)
        Kernels.exp(inputs, output: &out, count: inputs.count)
        XCTAssertEqual(out[0], 1)
        XCTAssertEqual(out[1], 1)
        XCTAssertLessThanOrEqual(ulpDistance(out[2], Float(M_E)), 1)
        XCTAssertEqual(out[4], .infinity)
        XCTAssertEqual(out[5], 0)
        XCTAssertTrue(out[6].isNaN)
        XCTAssertEqual(out[7], .infinity)
        XCTAssertTrue(out[8].isFinite && out[8] > 3e38)
        XCTAssertTrue(out[9] > 0 && out[9] < .leastNormalMagnitude)       // subnormal result
        XCTAssertEqual(out[10], Kernels.Reference.exp(-103.5))            // smallest subnormals
        XCTAssertEqual(out[11], 0)
        XCTAssertEqual(out[12], 0)
        XCTAssertEqual(out[13], .infinity)
    }

    // MARK: BLAS-1

    func testDotWithinRoundingBound() {
        for (index, n) in lengths.enumerated() {
            var rng = SplitMix64(seed: UInt64(1600 + index))
            let x = rng.floats(n), y = rng.floats(n)
            let fast = Kernels.dot(x, y, count: n)
            var magnitude = 0.0
            for i in 0..<n { magnitude += abs(Double(x[i]) * Double(y[i])) }
            XCTAssertNil(checkAgainstExact([fast], exact: [Kernels.Reference.dot64(x, y, count: n)],
                                           magnitude: [magnitude], k: n, label: "dot n=\(n)"))
        }
    }

    func testAxpyScaleAdd() {
        for (index, n) in lengths.enumerated() {
            var rng = SplitMix64(seed: UInt64(1700 + index))
            let x = rng.floats(n), y0 = rng.floats(n)
            // axpy: one fused multiply-add per element, i.e. the correctly rounded y + α·x.
            var y = y0
            Kernels.axpy(alpha: 0.37, x: x, y: &y, count: n)
            for i in 0..<n {
                XCTAssertEqual(y[i], y0[i].addingProduct(0.37, x[i]), "axpy n=\(n) i=\(i)")
            }
            // The unfused Float reference differs by at most one extra rounding of α·x.
            var yReference = y0
            Kernels.Reference.axpy(alpha: 0.37, x: x, y: &yReference, count: n)
            for i in 0..<n {
                XCTAssertLessThanOrEqual(abs(yReference[i] - y[i]), epsilon * (abs(y0[i]) + abs(0.37 * x[i])),
                                         "reference axpy n=\(n) i=\(i)")
            }
            // scale and add round once per element, exactly like the Float reference.
            var scaled = x, scaledReference = x
            Kernels.scale(&scaled, by: -1.75, count: n)
            Kernels.Reference.scale(&scaledReference, by: -1.75, count: n)
            XCTAssertEqual(scaled, scaledReference, "scale n=\(n)")
            var sum = y0, sumReference = y0
            Kernels.add(x, into: &sum, count: n)
            Kernels.Reference.add(x, into: &sumReference, count: n)
            XCTAssertEqual(sum, sumReference, "add n=\(n)")
        }
    }

    // MARK: LLaMA row operations

    func testRMSNormMatchesDoubleReference() {
        for n in [1, 7, 8, 33, 576] {
            let rows = 3
            var rng = SplitMix64(seed: UInt64(1800 + n))
            let x = rng.floats(rows * n), weight = rng.floats(n)
            var fast = [Float](repeating: .nan, count: rows * n)
            var reference = fast
            Kernels.rmsNorm(x: x, weight: weight, output: &fast, rows: rows, n: n, eps: 1e-5)
            Kernels.Reference.rmsNorm(x: x, weight: weight, output: &reference, rows: rows, n: n, eps: 1e-5)
            // Sum of squares ≲ n·ε relative, halved by the square root, plus a few roundings.
            let tolerance = (Float(n) / 2 + 4) * epsilon
            for i in 0..<rows * n where !(abs(fast[i] - reference[i]) <= tolerance * abs(reference[i])) {
                XCTFail("rmsNorm n=\(n) element \(i): \(fast[i]) vs \(reference[i])")
                return
            }
            // In place gives the same bits.
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { p in
                Kernels.rmsNorm(x: p.baseAddress!, weight: weight, output: p.baseAddress!, rows: rows, n: n, eps: 1e-5)
            }
            XCTAssertEqual(inPlace, fast)
        }
    }

    func testSoftmaxMatchesDoubleReference() {
        for n in [1, 5, 8, 13, 64, 2048] {
            var rng = SplitMix64(seed: UInt64(1900 + n))
            let x = rng.floats(n).map { $0 * 30 }
            var fast = x, reference = x
            Kernels.softmax(&fast, count: n)
            Kernels.Reference.softmax(&reference, count: n)
            // Sum error ≲ n·ε, exp ≤ 2 ulp, reciprocal and product 1.5 ulp; rounding x − max in
            // Float (as PyTorch does) perturbs e^(x−max) by up to |x − max|·ε/2 relative.
            let rowMax = x.max()!
            let tolerance = (Float(n) + 6) * epsilon
            var total: Double = 0
            for i in 0..<n {
                total += Double(fast[i])
                let bound = (tolerance + abs(x[i] - rowMax) * epsilon) * reference[i]
                if !(abs(fast[i] - reference[i]) <= bound + Float.leastNonzeroMagnitude) {
                    XCTFail("softmax n=\(n) element \(i): \(fast[i]) vs \(reference[i])")
                    return
                }
            }
            XCTAssertEqual(total, 1, accuracy: Double(tolerance))
        }
    }

    func testSoftmaxEdgeCases() {
        var empty: [Float] = [3]
        Kernels.softmax(&empty, count: 0)
        XCTAssertEqual(empty, [3])
        var masked: [Float] = [1, -.infinity, 1, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity, 1, -.infinity]
        Kernels.softmax(&masked, count: masked.count)
        for (i, value) in masked.enumerated() {
            XCTAssertEqual(value, [0, 2, 8].contains(i) ? 1 / 3 : 0, accuracy: 1e-7, "masked[\(i)]")
            if ![0, 2, 8].contains(i) { XCTAssertEqual(value, 0) }
        }
        var large: [Float] = [1000, 999, 1000, -1000, 500]
        Kernels.softmax(&large, count: large.count)
        XCTAssertTrue(large.allSatisfy(\.isFinite))
        XCTAssertEqual(large[0], large[2])
        var withNaN: [Float] = [1, 2, .nan, 4, 5, 6, 7, 8, 9]
        Kernels.softmax(&withNaN, count: withNaN.count)
        XCTAssertTrue(withNaN.allSatisfy(\.isNaN))
        var allMasked: [Float] = [-.infinity, -.infinity, -.infinity]
        Kernels.softmax(&allMasked, count: 3)
        XCTAssertTrue(allMasked.allSatisfy(\.isNaN))
        var single: [Float] = [-7]
        Kernels.softmax(&single, count: 1)
        XCTAssertEqual(single, [1])
    }

    func testSiluMulMatchesDoubleReference() {
        for n in [1, 7, 8, 17, 1000] {
            var rng = SplitMix64(seed: UInt64(2000 + n))
            let gate = rng.floats(n).map { $0 * 20 }, up = rng.floats(n)
            var fast = [Float](repeating: .nan, count: n), reference = fast
            Kernels.siluMul(gate: gate, up: up, output: &fast, count: n)
            Kernels.Reference.siluMul(gate: gate, up: up, output: &reference, count: n)
            for i in 0..<n where !(abs(fast[i] - reference[i]) <= 8 * epsilon * abs(reference[i]) + Float.leastNormalMagnitude) {
                XCTFail("siluMul n=\(n) element \(i): \(fast[i]) vs \(reference[i])")
                return
            }
            // Output aliasing the gate buffer.
            var inPlace = gate
            inPlace.withUnsafeMutableBufferPointer { p in
                Kernels.siluMul(gate: p.baseAddress!, up: up, output: p.baseAddress!, count: n)
            }
            XCTAssertEqual(inPlace, fast)
        }
        let gate: [Float] = [-200, 200, .nan, 0, -.infinity, .infinity]
        let up: [Float] = [3, 3, 1, 5, 2, 2]
        var out = [Float](repeating: 1, count: gate.count)
        Kernels.siluMul(gate: gate, up: up, output: &out, count: gate.count)
        XCTAssertEqual(out[0], 0)
        XCTAssertEqual(out[1], 600)
        XCTAssertTrue(out[2].isNaN)
        XCTAssertEqual(out[3], 0)
        XCTAssertTrue(out[4].isNaN)     // −Inf / (1 + Inf), as PyTorch's x / (1 + e^(−x))
        XCTAssertEqual(out[5], .infinity)
    }
}
