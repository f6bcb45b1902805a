import Foundation
import SlimIO
import SlimTestSupport
import XCTest

// A `TensorView` points into storage owned by its source (a memory map). Swift may release an
// object right after its last use, so a view taken from a source that goes out of scope must
// keep that source alive itself: these tests open sources in a scope that ends before the
// view is read, and check with weak references that the view (and only the view) retains
// them. Run them in release mode too (`swift test -c release -Xswiftc -enable-testing
// --filter TensorViewLifetimeTests`), where lifetimes are shortest.

final class TensorViewLifetimeTests: XCTestCase {
    private let values: [Float] = (0..<4096).map { Float($0) * 0.25 - 100 }

    private func writeSafetensors(_ dir: String, name: String = "w.safetensors") throws -> String {
        var writer = SafetensorsWriter()
        try writer.add(name: "w", floats: values, shape: [64, 64], as: .f32)
        let path = dir + "/" + name
        try writer.write(to: path)
        return path
    }

    private static func floats(_ view: TensorView) -> [Float] {
        view.withBytes { raw in
            (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        }
    }

    func testSafetensorsViewOutlivesTheScopeOfItsFile() throws {
        let path = try writeSafetensors(try TestFixtures.temporaryDirectory(self))
        weak var weakFile: SafetensorsFile?
        func openView() throws -> TensorView {
            let file = try SafetensorsFile(path: path)
            weakFile = file
            return try XCTUnwrap(file.tensor("w"))
        }
        var view: TensorView? = try openView()
        XCTAssertNotNil(weakFile, "the view must retain the file whose mapping it reads")
        XCTAssertTrue(view?.owner === weakFile)
        XCTAssertEqual(view.map(Self.floats), values)
        // Plain `bytes` reads are valid while the view is in use.
        let direct = view.map { v in (0..<values.count).map { v.bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        XCTAssertEqual(direct, values)
        view = nil
        XCTAssertNil(weakFile, "dropping the last view must release the file (no leak)")
    }

    func testCheckpointViewRetainsItsShard() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        _ = try writeSafetensors(dir, name: SafetensorsCheckpoint.singleFileName)
        weak var weakCheckpoint: SafetensorsCheckpoint?
        func openView() throws -> TensorView {
            let checkpoint = try SafetensorsCheckpoint(directory: dir)
            weakCheckpoint = checkpoint
            return try XCTUnwrap(checkpoint.tensor("w"))
        }
        let view = try openView()
        XCTAssertNil(weakCheckpoint, "the checkpoint itself is not needed: the view retains its shard")
        XCTAssertTrue(view.owner is SafetensorsFile)
        XCTAssertEqual(Self.floats(view), values)
    }

    func testGGUFViewOutlivesTheScopeOfItsFile() throws {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("test"))
        try writer.addTensor(name: "w", dims: [64, 64], floats: values)
        let path = try TestFixtures.temporaryDirectory(self) + "/w.gguf"
        try writer.write(to: path)
        weak var weakFile: GGUFFile?
        func openView() throws -> TensorView {
            let file = try GGUFFile(path: path)
            weakFile = file
            return try XCTUnwrap(file.tensor("w"))
        }
        var view: TensorView? = try openView()
        XCTAssertNotNil(weakFile)
        XCTAssertEqual(view.map(Self.floats), values)
        view = nil
        XCTAssertNil(weakFile)
    }

    func testTensorInfoMatchesTheViewWithoutReadingData() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        _ = try writeSafetensors(dir, name: SafetensorsCheckpoint.singleFileName)
        let checkpoint = try SafetensorsCheckpoint(directory: dir)
        let info = try XCTUnwrap(checkpoint.tensorInfo("w"))
        XCTAssertEqual(info.dtype, .f32)
        XCTAssertEqual(info.shape, [64, 64])
        XCTAssertNil(checkpoint.tensorInfo("missing"))
        let file = try XCTUnwrap(checkpoint.shards.first)
        XCTAssertEqual(file.tensorInfo("w")?.shape, file.tensor("w")?.shape)
    }

    func testGGUFTensorInfoAgreesWithTensorForEveryStoredType() throws {
        let file = try GGUFFile(path: TestFixtures.committed("SlimIOTests", "gguf/quant-types.gguf"))
        XCTAssertGreaterThan(file.tensorInfos.filter { $0.type.plainDType == nil }.count, 0, "fixture must hold quantized tensors")
        for info in file.tensorInfos {
            let view = file.tensor(info.name)
            let meta = file.tensorInfo(info.name)
            XCTAssertEqual(meta?.dtype, view?.dtype, info.name)
            XCTAssertEqual(meta?.shape, view?.shape, info.name)
        }
    }
}
