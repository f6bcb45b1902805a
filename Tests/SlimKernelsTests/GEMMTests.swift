import XCTest
@testable import SlimKernels

/// One product C[m×n] (+)= op(A)·op(B) with its operands stored as the variant expects and
/// optional padding of every leading dimension (to catch row-stride mistakes).
private struct ProductCase {
    enum Variant: String { case nt = "NT", nn = "NN", tn = "TN" }

    let variant: Variant
    let m: Int, n: Int, k: Int
    let a: [Float], lda: Int
    let b: [Float], ldb: Int
    let ldc: Int

    init(_ variant: Variant, m: Int, n: Int, k: Int, pad: Int = 0, seed: UInt64) {
        self.variant = variant
        self.m = m
        self.n = n
        self.k = k
        var rng = SplitMix64(seed: seed)
        switch variant {
        case .nt:
            lda = k + pad; ldb = k + pad
            a = rng.floats(max(1, m * lda)); b = rng.floats(max(1, n * ldb))
        case .nn:
            lda = k + pad; ldb = n + pad
            a = rng.floats(max(1, m * lda)); b = rng.floats(max(1, k * ldb))
        case .tn:
            lda = m + pad; ldb = n + pad
            a = rng.floats(max(1, k * lda)); b = rng.floats(max(1, k * ldb))
        }
        ldc = n + pad
    }

    var label: String { "\(variant.rawValue) m=\(m) n=\(n) k=\(k) lda=\(lda) ldb=\(ldb) ldc=\(ldc)" }

    /// Σ_p A(i,p)·B(p,j) and Σ|A(i,p)·B(p,j)| in Double, dense m×n.
    func exact() -> (value: [Double], magnitude: [Double]) {
        var value = [Double](repeating: 0, count: m * n)
        var magnitude = [Double](repeating: 0, count: m * n)
        let (aRow, aCol) = variant == .tn ? (1, lda) : (lda, 1)
        let (bRow, bCol) = variant == .nt ? (1, ldb) : (ldb, 1)
        Kernels.Reference.gemm64(m: m, n: n, k: k, a: a, aRowStride: aRow, aColStride: aCol,
                                 b: b, bRowStride: bRow, bColStride: bCol,
                                 c: &value, magnitude: &magnitude)
        return (value, magnitude)
    }

    /// Runs the fast kernel on `c` (m rows of stride ldc); through the public API when
    /// `blocking` is nil, else through the driver with that blocking.
    func run(_ c: inout [Float], accumulate: Bool, threads: Int, blocking: GemmBlocking? = nil) {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    let a = pa.baseAddress!, b = pb.baseAddress!, c = pc.baseAddress!
                    if let blocking {
                        let layouts: (OperandLayout, OperandLayout) = switch variant {
                        case .nt: (.kContiguous, .kContiguous)
                        case .nn: (.kContiguous, .mnContiguous)
                        case .tn: (.mnContiguous, .mnContiguous)
                        }
                        GemmDriver.run(GemmProblem(m: m, n: n, k: k, a: a, lda: lda, aLayout: layouts.0,
                                                   b: b, ldb: ldb, bLayout: layouts.1, c: c, ldc: ldc,
                                                   alpha: 1, accumulate: accumulate, upperOnly: false),
                                       threads: threads, blocking: blocking)
                        return
                    }
                    switch variant {
                    case .nt:
                        Kernels.sgemmNT(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
                                        accumulate: accumulate, threads: threads)
                    case .nn:
                        Kernels.sgemmNN(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
                                        accumulate: accumulate, threads: threads)
                    case .tn:
                        Kernels.sgemmTN(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
                                        accumulate: accumulate, threads: threads)
                    }
                }
            }
        }
    }

    /// Runs the kernel on a C buffer whose padding holds a sentinel, then checks the product
    /// against the Double reference and that the padding was not touched. Returns C.
    @discardableResult
    func verify(accumulate: Bool, threads: Int, blocking: GemmBlocking? = nil,
                file: StaticString = #filePath, line: UInt = #line) -> [Float] {
        let sentinel: Float = 12345
        var rng = SplitMix64(seed: UInt64(m * 1_000_003 + n * 1009 + k))
        var c = [Float](repeating: sentinel, count: max(1, m * ldc))
        var initial = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                // Without accumulation C starts as NaN: it must be overwritten, never read.
                c[i * ldc + j] = accumulate ? rng.nextFloat() : .nan
                initial[i * n + j] = accumulate ? Double(c[i * ldc + j]) : 0
            }
        }
        run(&c, accumulate: accumulate, threads: threads, blocking: blocking)
        var (value, magnitude) = exact()
        var dense = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                dense[i * n + j] = c[i * ldc + j]
                value[i * n + j] += initial[i * n + j]
            }
            for j in n..<ldc where c[i * ldc + j] != sentinel {
                XCTFail("\(label): padding at row \(i) column \(j) overwritten", file: file, line: line)
                return c
            }
        }
        let blockLabel = blocking == nil ? "" : " (tiny blocks)"
        XCTAssertNil(checkAgainstExact(dense, exact: value, magnitude: magnitude, initial: initial, k: k,
                                       label: "\(label) accumulate=\(accumulate) threads=\(threads)\(blockLabel)"),
                     file: file, line: line)
        return c
    }
}

