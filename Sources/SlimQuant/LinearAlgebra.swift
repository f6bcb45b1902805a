// Dense Double-precision Cholesky factorization and triangular inversion for the GPTQ inverse
// Hessian (spec §1.6). Double keeps the factorization of nearly singular calibration Hessians
// meaningful where float32 (the reference) would fail or lose digits; results are returned to
// the callers in Float.
//
// Both algorithms are blocked (64 columns) so that their O(n³) part runs in one register-tiled
// kernel (4×8 outputs, C += α·A·B with B rows contiguous); work is split over output rows or
// column chunks, each output computed by the same operation sequence whatever the thread
// count, so results are bit-identical for any `threads`.

import Dispatch
import SlimKernels

public enum LinearAlgebra {
    static let blockSize = 64
    /// Relative pivot floor of `choleskyLower`: 1e-10 leaves room for condition numbers far
    /// beyond a damped GPTQ Hessian's while rejecting the ~1e-16 pivots of singular matrices.
    public static let pivotTolerance = 1e-10

    // MARK: - Cholesky

    /// In-place lower Cholesky factorization A = L·Lᵀ of a symmetric positive definite n×n
    /// matrix (row-major, row stride n). Only the lower triangle (with the diagonal) is read.
    /// - Returns: true on success, with L in the lower triangle and zeros above it; false when a
    ///   pivot is not positive and finite, or below `pivotTolerance` times the original diagonal
    ///   entry (the rounding noise left by an exactly singular matrix), or the matrix contains
    ///   NaN/Inf; `a` is then partially overwritten.
    public static func choleskyLower(_ a: UnsafeMutablePointer<Double>, n: Int,
                                     threads: Int = Kernels.defaultThreads) -> Bool {
        precondition(n >= 0, "choleskyLower: negative size \(n)")
        let nb = blockSize
        let minimumPivot = (0..<n).map { a[$0 &* n &+ $0] * pivotTolerance }
        var k0 = 0
        while k0 < n {
            let k1 = min(n, k0 + nb)
            // 1. Factor the diagonal block (already updated by the previous blocks).
            for j in k0..<k1 {
                let rowJ = a + j &* n
                var d = rowJ[j]
                for k in k0..<j { d -= rowJ[k] * rowJ[k] }
                guard d > minimumPivot[j], d > 0, d.isFinite else { return false }
                let pivot = d.squareRoot()
                rowJ[j] = pivot
                for i in (j + 1)..<k1 {
                    let rowI = a + i &* n
                    var s = rowI[j]
                    for k in k0..<j { s -= rowI[k] * rowJ[k] }
                    rowI[j] = s / pivot
                }
            }
            let trailing = n - k1
            if trailing > 0 {
                // 2. Panel: rows below the block solve x·L11ᵀ = a (forward substitution per row).
                parallelChunks(count: trailing, threads: threads, grain: 64) { range in
                    for i in range {
                        let rowI = a + (k1 + i) &* n
                        for j in k0..<k1 {
                            let rowJ = a + j &* n
                            var s = rowI[j]
                            for k in k0..<j { s -= rowI[k] * rowJ[k] }
                            rowI[j] = s / rowJ[j]
                        }
                    }
                }
                // 3. Trailing update A22 −= P·Pᵀ (lower triangle only), P = panel rows.
                let width = k1 - k0
                var packed = [Double](repeating: 0, count: width * trailing)
                packed.withUnsafeMutableBufferPointer { pt in
                    for i in 0..<trailing {
                        let row = a + (k1 + i) &* n + k0
                        for k in 0..<width { pt[k &* trailing &+ i] = row[k] }
                    }
                    let b = UnsafePointer(pt.baseAddress!)
                    parallelChunks(count: trailing, threads: threads, grain: 16) { range in
                        multiplyAdd(rows: range, n: trailing, k: width, a: a + k1 &* n + k0, lda: n,
                                    b: b, ldb: trailing, c: a + k1 &* n + k1, ldc: n, alpha: -1, lowerOnly: true)
                    }
                }
            }
            k0 = k1
        }
        zeroStrictUpper(a, n: n)
        return true
    }

    // MARK: - Triangular inverse

