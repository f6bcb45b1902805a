import XCTest
@testable import SlimKernels

final class SyrkTests: XCTestCase {
    /// H0 + scale·XᵀX in Double (dense), with Σ scale·|x||x| for the error bound.
    private func exact(x: [Float], rows: Int, cols: Int, ldx: Int, h0: [Float], scale: Float)
        -> (value: [Double], magnitude: [Double], initial: [Double]) {
        var value = [Double](repeating: 0, count: cols * cols)
        var magnitude = value
        Kernels.Reference.gemm64(m: cols, n: cols, k: rows, a: x, aRowStride: 1, aColStride: ldx,
                                 b: x, bRowStride: ldx, bColStride: 1, c: &value, magnitude: &magnitude)
        let initial = h0.map(Double.init)
        for index in value.indices {
            value[index] = initial[index] + Double(scale) * value[index]
            magnitude[index] *= Double(scale)
        }
        return (value, magnitude, initial)
    }

    /// A random symmetric H to accumulate into.
    private func symmetric(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var h = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                h[i * n + j] = rng.nextFloat()
                h[j * n + i] = h[i * n + j]
            }
        }
        return h
    }

    func testMatchesFloat64ReferenceAndIsSymmetric() {
        let shapes = [(1, 1), (7, 3), (17, 16), (64, 17), (172, 64), (33, 100), (5, 172), (576, 7), (3, 49)]
        for (index, (rows, cols)) in shapes.enumerated() {
            let ldx = cols + index % 3
            var rng = SplitMix64(seed: UInt64(800 + index))
            let x = rng.floats(rows * ldx)
            let h0 = symmetric(cols, seed: UInt64(900 + index))
            var h = h0
            Kernels.syrkAccumulate(x: x, rows: rows, cols: cols, ldx: ldx, h: &h, scale: 0.75, threads: 2)
            let reference = exact(x: x, rows: rows, cols: cols, ldx: ldx, h0: h0, scale: 0.75)
            XCTAssertNil(checkAgainstExact(h, exact: reference.value, magnitude: reference.magnitude,
                                           initial: reference.initial, k: rows, label: "syrk \(rows)x\(cols)"))
            for i in 0..<cols {
                for j in 0..<i where h[i * cols + j].bitPattern != h[j * cols + i].bitPattern {
                    XCTFail("syrk \(rows)x\(cols): H[\(i)][\(j)] != H[\(j)][\(i)]")
                    return
                }
            }
        }
    }

    /// The GPTQ pattern: many samples summed with `mirror: false`, one mirror at the end, equal
    /// to the Double sum; and identical bits for every worker count (triangle split included).
    func testSamplesSummedWithoutMirrorAndThreadInvariance() {
        let rows = 40, cols = 53, samples = 3
        var rng = SplitMix64(seed: 1000)
        let xs = (0..<samples).map { _ in rng.floats(rows * cols) }
        let scale: Float = 2 / Float(samples)
        var results: [[Float]] = []
        for (threads, blocking) in [(1, GemmBlocking.standard), (2, .standard), (1, tinyBlocking),
                                    (2, tinyBlocking), (3, tinyBlocking), (4, tinyBlocking)] {
            var h = [Float](repeating: 0, count: cols * cols)
            for x in xs {
                x.withUnsafeBufferPointer { px in
                    h.withUnsafeMutableBufferPointer { ph in
                        GemmDriver.run(GemmProblem(m: cols, n: cols, k: rows, a: px.baseAddress!, lda: cols,
                                                   aLayout: .mnContiguous, b: px.baseAddress!, ldb: cols,
                                                   bLayout: .mnContiguous, c: ph.baseAddress!, ldc: cols,
                                                   alpha: scale, accumulate: true, upperOnly: true),
                                       threads: threads, blocking: blocking)
                    }
                }
            }
            Kernels.mirrorUpperToLower(h: &h, n: cols)
            results.append(h)
        }
        // Public entry point with mirror: false gives the same upper triangle as the driver.
        var viaAPI = [Float](repeating: 0, count: cols * cols)
        for x in xs {
            Kernels.syrkAccumulate(x: x, rows: rows, cols: cols, ldx: cols, h: &viaAPI, scale: scale,
                                   mirror: false, threads: 2)
        }
        Kernels.mirrorUpperToLower(h: &viaAPI, n: cols)
        XCTAssertEqual(viaAPI.map(\.bitPattern), results[0].map(\.bitPattern))

        var value = [Double](repeating: 0, count: cols * cols), magnitude = value
        for x in xs {
            let one = exact(x: x, rows: rows, cols: cols, ldx: cols, h0: [Float](repeating: 0, count: cols * cols),
                            scale: scale)
            for index in value.indices {
                value[index] += one.value[index]
                magnitude[index] += one.magnitude[index]
            }
        }
        // Each sample adds one more rounding of the running sum: bound with k = rows + samples.
        XCTAssertNil(checkAgainstExact(results[0], exact: value, magnitude: magnitude, k: rows + samples,
                                       label: "syrk sum"))
        // Standard and tiny blockings differ in k-blocking (a different, equally valid order);
        // within one blocking every worker count must agree bit for bit.
        XCTAssertEqual(results[0].map(\.bitPattern), results[1].map(\.bitPattern), "standard 1 vs 2 threads")
        for index in 3..<results.count {
            XCTAssertEqual(results[2].map(\.bitPattern), results[index].map(\.bitPattern), "tiny blocking run \(index)")
        }
    }

    func testEdgeCases() {
        // cols == 0: nothing happens; rows == 0: H unchanged but mirrored from its upper triangle.
        var h: [Float] = [1, 2, 3, 4]
        Kernels.syrkAccumulate(x: [0], rows: 5, cols: 0, ldx: 0, h: &h)
        XCTAssertEqual(h, [1, 2, 3, 4])
        Kernels.syrkAccumulate(x: [0], rows: 0, cols: 2, ldx: 2, h: &h)
        XCTAssertEqual(h, [1, 2, 2, 4])
        // Garbage below the diagonal is never read.
        h = [1, 0, .nan, 0]
        Kernels.syrkAccumulate(x: [1, 2], rows: 1, cols: 2, ldx: 2, h: &h, scale: 1)
        XCTAssertEqual(h, [2, 2, 2, 4])
    }
}

