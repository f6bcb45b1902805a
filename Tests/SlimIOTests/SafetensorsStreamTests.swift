import Foundation
import XCTest
import SlimTestSupport
@testable import SlimIO

/// `SafetensorsStream`, the one safetensors writing path: producers may emit in pieces, the
/// layout is the reference's (proven against Python bytes through `SafetensorsWriter` in
/// `SafetensorsReferenceTests`), and bad input or a faulty producer leaves no file behind.
final class SafetensorsStreamTests: XCTestCase {
    let f32: [Float] = [1, -2, 3.5, 0, 7, 8]
    let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF]

    /// No destination and no temporary file may remain in `dir` besides `keeping`.
    private func assertOnly(_ keeping: Set<String>, in dir: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir)), keeping, file: file, line: line)
    }

    // MARK: Layout

    /// Tensors emitted in pieces, given in any order, write the bytes of `SafetensorsWriter`
    /// (escaped names, an empty tensor, mixed dtypes stored by rank then name).
    func testStreamedTensorsMatchTheCollectingWriter() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        var writer = SafetensorsWriter()
        writer.metadata = [("format", "pt")]
        try writer.add(name: "b.weight", floats: f32, shape: [2, 3], as: .f32)
        try f16.withUnsafeBytes { try writer.add(name: "a\"q\n", dtype: .f16, shape: [3], bytes: $0) }
        try writer.add(name: "c", floats: [], shape: [0, 4], as: .f32)
        try writer.write(to: dir + "/collected.safetensors")

        let (f32, f16) = (self.f32, self.f16)
        let tensors = [
            StreamedTensor(name: "c", dtype: .f32, shape: [0, 4]) { _ in },
            StreamedTensor(name: "b.weight", dtype: .f32, shape: [2, 3]) { emit in
                try f32.withUnsafeBytes { raw in
                    try emit(UnsafeRawBufferPointer(rebasing: raw[0..<8]))
                    try emit(UnsafeRawBufferPointer(rebasing: raw[8..<8]))
                    try emit(UnsafeRawBufferPointer(rebasing: raw[8...]))
                }
            },
            StreamedTensor(name: "a\"q\n", dtype: .f16, shape: [3]) { emit in try f16.withUnsafeBytes { try emit($0) } },
        ]
        try SafetensorsStream.write(to: dir + "/streamed.safetensors", tensors: tensors, metadata: [("format", "pt")])
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/collected.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/streamed.safetensors"))
        XCTAssertEqual(a, b)

        let file = try SafetensorsFile(path: dir + "/streamed.safetensors")
        withExtendedLifetime(file) {
            XCTAssertEqual(file.tensorNames, ["b.weight", "c", "a\"q\n"])
            XCTAssertEqual(file.tensor("b.weight").map { $0.withBytes { [UInt8]($0) } }, f32.withUnsafeBytes { [UInt8]($0) })
        }
    }

    /// Larger than the 1 MiB output buffer, in odd-sized pieces: still every byte in order.
    func testLargeTensorInUnevenPieces() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let count = (3 << 20) + 5
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 9)) }
        let tensor = StreamedTensor(name: "big", dtype: .u8, shape: [count]) { emit in
            try bytes.withUnsafeBytes { raw in
                var start = 0
                for piece in [1, 7, (1 << 20) - 3, 1 << 20, 2 << 20] where start < count {
                    let end = min(count, start + piece)
                    try emit(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                    start = end
                }
                try emit(UnsafeRawBufferPointer(rebasing: raw[start...]))
            }
        }
        try SafetensorsStream.write(to: dir + "/big.safetensors", tensors: [tensor], metadata: nil)
        let file = try SafetensorsFile(path: dir + "/big.safetensors")
        withExtendedLifetime(file) {
            XCTAssertEqual(file.tensor("big").map { $0.withBytes { [UInt8]($0) } }, bytes)
        }
    }

    // MARK: Errors

    /// A producer emitting too few or too many bytes, or throwing, leaves neither the
    /// destination nor a temporary file; an earlier file at the destination is kept.
    func testFaultyProducersLeaveNoFile() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let f32 = self.f32
        let short = StreamedTensor(name: "x", dtype: .f32, shape: [2]) { emit in
            try f32.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<4])) }
        }
        XCTAssertThrowsError(try SafetensorsStream.write(to: dir + "/out.safetensors", tensors: [short], metadata: nil)) {
            XCTAssertTrue("\($0)".contains("out.safetensors: tensor x: producer wrote 4 of 8 bytes"), "\($0)")
        }
        let long = StreamedTensor(name: "y", dtype: .f32, shape: [1]) { emit in try f32.withUnsafeBytes { try emit($0) } }
        XCTAssertThrowsError(try SafetensorsStream.write(to: dir + "/out.safetensors", tensors: [long], metadata: nil)) {
            XCTAssertTrue("\($0)".contains("producer wrote more than its 4 bytes"), "\($0)")
        }
        try assertOnly([], in: dir)

        try AtomicFile.write(text: "previous", to: dir + "/out.safetensors")
        let failing = StreamedTensor(name: "z", dtype: .u8, shape: [1]) { _ in throw FileError("source", "gone") }
        XCTAssertThrowsError(try SafetensorsStream.write(to: dir + "/out.safetensors", tensors: [failing], metadata: nil)) {
            XCTAssertEqual("\($0)", "source: gone")
        }
        XCTAssertEqual(try String(contentsOfFile: dir + "/out.safetensors", encoding: .utf8), "previous")
        try assertOnly(["out.safetensors"], in: dir)
    }

    /// Invalid input is rejected before anything is written, with the writer's error cases.
    func testInvalidInputIsRejectedUpFront() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        func attempt(_ tensors: [StreamedTensor], metadata: [(key: String, value: String)]? = nil) -> SafetensorsWriterError? {
            do {
                try SafetensorsStream.write(to: dir + "/bad.safetensors", tensors: tensors, metadata: metadata)
                return nil
            } catch {
                return error as? SafetensorsWriterError
            }
        }
        func empty(_ name: String, _ shape: [Int] = [0], _ dtype: DType = .f32) -> StreamedTensor {
            StreamedTensor(name: name, dtype: dtype, shape: shape) { _ in XCTFail("producer of \(name) ran") }
        }
        XCTAssertEqual(attempt([empty("a"), empty("a")]), .duplicateName("a"))
        XCTAssertEqual(attempt([empty("__metadata__")]), .reservedName("__metadata__"))
        XCTAssertEqual(attempt([empty("n", [2, -1])]), .invalidShape(name: "n", shape: [2, -1]))
        XCTAssertEqual(attempt([empty("o", [1 << 40, 1 << 40])]), .invalidShape(name: "o", shape: [1 << 40, 1 << 40]))
        XCTAssertEqual(attempt([empty("a")], metadata: [("k", "1"), ("k", "2")]), .duplicateMetadataKey("k"))
        // Each tensor alone fits, their offsets together overflow.
        let half = (Int.max / 2) + 1
        XCTAssertEqual(attempt([empty("p", [half], .u8), empty("q", [half], .u8)]), .invalidShape(name: "q", shape: [half]))
        try assertOnly([], in: dir)
    }
}
