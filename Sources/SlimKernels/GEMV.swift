// Matrix-vector product for the decode path (batch 1). Bandwidth-bound: the matrix is read
// once, four rows at a time, with two 8-lane accumulators per row to hide FMA latency. The
// matrix may be fp32 or 16-bit (F16 / BF16 weights kept as stored, widened in registers).

// MARK: - Public API

extension Kernels {
    /// y[m] = A[m×k] · x[k], or y += A · x when `accumulate` is true.
    ///
    /// - Parameters:
    ///   - a: row i at `a + i * lda`; `lda >= k`. May be a memory-mapped weight.
    ///   - y: must not overlap `a` or `x`. When `accumulate` is false it is not read.
    ///   - threads: rows are split across workers in groups of four once the matrix is large
    ///     enough (512 KiB per worker) to pay for dispatch; results are bit-identical for any value.
    /// - Edge cases: `m == 0` does nothing; `k == 0` sets y to zero (or leaves it when
    ///   accumulating).
    /// - Accuracy: per row, 16 interleaved Float partial sums (fused multiply-add) reduced at
    ///   the end; error ≲ (k/16 + 4)·ε·Σ|a||x|.
    public static func gemv(m: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                            accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        gemv(m: m, k: k, a: a, format: .f32, lda: lda, x: x, y: y, accumulate: accumulate, threads: threads)
    }
}

// MARK: - Kernel

enum GemvKernel {
    /// Matrix elements per worker below which extra threads are not started (512 KiB: the
    /// time to stream that is comparable to a dispatch).
    static let standardMinimumElementsPerWorker = 1 << 17

    /// y = A·x (+ y) with A stored as `format` (row i at `a + i·lda` elements). The element type
    /// only changes how a row is loaded: every format runs the same sequence of Float
    /// operations on the widened values, so a 16-bit matrix gives bit for bit the result of its
    /// fp32 conversion.
    static func run(rows: Int, k: Int, a: UnsafeRawPointer, format: StorageFormat = .f32, lda: Int,
                    x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                    accumulate: Bool, threads: Int,
                    minimumElementsPerWorker: Int = standardMinimumElementsPerWorker) {
        guard rows > 0 else { return }
        if k == 0 {
            if !accumulate { y.update(repeating: 0, count: rows) }
            return
        }
        switch format {
        case .f32: run(F32Rows.self, rows, k, a, lda, x, y, accumulate, threads, minimumElementsPerWorker)
        case .f16: run(F16Rows.self, rows, k, a, lda, x, y, accumulate, threads, minimumElementsPerWorker)
        case .bf16: run(BF16Rows.self, rows, k, a, lda, x, y, accumulate, threads, minimumElementsPerWorker)
        }
    }

    private static func run<E: RowElements>(_: E.Type, _ rows: Int, _ k: Int, _ a: UnsafeRawPointer, _ lda: Int,
                                            _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                            _ accumulate: Bool, _ threads: Int, _ minimumElementsPerWorker: Int) {
        // Split by elements, whatever their width: widening makes a 16-bit element cost at
        // least as much as an fp32 one.
        let workers = Kernels.workerCount(threads: threads, work: rows &* k, minimumPerWorker: minimumElementsPerWorker)
        // Several row ranges per worker, taken dynamically (see `Kernels.parallelItems`).
        let ranges = Kernels.splitRange(rows, parts: workers > 1 ? 4 * workers : 1, granule: 4)
        let args = Arguments(a: a, lda: lda, x: x, y: y)
        Kernels.parallelItems(workers: workers, items: ranges.count) { _, index in
            let range = ranges[index]
            let rowBytes = args.lda &* E.byteSize
            var i = range.lowerBound
            while i < range.upperBound {
                // A group of fewer than four rows repeats its last row: the arithmetic per
                // row is then literally the same code whatever the grouping.
                let last = rows - 1
                let r0 = args.a + i &* rowBytes
                let r1 = args.a + min(i &+ 1, last) &* rowBytes
                let r2 = args.a + min(i &+ 2, last) &* rowBytes
                let r3 = args.a + min(i &+ 3, last) &* rowBytes
                let sums = dot4(E.self, r0, r1, r2, r3, args.x, k)
                let count = min(4, range.upperBound - i)
                for r in 0..<count {
                    args.y[i &+ r] = accumulate ? args.y[i &+ r] + sums[r] : sums[r]
                }
                i &+= 4
            }
        }
    }

    /// Raw pointers captured by the worker closure.
    private struct Arguments: @unchecked Sendable {
        let a: UnsafeRawPointer
        let lda: Int
        let x: UnsafePointer<Float>
        let y: UnsafeMutablePointer<Float>
    }

    /// Dot products of four rows with `x`: two 8-lane partial sums per row over 16-element
    /// steps, one 8-lane step, lane reduction, then a scalar tail.
    @inline(__always)
    static func dot4<E: RowElements>(_: E.Type, _ p0: UnsafeRawPointer, _ p1: UnsafeRawPointer,
                                     _ p2: UnsafeRawPointer, _ p3: UnsafeRawPointer,
                                     _ x: UnsafePointer<Float>, _ k: Int) -> SIMD4<Float> {
        let px = UnsafeRawPointer(x)
        var a0 = SIMD8<Float>(), b0 = SIMD8<Float>()
        var a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var a2 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var p = 0
        let vectorEnd = k / 16 &* 16
        while p < vectorEnd {
            let x0 = px.loadUnaligned(fromByteOffset: p &* 4, as: SIMD8<Float>.self)
            let x1 = px.loadUnaligned(fromByteOffset: p &* 4 &+ 32, as: SIMD8<Float>.self)
            a0 = a0.addingProduct(E.load8(p0, p), x0)
            b0 = b0.addingProduct(E.load8(p0, p &+ 8), x1)
            a1 = a1.addingProduct(E.load8(p1, p), x0)
            b1 = b1.addingProduct(E.load8(p1, p &+ 8), x1)
            a2 = a2.addingProduct(E.load8(p2, p), x0)
            b2 = b2.addingProduct(E.load8(p2, p &+ 8), x1)
            a3 = a3.addingProduct(E.load8(p3, p), x0)
            b3 = b3.addingProduct(E.load8(p3, p &+ 8), x1)
            p &+= 16
        }
        if k &- p >= 8 {
            let x0 = px.loadUnaligned(fromByteOffset: p &* 4, as: SIMD8<Float>.self)
            a0 = a0.addingProduct(E.load8(p0, p), x0)
            a1 = a1.addingProduct(E.load8(p1, p), x0)
            a2 = a2.addingProduct(E.load8(p2, p), x0)
            a3 = a3.addingProduct(E.load8(p3, p), x0)
            p &+= 8
        }
        var sums = SIMD4<Float>(horizontalSum(a0 + b0), horizontalSum(a1 + b1),
                                horizontalSum(a2 + b2), horizontalSum(a3 + b3))
        while p < k {
            let xp = x[p]
            sums = sums.addingProduct(SIMD4<Float>(E.load(p0, p), E.load(p1, p), E.load(p2, p), E.load(p3, p)),
                                      SIMD4<Float>(repeating: xp))
            p &+= 1
        }
        return sums
    }
}

/// Pairwise lane reduction (fixed order): ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
@inline(__always)
func horizontalSum(_ v: SIMD8<Float>) -> Float {
    let h = v.lowHalf + v.highHalf
    let q = h.lowHalf + h.highHalf
    return q[0] + q[1]
}
