import XCTest
@testable import SlimKernels

/// 16-bit weight matrices: the GEMV and the GEMM must give bit for bit the results of the fp32
/// kernels on the widened matrix (so keeping weights 16-bit never changes a perplexity), and
/// those must be within the Float rounding bound of the Double reference.
final class HalfWeightsTests: XCTestCase {
    /// A random m×ld matrix stored as `format`, starting one byte into the returned buffer when
    /// `misaligned` (loads must not assume alignment), and its exact fp32 widening.
    private func matrix(_ format: StorageFormat, m: Int, ld: Int, seed: UInt64, misaligned: Bool = false)
        -> (bytes: [UInt8], offset: Int, widened: [Float]) {
        var rng = SplitMix64(seed: seed)
        let values = rng.floats(m * ld).map { $0 * 4 }
        let offset = misaligned ? 1 : 0
        var bytes = [UInt8](repeating: 0, count: offset + values.count * format.byteSize)
        var widened = [Float](repeating: 0, count: values.count)
        for (i, v) in values.enumerated() {
            let bits: UInt32
            switch format {
            case .f32: bits = v.bitPattern; widened[i] = v
            case .f16:
                let h = Kernels.Reference.f32ToF16(v)
                bits = UInt32(h); widened[i] = Kernels.Reference.f16ToF32(h)
            case .bf16:
                let h = Kernels.Reference.f32ToBF16(v)
                bits = UInt32(h); widened[i] = Kernels.Reference.bf16ToF32(h)
            }
            for byte in 0..<format.byteSize {
                bytes[offset + i * format.byteSize + byte] = UInt8(truncatingIfNeeded: bits >> (8 * byte))
            }
        }
        return (bytes, offset, widened)
    }

