import SlimKernels
import XCTest

@testable import SlimPacking

/// The SIMD kernels against the scalar reference: `PackedLinear.dequantize()` (the format's
/// definition) times x in float64. Relative error of each output against the float64 value,
/// scaled by Σ|ŵ·x| so that cancellation does not inflate it; NaN never passes.
final class PackedKernelTests: XCTestCase {
    static func reference(_ w: [Float], rows: Int, columns: Int, x: [Float], tokens: Int) -> [Double] {
        var out = [Double](repeating: 0, count: tokens * rows)
        for t in 0..<tokens {
            for r in 0..<rows {
                var s = 0.0
                for c in 0..<columns { s += Double(w[r * columns + c]) * Double(x[t * columns + c]) }
                out[t * rows + r] = s
            }
        }
        return out
    }

    static func magnitude(_ w: [Float], rows: Int, columns: Int, x: [Float], tokens: Int) -> [Double] {
        reference(w.map { abs($0) }, rows: rows, columns: columns, x: x.map { abs($0) }, tokens: tokens)
    }

    func check(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], tokens: Int, threads: Int, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let layer = RandomLayer(rows: rows, columns: columns, groupSize: groupSize, bits: bits, seed: seed)
        let packed = try layer.packed()
        let matrix = PackedMatrix(packed)
        var rng = SplitMix(seed: seed ^ 0xABCD)
        let x = (0..<(tokens * columns)).map { _ in Float(rng.unit() * 2 - 1) }
        let w = packed.dequantize()
        let want = Self.reference(w, rows: rows, columns: columns, x: x, tokens: tokens)
        let scale = Self.magnitude(w, rows: rows, columns: columns, x: x, tokens: tokens)
        var got = [Float](repeating: .nan, count: tokens * rows)
        x.withUnsafeBufferPointer { xb in
            got.withUnsafeMutableBufferPointer { ob in
                matrix.gemm(x: xb.baseAddress!, tokens: tokens, out: ob.baseAddress!, threads: threads)
            }
        }
        var worst = 0.0
        for i in got.indices {
            XCTAssertFalse(got[i].isNaN, "NaN at \(i)", file: file, line: line)
            worst = max(worst, abs(Double(got[i]) - want[i]) / max(scale[i], 1e-30))
        }
        // fp32 accumulation over C terms: a few ulps of the magnitude sum.
        XCTAssertLessThan(worst, 4e-6, "bits \(bits) C=\(columns) T=\(tokens) threads \(threads)", file: file, line: line)
    }

    func testGEMVMatchesReferenceOnEveryBitMix() throws {
        for (index, c) in PackedFormatTests.cases.enumerated() {
            for threads in [1, 3] {
                try check(rows: 37, columns: c.columns, groupSize: c.groupSize, bits: c.bits, tokens: 1, threads: threads,
                          seed: UInt64(index * 10 + threads))
            }
        }
    }

    func testGEMMMatchesReferenceOnEveryBitMix() throws {
        for (index, c) in PackedFormatTests.cases.enumerated() {
            for tokens in [2, 5, 17] {
                try check(rows: 300, columns: c.columns, groupSize: c.groupSize, bits: c.bits, tokens: tokens, threads: 2,
                          seed: UInt64(index * 100 + tokens))
            }
        }
    }

    func testRandomAllocationsAtModelShapes() throws {
        var rng = SplitMix(seed: 99)
        for (rows, columns) in [(192, 576), (576, 1536)] {
            let k = (columns + 127) / 128
            let bits = (0..<k).map { _ in UInt8(rng.next() % 4) + 1 }
            try check(rows: rows, columns: columns, groupSize: 128, bits: bits, tokens: 1, threads: 2, seed: rng.next())
            try check(rows: rows, columns: columns, groupSize: 128, bits: bits, tokens: 9, threads: 2, seed: rng.next())
        }
    }

    func testTiledDequantizationEqualsScalarDecode() throws {
        let layer = RandomLayer(rows: 11, columns: 172, groupSize: 32, bits: [2, 3, 1, 4, 2, 3], seed: 5)
        let matrix = PackedMatrix(try layer.packed())
        var tile = [Float](repeating: .nan, count: 11 * matrix.paddedColumns)
        tile.withUnsafeMutableBufferPointer { matrix.dequantizeRows(0..<11, into: $0.baseAddress!, ld: matrix.paddedColumns) }
        var row = [Float](repeating: 0, count: 172)
        for r in 0..<11 {
            row.withUnsafeMutableBufferPointer { matrix.dequantizeRowScalar(r, into: $0.baseAddress!) }
            for g in 0..<matrix.groupCount {
                for j in 0..<matrix.width[g] {
                    XCTAssertEqual(tile[r * matrix.paddedColumns + matrix.paddedOffset[g] + j], row[matrix.columnStart[g] + j])
                }
            }
        }
    }

    func testPaddingNeverMeetsNonFiniteNeighbours() throws {
        // A ragged group (width 12) padded to 16: the padding must not read the next values.
        let layer = RandomLayer(rows: 3, columns: 44, groupSize: 32, bits: [2, 3], seed: 8)
        let matrix = PackedMatrix(try layer.packed())
        var x = [Float](repeating: 0.5, count: 44 + 8)
        for j in 44..<x.count { x[j] = .infinity }
        var y = [Float](repeating: 0, count: 3)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { matrix.gemv(x: xb.baseAddress!, y: $0.baseAddress!) } }
        XCTAssertTrue(y.allSatisfy { $0.isFinite }, "\(y)")
    }
}
