import Foundation
import SlimIO
import SlimKernels
import SlimTestSupport
import XCTest

@testable import SlimPacking

/// Random quantizer-shaped output: fp16 scales/means, integer zeros, codes in range, 1-bit
/// codes 1 (+1) or 3 (−1) as SlimQuant writes them.
struct RandomLayer {
    var rows: Int, columns: Int, groupSize: Int
    var bits: [UInt8], scales: [Float], zeros: [Float], codes: [UInt8]

    init(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], seed: UInt64) {
        var rng = SplitMix(seed: seed)
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        self.bits = bits
        let k = bits.count
        scales = []
        zeros = []
        codes = [UInt8](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for g in 0..<k {
                let b = Int(bits[g])
                let s = Kernels.Reference.f16ToF32(Kernels.Reference.f32ToF16(Float(rng.unit()) * 0.05 + 1e-3))
                scales.append(s)
                if b == 1 {
                    zeros.append(Kernels.Reference.f16ToF32(Kernels.Reference.f32ToF16(Float(rng.unit() - 0.5) * 0.02)))
                } else {
                    zeros.append(Float(rng.next() % UInt64(1 << b)))
                }
                for c in (g * groupSize)..<min(columns, (g + 1) * groupSize) {
                    codes[r * columns + c] = b == 1 ? (rng.next() & 1 == 0 ? 1 : 3) : UInt8(rng.next() % UInt64(1 << b))
                }
            }
        }
    }

    /// The values SlimQuant's fake-quantized weight holds: s·(q − z), or ±α + μ.
    var expected: [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        let k = bits.count
        for r in 0..<rows {
            for c in 0..<columns {
                let g = c / groupSize
                let s = scales[r * k + g], z = zeros[r * k + g], q = codes[r * columns + c]
                out[r * columns + c] = bits[g] == 1 ? (q == 1 ? 1 : -1) * s + z : s * (Float(q) - z)
            }
        }
        return out
    }

    func packed() throws -> PackedLinear {
        try PackedLinear(rows: rows, columns: columns, groupSize: groupSize, bits: bits, scales: scales,
                         zeros: zeros, codes: codes)
    }
}

typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

final class PackedFormatTests: XCTestCase {
    /// Bit maps covering every width, mixes, and a ragged last group.
    static let cases: [(columns: Int, groupSize: Int, bits: [UInt8])] = [
        (128, 32, [1, 2, 3, 4]),
        (256, 64, [2, 1, 3, 2]),
        (576, 128, [3, 2, 1, 2, 2]),          // SmolLM2 hidden: last group 64 wide
        (172, 32, [2, 3, 1, 4, 2, 3]),        // stories260K FFN: last group 12 wide
        (96, 32, [5, 6, 7]),
        (80, 16, [8, 1, 4, 3, 2]),
        (40, 128, [1]),
        (24, 8, [3, 3, 3]),
    ]

    func testGeometryAndSizeFormula() throws {
        let geo = try PackedGeometry(rows: 10, columns: 576, groupSize: 128, bits: [3, 2, 1, 2, 2])
        XCTAssertEqual(geo.codeBitOffsets, [0, 384, 640, 768, 1024, 1152])
        XCTAssertEqual(geo.codeBytesPerRow, 144)
        XCTAssertEqual(geo.zeroBitOffsets, [0, 3, 5, 5, 7, 9])
        XCTAssertEqual(geo.zeroBytesPerRow, 2)
        XCTAssertEqual(geo.meanIndex, [-1, -1, 0, -1, -1])
        XCTAssertEqual(geo.oneBitGroups, 1)
        XCTAssertEqual(geo.averageCodeBits, 2.0)
        XCTAssertEqual(geo.storageBytes, 10 * (144 + 2 + 2 * 5 + 2 * 1) + 5)
        XCTAssertThrowsError(try PackedGeometry(rows: 1, columns: 576, groupSize: 128, bits: [2, 2, 2, 2]))
        XCTAssertThrowsError(try PackedGeometry(rows: 1, columns: 128, groupSize: 128, bits: [9]))
        XCTAssertThrowsError(try PackedGeometry(rows: 1, columns: 128, groupSize: 128, bits: [0]))
    }

    func testBitStreamRoundTripsEveryWidthAtEveryOffset() {
        var bytes = [UInt8](repeating: 0, count: 64)
        var rng = SplitMix(seed: 7)
        var written: [(Int, Int, UInt8)] = []
        var offset = 0
        while offset < 64 * 8 - 8 {
            let width = Int(rng.next() % 8) + 1
            let value = UInt8(truncatingIfNeeded: rng.next()) & UInt8((1 << width) - 1)
            bytes.withUnsafeMutableBufferPointer { BitStream.write($0.baseAddress!, bitOffset: offset, width: width, value: value) }
            written.append((offset, width, value))
            offset += width
        }
        for (offset, width, value) in written {
            let read = bytes.withUnsafeBufferPointer { BitStream.read($0.baseAddress!, bitOffset: offset, width: width) }
            XCTAssertEqual(read, value, "offset \(offset) width \(width)")
        }
        // LSB first: a 2-bit code 0b10 at bit 6 puts bit 0 in byte 0 bit 6 and bit 1 in bit 7.
        var two = [UInt8](repeating: 0, count: 2)
        two.withUnsafeMutableBufferPointer { BitStream.write($0.baseAddress!, bitOffset: 7, width: 2, value: 0b11) }
        XCTAssertEqual(two, [0x80, 0x01])
    }

