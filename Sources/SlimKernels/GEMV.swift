// Matrix-vector product for the decode path (batch 1). Bandwidth-bound: the matrix is read
// once, row after row, so the whole matrix is one ascending stream; two 8-lane accumulators per
// row hide FMA latency. The matrix may be fp32 or 16-bit (F16 / BF16 weights kept as stored,
// widened in registers).
//
// Why not four rows at a time (sharing each x load): with short rows the four interleaved
// streams jump every few dozen cache lines, and the hardware prefetchers keep retraining.
// SmolLM2's 49152×576 classifier ran at 21 GB/s (fp32) and 14 GB/s (16-bit) that way and runs at
// 34–36 and 37–40 GB/s row by row; at 4096-wide rows the two are within this machine's noise.

// MARK: - Public API

extension Kernels {
    /// y[m] = A[m×k] · x[k], or y += A · x when `accumulate` is true.
    ///
    /// - Parameters:
    ///   - a: row i at `a + i * lda`; `lda >= k`. May be a memory-mapped weight.
    ///   - y: must not overlap `a` or `x`. When `accumulate` is false it is not read.
    ///   - threads: rows are split across workers (ranges taken dynamically) once the matrix is
    ///     large enough (512 KiB per worker) to pay for dispatch; results are bit-identical for
    ///     any value.
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
        // Several row ranges per worker, taken dynamically (see `Kernels.parallelItems`), in
        // pieces of 16 rows (one 64-byte line of an aligned y), so workers do not share lines of y.
        let ranges = Kernels.splitRange(rows, parts: workers > 1 ? 4 * workers : 1, granule: 16)
        let args = Arguments(a: a, lda: lda, x: x, y: y)
        Kernels.parallelItems(workers: workers, items: ranges.count) { _, index in
            let range = ranges[index]
            let rowBytes = args.lda &* E.byteSize
            for i in range {
                let sum = dot(E.self, args.a + i &* rowBytes, args.x, k)
                args.y[i] = accumulate ? args.y[i] + sum : sum
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

    /// The dot product of a row with `x`: two 8-lane partial sums over 16-element steps, one
    /// 8-lane step, the fixed-order lane reduction, then a scalar tail.
    @inline(__always)
    static func dot<E: RowElements>(_: E.Type, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ k: Int) -> Float {
        let px = UnsafeRawPointer(x)
        var a = SIMD8<Float>(), b = SIMD8<Float>()
        var p = 0
        let vectorEnd = k / 16 &* 16
        while p < vectorEnd {
            a = a.addingProduct(E.load8(row, p), px.loadUnaligned(fromByteOffset: p &* 4, as: SIMD8<Float>.self))
            b = b.addingProduct(E.load8(row, p &+ 8), px.loadUnaligned(fromByteOffset: p &* 4 &+ 32, as: SIMD8<Float>.self))
            p &+= 16
        }
        if k &- p >= 8 {
            a = a.addingProduct(E.load8(row, p), px.loadUnaligned(fromByteOffset: p &* 4, as: SIMD8<Float>.self))
            p &+= 8
        }
        var sum = horizontalSum(a + b)
        while p < k {
            sum = sum.addingProduct(E.load(row, p), x[p])
            p &+= 1
        }
        return sum
    }
}

/// Pairwise lane reduction (fixed order): ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
@inline(__always)
func horizontalSum(_ v: SIMD8<Float>) -> Float {
    let h = v.lowHalf + v.highHalf
    let q = h.lowHalf + h.highHalf
    return q[0] + q[1]
}
