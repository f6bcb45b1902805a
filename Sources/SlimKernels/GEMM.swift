// Public single-precision matrix products. See `GEMMDriver.swift` for the loop nest and
// `GEMMMicroKernel.swift` for the register kernel and packing.

// MARK: - General matrix products

extension Kernels {
    /// C[m×n] = A[m×k] · B[n×k]ᵀ, or C += A · Bᵀ when `accumulate` is true.
    ///
    /// The shape of every linear layer: A holds activations (tokens × in_features) and B the
    /// weight as stored (out_features × in_features), so neither needs transposing.
    /// - Parameters:
    ///   - a: row i at `a + i * lda`; `lda >= k`.
    ///   - b: row j at `b + j * ldb`; `ldb >= k`.
    ///   - c: row i at `c + i * ldc`; `ldc >= n`. Must not overlap `a` or `b`.
    ///   - accumulate: when false C is overwritten without being read (NaNs already in C do not
    ///     propagate); when true the product is added to C.
    ///   - threads: upper bound on workers; the result is bit-identical for every value.
    /// - Edge cases: `m == 0` or `n == 0` does nothing; `k == 0` sets C to zero (or leaves it
    ///   unchanged when accumulating). `m == 1` uses the streaming GEMV kernel.
    /// - Accuracy: each element is a Float sum, one fused multiply-add per term, over k-blocks
    ///   of at most 2048 terms that are added to C in order; worst-case error (k + 1)·ε·Σ|a||b|,
    ///   typically ~√k·ε. The blocking depends on k only, never on `threads`.
    public static func sgemmNT(m: Int, n: Int, k: Int,
                               a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int,
                               c: UnsafeMutablePointer<Float>, ldc: Int,
                               accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        // The fp32 case of the weight-format-generic product (HalfWeights.swift).
        gemmNT(m: m, n: n, k: k, a: a, lda: lda, b: b, bFormat: .f32, ldb: ldb, c: c, ldc: ldc,
               accumulate: accumulate, threads: threads)
    }

    /// C[m×n] = A[m×k] · B[k×n], or C += A · B when `accumulate` is true.
    /// - Parameters: `lda >= k`, `ldb >= n`, `ldc >= n`; C must not overlap A or B.
    /// - Edge cases, accuracy and threading as for `sgemmNT`.
    public static func sgemmNN(m: Int, n: Int, k: Int,
                               a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int,
                               c: UnsafeMutablePointer<Float>, ldc: Int,
                               accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        // The fp32 case of the storage-format-generic product (HalfWeights.swift).
        gemmNN(m: m, n: n, k: k, a: a, lda: lda, b: b, bFormat: .f32, ldb: ldb, c: c, ldc: ldc,
               accumulate: accumulate, threads: threads)
    }

    /// C[m×n] = A[k×m]ᵀ · B[k×n], or C += Aᵀ · B when `accumulate` is true.
    /// (Gradient-style products and Xᵀ·Y between two activation matrices with k tokens.)
    /// - Parameters: `lda >= m`, `ldb >= n`, `ldc >= n`; C must not overlap A or B.
    /// - Edge cases, accuracy and threading as for `sgemmNT`.
    public static func sgemmTN(m: Int, n: Int, k: Int,
                               a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int,
                               c: UnsafeMutablePointer<Float>, ldc: Int,
                               accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        precondition(m >= 0 && n >= 0 && k >= 0, "sgemmTN: negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= m && ldb >= n && ldc >= n,
                     "sgemmTN: leading dimension too small (lda=\(lda) ldb=\(ldb) ldc=\(ldc), m=\(m) n=\(n))")
        GemmDriver.run(GemmProblem(m: m, n: n, k: k, a: a, lda: lda, aLayout: .mnContiguous,
                                   b: b, ldb: ldb, bLayout: .mnContiguous, c: c, ldc: ldc,
                                   alpha: 1, accumulate: accumulate, upperOnly: false),
                       threads: threads)
    }
}

// MARK: - Symmetric rank-k update (GPTQ Hessian)

extension Kernels {
    /// H[cols×cols] = scale · Xᵀ·X + H for X[rows×cols] (row i at `x + i * ldx`, `ldx >= cols`),
    /// H dense with row stride `cols`.
    ///
    /// This is the GPTQ Hessian update: call it once per calibration sample (X = that sample's
    /// layer inputs, tokens × in_features) with the running weight as `scale`, e.g.
    /// `scale = 2 / nsamples`. Only upper-triangle tiles are computed (half the work).
    /// - `mirror == true`: the strict lower triangle is then overwritten with the upper one, so H
    ///   is symmetric on return; only the upper triangle of the input H is read.
    /// - `mirror == false`: the lower triangle is left unspecified. Use this when summing many
    ///   samples and call `mirrorUpperToLower(h:n:)` once at the end.
    /// - Accumulation is in Float: per call, each entry is a sequential fused multiply-add sum
    ///   over the rows (k-blocks of at most 2048) and then `scale ·` that sum is added into H.
    ///   Summing S samples of R rows gives a worst-case error of (R + S)·ε·Σ scale·|x||x|
    ///   (≈ 1.3e-4 relative for 2048 tokens × 128 samples); typical errors are ~100× smaller
    ///   and far below the diagonal damping GPTQ adds. Keep a Double H on the caller side if
    ///   more is needed.
    /// - Edge cases: `cols == 0` does nothing; `rows == 0` leaves H unchanged (and mirrors it).
    public static func syrkAccumulate(x: UnsafePointer<Float>, rows: Int, cols: Int, ldx: Int,
                                      h: UnsafeMutablePointer<Float>, scale: Float = 1,
                                      mirror: Bool = true, threads: Int = Kernels.defaultThreads) {
        precondition(rows >= 0 && cols >= 0, "syrkAccumulate: negative size rows=\(rows) cols=\(cols)")
        precondition(ldx >= cols, "syrkAccumulate: ldx=\(ldx) < cols=\(cols)")
        guard cols > 0 else { return }
        GemmDriver.run(GemmProblem(m: cols, n: cols, k: rows, a: x, lda: ldx, aLayout: .mnContiguous,
                                   b: x, ldb: ldx, bLayout: .mnContiguous, c: h, ldc: cols,
                                   alpha: scale, accumulate: true, upperOnly: true),
                       threads: threads)
        if mirror { mirrorUpperToLower(h: h, n: cols) }
    }

    /// Copies the strict upper triangle of the n×n matrix `h` (row stride `n`) onto its lower
    /// triangle: h[j][i] = h[i][j] for i < j. Works in 32×32 tiles so both sides stay cached.
    public static func mirrorUpperToLower(h: UnsafeMutablePointer<Float>, n: Int) {
        precondition(n >= 0, "mirrorUpperToLower: negative size \(n)")
        let tile = 32
        var i0 = 0
        while i0 < n {
            let i1 = min(n, i0 + tile)
            var j0 = i0
            while j0 < n {
                let j1 = min(n, j0 + tile)
                for i in i0..<i1 {
                    let rowI = h + i &* n
                    for j in max(j0, i + 1)..<max(j1, i + 1) {
                        h[j &* n &+ i] = rowI[j]
                    }
                }
                j0 = j1
            }
            i0 = i1
        }
    }
}
