import Foundation
import XCTest
import SlimTestSupport
@testable import SlimIO

/// Files written by `SafetensorsWriter` read back bit-exactly, the writer rejects bad input,
/// and the float conversions behave at their edges.
final class SafetensorsRoundTripTests: XCTestCase {
    /// Deterministic pseudo-random bytes (SplitMix64), so failures reproduce.
    func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return UInt8(truncatingIfNeeded: z ^ (z >> 31))
        }
    }

    func testAllDTypesScalarsAndEmptyTensorsRoundTrip() throws {
        var writer = SafetensorsWriter()
        var expected: [String: (DType, [Int], [UInt8])] = [:]
        var seed: UInt64 = 1
        for dtype in DType.allCases {
            for shape in [[3, 5], [], [0, 4], [7]] {
                let name = "t.\(dtype.rawValue).\(shape.map(String.init).joined(separator: "x"))"
                let bytes = pseudoRandomBytes(shape.reduce(1, *) * dtype.byteSize, seed: seed)
                seed += 1
                try bytes.withUnsafeBytes { try writer.add(name: name, dtype: dtype, shape: shape, bytes: $0) }
                expected[name] = (dtype, shape, bytes)
            }
        }
        let path = try TestFixtures.temporaryDirectory(self) + "/all.safetensors"
        try writer.write(to: path)

        let file = try SafetensorsFile(path: path)
        defer { withExtendedLifetime(file) {} }  // views borrow its memory map
        XCTAssertEqual(Set(file.tensorNames), Set(expected.keys))
        XCTAssertNil(file.metadata)
        for (name, (dtype, shape, bytes)) in expected {
            let view = try XCTUnwrap(file.tensor(name), name)
            XCTAssertEqual(view.dtype, dtype, name)
            XCTAssertEqual(view.shape, shape, name)
            XCTAssertEqual(Array(view.bytes), bytes, name)
        }
        // Storage order: descending dtype rank (U64 ... BOOL), then name; data 8-byte aligned.
        let ranks = file.tensorNames.map { expected[$0].map { SafetensorsStream.rank($0.0) } ?? -1 }
        XCTAssertEqual(ranks, ranks.sorted(by: >))
        let headerLength = try STFixture.bytes(of: path).prefix(8).map { $0 }.loadAll(as: UInt64.self).first
        XCTAssertEqual(headerLength.map { $0 % 8 }, 0)
    }

    func testMetadataRoundTrip() throws {
        let cases: [[(key: String, value: String)]?] = [
            nil, [],
            [("format", "pt")],
            [("z", "last?"), ("a", "tab\t\"q\" \\ / \u{1} \u{7F}"), ("unicode", "h\u{E9}llo \u{4E16}\u{754C} \u{1F600}"), ("", "")],
        ]
        let dir = try TestFixtures.temporaryDirectory(self)
        for (i, metadata) in cases.enumerated() {
            var writer = SafetensorsWriter()
            writer.metadata = metadata
            try writer.add(name: "w", floats: [1, 2], shape: [2], as: .f32)
            let path = dir + "/m\(i).safetensors"
            try writer.write(to: path)
            let read = try SafetensorsFile(path: path).metadata
            XCTAssertEqual(read?.map(\.key), metadata?.map(\.key), "case \(i)")
            XCTAssertEqual(read?.map(\.value), metadata?.map(\.value), "case \(i)")
        }
    }

    func testEmptyFileAndHeaderPadding() throws {
        let path = try TestFixtures.temporaryDirectory(self) + "/empty.safetensors"
        try SafetensorsWriter().write(to: path)
        // As the reference writes it: "{}" padded with six spaces.
        XCTAssertEqual(try STFixture.bytes(of: path), [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
        XCTAssertEqual(try SafetensorsFile(path: path).tensorNames, [])
    }

    func testOverwriteIsAtomicAndFailuresLeaveNothing() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let path = dir + "/w.safetensors"
        var a = SafetensorsWriter()
        try a.add(name: "x", floats: [1], shape: [1], as: .f32)
        try a.write(to: path)
        var b = SafetensorsWriter()
        try b.add(name: "y", floats: [2, 3], shape: [2], as: .f64)
        try b.write(to: path)
        XCTAssertEqual(try SafetensorsFile(path: path).tensorNames, ["y"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["w.safetensors"])
        XCTAssertThrowsError(try b.write(to: dir + "/missing/w.safetensors")) { XCTAssertTrue($0 is FileError, "\($0)") }
    }

    // MARK: Writer input errors

    func testWriterRejectsBadInput() throws {
        var w = SafetensorsWriter()
        try w.add(name: "a", floats: [1, 2, 3, 4], shape: [2, 2], as: .bf16)
        XCTAssertThrowsError(try w.add(name: "a", floats: [1], shape: [1], as: .f32)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .duplicateName("a"))
        }
        XCTAssertThrowsError(try w.add(name: "__metadata__", floats: [1], shape: [1], as: .f32)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .reservedName("__metadata__"))
        }
        XCTAssertThrowsError(try w.add(name: "b", floats: [1, 2], shape: [3], as: .f16)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .sizeMismatch(name: "b", expected: 3, actual: 2))
        }
        XCTAssertThrowsError(try w.add(name: "b", floats: [], shape: [-1], as: .f32)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .invalidShape(name: "b", shape: [-1]))
        }
        XCTAssertThrowsError(try w.add(name: "b", floats: [], shape: [1 << 62, 4], as: .f32)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .invalidShape(name: "b", shape: [1 << 62, 4]))
        }
        XCTAssertThrowsError(try w.add(name: "b", floats: [1], shape: [1], as: .i32)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .unsupportedConversion(name: "b", dtype: .i32))
        }
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 5).withUnsafeBytes {
            try w.add(name: "b", dtype: .i32, shape: [1], bytes: $0)
        }) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .sizeMismatch(name: "b", expected: 4, actual: 5))
        }
        XCTAssertEqual(w.tensorCount, 1)
        XCTAssertEqual(w.dataByteCount, 8)

        let dir = try TestFixtures.temporaryDirectory(self)
        w.metadata = [("k", "1"), ("k", "2")]
        XCTAssertThrowsError(try w.write(to: dir + "/x.safetensors")) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .duplicateMetadataKey("k"))
        }
        XCTAssertThrowsError(try w.writeCheckpoint(directory: dir, maxShardBytes: 0)) {
            XCTAssertEqual($0 as? SafetensorsWriterError, .invalidShardSize(0))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    // MARK: Conversions

    func testFloatConversionsThroughAFile() throws {
        let values: [Float] = [0, -0.0, 1, -2.5, 0.1, Float(bitPattern: 0x0001_16C2), 65504, 1e10, .infinity, -.infinity, .nan, .pi]
        var w = SafetensorsWriter()
        for dtype in [DType.f32, .f64, .f16, .bf16] {
            try w.add(name: dtype.rawValue, floats: values, shape: [3, 4], as: dtype)
        }
        let path = try TestFixtures.temporaryDirectory(self) + "/floats.safetensors"
        try w.write(to: path)
        let f = try SafetensorsFile(path: path)
        defer { withExtendedLifetime(f) {} }  // views borrow its memory map
        let f32 = try floatArray(XCTUnwrap(f.tensor("F32")))
        let f64 = try floatArray(XCTUnwrap(f.tensor("F64")))
        XCTAssertEqual(f32.map(\.bitPattern), values.map(\.bitPattern))  // exact, NaN and -0 included
        XCTAssertEqual(f64.map(\.bitPattern), values.map(\.bitPattern))
        let f16 = try floatArray(XCTUnwrap(f.tensor("F16")))
        XCTAssertEqual(f16.map(\.bitPattern), values.map { Float(Float16($0)).bitPattern })
        let bf16 = try floatArray(XCTUnwrap(f.tensor("BF16")))
        XCTAssertEqual(bf16.map(\.bitPattern), values.map { BF16.decode(BF16.encode($0)).bitPattern })
        XCTAssertEqual(f16[7], .infinity, "1e10 overflows binary16")
        XCTAssertEqual(bf16[7], 1e10, accuracy: 1e10 / 128)
        XCTAssertTrue(f16[10].isNaN && bf16[10].isNaN)
    }

    func testBF16RoundsToNearestEven() {
        XCTAssertEqual(BF16.encode(1), 0x3F80)
        XCTAssertEqual(BF16.encode(Float(bitPattern: 0x3F80_8000)), 0x3F80, "tie, even neighbour below")
        XCTAssertEqual(BF16.encode(Float(bitPattern: 0x3F81_8000)), 0x3F82, "tie, even neighbour above")
        XCTAssertEqual(BF16.encode(Float(bitPattern: 0x3F80_8001)), 0x3F81, "above the tie")
        XCTAssertEqual(BF16.encode(Float(bitPattern: 0x3F80_7FFF)), 0x3F80, "below the tie")
        XCTAssertEqual(BF16.encode(-Float(bitPattern: 0x3F81_8000)), 0xBF82)
        XCTAssertEqual(BF16.encode(.greatestFiniteMagnitude), 0x7F80, "rounds up to infinity")
        XCTAssertEqual(BF16.encode(-.infinity), 0xFF80)
        XCTAssertEqual(BF16.encode(.nan), 0xFFFF)
        XCTAssertEqual(BF16.encode(-.nan), 0xFFFF)
        XCTAssertEqual(BF16.encode(-0.0), 0x8000)
        XCTAssertTrue(BF16.decode(0xFFFF).isNaN)
        XCTAssertTrue(BF16.decode(0x7FC0).isNaN)
        XCTAssertEqual(BF16.decode(0x0001), Float(bitPattern: 0x0001_0000), "subnormal kept exactly")
    }

    func testFloatArrayRejectsNonFloatAndInconsistentViews() throws {
        let bytes: [UInt8] = [0, 0, 128, 63, 0, 0, 0, 64]
        try bytes.withUnsafeBytes { raw in
            XCTAssertThrowsError(try floatArray(TensorView(name: "i", dtype: .i32, shape: [2], bytes: raw))) {
                XCTAssertEqual(($0 as? TensorConversionError)?.tensor, "i")
            }
            XCTAssertThrowsError(try floatArray(TensorView(name: "s", dtype: .f32, shape: [3], bytes: raw)))
            XCTAssertThrowsError(try floatArray(TensorView(name: "n", dtype: .f32, shape: [-2], bytes: raw)))
            XCTAssertThrowsError(try floatArray(TensorView(name: "o", dtype: .f32, shape: [1 << 62, 2], bytes: raw)))
            XCTAssertEqual(try floatArray(TensorView(name: "ok", dtype: .f32, shape: [2], bytes: raw)), [1, 2])
            XCTAssertEqual(try floatArray(TensorView(name: "e", dtype: .f16, shape: [0], bytes: UnsafeRawBufferPointer(rebasing: raw[0..<0]))), [])
        }
    }

    func testEncodedBytesRoundsAndRefusesF16Overflow() throws {
        let values: [Float] = [1, -2.5, 1e-8, 65504, .infinity]
        let raw = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        try raw.withUnsafeBytes { b in
            let view = TensorView(name: "w", dtype: .f32, shape: [5], bytes: b)
            let half = try encodedBytes(view, as: .f16)
            let decoded = try half.withUnsafeBytes { try floatArray(TensorView(name: "h", dtype: .f16, shape: [5], bytes: $0)) }
            XCTAssertEqual(decoded, values.map { F16.decode(F16.encode($0)) }, "round to nearest; ±inf stays")
            XCTAssertEqual(try encodedBytes(view, as: .bf16).count, 10)
            XCTAssertEqual(try encodedBytes(view, as: .f32), raw)
            XCTAssertThrowsError(try encodedBytes(view, as: .i32))
        }
        let big = withUnsafeBytes(of: Float(70000).bitPattern.littleEndian) { Array($0) }
        try big.withUnsafeBytes { b in
            let view = TensorView(name: "norm", dtype: .f32, shape: [1], bytes: b)
            XCTAssertThrowsError(try encodedBytes(view, as: .f16)) { error in
                XCTAssertEqual("\(error)", "tensor \"norm\": element 0 = 70000.0 is outside the F16 range (±65504)")
            }
            XCTAssertEqual(try encodedBytes(view, as: .bf16).count, 2, "BF16 has Float's range")
        }
        // The boundary: the largest Float below 65520 rounds to 65504, 65520 itself to infinity.
        for (value, fits) in [(Float(65520).nextDown, true), (Float(65520), false), (-Float(65520), false)] {
            XCTAssertEqual(F16.decode(F16.encode(value)).isFinite, fits, "\(value)")
            let bytes = withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
            try bytes.withUnsafeBytes { b in
                let view = TensorView(name: "v", dtype: .f32, shape: [1], bytes: b)
                XCTAssertEqual((try? encodedBytes(view, as: .f16)) != nil, fits, "\(value)")
            }
        }
    }

    func testUnalignedViewsConvert() throws {
        // A header of odd length (no padding, as some writers produce) leaves F32/F64 data
        // misaligned in the map; conversions must still read it correctly.
        var header = #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"f":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#
        if header.utf8.count % 2 == 0 { header += " " }  // odd length: data starts at an odd offset
        var data = [UInt8]()
        for v in [1.5, -3.25] { withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        withUnsafeBytes(of: Float(7.0).bitPattern.littleEndian) { data.append(contentsOf: $0) }
        let f = try SafetensorsFile(path: writeTemporary(self, safetensorsImage(header: header, data: data)))
        defer { withExtendedLifetime(f) {} }  // views borrow its memory map
        XCTAssertEqual(try floatArray(XCTUnwrap(f.tensor("d"))), [1.5, -3.25])
        XCTAssertEqual(try floatArray(XCTUnwrap(f.tensor("f"))), [7])
    }
}
