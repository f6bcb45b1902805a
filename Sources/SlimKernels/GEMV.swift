// Matrix-vector product for the decode path (batch 1). Bandwidth-bound: the matrix is read
// once, four rows at a time, with two 8-lane accumulators per row to hide FMA latency.

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
        precondition(m >= 0 && k >= 0, "gemv: negative size m=\(m) k=\(k)")
        precondition(lda >= k, "gemv: lda=\(lda) < k=\(k)")
        GemvKernel.run(rows: m, k: k, a: a, lda: lda, x: x, y: y, accumulate: accumulate,
                       threads: threads)
    }
}

// MARK: - Kernel

enum GemvKernel {
    /// Matrix elements per worker below which extra threads are not started (512 KiB: the
    /// time to stream that is comparable to a dispatch).
    static let standardMinimumElementsPerWorker = 1 << 17

    static func run(rows: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                    x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                    accumulate: Bool, threads: Int,
                    minimumElementsPerWorker: Int = standardMinimumElementsPerWorker) {
        guard rows > 0 else { return }
        if k == 0 {
            if !accumulate { y.update(repeating: 0, count: rows) }
            return
        }
        let workers = Kernels.workerCount(threads: threads, work: rows &* k,
                                          minimumPerWorker: minimumElementsPerWorker)
        // Several row ranges per worker, taken dynamically (see `Kernels.parallelItems`).
        let ranges = Kernels.splitRange(rows, parts: workers > 1 ? 4 * workers : 1, granule: 4)
        let args = Arguments(a: a, lda: lda, x: x, y: y)
        Kernels.parallelItems(workers: workers, items: ranges.count) { _, index in
            let range = ranges[index]
            var i = range.lowerBound
            while i < range.upperBound {
                // A group of fewer than four rows repeats its last row: the arithmetic per
                // row is then literally the same code whatever the grouping.
                let last = rows - 1
                let r0 = args.a + i &* args.lda
                let r1 = args.a + min(i &+ 1, last) &* args.lda
                let r2 = args.a + min(i &+ 2, last) &* args.lda
                let r3 = args.a + min(i &+ 3, last) &* args.lda
                let sums = dot4(r0, r1, r2, r3, args.x, k)
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
        let a: UnsafePointer<Float>
        let lda: Int
        let x: UnsafePointer<Float>
        let y: UnsafeMutablePointer<Float>
    }

    /// Dot products of four rows with `x`: two 8-lane partial sums per row over 16-element
    /// steps, one 8-lane step, lane reduction, then a scalar tail.
    @inline(__always)
    static func dot4(_ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>,
                     _ r2: UnsafePointer<Float>, _ r3: UnsafePointer<Float>,
                     _ x: UnsafePointer<Float>, _ k: Int) -> SIMD4<Float> {
        let p0 = UnsafeRawPointer(r0), p1 = UnsafeRawPointer(r1)
        let p2 = UnsafeRawPointer(r2), p3 = UnsafeRawPointer(r3)
        let px = UnsafeRawPointer(x)
        var a0 = SIMD8<Float>(), b0 = SIMD8<Float>()
        var a1 = SIMD8<Float>(), b1 = SIMD8<Float>()
        var a2 = SIMD8<Float>(), b2 = SIMD8<Float>()
        var a3 = SIMD8<Float>(), b3 = SIMD8<Float>()
        var offset = 0
        let vectorEnd = (k / 16) &* 64
        while offset < vectorEnd {
            let x0 = px.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            let x1 = px.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self)
            a0 = a0.addingProduct(p0.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            b0 = b0.addingProduct(p0.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self), x1)
            a1 = a1.addingProduct(p1.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            b1 = b1.addingProduct(p1.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self), x1)
            a2 = a2.addingProduct(p2.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            b2 = b2.addingProduct(p2.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self), x1)
            a3 = a3.addingProduct(p3.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            b3 = b3.addingProduct(p3.loadUnaligned(fromByteOffset: offset &+ 32, as: SIMD8<Float>.self), x1)
            offset &+= 64
        }
        var p = k / 16 &* 16
        if k &- p >= 8 {
            let x0 = px.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
            a0 = a0.addingProduct(p0.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            a1 = a1.addingProduct(p1.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            a2 = a2.addingProduct(p2.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            a3 = a3.addingProduct(p3.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self), x0)
            p &+= 8
        }
        var sums = SIMD4<Float>(horizontalSum(a0 + b0), horizontalSum(a1 + b1),
                                horizontalSum(a2 + b2), horizontalSum(a3 + b3))
        while p < k {
            let xp = x[p]
            sums = sums.addingProduct(SIMD4<Float>(r0[p], r1[p], r2[p], r3[p]), SIMD4<Float>(repeating: xp))
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