final class GEMMTests: XCTestCase {
    /// Mixes of m, n, k ∈ {1, 3, 7, 16, 17, 64, 172, 576} plus scaled-down pipeline shapes
    /// (2048×576×576 → 64×72×72, 2048×1536×576 → 32×192×72, 2048×576×1536 → 32×72×192,
    /// lm_head 2048×49152×576 → 6×1536×72).
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 576, 64), (1, 7, 3), (3, 7, 17), (7, 3, 1), (16, 16, 16), (17, 17, 17),
        (64, 172, 7), (172, 64, 17), (17, 576, 3), (576, 17, 16), (7, 16, 576), (3, 1, 172),
        (64, 1, 576), (16, 17, 172), (17, 3, 64),
        (64, 72, 72), (32, 192, 72), (32, 72, 192), (6, 1536, 72),
    ]

    func testNTMatchesFloat64Reference() {
        for (index, (m, n, k)) in Self.shapes.enumerated() {
            let product = ProductCase(.nt, m: m, n: n, k: k, pad: index % 3 == 0 ? 3 : 0, seed: UInt64(index))
            product.verify(accumulate: index % 2 == 1, threads: 2)
        }
    }

    func testNNMatchesFloat64Reference() {
        for (index, (m, n, k)) in Self.shapes.enumerated() {
            let product = ProductCase(.nn, m: m, n: n, k: k, pad: index % 3 == 1 ? 5 : 0, seed: UInt64(100 + index))
            product.verify(accumulate: index % 2 == 0, threads: 2)
        }
    }

    func testTNMatchesFloat64Reference() {
        for (index, (m, n, k)) in Self.shapes.enumerated() {
            let product = ProductCase(.tn, m: m, n: n, k: k, pad: index % 3 == 2 ? 2 : 0, seed: UInt64(200 + index))
            product.verify(accumulate: index % 2 == 1, threads: 2)
        }
    }

    func testBothAccumulateModesWithPaddedLeadingDimensions() {
        for variant in [ProductCase.Variant.nt, .nn, .tn] {
            let product = ProductCase(variant, m: 23, n: 37, k: 29, pad: 7, seed: 300)
            product.verify(accumulate: false, threads: 1)
            product.verify(accumulate: true, threads: 1)
        }
    }

    /// Tiny blocks: many k-blocks (k > kcMax, the later ones accumulating into C), several row
    /// and column blocks, partial tiles, and 1–4 workers on small matrices.
    func testEveryBlockBoundaryWithTinyBlocking() {
        for variant in [ProductCase.Variant.nt, .nn, .tn] {
            for (index, (m, n, k)) in [(13, 70, 23), (50, 33, 11), (7, 17, 5), (1, 40, 9)].enumerated() {
                let product = ProductCase(variant, m: m, n: n, k: k, pad: 1, seed: UInt64(400 + index))
                for threads in 1...4 {
                    product.verify(accumulate: threads % 2 == 0, threads: threads, blocking: tinyBlocking)
                }
            }
        }
    }

    /// Splitting the output across workers must not change a single bit: the k-blocking, and
    /// so the reduction order, depends on k only.
    func testThreadCountDoesNotChangeBits() {
        // Public API: 2·130·90·350 ≈ 8 MFLOP, enough for two workers at the standard threshold.
        for variant in [ProductCase.Variant.nt, .nn, .tn] {
            let product = ProductCase(variant, m: 130, n: 90, k: 350, seed: 500)
            let one = product.verify(accumulate: false, threads: 1)
            for threads in 2...3 {
                let other = product.verify(accumulate: false, threads: threads)
                XCTAssertEqual(one.map(\.bitPattern), other.map(\.bitPattern), "\(product.label) threads=\(threads)")
            }
        }
        // Tiny blocks, so every thread count gives a different grid of regions.
        for variant in [ProductCase.Variant.nt, .nn, .tn] {
            let product = ProductCase(variant, m: 41, n: 67, k: 19, pad: 2, seed: 501)
            let one = product.verify(accumulate: true, threads: 1, blocking: tinyBlocking)
            for threads in 2...5 {
                let other = product.verify(accumulate: true, threads: threads, blocking: tinyBlocking)
                XCTAssertEqual(one.map(\.bitPattern), other.map(\.bitPattern), "\(product.label) threads=\(threads)")
            }
        }
    }

    func testEmptyDimensions() {
        var c: [Float] = [7, 7, 7, 7, 7, 7]
        let a: [Float] = [1, 2, 3], b: [Float] = [4, 5, 6]
        // k == 0: the product is zero; accumulate keeps C.
        Kernels.sgemmNT(m: 2, n: 3, k: 0, a: a, lda: 0, b: b, ldb: 0, c: &c, ldc: 3, accumulate: true)
        XCTAssertEqual(c, [7, 7, 7, 7, 7, 7])
        Kernels.sgemmNN(m: 2, n: 3, k: 0, a: a, lda: 0, b: b, ldb: 3, c: &c, ldc: 3)
        XCTAssertEqual(c, [0, 0, 0, 0, 0, 0])
        // m == 0 or n == 0 writes nothing.
        c = [7, 7, 7, 7, 7, 7]
        Kernels.sgemmTN(m: 0, n: 3, k: 1, a: a, lda: 0, b: b, ldb: 3, c: &c, ldc: 3)
        Kernels.sgemmNT(m: 2, n: 0, k: 1, a: a, lda: 1, b: b, ldb: 1, c: &c, ldc: 3)
        XCTAssertEqual(c, [7, 7, 7, 7, 7, 7])
        // m == 1 (GEMV path) with k == 0.
        Kernels.sgemmNT(m: 1, n: 3, k: 0, a: a, lda: 0, b: b, ldb: 0, c: &c, ldc: 3)
        XCTAssertEqual(c, [0, 0, 0, 7, 7, 7])
    }

    /// Zero padding of partial tiles must not leak Inf·0 = NaN into neighbouring outputs, and
    /// non-finite inputs must reach exactly the outputs they feed. Row 6 and column 18 sit in
    /// partial tiles (m = 7, n = 19), next to padded lanes.
    func testNonFiniteInputsStayLocal() {
        for variant in [ProductCase.Variant.nt, .tn] {
            let base = ProductCase(variant, m: 7, n: 19, k: 5, seed: 600)
            var a = base.a, b = base.b
            // A(6, 2) = +Inf; B(4, 18) = NaN (B stored n×k for NT, k×n for TN).
            a[variant == .nt ? 6 * base.lda + 2 : 2 * base.lda + 6] = .infinity
            b[variant == .nt ? 18 * base.ldb + 4 : 4 * base.ldb + 18] = .nan
            let product = ProductCase(copying: base, a: a, b: b)
            var c = [Float](repeating: 0, count: 7 * product.ldc)
            product.run(&c, accumulate: false, threads: 1)
            for i in 0..<7 {
                for j in 0..<19 {
                    let value = c[i * product.ldc + j]
                    if j == 18 {
                        XCTAssertTrue(value.isNaN, "\(variant) (\(i), \(j)): \(value)")
                    } else if i == 6 {
                        XCTAssertTrue(value.isInfinite, "\(variant) (\(i), \(j)): \(value)")
                    } else {
                        XCTAssertTrue(value.isFinite, "\(variant) (\(i), \(j)): \(value)")
                    }
                }
            }
        }
    }

    /// The Float scalar references obey the same bound against the Double ground truth.
    func testFloatReferencesWithinBound() {
        let m = 9, n = 13, k = 37
        for variant in [ProductCase.Variant.nt, .nn, .tn] {
            let product = ProductCase(variant, m: m, n: n, k: k, pad: 2, seed: 650)
            var c = [Float](repeating: .nan, count: m * product.ldc)
            switch variant {
            case .nt: Kernels.Reference.sgemmNT(m: m, n: n, k: k, a: product.a, lda: product.lda,
                                                b: product.b, ldb: product.ldb, c: &c, ldc: product.ldc)
            case .nn: Kernels.Reference.sgemmNN(m: m, n: n, k: k, a: product.a, lda: product.lda,
                                                b: product.b, ldb: product.ldb, c: &c, ldc: product.ldc)
            case .tn: Kernels.Reference.sgemmTN(m: m, n: n, k: k, a: product.a, lda: product.lda,
                                                b: product.b, ldb: product.ldb, c: &c, ldc: product.ldc)
            }
            let (value, magnitude) = product.exact()
            let dense = (0..<m * n).map { c[($0 / n) * product.ldc + $0 % n] }
            XCTAssertNil(checkAgainstExact(dense, exact: value, magnitude: magnitude, k: k, label: "reference \(variant)"))
        }
        // syrk reference (full matrix, H += scale·XᵀX) and gemv reference.
        var rng = SplitMix64(seed: 651)
        let x = rng.floats(k * n)
        var h = [Float](repeating: 0, count: n * n)
        Kernels.Reference.syrkAccumulate(x: x, rows: k, cols: n, ldx: n, h: &h, scale: 0.5)
        var value = [Double](repeating: 0, count: n * n), magnitude = value
        Kernels.Reference.gemm64(m: n, n: n, k: k, a: x, aRowStride: 1, aColStride: n, b: x,
                                 bRowStride: n, bColStride: 1, c: &value, magnitude: &magnitude)
        XCTAssertNil(checkAgainstExact(h, exact: value.map { $0 * 0.5 }, magnitude: magnitude.map { $0 * 0.5 },
                                       k: k, label: "reference syrk"))
        var y = [Float](repeating: .nan, count: k)
        Kernels.Reference.gemv(m: k, k: n, a: x, lda: n, x: Array(x[0..<n]), y: &y)
        var gemvValue = [Double](repeating: 0, count: k), gemvMagnitude = gemvValue
        Kernels.Reference.gemm64(m: k, n: 1, k: n, a: x, aRowStride: n, aColStride: 1, b: x,
                                 bRowStride: 1, bColStride: 1, c: &gemvValue, magnitude: &gemvMagnitude)
        XCTAssertNil(checkAgainstExact(y, exact: gemvValue, magnitude: gemvMagnitude, k: n, label: "reference gemv"))
        let dot = Kernels.Reference.dot(x, x, count: n)
        XCTAssertNil(checkAgainstExact([dot], exact: [Kernels.Reference.dot64(x, x, count: n)],
                                       magnitude: [Kernels.Reference.dot64(x, x, count: n)], k: n, label: "reference dot"))
    }

    /// The checker itself: NaN and a single dropped term must fail, the exact value must pass.
    func testCheckerRejectsNaNAndDroppedTerm() {
        let k = 576
        var rng = SplitMix64(seed: 700)
        let a = rng.floats(k), b = rng.floats(k)
        let exact = Kernels.Reference.dot64(a, b, count: k)
        var magnitude = 0.0
        for p in 0..<k { magnitude += abs(Double(a[p]) * Double(b[p])) }
        XCTAssertNil(checkAgainstExact([Float(exact)], exact: [exact], magnitude: [magnitude], k: k, label: "exact"))
        XCTAssertNotNil(checkAgainstExact([.nan], exact: [exact], magnitude: [magnitude], k: k, label: "nan"))
        XCTAssertNotNil(checkAgainstExact([Float(exact)], exact: [.nan], magnitude: [magnitude], k: k, label: "nan ref"))
        let largest = (0..<k).max { abs(a[$0] * b[$0]) < abs(a[$1] * b[$1]) }!
        let dropped = Float(exact - Double(a[largest]) * Double(b[largest]))
        XCTAssertNotNil(checkAgainstExact([dropped], exact: [exact], magnitude: [magnitude], k: k, label: "dropped"))
    }
}

extension ProductCase {
    /// The same case with replaced operand buffers (same layout).
    init(copying other: ProductCase, a: [Float], b: [Float]) {
        self.variant = other.variant
        self.m = other.m
        self.n = other.n
        self.k = other.k
        self.a = a
        self.lda = other.lda
        self.b = b
        self.ldb = other.ldb
        self.ldc = other.ldc
    }
}