final class GemvTests: XCTestCase {
    func testMatchesFloat64Reference() {
        var index = 0
        for m in [1, 2, 3, 4, 5, 7, 17, 172] {
            for k in [1, 7, 8, 15, 16, 17, 33, 576] {
                index += 1
                let lda = k + index % 3
                var rng = SplitMix64(seed: UInt64(1100 + index))
                let a = rng.floats(m * lda), x = rng.floats(k)
                let accumulate = index % 2 == 0
                let y0 = rng.floats(m)
                var y = accumulate ? y0 : [Float](repeating: .nan, count: m)
                Kernels.gemv(m: m, k: k, a: a, lda: lda, x: x, y: &y, accumulate: accumulate, threads: 2)
                var value = [Double](repeating: 0, count: m), magnitude = value
                Kernels.Reference.gemm64(m: m, n: 1, k: k, a: a, aRowStride: lda, aColStride: 1,
                                         b: x, bRowStride: 1, bColStride: 1, c: &value, magnitude: &magnitude)
                let initial = accumulate ? y0.map(Double.init) : [Double](repeating: 0, count: m)
                for i in 0..<m { value[i] += initial[i] }
                XCTAssertNil(checkAgainstExact(y, exact: value, magnitude: magnitude, initial: initial, k: k,
                                               label: "gemv m=\(m) k=\(k) accumulate=\(accumulate)"))
            }
        }
    }

    /// The per-worker split must not change any bit.
    func testThreadCountDoesNotChangeBits() {
        let m = 103, k = 45
        var rng = SplitMix64(seed: 1200)
        let a = rng.floats(m * k), x = rng.floats(k)
        var reference = [Float](repeating: 0, count: m)
        GemvKernel.run(rows: m, k: k, a: a, lda: k, x: x, y: &reference, accumulate: false, threads: 1)
        for threads in 2...5 {
            var y = [Float](repeating: 0, count: m)
            GemvKernel.run(rows: m, k: k, a: a, lda: k, x: x, y: &y, accumulate: false, threads: threads,
                           minimumElementsPerWorker: 1)
            XCTAssertEqual(y.map(\.bitPattern), reference.map(\.bitPattern), "threads=\(threads)")
        }
        // sgemmNT with one row is this kernel on the weight matrix.
        var c = [Float](repeating: 0, count: m)
        Kernels.sgemmNT(m: 1, n: m, k: k, a: x, lda: k, b: a, ldb: k, c: &c, ldc: m, threads: 2)
        XCTAssertEqual(c.map(\.bitPattern), reference.map(\.bitPattern))
    }

    func testEdgeCases() {
        var y: [Float] = [5, 5]
        Kernels.gemv(m: 2, k: 0, a: [0], lda: 0, x: [0], y: &y, accumulate: true)
        XCTAssertEqual(y, [5, 5])
        Kernels.gemv(m: 2, k: 0, a: [0], lda: 0, x: [0], y: &y)
        XCTAssertEqual(y, [0, 0])
        Kernels.gemv(m: 0, k: 3, a: [0], lda: 3, x: [0], y: &y)
        XCTAssertEqual(y, [0, 0])
    }
}
