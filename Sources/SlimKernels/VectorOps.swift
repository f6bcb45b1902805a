// Vectorised element-wise and row operations for the LLaMA forward pass. All take raw
// pointers and a count; element-wise outputs may alias their inputs exactly (in-place use),
// but not partially overlap them.

// MARK: - BLAS-1

extension Kernels {
    /// Σ x[i]·y[i]. Four interleaved 8-lane Float partial sums (fused multiply-add), then a
    /// fixed-order lane reduction and a scalar tail; `count == 0` gives 0.
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        precondition(count >= 0, "dot: negative count \(count)")
        let px = UnsafeRawPointer(x), py = UnsafeRawPointer(y)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        while i &+ 32 <= count {
            let o = i &* 4
            s0 = s0.addingProduct(px.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self),
                                  py.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self))
            s1 = s1.addingProduct(px.loadUnaligned(fromByteOffset: o &+ 32, as: SIMD8<Float>.self),
                                  py.loadUnaligned(fromByteOffset: o &+ 32, as: SIMD8<Float>.self))
            s2 = s2.addingProduct(px.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD8<Float>.self),
                                  py.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD8<Float>.self))
            s3 = s3.addingProduct(px.loadUnaligned(fromByteOffset: o &+ 96, as: SIMD8<Float>.self),
                                  py.loadUnaligned(fromByteOffset: o &+ 96, as: SIMD8<Float>.self))
            i &+= 32
        }
        while i &+ 8 <= count {
            s0 = s0.addingProduct(px.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self),
                                  py.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self))
            i &+= 8
        }
        var sum = horizontalSum((s0 + s1) + (s2 + s3))
        while i < count {
            sum = sum.addingProduct(x[i], y[i])
            i &+= 1
        }
        return sum
    }

    /// y[i] += alpha · x[i] (fused multiply-add per element).
    public static func axpy(alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                            count: Int) {
        precondition(count >= 0, "axpy: negative count \(count)")
        let a = SIMD8<Float>(repeating: alpha)
        let px = UnsafeRawPointer(x), py = UnsafeMutableRawPointer(y)
        var i = 0
        while i &+ 8 <= count {
            let o = i &* 4
            let v = py.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                .addingProduct(a, px.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self))
            py.storeBytes(of: v, toByteOffset: o, as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count {
            y[i] = y[i].addingProduct(alpha, x[i])
            i &+= 1
        }
    }

    /// x[i] *= factor.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
        precondition(count >= 0, "scale: negative count \(count)")
        let f = SIMD8<Float>(repeating: factor)
        let px = UnsafeMutableRawPointer(x)
        var i = 0
        while i &+ 8 <= count {
            let o = i &* 4
            px.storeBytes(of: px.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * f,
                          toByteOffset: o, as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count {
            x[i] *= factor
            i &+= 1
        }
    }

    /// y[i] += x[i] (residual connections).
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count >= 0, "add: negative count \(count)")
        let px = UnsafeRawPointer(x), py = UnsafeMutableRawPointer(y)
        var i = 0
        while i &+ 8 <= count {
            let o = i &* 4
            py.storeBytes(of: py.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                            + px.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self),
                          toByteOffset: o, as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count {
            y[i] += x[i]
            i &+= 1
        }
    }
}

// MARK: - LLaMA row operations