    func testReferenceDecodeEqualsQuantizerValuesExactly() throws {
        for (index, c) in Self.cases.enumerated() {
            let layer = RandomLayer(rows: 9, columns: c.columns, groupSize: c.groupSize, bits: c.bits, seed: UInt64(index))
            let packed = try layer.packed()
            XCTAssertEqual(packed.dequantize(), layer.expected, "case \(index)")
        }
    }

    func testKernelLayoutRepackPreservesEveryValue() throws {
        for (index, c) in Self.cases.enumerated() {
            let layer = RandomLayer(rows: 5, columns: c.columns, groupSize: c.groupSize, bits: c.bits, seed: 100 + UInt64(index))
            let packed = try layer.packed()
            let matrix = PackedMatrix(packed)
            let reference = packed.dequantize()
            var row = [Float](repeating: 0, count: c.columns)
            for r in 0..<5 {
                row.withUnsafeMutableBufferPointer { matrix.dequantizeRowScalar(r, into: $0.baseAddress!) }
                for j in 0..<c.columns {
                    let want = reference[r * c.columns + j]
                    // b ≥ 2 decodes exactly; 1-bit (2α·q + (μ − α)) within an ulp of α.
                    let scale = abs(packed.parameters(row: r, group: j / c.groupSize).scale)
                    XCTAssertLessThanOrEqual(abs(row[j] - want), scale.ulp * 2, "case \(index) [\(r), \(j)]")
                    if c.bits[j / c.groupSize] >= 2 { XCTAssertEqual(row[j], want, "case \(index) [\(r), \(j)]") }
                }
            }
        }
    }

    func testEncoderRefusesWhatTheFormatCannotHold() {
        var layer = RandomLayer(rows: 2, columns: 64, groupSize: 32, bits: [1, 2], seed: 3)
        layer.codes[5] = 0  // sign 0 in a 1-bit group
        XCTAssertThrowsError(try layer.packed()) { XCTAssertTrue("\($0)".contains("sign 0"), "\($0)") }
        layer = RandomLayer(rows: 2, columns: 64, groupSize: 32, bits: [1, 2], seed: 3)
        layer.codes[40] = 4  // does not fit 2 bits
        XCTAssertThrowsError(try layer.packed()) { XCTAssertTrue("\($0)".contains("does not fit"), "\($0)") }
        layer = RandomLayer(rows: 2, columns: 64, groupSize: 32, bits: [1, 2], seed: 3)
        layer.zeros[1] = 1.5
        XCTAssertThrowsError(try layer.packed()) { XCTAssertTrue("\($0)".contains("zero point"), "\($0)") }
        layer = RandomLayer(rows: 2, columns: 64, groupSize: 32, bits: [1, 2], seed: 3)
        layer.scales[1] = 0.1  // not an fp16 value
        XCTAssertThrowsError(try layer.packed()) { XCTAssertTrue("\($0)".contains("fp16"), "\($0)") }
        layer = RandomLayer(rows: 2, columns: 64, groupSize: 32, bits: [1, 2], seed: 3)
        layer.scales[1] = .nan
        XCTAssertThrowsError(try layer.packed())
    }

    func testSafetensorsRoundTripAndValidation() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let layer = RandomLayer(rows: 7, columns: 172, groupSize: 32, bits: [2, 3, 1, 4, 2, 1], seed: 11)
        let packed = try layer.packed()
        let path = dir + "/packed.safetensors"
        try SafetensorsStream.write(to: path, tensors: packed.streamedTensors(prefix: "model.layers.0.mlp.down_proj"),
                                    metadata: [(PackedFormat.MetadataKey.format, PackedFormat.name)])
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.tensorNames.sorted(), PackedFormat.Suffix.all.map { "model.layers.0.mlp.down_proj" + $0 }.sorted())
        let back = try PackedLinear(source: file, prefix: "model.layers.0.mlp.down_proj", rows: 7, columns: 172,
                                    groupSize: 32, path: path)
        XCTAssertEqual(back.qweight, packed.qweight)
        XCTAssertEqual(back.scales, packed.scales)
        XCTAssertEqual(back.qzeros, packed.qzeros)
        XCTAssertEqual(back.means, packed.means)
        XCTAssertEqual(back.dequantize(), layer.expected)
        // Wrong geometry from the config: a clear error naming the tensor.
        XCTAssertThrowsError(try PackedLinear(source: file, prefix: "model.layers.0.mlp.down_proj", rows: 8, columns: 172,
                                              groupSize: 32, path: path)) { error in
            XCTAssertTrue("\(error)".contains("down_proj.qweight"), "\(error)")
        }
        XCTAssertThrowsError(try PackedLinear(source: file, prefix: "model.layers.0.mlp.down_proj", rows: 7, columns: 172,
                                              groupSize: 64, path: path)) { error in
            XCTAssertTrue("\(error)".contains("down_proj.bits"), "\(error)")
        }
    }
}
