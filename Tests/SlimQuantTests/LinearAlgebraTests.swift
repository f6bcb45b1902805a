// Blocked Double Cholesky / triangular inverse / U = chol(H⁻¹) against naive textbook code,
// damping retries, dead columns and the Hessian accumulator.

import Foundation
@testable import SlimQuant
import SlimKernels
import XCTest

/// Naive reference linear algebra (textbook loops, Double).
enum NaiveLinearAlgebra {
    /// Cholesky–Banachiewicz; nil if not positive definite.
    static func cholesky(_ a: [Double], _ n: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0 else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        return l
    }

    /// Inverse of SPD `a` from its Cholesky factor by solving L·Lᵀ·x = e_j column by column.
    static func inverse(_ a: [Double], _ n: Int) -> [Double]? {
        guard let l = cholesky(a, n) else { return nil }
        var inv = [Double](repeating: 0, count: n * n)
        for col in 0..<n {
            var y = [Double](repeating: 0, count: n)
            for i in 0..<n {
                var s = i == col ? 1.0 : 0.0
                for k in 0..<i { s -= l[i * n + k] * y[k] }
                y[i] = s / l[i * n + i]
            }
            var x = [Double](repeating: 0, count: n)
            for i in stride(from: n - 1, through: 0, by: -1) {
                var s = y[i]
                for k in (i + 1)..<n { s -= l[k * n + i] * x[k] }
                x[i] = s / l[i * n + i]
            }
            for i in 0..<n { inv[i * n + col] = x[i] }
        }
        return inv
    }

    /// The reference route: U = cholesky(cholesky_inverse(cholesky(H)), upper=True).
    static func upperCholeskyOfInverse(_ h: [Double], _ n: Int) -> [Double]? {
        guard let inv = inverse(h, n), let l = cholesky(inv, n) else { return nil }
        return transpose(l, n)
    }
}

func randomSPD(_ n: Int, seed: UInt64, rows: Int? = nil) -> [Double] {
    var rng = TestRandom(seed: seed)
    let m = rows ?? (n + 7)
    let x = (0..<(m * n)).map { _ in rng.normal() }
    var h = [Double](repeating: 0, count: n * n)
    for t in 0..<m { for i in 0..<n { for j in 0..<n { h[i * n + j] += x[t * n + i] * x[t * n + j] } } }
    for i in 0..<n { h[i * n + i] += 1e-3 }
    return h
}