extension Kernels {
    /// RMSNorm over each of `rows` contiguous rows of length `n` (row stride `n`):
    /// out = (x · 1/√(mean(x²) + eps)) · weight, as HF `LlamaRMSNorm` computes it in Float.
    /// `output` may be `x` (in place). `n == 0` or `rows == 0` does nothing. A row of zeros
    /// with `eps == 0` gives NaN (0·Inf), as the reference does.
    public static func rmsNorm(x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, rows: Int, n: Int, eps: Float) {
        precondition(rows >= 0 && n >= 0, "rmsNorm: negative size rows=\(rows) n=\(n)")
        guard n > 0 else { return }
        let pw = UnsafeRawPointer(weight)
        for row in 0..<rows {
            let xr = x + row &* n
            let sumSquares = dot(xr, xr, count: n)
            let inverse = 1 / (sumSquares / Float(n) + eps).squareRoot()
            let scale = SIMD8<Float>(repeating: inverse)
            let px = UnsafeRawPointer(xr), po = UnsafeMutableRawPointer(output + row &* n)
            var i = 0
            while i &+ 8 <= n {
                let o = i &* 4
                let v = px.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self) * scale
                    * pw.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                po.storeBytes(of: v, toByteOffset: o, as: SIMD8<Float>.self)
                i &+= 8
            }
            while i < n {
                output[row &* n &+ i] = xr[i] * inverse * weight[i]
                i &+= 1
            }
        }
    }

    /// In-place softmax of one row: x[i] = e^(x[i] − max) / Σ e^(x[j] − max).
    /// The normalisation multiplies by the reciprocal of the sum (≤ 1.5 ulp extra error).
    /// Edge cases (as PyTorch): `count == 0` does nothing; a NaN or +Inf entry, or a row that
    /// is entirely −Inf, makes the whole row NaN; −Inf entries alongside finite ones give 0.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count >= 0, "softmax: negative count \(count)")
        guard count > 0 else { return }
        let (_, sumV) = VectorMath.expShifted(x, count: count)
        // Normalise.
        let px = UnsafeMutableRawPointer(x)
        let vectorEnd = count & ~7
        let inverse = SIMD8<Float>(repeating: 1 / horizontalSum(sumV))
        var i = 0
        while i < vectorEnd {
            px.storeBytes(of: px.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self) * inverse,
                          toByteOffset: i &* 4, as: SIMD8<Float>.self)
            i &+= 8
        }
        for j in vectorEnd..<count { x[j] *= inverse[0] }
    }

    /// SwiGLU: output[i] = silu(gate[i]) · up[i] with silu(g) = g / (1 + e^(−g)).
    /// `output` may be `gate` or `up`. Large negative gates give −0·up, large positive ones
    /// g·up; NaN propagates; a gate of +Inf gives Inf·up and −Inf gives NaN (−Inf/Inf), as
    /// PyTorch's `x / (1 + exp(−x))` does.
    public static func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count >= 0, "siluMul: negative count \(count)")
        let pg = UnsafeRawPointer(gate), pu = UnsafeRawPointer(up), po = UnsafeMutableRawPointer(output)
        let one = SIMD8<Float>(repeating: 1)
        var i = 0
        while i &+ 8 <= count {
            let o = i &* 4
            let g = pg.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            let u = pu.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
            po.storeBytes(of: g / (one + VectorMath.exp(-g)) * u, toByteOffset: o, as: SIMD8<Float>.self)
            i &+= 8
        }
        if i < count {
            let rest = count &- i
            let g = VectorMath.loadPartial(gate + i, rest, fill: 0)
            let u = VectorMath.loadPartial(up + i, rest, fill: 0)
            VectorMath.storePartial(g / (one + VectorMath.exp(-g)) * u, output + i, rest)
        }
    }

    /// output[i] = e^(x[i]) with the vectorised exp (≤ 2 ulp; see `VectorMath.exp`).
    /// `output` may be `x`.
    public static func exp(_ x: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count >= 0, "exp: negative count \(count)")
        let px = UnsafeRawPointer(x), po = UnsafeMutableRawPointer(output)
        var i = 0
        while i &+ 8 <= count {
            let o = i &* 4
            po.storeBytes(of: VectorMath.exp(px.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)),
                          toByteOffset: o, as: SIMD8<Float>.self)
            i &+= 8
        }
        if i < count {
            let rest = count &- i
            VectorMath.storePartial(VectorMath.exp(VectorMath.loadPartial(x + i, rest, fill: 0)), output + i, rest)
        }
    }
}
