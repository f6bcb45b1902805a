import SlimKernels
import XCTest

@testable import SlimPacking

/// The int8-activation GEMV: the AVX2 path against its scalar reference (bit for bit), both
/// against the format's float64 reference within the bound of x's int8 rounding.
final class PackedQ8Tests: XCTestCase {
    /// (AVX2 result, scalar result, float64 Ŵ·x, Σ|ŵ·x|, rounding bound) for one random case.
    func run(_ matrix: PackedMatrix, _ packed: PackedLinear, x: [Float], threads: Int, accumulateOnto y0: [Float]? = nil)
        -> (fast: [Float], scalar: [Float], want: [Double], magnitude: [Double], bound: [Double]) {
        let rows = matrix.rows, columns = matrix.columns
        var fast = y0 ?? [Float](repeating: .nan, count: rows)
        var scalar = fast
        x.withUnsafeBufferPointer { xb in
            fast.withUnsafeMutableBufferPointer {
                matrix.gemvInt8(x: xb.baseAddress!, y: $0.baseAddress!, accumulate: y0 != nil, threads: threads)
            }
            scalar.withUnsafeMutableBufferPointer {
                matrix.gemvInt8(x: xb.baseAddress!, y: $0.baseAddress!, accumulate: y0 != nil, threads: 1, simd: false)
            }
        }
        let w = packed.dequantize()
        var want = PackedKernelTests.reference(w, rows: rows, columns: columns, x: x, tokens: 1)
        if let y0 { for r in 0..<rows { want[r] += Double(y0[r]) } }
        let magnitude = PackedKernelTests.magnitude(w, rows: rows, columns: columns, x: x, tokens: 1)
        let bound = x.withUnsafeBufferPointer { xb in (0..<rows).map { matrix.int8ErrorBound(x: xb.baseAddress!, row: $0) } }
        return (fast, scalar, want, magnitude, bound)
    }

    func check(columns: Int, groupSize: Int, bits: [UInt8], rows: Int = 37, threads: Int, seed: UInt64,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let packed = try RandomLayer(rows: rows, columns: columns, groupSize: groupSize, bits: bits, seed: seed).packed()
        let matrix = PackedMatrix(packed)
        var rng = SplitMix(seed: seed ^ 0x5151)
        // Groups of very different scales (per-group d) and one all-zero group when there are two.
        var x = (0..<columns).map { j in Float(rng.unit() * 2 - 1) * (j / groupSize % 3 == 1 ? 300 : 1) }
        if bits.count > 1 { for j in groupSize..<min(columns, 2 * groupSize) { x[j] = 0 } }
        let r = run(matrix, packed, x: x, threads: threads, accumulateOnto: seed % 2 == 0 ? nil : rng.floats(rows))
        for i in 0..<rows {
            let label = "bits \(bits) C=\(columns) G=\(groupSize) row \(i)"
            XCTAssertFalse(r.fast[i].isNaN || r.scalar[i].isNaN, "NaN: \(label)", file: file, line: line)
            if PackedMatrix.int8SIMDAvailable {
                XCTAssertEqual(r.fast[i].bitPattern, r.scalar[i].bitPattern, "AVX2 \(r.fast[i]) vs scalar \(r.scalar[i]): \(label)",
                               file: file, line: line)
            }
            // x's rounding, plus fp32 accumulation (a few ulps of the magnitude).
            let error = abs(Double(r.scalar[i]) - r.want[i])
            XCTAssertLessThanOrEqual(error, r.bound[i] + 4e-6 * r.magnitude[i] + 1e-6,
                                     "error \(error), bound \(r.bound[i]): \(label)", file: file, line: line)
        }
    }

    func testMatchesScalarBitForBitAndReferenceWithinRoundingOnEveryBitMix() throws {
        if !PackedMatrix.int8SIMDAvailable { print("note: no AVX2+FMA here; the scalar reference alone is checked") }
        for (index, c) in PackedFormatTests.cases.enumerated() {
            for threads in [1, 3] {
                try check(columns: c.columns, groupSize: c.groupSize, bits: c.bits, threads: threads,
                          seed: UInt64(index * 10 + threads))
            }
        }
        // Every width alone, model-like shapes, a group wider than 255 codes per lane word set.
        for b in UInt8(1)...8 { try check(columns: 512, groupSize: 128, bits: [b, b, b, b], threads: 2, seed: UInt64(b)) }
        try check(columns: 576, groupSize: 128, bits: [2, 3, 1, 2, 4], rows: 300, threads: 2, seed: 91)
        try check(columns: 1024, groupSize: 512, bits: [8, 4], rows: 20, threads: 1, seed: 92)
    }