    /// In-place inverse of a lower-triangular n×n matrix with a nonzero diagonal (e.g. a
    /// Cholesky factor); the strict upper triangle is set to zero.
    public static func invertLowerTriangular(_ l: UnsafeMutablePointer<Double>, n: Int,
                                             threads: Int = Kernels.defaultThreads) {
        precondition(n >= 0, "invertLowerTriangular: negative size \(n)")
        zeroStrictUpper(l, n: n)
        let nb = blockSize
        var rowsOut = [Double](repeating: 0, count: nb * n)
        var diagonal = [Double](repeating: 0, count: nb * nb)
        var i0 = 0
        while i0 < n {
            let i1 = min(n, i0 + nb)
            let h = i1 - i0
            // D = inverse of the diagonal block (column-wise forward substitution).
            for jj in 0..<h {
                for ii in 0..<h { diagonal[ii * nb + jj] = 0 }
                diagonal[jj * nb + jj] = 1 / l[(i0 + jj) * n + i0 + jj]
                if jj + 1 < h {
                    for ii in (jj + 1)..<h {
                        let row = l + (i0 + ii) * n + i0
                        var s = 0.0
                        for kk in jj..<ii { s += row[kk] * diagonal[kk * nb + jj] }
                        diagonal[ii * nb + jj] = -s / row[ii]
                    }
                }
            }
            if i0 > 0 {
                // M[I, c0..<c1] = −D · (L[I, c0..<i0] · M[c0..<i0, c0..<c1]) for 64-column chunks.
                // Rows < i0 of `l` already hold M (zero above the diagonal); row block I still holds L.
                let chunks = (i0 + nb - 1) / nb
                rowsOut.withUnsafeMutableBufferPointer { out in
                    diagonal.withUnsafeBufferPointer { dPointer in
                        let outBase = out.baseAddress!, d = dPointer.baseAddress!
                        parallelChunks(count: chunks, threads: threads, grain: 1) { range in
                            var t = [Double](repeating: 0, count: nb * nb)
                            t.withUnsafeMutableBufferPointer { tb in
                                let tp = tb.baseAddress!
                                for chunk in range {
                                    let c0 = chunk * nb, c1 = min(i0, c0 + nb), cw = c1 - c0
                                    for x in 0..<(h * nb) { tp[x] = 0 }
                                    multiplyAdd(rows: 0..<h, n: cw, k: i0 - c0, a: l + i0 * n + c0, lda: n,
                                                b: l + c0 * n + c0, ldb: n, c: tp, ldc: nb, alpha: 1, lowerOnly: false)
                                    for r in 0..<h { for j in 0..<cw { outBase[r * n + c0 + j] = 0 } }
                                    multiplyAdd(rows: 0..<h, n: cw, k: h, a: d, lda: nb, b: tp, ldb: nb,
                                                c: outBase + c0, ldc: n, alpha: -1, lowerOnly: false)
                                }
                            }
                        }
                    }
                }
                for r in 0..<h {
                    let row = l + (i0 + r) * n
                    for j in 0..<i0 { row[j] = rowsOut[r * n + j] }
                }
            }
            for r in 0..<h {
                let row = l + (i0 + r) * n + i0
                for j in 0..<h { row[j] = j <= r ? diagonal[r * nb + j] : 0 }
            }
            i0 = i1
        }
    }

    // MARK: - Inverses built on the factorization

