import XCTest
import SlimKernels

final class ConversionTests: XCTestCase {
    private let allPatterns: [UInt16] = (0...UInt16.max).map { $0 }

    // MARK: Half → single

    func testF16ToF32ExhaustiveAgainstReference() {
        var out = [Float](repeating: 0, count: allPatterns.count)
        Kernels.convertF16ToF32(allPatterns, &out, count: allPatterns.count)
        for (index, h) in allPatterns.enumerated() {
            let expected = Kernels.Reference.f16ToF32(h)
            if !sameBitsOrBothNaN(out[index], expected) {
                XCTFail("f16 0x\(String(h, radix: 16)): fast \(out[index]) reference \(expected)")
                return
            }
        }
        // The reference itself, on values fixed by the IEEE format.
        XCTAssertEqual(Kernels.Reference.f16ToF32(0x3C00), 1)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0xC000), -2)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0x7BFF), 65504)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0x0400), 0x1p-14)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0x0001), 0x1p-24)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0x03FF), 0x1.FF8p-15)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0x8000).bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(Kernels.Reference.f16ToF32(0xFC00), -.infinity)
        XCTAssertTrue(Kernels.Reference.f16ToF32(0x7C01).isNaN)
        XCTAssertTrue(Kernels.Reference.f16ToF32(0xFE00).isNaN)
    }

    func testBF16ToF32ExhaustiveAgainstReference() {
        var out = [Float](repeating: 0, count: allPatterns.count)
        Kernels.convertBF16ToF32(allPatterns, &out, count: allPatterns.count)
        for (index, h) in allPatterns.enumerated() {
            let expected = Kernels.Reference.bf16ToF32(h)
            // bfloat16 → Float is a pure bit move: NaN payloads are kept exactly too.
            if out[index].bitPattern != expected.bitPattern {
                XCTFail("bf16 0x\(String(h, radix: 16)): fast \(out[index]) reference \(expected)")
                return
            }
        }
        XCTAssertEqual(Kernels.Reference.bf16ToF32(0x3F80), 1)
        XCTAssertEqual(Kernels.Reference.bf16ToF32(0xC0A0), -5)
        XCTAssertEqual(Kernels.Reference.bf16ToF32(0x0001), 0x1p-133)
        XCTAssertEqual(Kernels.Reference.bf16ToF32(0xFF80), -.infinity)
        XCTAssertTrue(Kernels.Reference.bf16ToF32(0x7FC1).isNaN)
    }

    // MARK: Single → half

    /// Inputs that stress rounding: every half value, the exact midpoints between neighbours
    /// (ties), one Float ulp either side of them, the overflow and underflow boundaries, specials
    /// and random bit patterns.
    private func roundingInputs(neighbours: [(Float, Float)], seed: UInt64) -> [Float] {
        var inputs: [Float] = []
        for (low, high) in neighbours {
            let mid = low + (high - low) / 2  // exact: neighbours differ in few low bits
            inputs += [low, mid, mid.nextDown, mid.nextUp, -mid, -mid.nextUp]
        }
        inputs += [0, -0.0, .infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7F80_0001),
                   Float(bitPattern: 0xFF80_0001), Float(bitPattern: 0x7FBF_FFFF), .greatestFiniteMagnitude,
                   -.greatestFiniteMagnitude, .leastNonzeroMagnitude, .leastNormalMagnitude]
        var rng = SplitMix64(seed: seed)
        for _ in 0..<100_000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        return inputs
    }

    func testF32ToF16AgainstReference() {
        // Neighbouring finite halves, plus (65504, 65536) for the overflow tie and (0, 2⁻²⁴).
        var neighbours: [(Float, Float)] = (0..<0x7BFF).map {
            (Kernels.Reference.f16ToF32(UInt16($0)), Kernels.Reference.f16ToF32(UInt16($0 + 1)))
        }
        neighbours.append((65504, 65536))
        let inputs = roundingInputs(neighbours: neighbours, seed: 1300)
        var out = [UInt16](repeating: 0, count: inputs.count)
        Kernels.convertF32ToF16(inputs, &out, count: inputs.count)
        for (index, value) in inputs.enumerated() {
            let expected = Kernels.Reference.f32ToF16(value)
            let fast = Kernels.Reference.f16ToF32(out[index]), reference = Kernels.Reference.f16ToF32(expected)
            if !sameBitsOrBothNaN(fast, reference) {
                XCTFail("f32 \(value) (0x\(String(value.bitPattern, radix: 16))): fast 0x\(String(out[index], radix: 16)) reference 0x\(String(expected, radix: 16))")
                return
            }
        }
        // Reference semantics: round trip, ties to even, overflow and underflow.
        for h in 0..<UInt16(0x7C00) {
            XCTAssertEqual(Kernels.Reference.f32ToF16(Kernels.Reference.f16ToF32(h)), h)
        }
        XCTAssertEqual(Kernels.Reference.f32ToF16(1 + 0x1p-11), 0x3C00)          // tie → even (down)
        XCTAssertEqual(Kernels.Reference.f32ToF16(1 + 0x1p-11 + 0x1p-23), 0x3C01) // above tie → up
        XCTAssertEqual(Kernels.Reference.f32ToF16(1 + 3 * 0x1p-11), 0x3C02)      // tie → even (up)
        XCTAssertEqual(Kernels.Reference.f32ToF16(65519.996), 0x7BFF)
        XCTAssertEqual(Kernels.Reference.f32ToF16(65520), 0x7C00)
        XCTAssertEqual(Kernels.Reference.f32ToF16(-1e10), 0xFC00)
        XCTAssertEqual(Kernels.Reference.f32ToF16(0x1p-25), 0x0000)              // tie → even (zero)
        XCTAssertEqual(Kernels.Reference.f32ToF16(0x1.000002p-25), 0x0001)
        XCTAssertEqual(Kernels.Reference.f32ToF16(0x1.8p-24), 0x0002)            // tie → even (up)
        XCTAssertEqual(Kernels.Reference.f32ToF16(0x1.FFCp-15), 0x0400)          // rounds up to normal
        XCTAssertEqual(Kernels.Reference.f32ToF16(-.leastNonzeroMagnitude), 0x8000)
        XCTAssertEqual(Kernels.Reference.f32ToF16(Float(bitPattern: 0x7F80_0001)) & 0x7C00, 0x7C00)
        XCTAssertNotEqual(Kernels.Reference.f32ToF16(Float(bitPattern: 0x7F80_0001)) & 0x03FF, 0)
    }

    func testF32ToBF16AgainstReference() {
        var neighbours: [(Float, Float)] = []
        for h in stride(from: 0, to: 0x7F7F, by: 7) {
            neighbours.append((Kernels.Reference.bf16ToF32(UInt16(h)), Kernels.Reference.bf16ToF32(UInt16(h + 1))))
        }
        neighbours.append((Kernels.Reference.bf16ToF32(0x7F7F), .infinity))
        let inputs = roundingInputs(neighbours: neighbours.filter { $0.1.isFinite }, seed: 1400)
            + [Kernels.Reference.bf16ToF32(0x7F7F), .greatestFiniteMagnitude]
        var out = [UInt16](repeating: 0, count: inputs.count)
        Kernels.convertF32ToBF16(inputs, &out, count: inputs.count)
        for (index, value) in inputs.enumerated() {
            let expected = Kernels.Reference.f32ToBF16(value)
            if out[index] != expected {
                XCTFail("f32 \(value) (0x\(String(value.bitPattern, radix: 16))): fast 0x\(String(out[index], radix: 16)) reference 0x\(String(expected, radix: 16))")
                return
            }
        }
        for h in 0..<UInt16(0x7F80) {
            XCTAssertEqual(Kernels.Reference.f32ToBF16(Kernels.Reference.bf16ToF32(h)), h)
        }
        XCTAssertEqual(Kernels.Reference.f32ToBF16(1 + 0x1p-8), 0x3F80)           // tie → even (down)
        XCTAssertEqual(Kernels.Reference.f32ToBF16(1 + 3 * 0x1p-8), 0x3F82)       // tie → even (up)
        XCTAssertEqual(Kernels.Reference.f32ToBF16((1 + 0x1p-8).nextUp), 0x3F81)
        XCTAssertEqual(Kernels.Reference.f32ToBF16(.greatestFiniteMagnitude), 0x7F80) // rounds to Inf
        // A NaN whose payload lies only in the dropped bits must not become Inf.
        XCTAssertTrue(Kernels.Reference.bf16ToF32(Kernels.Reference.f32ToBF16(Float(bitPattern: 0x7F80_0001))).isNaN)
        XCTAssertTrue(Kernels.Reference.bf16ToF32(Kernels.Reference.f32ToBF16(Float(bitPattern: 0xFF80_0001))).isNaN)
    }

    /// Counts that are not a multiple of the vector width use the scalar tail.
    func testOddCountsAndTails() {
        let halves: [UInt16] = [0x3C00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600, 0x4700, 0x4800, 0x4880, 0x7C00, 0xFE00]
        var floats = [Float](repeating: -1, count: halves.count + 1)
        Kernels.convertF16ToF32(halves, &floats, count: halves.count)
        XCTAssertEqual(Array(floats[0..<9]), [1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(floats[9], .infinity)
        XCTAssertTrue(floats[10].isNaN)
        XCTAssertEqual(floats[11], -1, "wrote past count")
        var back = [UInt16](repeating: 0xAAAA, count: halves.count + 1)
        Kernels.convertF32ToF16(floats, &back, count: halves.count)
        XCTAssertEqual(Array(back[0..<10]), Array(halves[0..<10]))
        XCTAssertEqual(back[10] & 0x7E00, 0x7E00)
        XCTAssertEqual(back[11], 0xAAAA, "wrote past count")
        Kernels.convertF32ToBF16(floats, &back, count: 3)
        XCTAssertEqual(Array(back[0..<4]), [0x3F80, 0x4000, 0x4040, 0x4400])
    }

    /// The format-dispatching forms give exactly the bits of the per-format conversions.
    func testConvertToStorageFormatDispatches() {
        var rng = SplitMix64(seed: 77)
        let floats = (0..<37).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) } + [1e5, -0.0]
        for format in StorageFormat.allCases {
            var bytes = [UInt8](repeating: 0xAA, count: floats.count * format.byteSize + 4)
            bytes.withUnsafeMutableBytes { Kernels.convertF32(floats, to: format, $0.baseAddress! + 1, count: floats.count) }
            XCTAssertEqual(bytes[0], 0xAA, "\(format): wrote before the destination")
            XCTAssertEqual(Array(bytes.suffix(3)), [0xAA, 0xAA, 0xAA], "\(format): wrote past count")
            let stored = Array(bytes[1...(floats.count * format.byteSize)])
            let expected: [UInt8]
            switch format {
            case .f32: expected = floats.withUnsafeBytes { Array($0) }
            case .f16: expected = floats.map(Kernels.Reference.f32ToF16).withUnsafeBytes { Array($0) }
            case .bf16: expected = floats.map(Kernels.Reference.f32ToBF16).withUnsafeBytes { Array($0) }
            }
            XCTAssertEqual(stored, expected, "\(format)")
            guard format != .f32 else { continue }
            let halves = floats.map { Kernels.Reference.f32ToHalf($0, format) }
            XCTAssertEqual(halves, format == .f16 ? floats.map(Kernels.Reference.f32ToF16) : floats.map(Kernels.Reference.f32ToBF16))
            let widened = halves.map { Kernels.Reference.halfToF32($0, format) }.map(\.bitPattern)
            XCTAssertEqual(widened, halves.map { (format == .f16 ? Kernels.Reference.f16ToF32($0) : Kernels.Reference.bf16ToF32($0)).bitPattern })
        }
    }
}