final class LinearAlgebraTests: XCTestCase {
    func testCholeskyMatchesNaiveAcrossBlockBoundaries() {
        for n in [1, 5, 64, 65, 150] {
            let h = randomSPD(n, seed: UInt64(n))
            var l = h
            XCTAssertTrue(l.withUnsafeMutableBufferPointer { LinearAlgebra.choleskyLower($0.baseAddress!, n: n, threads: 2) })
            let naive = NaiveLinearAlgebra.cholesky(h, n)!
            let scale = naive.map(abs).max()!
            XCTAssertLessThan(maxAbsDifference(l, naive), 1e-11 * scale, "n = \(n)")
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { XCTAssertEqual(l[i * n + j], 0) } }
        }
    }

    func testResultsIndependentOfThreadCount() {
        let n = 203
        let h = randomSPD(n, seed: 77)
        var one = h, two = h
        _ = one.withUnsafeMutableBufferPointer { LinearAlgebra.choleskyLower($0.baseAddress!, n: n, threads: 1) }
        _ = two.withUnsafeMutableBufferPointer { LinearAlgebra.choleskyLower($0.baseAddress!, n: n, threads: 4) }
        XCTAssertEqual(one, two)
        one.withUnsafeMutableBufferPointer { LinearAlgebra.invertLowerTriangular($0.baseAddress!, n: n, threads: 1) }
        two.withUnsafeMutableBufferPointer { LinearAlgebra.invertLowerTriangular($0.baseAddress!, n: n, threads: 4) }
        XCTAssertEqual(one, two)
    }

    func testInverseAndUpperFactorOfInverse() {
        for n in [3, 64, 130] {
            let h = randomSPD(n, seed: 100 + UInt64(n))
            let l = NaiveLinearAlgebra.cholesky(h, n)!
            let inv = LinearAlgebra.inverseFromCholesky(l, n: n, threads: 2)
            let product = matmul(h, inv, n)
            var identityError = 0.0
            for i in 0..<n { for j in 0..<n { identityError = max(identityError, abs(product[i * n + j] - (i == j ? 1 : 0))) } }
            XCTAssertLessThan(identityError, 1e-8, "H·H⁻¹ − I, n = \(n)")

            let u = LinearAlgebra.upperCholeskyOfInverse(h, n: n, threads: 2)!
            let reference = NaiveLinearAlgebra.upperCholeskyOfInverse(h, n)!
            let scale = reference.map(abs).max()!
            XCTAssertLessThan(maxAbsDifference(u, reference), 1e-9 * scale, "U vs reference route, n = \(n)")
            for i in 0..<n {
                XCTAssertGreaterThan(u[i * n + i], 0)
                for j in 0..<i { XCTAssertEqual(u[i * n + j], 0) }
            }
            let utu = matmul(transpose(u, n), u, n)
            XCTAssertLessThan(maxAbsDifference(utu, inv), 1e-9 * inv.map(abs).max()!)
        }
    }

    func testNotPositiveDefiniteIsReported() {
        var a: [Double] = [1, 2, 2, 1]   // eigenvalues 3 and −1
        XCTAssertFalse(a.withUnsafeMutableBufferPointer { LinearAlgebra.choleskyLower($0.baseAddress!, n: 2) })
        var nan: [Double] = [Double.nan, 0, 0, 1]
        XCTAssertFalse(nan.withUnsafeMutableBufferPointer { LinearAlgebra.choleskyLower($0.baseAddress!, n: 2) })
        XCTAssertNil(LinearAlgebra.upperCholeskyOfInverse([1, 1, 1, 1], n: 2))
    }

    // MARK: Damping, retries, dead columns

    func testFactorDampingAndRetryOnIndefiniteHessian() throws {
        // [[1, 2], [2, 1]] + λI is positive definite only for λ > 1: with percdamp 0.01
        // (λ = 0.01·mean diag = 0.01) the attempts are 0.01, 0.1, 1 (singular), 10 → 3 retries.
        let h: [Float] = [1, 2, 2, 1]
        let f = try InverseHessianFactor.factor(hessian: h, columns: 2, percdamp: 0.01, maxRetries: 6)
        XCTAssertEqual(f.retries, 3)
        XCTAssertEqual(f.damping, 10, accuracy: 1e-12)
        let expected = NaiveLinearAlgebra.upperCholeskyOfInverse([11, 2, 2, 11], 2)!
        for i in 0..<4 { XCTAssertEqual(Double(f.upper[i]), expected[i], accuracy: 1e-6) }
        XCTAssertThrowsError(try InverseHessianFactor.factor(hessian: h, columns: 2, percdamp: 0.01, maxRetries: 2)) { error in
            guard case QuantError.factorizationFailed(let columns, let retries, _) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(columns, 2)
            XCTAssertEqual(retries, 2)
        }
        // A singular PSD Hessian with no damping retries from 1e-5·mean(diag).
        let singular: [Float] = [1, 1, 1, 1]
        let g = try InverseHessianFactor.factor(hessian: singular, columns: 2, percdamp: 0, maxRetries: 6)
        XCTAssertEqual(g.retries, 1)
        XCTAssertEqual(g.damping, 1e-4, accuracy: 1e-12)
    }

    func testFactorValidatesInput() {
        XCTAssertThrowsError(try InverseHessianFactor.factor(hessian: [1, 0, 0], columns: 2, percdamp: 0.01))
        XCTAssertThrowsError(try InverseHessianFactor.factor(hessian: [1, 0, .nan, 1], columns: 2, percdamp: 0.01)) {
            XCTAssertTrue("\($0)".contains("(1, 0)"), "\($0)")
        }
        XCTAssertThrowsError(try InverseHessianFactor.factor(hessian: [1], columns: 1, percdamp: -1))
    }

    func testDeadColumnsGetUnitDiagonal() throws {
        // Column 1 never sees input: H row/column 1 are zero.
        let h: [Float] = [4, 0, 1,
                          0, 0, 0,
                          1, 0, 3]
        let f = try InverseHessianFactor.factor(hessian: h, columns: 3, percdamp: 0.01)
        XCTAssertEqual(f.deadColumns, [1])
        let damp = 0.01 * (4 + 1 + 3) / 3
        XCTAssertEqual(f.damping, damp, accuracy: 1e-12)
        let expected = NaiveLinearAlgebra.upperCholeskyOfInverse([4 + damp, 0, 1, 0, 1 + damp, 0, 1, 0, 3 + damp], 3)!
        for i in 0..<9 { XCTAssertEqual(Double(f.upper[i]), expected[i], accuracy: 1e-6) }
        // The dead column is decoupled: U[1, j] = 0 for j ≠ 1.
        XCTAssertEqual(f.upper[1 * 3 + 2], 0)
        XCTAssertEqual(f.upper[0 * 3 + 1], 0)
    }

    // MARK: Hessian accumulator

    func testHessianIsTwoOverSequencesTimesSumOfXtX() throws {
        let columns = 37, tokens = 50
        let xs = makeActivations(samples: 3, tokens: tokens, columns: columns, seed: 42)
        var expected = [Double](repeating: 0, count: columns * columns)
        for x in xs { for t in 0..<tokens { for i in 0..<columns { for j in 0..<columns {
            expected[i * columns + j] += Double(x[t * columns + i]) * Double(x[t * columns + j])
        } } } }
        expected = expected.map { $0 * 2 / 3 }
        var results: [[Float]] = []
        for (precision, threads) in [(HessianAccumulator.Precision.double, 1), (.double, 3), (.float, 2)] {
            let acc = try HessianAccumulator(columns: columns, precision: precision, threads: threads)
            for x in xs { try acc.add(x) }
            XCTAssertEqual(acc.sequenceCount, 3)
            let h = acc.hessian()
            for i in 0..<columns { for j in 0..<columns { XCTAssertEqual(h[i * columns + j], h[j * columns + i]) } }
            // Float accumulation: error relative to √(H_ii·H_jj) (the Cauchy–Schwarz scale).
            var worst = 0.0
            for i in 0..<columns { for j in 0..<columns {
                let scale = (expected[i * columns + i] * expected[j * columns + j]).squareRoot()
                worst = max(worst, abs(Double(h[i * columns + j]) - expected[i * columns + j]) / scale)
            } }
            XCTAssertLessThan(worst, 1e-6, "\(precision) threads \(threads)")
            results.append(h)
        }
        XCTAssertEqual(results[0], results[1], "thread count must not change the Hessian")
        // Stacking sequences in one call with `sequences:` is the same sum.
        let stacked = try HessianAccumulator(columns: columns)
        try stacked.add(xs[0] + xs[1] + xs[2], sequences: 3)
        let diff = zip(stacked.hessian(), results[0]).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(diff, 1e-6 * results[0].map(abs).max()!)
        // Empty accumulator: all zeros; bad shapes throw.
        XCTAssertEqual(try HessianAccumulator(columns: 4).hessian(), [Float](repeating: 0, count: 16))
        XCTAssertThrowsError(try stacked.add([1, 2, 3]))
        XCTAssertThrowsError(try HessianAccumulator(columns: -1))
    }
}
