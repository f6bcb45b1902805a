// Dead columns, damping and the upper Cholesky factor of the inverse Hessian (spec §1.6), with
// a retry on failure that the reference lacks.

import Foundation
import SlimKernels

/// The factor GPTQ and the salience use: U upper triangular with H_damped⁻¹ = UᵀU.
public struct InverseHessianFactor: Sendable {
    /// C, the number of input columns.
    public let columns: Int
    /// U, C×C row-major, zeros below the diagonal, positive diagonal.
    public let upper: [Float]
    /// Columns whose Hessian diagonal was exactly 0 (inputs never non-zero); their diagonal was
    /// set to 1 before damping, and GPTQ zeroes these weight columns (clean behaviour).
    public let deadColumns: [Int]
    /// The total value added to every diagonal entry in the successful attempt (absolute
    /// damping plus relative damping, including any retry increase).
    public let damping: Double
    /// How many times the factorization was retried with 10× more damping.
    public let retries: Int

    /// U_jj for every column (the salience denominator, spec §2).
    public var diagonal: [Float] { (0..<columns).map { upper[$0 * columns + $0] } }

    /// Factorizes a damped Hessian.
    ///
    /// Steps: dead columns (H_jj == 0) get H_jj = 1; `absoluteDamping` is added to the diagonal
    /// (0 except for `ReferenceCompat.doubleDamp`); λ = percdamp·mean(diag) is added; then U is
    /// computed in Double (`LinearAlgebra.upperCholeskyOfInverse`) and rounded to Float. If H is
    /// not numerically positive definite, λ is multiplied by 10 and the factorization retried,
    /// up to `maxRetries` times (when percdamp is 0 the retries start from 1e-5·mean(diag)).
    /// - Parameters:
    ///   - hessian: C×C row-major; only the lower triangle (with the diagonal) is read.
    /// - Throws: `QuantError.shapeMismatch` for a wrong element count, `.nonFinite` for NaN/Inf
    ///   entries, `.factorizationFailed` when every attempt fails.
    public static func factor(hessian: [Float], columns: Int, percdamp: Double, absoluteDamping: Double = 0,
                              maxRetries: Int = 6, threads: Int = Kernels.defaultThreads) throws -> InverseHessianFactor {
        let n = columns
        let count = try Shape.elementCount(n, n, "Hessian")
        guard hessian.count == count else {
            throw QuantError.shapeMismatch("Hessian has \(hessian.count) values, expected \(n)×\(n) = \(count)")
        }
        guard percdamp >= 0, percdamp.isFinite, absoluteDamping >= 0, absoluteDamping.isFinite else {
            throw QuantError.invalidOption("damping must be finite and ≥ 0 (percdamp \(percdamp), absolute \(absoluteDamping))")
        }
        for i in 0..<n {
            for j in 0...i where !hessian[i * n + j].isFinite {
                throw QuantError.nonFinite("Hessian entry (\(i), \(j)) is \(hessian[i * n + j])")
            }
        }
        var dead: [Int] = []
        var diagonal = [Double](repeating: 0, count: n)
        for j in 0..<n {
            var d = Double(hessian[j * n + j])
            if d == 0 {
                dead.append(j)
                d = 1
            }
            diagonal[j] = d + absoluteDamping
        }
        let mean = n > 0 ? diagonal.reduce(0, +) / Double(n) : 1
        let reference = mean > 0 && mean.isFinite ? mean : 1
        let initial = percdamp * reference
        let retryBase = initial > 0 ? initial : 1e-5 * reference

        var work = [Double](repeating: 0, count: count)
        var upper = [Float](repeating: 0, count: count)
        var lambda = initial
        for attempt in 0...maxRetries {
            if attempt > 0 {
                lambda = retryBase
                for _ in 0..<attempt { lambda *= 10 }
            }
            let ok = work.withUnsafeMutableBufferPointer { w -> Bool in
                let wp = w.baseAddress!
                // work = J·(H + λI)·J, lower triangle (the reversal maps H's lower onto its upper).
                for i in 0..<n {
                    for j in 0..<i {
                        wp[(n - 1 - j) * n + (n - 1 - i)] = Double(hessian[i * n + j])
                    }
                    wp[(n - 1 - i) * n + (n - 1 - i)] = diagonal[i] + lambda
                }
                guard LinearAlgebra.choleskyLower(wp, n: n, threads: threads) else { return false }
                LinearAlgebra.invertLowerTriangular(wp, n: n, threads: threads)
                // U = J·L̃⁻¹·J (see LinearAlgebra.upperCholeskyOfInverse).
                for a in 0..<n {
                    for b in a..<n {
                        let value = Float(wp[(n - 1 - a) * n + (n - 1 - b)])
                        guard value.isFinite else { return false }
                        upper[a * n + b] = value
                    }
                    guard upper[a * n + a] > 0 else { return false }
                }
                return true
            }
            if ok {
                return InverseHessianFactor(columns: n, upper: upper, deadColumns: dead,
                                            damping: absoluteDamping + lambda, retries: attempt)
            }
        }
        throw QuantError.factorizationFailed(columns: n, retries: maxRetries, lastDamping: absoluteDamping + lambda)
    }

    /// The factor of H = I (no Hessian information): U = I. Used by RTN, where GPTQ's error
    /// feedback vanishes.
    public static func identity(columns: Int) -> InverseHessianFactor {
        var u = [Float](repeating: 0, count: columns * columns)
        for j in 0..<columns { u[j * columns + j] = 1 }
        return InverseHessianFactor(columns: columns, upper: u, deadColumns: [], damping: 0, retries: 0)
    }
}

// MARK: - Shared Hessian

/// A calibration Hessian shared by the linear modules that read the same input (q/k/v,
/// gate/up): each damped factorization is computed once, by the first quantizer that needs it,
/// and reused by the others. Thread-safe (a lock serialises factorizations; concurrent callers
/// wait for the one in progress instead of repeating it).
public final class SharedHessian: @unchecked Sendable {
    /// C.
    public let columns: Int
    /// H, C×C row-major.
    public let matrix: [Float]

    private struct Key: Hashable {
        let percdamp: Double
        let absolute: Double
        let maxRetries: Int
    }
    private var factors: [Key: InverseHessianFactor] = [:]
    private let lock = NSLock()

    /// - Throws: `QuantError.shapeMismatch` when `matrix` is not C×C.
    public init(_ matrix: [Float], columns: Int) throws {
        let expected = try Shape.elementCount(columns, columns, "Hessian")
        guard matrix.count == expected else {
            throw QuantError.shapeMismatch("Hessian has \(matrix.count) values, expected \(columns)×\(columns)")
        }
        self.columns = columns
        self.matrix = matrix
    }

    /// `InverseHessianFactor.factor` of this Hessian, cached per damping setting.
    public func factor(percdamp: Double, absoluteDamping: Double = 0, maxRetries: Int = 6,
                       threads: Int = Kernels.defaultThreads) throws -> InverseHessianFactor {
        let key = Key(percdamp: percdamp, absolute: absoluteDamping, maxRetries: maxRetries)
        lock.lock()
        defer { lock.unlock() }
        if let cached = factors[key] { return cached }
        let result = try InverseHessianFactor.factor(hessian: matrix, columns: columns, percdamp: percdamp,
                                                     absoluteDamping: absoluteDamping, maxRetries: maxRetries,
                                                     threads: threads)
        factors[key] = result
        return result
    }
}