    /// The error really is x's rounding: it shrinks to fp32 noise when x is already on the int8
    /// grid (every block holds a ±127·d, at lane 0, and integer multiples of d elsewhere).
    func testExactWhenActivationsAreOnTheInt8Grid() throws {
        let packed = try RandomLayer(rows: 16, columns: 256, groupSize: 64, bits: [2, 3, 4, 1], seed: 5).packed()
        let matrix = PackedMatrix(packed)
        var rng = SplitMix(seed: 6)
        var x = [Float](repeating: 0, count: 256)
        for g in 0..<4 {
            let d = Float(g + 1) * 0.01
            for j in 0..<64 { x[g * 64 + j] = j % 8 == 0 ? 127 * d : Float(Int(rng.next() % 255) - 127) * d }
        }
        let r = run(matrix, packed, x: x, threads: 1)
        for i in 0..<16 {
            XCTAssertLessThanOrEqual(abs(Double(r.scalar[i]) - r.want[i]), 4e-6 * r.magnitude[i] + 1e-7, "row \(i)")
        }
    }

    /// Several tokens (prefill, scoring) compute what a decode step computes per token: the fp32
    /// kernels on x̃ = d_b·x8 with the offsets corrected to the exact Σx equal `gemvInt8` up to
    /// float summation order, on every bit mix, ragged groups and 1–8-bit fields.
    func testSeveralTokensMatchPerTokenGEMV() throws {
        var cases = PackedFormatTests.cases.map { ($0.columns, $0.groupSize, $0.bits) }
        cases += [(576, 128, [2, 3, 1, 2, 4]), (1024, 512, [8, 4]), (300, 100, [3, 4, 2])]
        for (index, c) in cases.enumerated() {
            let rows = 29
            let packed = try RandomLayer(rows: rows, columns: c.0, groupSize: c.1, bits: c.2, seed: UInt64(200 + index)).packed()
            let matrix = PackedMatrix(packed)
            let w = packed.dequantize()
            var rng = SplitMix(seed: UInt64(index))
            for tokens in [2, 5] {
                var x = rng.floats(tokens * c.0)
                for j in 0..<c.0 { x[j] *= 300 }  // a token of large activations
                var batched = [Float](repeating: .nan, count: tokens * rows)
                var single = batched
                x.withUnsafeBufferPointer { xb in
                    batched.withUnsafeMutableBufferPointer {
                        matrix.gemmInt8(x: xb.baseAddress!, tokens: tokens, out: $0.baseAddress!, threads: 2)
                    }
                    single.withUnsafeMutableBufferPointer { yb in
                        for t in 0..<tokens {
                            matrix.gemvInt8(x: xb.baseAddress! + t * c.0, y: yb.baseAddress! + t * rows, threads: 1, simd: false)
                        }
                    }
                }
                let magnitude = PackedKernelTests.magnitude(w, rows: rows, columns: c.0, x: x, tokens: tokens)
                for i in 0..<(tokens * rows) {
                    let label = "bits \(c.2) C=\(c.0) G=\(c.1) T=\(tokens) token \(i / rows) row \(i % rows)"
                    XCTAssertFalse(batched[i].isNaN || single[i].isNaN, "NaN: \(label)")
                    XCTAssertLessThanOrEqual(abs(Double(batched[i]) - Double(single[i])), 4e-6 * magnitude[i] + 1e-6,
                                             "batched \(batched[i]) vs GEMV \(single[i]): \(label)")
                }
            }
        }
    }

    func testNonFiniteActivationsGiveNaNAndPaddingStaysClean() throws {
        let packed = try RandomLayer(rows: 5, columns: 44, groupSize: 32, bits: [2, 3], seed: 8).packed()
        let matrix = PackedMatrix(packed)
        var x = [Float](repeating: 0.5, count: 44)
        var y = [Float](repeating: 0, count: 5)
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { matrix.gemvInt8(x: xb.baseAddress!, y: $0.baseAddress!) } }
        XCTAssertTrue(y.allSatisfy { $0.isFinite }, "\(y)")
        x[40] = .infinity
        x.withUnsafeBufferPointer { xb in y.withUnsafeMutableBufferPointer { matrix.gemvInt8(x: xb.baseAddress!, y: $0.baseAddress!) } }
        XCTAssertTrue(y.allSatisfy { $0.isNaN }, "an infinite input must not vanish: \(y)")
    }
}

extension SplitMix {
    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in Float(unit() * 2 - 1) } }
}
