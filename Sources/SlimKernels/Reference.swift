import Foundation

// Plain scalar versions of every fast kernel: obviously-correct loops used as the ground truth
// in tests and as a fallback readers can check the fast paths against. Two flavours:
// - Float: the textbook loop in single precision (same semantics as the fast kernel);
// - `…64`: accumulation in Double, returning the exact-ish result plus, for products, the
//   magnitude Σ|a||b| that scales a rounding-error bound.

extension Kernels {
    /// Scalar reference implementations (slow; for tests and verification only).
    public enum Reference {}
}

// MARK: - Matrix products (Float)

extension Kernels.Reference {
    /// C = A·Bᵀ (or C += A·Bᵀ), A[m×k], B[n×k]; naive triple loop in Float.
    public static func sgemmNT(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int,
                               c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * lda + p] * b[j * ldb + p] }
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum
            }
        }
    }

    /// C = A·B (or C += A·B), A[m×k], B[k×n]; naive triple loop in Float.
    public static func sgemmNN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int,
                               c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * lda + p] * b[p * ldb + j] }
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum
            }
        }
    }

    /// C = Aᵀ·B (or C += Aᵀ·B), A[k×m], B[k×n]; naive triple loop in Float.
    public static func sgemmTN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                               b: UnsafePointer<Float>, ldb: Int,
                               c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[p * lda + i] * b[p * ldb + j] }
                c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum
            }
        }
    }

    /// H = scale·XᵀX + H over the full matrix (both triangles), X[rows×cols]; Float loop.
    public static func syrkAccumulate(x: UnsafePointer<Float>, rows: Int, cols: Int, ldx: Int,
                                      h: UnsafeMutablePointer<Float>, scale: Float = 1) {
        for i in 0..<cols {
            for j in 0..<cols {
                var sum: Float = 0
                for p in 0..<rows { sum += x[p * ldx + i] * x[p * ldx + j] }
                h[i * cols + j] += scale * sum
            }
        }
    }

    /// y = A·x (or y += A·x), A[m×k]; Float loop.
    public static func gemv(m: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        for i in 0..<m {
            var sum: Float = 0
            for p in 0..<k { sum += a[i * lda + p] * x[p] }
            y[i] = accumulate ? y[i] + sum : sum
        }
    }
}

// MARK: - Matrix products (Double ground truth)

extension Kernels.Reference {
    /// The exact-ish general product in Double: c[i·n + j] = Σ_p A(i,p)·B(p,j) and
    /// magnitude[i·n + j] = Σ_p |A(i,p)·B(p,j)| (dense m×n outputs). Element addressing is
    /// given by strides so one routine covers NT, NN and TN: A(i,p) = a[i·aRow + p·aCol],
    /// B(p,j) = b[p·bRow + j·bCol].
    public static func gemm64(m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, aRowStride: Int, aColStride: Int,
                              b: UnsafePointer<Float>, bRowStride: Int, bColStride: Int,
                              c: UnsafeMutablePointer<Double>, magnitude: UnsafeMutablePointer<Double>) {
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0, mag = 0.0
                for p in 0..<k {
                    let product = Double(a[i * aRowStride + p * aColStride]) * Double(b[p * bRowStride + j * bColStride])
                    sum += product
                    mag += abs(product)
                }
                c[i * n + j] = sum
                magnitude[i * n + j] = mag
            }
        }
    }

    /// Σ x[i]·y[i] accumulated in Double.
    public static func dot64(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
        var sum = 0.0
        for i in 0..<count { sum += Double(x[i]) * Double(y[i]) }
        return sum
    }
}

// MARK: - Vector operations

extension Kernels.Reference {
    /// Σ x[i]·y[i] in Float, left to right.
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        var sum: Float = 0
        for i in 0..<count { sum += x[i] * y[i] }
        return sum
    }

    /// y += alpha·x.
    public static func axpy(alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += alpha * x[i] }
    }

    /// x *= factor.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
        for i in 0..<count { x[i] *= factor }
    }

    /// y += x.
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }

    /// RMSNorm computed in Double, rounded to Float at the end.
    public static func rmsNorm(x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float) {
        guard n > 0 else { return }
        for row in 0..<rows {
            var sumSquares = 0.0
            for i in 0..<n { sumSquares += Double(x[row * n + i]) * Double(x[row * n + i]) }
            let inverse = 1 / (sumSquares / Double(n) + Double(eps)).squareRoot()
            for i in 0..<n { output[row * n + i] = Float(Double(x[row * n + i]) * inverse * Double(weight[i])) }
        }
    }

    /// Softmax of one row in Double with Foundation `exp`, rounded to Float.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var rowMax = -Double.infinity
        for i in 0..<count { rowMax = max(rowMax, Double(x[i])) }
        var sum = 0.0
        var exps = [Double](repeating: 0, count: count)
        for i in 0..<count {
            exps[i] = Foundation.exp(Double(x[i]) - rowMax)
            sum += exps[i]
        }
        for i in 0..<count { x[i] = Float(exps[i] / sum) }
    }

    /// silu(gate)·up in Double with Foundation `exp`, rounded to Float.
    public static func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = Double(gate[i])
            output[i] = Float(g / (1 + Foundation.exp(-g)) * Double(up[i]))
        }
    }

    /// e^x correctly rounded except in rare double-rounding cases (Double `exp`, then Float).
    public static func exp(_ x: Float) -> Float { Float(Foundation.exp(Double(x))) }
}

// MARK: - Attention (Double)

extension Kernels.Reference {
    /// One query row's grouped-query attention in Double: for query head h (KV head
    /// h / (heads / kvHeads)), softmax over j < count of (q_h·k_j)·scale, then Σ_j p_j·v_j.
    /// `keys`/`values`: position j, KV head g at `j · ld + g · headDim`. Returns
    /// `heads · headDim` values and, per element, the magnitude Σ_j p_j·|v_j| that scales an
    /// error bound. `count == 0` gives NaN (a softmax over nothing).
    public static func attentionRow64(q: UnsafePointer<Float>, heads: Int, kvHeads: Int, headDim: Int, scale: Float,
                                      keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ld: Int,
                                      count: Int) -> (out: [Double], magnitude: [Double]) {
        var out = [Double](repeating: 0, count: heads * headDim)
        var magnitude = out
        var p = [Double](repeating: 0, count: count)
        for h in 0..<heads {
            let g = h / (heads / kvHeads)
            for j in 0..<count {
                p[j] = dot64(q + h * headDim, keys + j * ld + g * headDim, count: headDim) * Double(scale)
            }
            let top = p.max() ?? .nan
            var sum = 0.0
            for j in 0..<count {
                p[j] = Foundation.exp(p[j] - top)
                sum += p[j]
            }
            for c in 0..<headDim {
                var o = 0.0, m = 0.0
                for j in 0..<count {
                    let v = Double(values[j * ld + g * headDim + c])
                    o += p[j] / sum * v
                    m += p[j] / sum * abs(v)
                }
                out[h * headDim + c] = count == 0 ? .nan : o
                magnitude[h * headDim + c] = m
            }
        }
        return (out, magnitude)
    }
}