    func testWidenIsExactIncludingSpecials() {
        var f16: [UInt16] = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7E01, 0xC000]
        f16 += (0..<37).map { UInt16(truncatingIfNeeded: $0 &* 1777) }
        for format in [StorageFormat.f16, .bf16] {
            for first in [0, 3] {
                let count = f16.count - first
                var out = [Float](repeating: 0, count: count)
                f16.withUnsafeBytes { raw in
                    Kernels.widen(raw.baseAddress!, format: format, first: first, count: count, into: &out)
                }
                for i in 0..<count {
                    let bits = f16[first + i]
                    let expected = format == .f16 ? Kernels.Reference.f16ToF32(bits) : Kernels.Reference.bf16ToF32(bits)
                    XCTAssertTrue(sameBitsOrBothNaN(out[i], expected), "\(format) \(String(bits, radix: 16))")
                }
            }
        }
    }

    func testGemvMatchesFp32KernelBitForBitAndTheBound() {
        for format in StorageFormat.allCases {
            for (index, (m, k, ld)) in [(1, 1, 1), (5, 7, 9), (103, 45, 45), (64, 16, 20), (33, 200, 203), (9, 8, 8)].enumerated() {
                let (bytes, offset, widened) = matrix(format, m: m, ld: ld, seed: UInt64(700 + index), misaligned: index % 2 == 1)
                var rng = SplitMix64(seed: UInt64(900 + index))
                let x = rng.floats(k)
                let accumulate = index % 3 == 0
                let y0 = rng.floats(m)
                var expected = accumulate ? y0 : [Float](repeating: .nan, count: m)
                Kernels.gemv(m: m, k: k, a: widened, lda: ld, x: x, y: &expected, accumulate: accumulate, threads: 1)
                for threads in [1, 2] {
                    var y = accumulate ? y0 : [Float](repeating: .nan, count: m)
                    bytes.withUnsafeBytes { raw in
                        Kernels.gemv(m: m, k: k, a: raw.baseAddress! + offset, format: format, lda: ld, x: x, y: &y,
                                     accumulate: accumulate, threads: threads)
                    }
                    XCTAssertEqual(y.map(\.bitPattern), expected.map(\.bitPattern), "\(format) m=\(m) k=\(k) t=\(threads)")
                }
                var value = [Double](repeating: 0, count: m), magnitude = value
                Kernels.Reference.gemm64(m: m, n: 1, k: k, a: widened, aRowStride: ld, aColStride: 1,
                                         b: x, bRowStride: 1, bColStride: 1, c: &value, magnitude: &magnitude)
                let initial = accumulate ? y0.map(Double.init) : [Double](repeating: 0, count: m)
                for i in 0..<m { value[i] += initial[i] }
                XCTAssertNil(checkAgainstExact(expected, exact: value, magnitude: magnitude, initial: initial, k: k,
                                               label: "\(format) gemv m=\(m) k=\(k)"))
            }
        }
    }

    func testGemmMatchesFp32KernelBitForBitAndTheBound() {
        // n × k weights; m activation rows. k = 2100 crosses a k-block (2048).
        let shapes = [(2, 1, 1, 1), (7, 17, 31, 33), (33, 40, 300, 300), (6, 16, 2100, 2100), (13, 5, 64, 70)]
        for format in [StorageFormat.f16, .bf16] {
            for (index, (m, n, k, ldb)) in shapes.enumerated() {
                let (bytes, offset, widened) = matrix(format, m: n, ld: ldb, seed: UInt64(400 + index), misaligned: index == 2)
                var rng = SplitMix64(seed: UInt64(500 + index))
                let a = rng.floats(m * k)
                let accumulate = index % 2 == 1
                let c0 = rng.floats(m * n)
                var expected = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                Kernels.sgemmNT(m: m, n: n, k: k, a: a, lda: k, b: widened, ldb: ldb, c: &expected, ldc: n,
                                accumulate: accumulate, threads: 1)
                for threads in [1, 2] {
                    var c = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                    bytes.withUnsafeBytes { raw in
                        Kernels.gemmNT(m: m, n: n, k: k, a: a, lda: k, b: raw.baseAddress! + offset, bFormat: format,
                                       ldb: ldb, c: &c, ldc: n, accumulate: accumulate, threads: threads)
                    }
                    XCTAssertEqual(c.map(\.bitPattern), expected.map(\.bitPattern), "\(format) \(m)×\(n)×\(k) t=\(threads)")
                }
                var value = [Double](repeating: 0, count: m * n), magnitude = value
                Kernels.Reference.gemm64(m: m, n: n, k: k, a: a, aRowStride: k, aColStride: 1,
                                         b: widened, bRowStride: 1, bColStride: ldb, c: &value, magnitude: &magnitude)
                let initial = accumulate ? c0.map(Double.init) : [Double](repeating: 0, count: m * n)
                for i in 0..<(m * n) { value[i] += initial[i] }
                XCTAssertNil(checkAgainstExact(expected, exact: value, magnitude: magnitude, initial: initial, k: k,
                                               label: "\(format) gemm \(m)×\(n)×\(k)"))
            }
        }
    }

    /// Tiny blocks: every packing boundary (k-chunks, partial panels) with a 16-bit B, stored
    /// k-contiguous (weights, keys) and mn-contiguous (a KV cache's values).
    func testGemmWithTinyBlockingMatchesFp32() {
        let m = 9, n = 37, k = 29
        for format in [StorageFormat.f16, .bf16] {
            for layout in [OperandLayout.kContiguous, .mnContiguous] {
                let ldb = layout == .kContiguous ? k : n
                let (bytes, _, widened) = matrix(format, m: layout == .kContiguous ? n : k, ld: ldb, seed: 31)
                var rng = SplitMix64(seed: 32)
                let a = rng.floats(m * k)
                var expected = [Float](repeating: 0, count: m * n), c = expected
                // The problem stores C's pointer, so it must come from a scope that outlives the run.
                a.withUnsafeBufferPointer { pa in
                    widened.withUnsafeBufferPointer { pb in
                        expected.withUnsafeMutableBufferPointer { pc in
                            GemmDriver.run(GemmProblem(m: m, n: n, k: k, a: pa.baseAddress!, lda: k, aLayout: .kContiguous,
                                                       b: pb.baseAddress!, ldb: ldb, bLayout: layout, c: pc.baseAddress!, ldc: n,
                                                       alpha: 1, accumulate: false, upperOnly: false),
                                           threads: 2, blocking: tinyBlocking)
                        }
                    }
                    bytes.withUnsafeBytes { raw in
                        c.withUnsafeMutableBufferPointer { pc in
                            GemmDriver.run(GemmProblem(m: m, n: n, k: k, a: pa.baseAddress!, lda: k, aLayout: .kContiguous,
                                                       b: raw.baseAddress!, ldb: ldb, bLayout: layout, c: pc.baseAddress!, ldc: n,
                                                       alpha: 1, accumulate: false, upperOnly: false, bFormat: format),
                                           threads: 2, blocking: tinyBlocking)
                        }
                    }
                }
                XCTAssertEqual(c.map(\.bitPattern), expected.map(\.bitPattern), "\(format) \(layout)")
            }
        }
    }

    /// gemmNN with a 16-bit B (k × n rows, as a KV cache's values): bit for bit sgemmNN on the
    /// widened B, and within the Float bound of the Double product.
    func testGemmNNMatchesFp32KernelBitForBitAndTheBound() {
        // k positions × n columns of B (row stride ldb); m query rows. k = 2100 crosses a k-block.
        let shapes = [(1, 1, 1, 1), (7, 17, 31, 33), (33, 64, 300, 192), (6, 16, 2100, 16), (13, 5, 64, 70)]
        for format in StorageFormat.allCases {
            for (index, (m, n, k, ldb)) in shapes.enumerated() {
                let (bytes, offset, widened) = matrix(format, m: k, ld: ldb, seed: UInt64(1400 + index), misaligned: index == 2)
                var rng = SplitMix64(seed: UInt64(1500 + index))
                let a = rng.floats(m * k)
                let accumulate = index % 2 == 1
                let c0 = rng.floats(m * n)
                var expected = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                Kernels.sgemmNN(m: m, n: n, k: k, a: a, lda: k, b: widened, ldb: ldb, c: &expected, ldc: n,
                                accumulate: accumulate, threads: 1)
                for threads in [1, 2] {
                    var c = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                    bytes.withUnsafeBytes { raw in
                        Kernels.gemmNN(m: m, n: n, k: k, a: a, lda: k, b: raw.baseAddress! + offset, bFormat: format,
                                       ldb: ldb, c: &c, ldc: n, accumulate: accumulate, threads: threads)
                    }
                    XCTAssertEqual(c.map(\.bitPattern), expected.map(\.bitPattern), "\(format) NN \(m)×\(n)×\(k) t=\(threads)")
                }
                var value = [Double](repeating: 0, count: m * n), magnitude = value
                Kernels.Reference.gemm64(m: m, n: n, k: k, a: a, aRowStride: k, aColStride: 1,
                                         b: widened, bRowStride: ldb, bColStride: 1, c: &value, magnitude: &magnitude)
                let initial = accumulate ? c0.map(Double.init) : [Double](repeating: 0, count: m * n)
                for i in 0..<(m * n) { value[i] += initial[i] }
                XCTAssertNil(checkAgainstExact(expected, exact: value, magnitude: magnitude, initial: initial, k: k,
                                               label: "\(format) gemmNN \(m)×\(n)×\(k)"))
            }
        }
    }

    /// The attention value sum: a 16-bit cache gives its fp32 conversion's result bit for bit,
    /// and the fp32 result is within the Float bound of the Double sum (every width class: 32-,
    /// 8- and 1-column loops).
    func testWeightedRowSumMatchesWidenedRowsAndTheBound() {
        let shapes = [(1, 1, 1), (5, 3, 7), (64, 64, 192), (200, 45, 45), (17, 100, 130), (0, 8, 8)]
        for (index, (count, width, ld)) in shapes.enumerated() {
            var rng = SplitMix64(seed: UInt64(1600 + index))
            let p = rng.floats(count).map { abs($0) }
            for format in StorageFormat.allCases {
                let (bytes, offset, widened) = matrix(format, m: max(count, 1), ld: ld, seed: UInt64(1700 + index),
                                                      misaligned: index % 2 == 0)
                var out = [Float](repeating: .nan, count: width), fromWidened = out
                bytes.withUnsafeBytes { raw in
                    Kernels.weightedRowSum(p, count: count, rows: raw.baseAddress! + offset, format: format, ld: ld,
                                           width: width, out: &out)
                }
                widened.withUnsafeBytes { raw in
                    Kernels.weightedRowSum(p, count: count, rows: raw.baseAddress!, format: .f32, ld: ld, width: width,
                                           out: &fromWidened)
                }
                XCTAssertEqual(out.map(\.bitPattern), fromWidened.map(\.bitPattern), "\(format) \(count)×\(width)")
                var value = [Double](repeating: 0, count: width), magnitude = value
                if count > 0 {
                    Kernels.Reference.gemm64(m: 1, n: width, k: count, a: p, aRowStride: count, aColStride: 1,
                                             b: widened, bRowStride: ld, bColStride: 1, c: &value, magnitude: &magnitude)
                }
                XCTAssertNil(checkAgainstExact(out, exact: value, magnitude: magnitude,
                                               initial: [Double](repeating: 0, count: width), k: count,
                                               label: "\(format) weightedRowSum \(count)×\(width)"))
            }
        }
    }
}
