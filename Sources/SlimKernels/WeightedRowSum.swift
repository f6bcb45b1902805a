// The second product of decode attention: one query's softmax weights times the cached values,
// read in the cache's storage format (fp32, or a 16-bit cache widened in registers).

extension Kernels {
    /// out[d] = Σ_j p[j] · rows[j][d] for d < width, j < count (or out[d] += … when
    /// `accumulate`), where row j starts `j · ld` elements after `rows`, stored as `format` (any
    /// alignment): yᵀ = pᵀ·V, one query's attention-weighted sum of cached values.
    /// Single-threaded (attention parallelises over heads and key chunks).
    /// - Result: each element is a Float sum in j order, one fused multiply-add per term,
    ///   starting from 0 (or from `out[d]`), so a 16-bit `rows` gives bit for bit the result of
    ///   its fp32 conversion, and summing rows 0..<a then a..<count with `accumulate` equals one
    ///   call over all of them. `count == 0` writes zeros (leaves `out` when accumulating).
    ///   `out` must not overlap `rows` or `p`.
    public static func weightedRowSum(_ p: UnsafePointer<Float>, count: Int, rows: UnsafeRawPointer,
                                      format: StorageFormat, ld: Int, width: Int, out: UnsafeMutablePointer<Float>,
                                      accumulate: Bool = false) {
        precondition(count >= 0 && width >= 0 && (count <= 1 || ld >= width),
                     "weightedRowSum: bad shape count=\(count) width=\(width) ld=\(ld)")
        switch format {
        case .f32: WeightedRowSum.run(F32Rows.self, p, count, rows, ld, width, out, accumulate)
        case .f16: WeightedRowSum.run(F16Rows.self, p, count, rows, ld, width, out, accumulate)
        case .bf16: WeightedRowSum.run(BF16Rows.self, p, count, rows, ld, width, out, accumulate)
        }
    }
}

/// The body of `Kernels.weightedRowSum`: 32 columns at a time in four 8-lane accumulators (one
/// pass over the rows per 32 columns), then 8, then single columns.
enum WeightedRowSum {
    @inline(__always)
    static func run<E: RowElements>(_: E.Type, _ p: UnsafePointer<Float>, _ count: Int, _ rows: UnsafeRawPointer,
                                    _ ld: Int, _ width: Int, _ out: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        let stride = ld &* E.byteSize
        let o = UnsafeMutableRawPointer(out)
        var d = 0
        while d &+ 32 <= width {
            var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
            if accumulate {
                a0 = o.loadUnaligned(fromByteOffset: d &* 4, as: SIMD8<Float>.self)
                a1 = o.loadUnaligned(fromByteOffset: d &* 4 &+ 32, as: SIMD8<Float>.self)
                a2 = o.loadUnaligned(fromByteOffset: d &* 4 &+ 64, as: SIMD8<Float>.self)
                a3 = o.loadUnaligned(fromByteOffset: d &* 4 &+ 96, as: SIMD8<Float>.self)
            }
            var row = rows
            for j in 0..<count {
                let w = SIMD8<Float>(repeating: p[j])
                a0 = a0.addingProduct(E.load8(row, d), w)
                a1 = a1.addingProduct(E.load8(row, d &+ 8), w)
                a2 = a2.addingProduct(E.load8(row, d &+ 16), w)
                a3 = a3.addingProduct(E.load8(row, d &+ 24), w)
                row += stride
            }
            o.storeBytes(of: a0, toByteOffset: d &* 4, as: SIMD8<Float>.self)
            o.storeBytes(of: a1, toByteOffset: d &* 4 &+ 32, as: SIMD8<Float>.self)
            o.storeBytes(of: a2, toByteOffset: d &* 4 &+ 64, as: SIMD8<Float>.self)
            o.storeBytes(of: a3, toByteOffset: d &* 4 &+ 96, as: SIMD8<Float>.self)
            d &+= 32
        }
        if d < width {
            if !accumulate { (out + d).update(repeating: 0, count: width &- d) }
            tail(E.self, p, count, rows, stride, d, width, out)
        }
    }

    /// Columns `from ..< width` (after the 32-wide blocks) of an accumulating weighted sum with
    /// `stride` bytes between rows: 8 at a time, then single ones, rows in order.
    @inline(__always)
    static func tail<E: RowElements>(_: E.Type, _ p: UnsafePointer<Float>, _ count: Int, _ rows: UnsafeRawPointer,
                                     _ stride: Int, _ from: Int, _ width: Int, _ out: UnsafeMutablePointer<Float>) {
        let o = UnsafeMutableRawPointer(out)
        var d = from
        while d &+ 8 <= width {
            var a = o.loadUnaligned(fromByteOffset: d &* 4, as: SIMD8<Float>.self)
            var row = rows
            for j in 0..<count {
                a = a.addingProduct(E.load8(row, d), SIMD8<Float>(repeating: p[j]))
                row += stride
            }
            o.storeBytes(of: a, toByteOffset: d &* 4, as: SIMD8<Float>.self)
            d &+= 8
        }
        while d < width {
            var a = out[d]
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