    /// H⁻¹ = L⁻ᵀ·L⁻¹ from the lower Cholesky factor L of H (n×n, row-major; only the lower
    /// triangle of `lower` is read). O(n³); not on the quantization hot path (GPTQ needs only
    /// `upperCholeskyOfInverse`).
    public static func inverseFromCholesky(_ lower: [Double], n: Int, threads: Int = Kernels.defaultThreads) -> [Double] {
        precondition(lower.count == n * n, "inverseFromCholesky: \(lower.count) values for \(n)×\(n)")
        var m = lower
        m.withUnsafeMutableBufferPointer { invertLowerTriangular($0.baseAddress!, n: n, threads: threads) }
        var mt = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0...i { mt[j * n + i] = m[i * n + j] } }
        var result = [Double](repeating: 0, count: n * n)
        mt.withUnsafeBufferPointer { a in
            m.withUnsafeBufferPointer { b in
                result.withUnsafeMutableBufferPointer { c in
                    let ap = a.baseAddress!, bp = b.baseAddress!, cp = c.baseAddress!
                    parallelChunks(count: n, threads: threads, grain: 16) { range in
                        multiplyAdd(rows: range, n: n, k: n, a: ap, lda: n, b: bp, ldb: n, c: cp, ldc: n,
                                    alpha: 1, lowerOnly: false)
                    }
                }
            }
        }
        return result
    }

    /// The upper-triangular U with positive diagonal such that H⁻¹ = UᵀU (GPTQ's `Hinv`) for
    /// a symmetric positive definite H (n×n, row-major; only the lower triangle is read).
    ///
    /// Computed with one factorization: with J the reversal permutation, J·H·J = L̃·L̃ᵀ gives
    /// H = Ũ·Ũᵀ with Ũ = J·L̃·J upper triangular, hence H⁻¹ = (Ũ⁻¹)ᵀ·Ũ⁻¹ and U = Ũ⁻¹ = J·L̃⁻¹·J
    /// (the same matrix as the reference's cholesky → cholesky_inverse → cholesky(upper)).
    /// - Returns: nil when H is not numerically positive definite.
    public static func upperCholeskyOfInverse(_ h: [Double], n: Int, threads: Int = Kernels.defaultThreads) -> [Double]? {
        precondition(h.count == n * n, "upperCholeskyOfInverse: \(h.count) values for \(n)×\(n)")
        var work = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0...i { work[(n - 1 - i) * n + (n - 1 - j)] = h[i * n + j] } }
        // Reversal maps the lower triangle of H onto the upper triangle of JHJ; mirror it down.
        for i in 0..<n { for j in 0..<i { work[i * n + j] = work[j * n + i] } }
        let ok = work.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard choleskyLower(buffer.baseAddress!, n: n, threads: threads) else { return false }
            invertLowerTriangular(buffer.baseAddress!, n: n, threads: threads)
            return true
        }
        guard ok else { return nil }
        var u = [Double](repeating: 0, count: n * n)
        for a in 0..<n { for b in a..<n { u[a * n + b] = work[(n - 1 - a) * n + (n - 1 - b)] } }
        return u
    }

    // MARK: - Kernel

    /// C[i][j] += α·Σ_{kk<k} A[i][kk]·B[kk][j] for i in `rows`, j < n (restricted to j ≤ i when
    /// `lowerOnly`). A row i at `a + i·lda`, B row kk at `b + kk·ldb`, C row i at `c + i·ldc`.
    /// Tiles of 4 rows × 8 columns accumulate in registers over the whole k range, so each C
    /// entry is one fixed sequence of fused multiply-adds regardless of how rows are split.
    static func multiplyAdd(rows: Range<Int>, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
                            b: UnsafePointer<Double>, ldb: Int, c: UnsafeMutablePointer<Double>, ldc: Int,
                            alpha: Double, lowerOnly: Bool) {
        guard k > 0 else { return }
        var i = rows.lowerBound
        while i < rows.upperBound {
            let count = min(4, rows.upperBound - i)
            let last = i + count - 1
            let r0 = a + i &* lda, r1 = a + min(i + 1, last) &* lda
            let r2 = a + min(i + 2, last) &* lda, r3 = a + min(i + 3, last) &* lda
            let columnEnd = lowerOnly ? min(n, last + 1) : n
            var jo = 0
            while jo + 8 <= n && jo < columnEnd {
                var c0 = SIMD8<Double>(), c1 = SIMD8<Double>(), c2 = SIMD8<Double>(), c3 = SIMD8<Double>()
                var bp = UnsafeRawPointer(b + jo)
                let stride = ldb &* 8
                for kk in 0..<k {
                    let bv = bp.loadUnaligned(as: SIMD8<Double>.self)
                    c0 = c0.addingProduct(SIMD8(repeating: r0[kk]), bv)
                    c1 = c1.addingProduct(SIMD8(repeating: r1[kk]), bv)
                    c2 = c2.addingProduct(SIMD8(repeating: r2[kk]), bv)
                    c3 = c3.addingProduct(SIMD8(repeating: r3[kk]), bv)
                    bp += stride
                }
                @inline(__always) func store(_ r: Int, _ tile: SIMD8<Double>) {
                    let limit = lowerOnly ? min(columnEnd, i + r + 1) : columnEnd
                    let row = c + (i + r) &* ldc + jo
                    if jo + 8 <= limit {
                        let raw = UnsafeMutableRawPointer(row)
                        let old = raw.loadUnaligned(as: SIMD8<Double>.self)
                        raw.storeBytes(of: old.addingProduct(SIMD8(repeating: alpha), tile), as: SIMD8<Double>.self)
                    } else {
                        for lane in 0..<max(0, limit - jo) { row[lane] += alpha * tile[lane] }
                    }
                }
                store(0, c0)
                if count > 1 { store(1, c1) }
                if count > 2 { store(2, c2) }
                if count > 3 { store(3, c3) }
                jo += 8
            }
            // Columns past the last full octet.
            if jo < columnEnd {
                for r in 0..<count {
                    let limit = lowerOnly ? min(columnEnd, i + r + 1) : columnEnd
                    let ar = a + (i + r) &* lda
                    for j in jo..<max(jo, limit) {
                        var s = 0.0
                        for kk in 0..<k { s = s.addingProduct(ar[kk], b[kk &* ldb &+ j]) }
                        c[(i + r) &* ldc &+ j] += alpha * s
                    }
                }
            }
            i += 4
        }
    }

    static func zeroStrictUpper(_ a: UnsafeMutablePointer<Double>, n: Int) {
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { a[i &* n &+ j] = 0 } }
    }
}

// MARK: - Parallel helper

/// Runs `body` over contiguous chunks of 0..<count on up to `threads` workers (inline when one
/// worker suffices). Chunk boundaries never affect results: bodies write disjoint outputs.
func parallelChunks(count: Int, threads: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let workers = max(1, min(threads, (count + max(1, grain) - 1) / max(1, grain)))
    if workers == 1 {
        body(0..<count)
        return
    }
    // More chunks than workers balances uneven rows (e.g. triangular work).
    let chunks = min(count, workers * 4)
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: chunks) { index in
            let start = count * index / chunks, end = count * (index + 1) / chunks
            if start < end { body(start..<end) }
        }
    }
}
