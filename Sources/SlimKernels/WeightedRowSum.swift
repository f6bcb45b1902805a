// The second product of decode attention: one query's softmax weights times the cached values,
// read in the cache's storage format (fp32, or a 16-bit cache widened in registers).

extension Kernels {
    /// out[d] = Σ_j p[j] · rows[j][d] for d < width, j < count, where row j starts `j · ld`
    /// elements after `rows`, stored as `format` (any alignment): yᵀ = pᵀ·V, one query's
    /// attention-weighted sum of cached values. Single-threaded (attention parallelises over
    /// heads).
    /// - Result: each element is a Float sum in j order, one fused multiply-add per term, so a
    ///   16-bit `rows` gives bit for bit the result of its fp32 conversion. `count == 0` writes
    ///   zeros. `out` must not overlap `rows` or `p`.
    public static func weightedRowSum(_ p: UnsafePointer<Float>, count: Int, rows: UnsafeRawPointer,
                                      format: StorageFormat, ld: Int, width: Int, out: UnsafeMutablePointer<Float>) {
        precondition(count >= 0 && width >= 0 && (count <= 1 || ld >= width),
                     "weightedRowSum: bad shape count=\(count) width=\(width) ld=\(ld)")
        switch format {
        case .f32: WeightedRowSum.run(F32Rows.self, p, count, rows, ld, width, out)
        case .f16: WeightedRowSum.run(F16Rows.self, p, count, rows, ld, width, out)
        case .bf16: WeightedRowSum.run(BF16Rows.self, p, count, rows, ld, width, out)
        }
    }
}

/// The body of `Kernels.weightedRowSum`: 32 columns at a time in four 8-lane accumulators (one
/// pass over the rows per 32 columns), then 8, then single columns.
enum WeightedRowSum {
    @inline(__always)
    static func run<E: RowElements>(_: E.Type, _ p: UnsafePointer<Float>, _ count: Int, _ rows: UnsafeRawPointer,
                                    _ ld: Int, _ width: Int, _ out: UnsafeMutablePointer<Float>) {
        let stride = ld &* E.byteSize
        var d = 0
        while d &+ 32 <= width {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            var row = rows
            for j in 0..<count {
                let w = SIMD8<Float>(repeating: p[j])
                a0 = a0.addingProduct(E.load8(row, d), w)
                a1 = a1.addingProduct(E.load8(row, d &+ 8), w)
                a2 = a2.addingProduct(E.load8(row, d &+ 16), w)
                a3 = a3.addingProduct(E.load8(row, d &+ 24), w)
                row += stride
            }
            let o = UnsafeMutableRawPointer(out + d)
            o.storeBytes(of: a0, as: SIMD8<Float>.self)
            o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
            o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
            o.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
            d &+= 32
        }
        while d &+ 8 <= width {
            var a = SIMD8<Float>()
            var row = rows
            for j in 0..<count {
                a = a.addingProduct(E.load8(row, d), SIMD8<Float>(repeating: p[j]))
                row += stride
            }
            UnsafeMutableRawPointer(out + d).storeBytes(of: a, as: SIMD8<Float>.self)
            d &+= 8
        }
        while d < width {
            var a: Float = 0
            var row = rows
            for j in 0..<count {
                a = a.addingProduct(p[j], E.load(row, d))
                row += stride
            }
            out[d] = a
            d &+= 1
        }
    }
}
