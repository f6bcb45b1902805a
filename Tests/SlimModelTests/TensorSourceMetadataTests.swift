import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimModel

/// A source that answers `tensorInfo` but fails the test when asked for tensor data, to prove
/// that layout validation never produces views (which would dequantize a GGUF import).
private final class MetadataOnlySource: TensorSource {
    let specs: [(String, DType, [Int])]
    private(set) var dataRequests: [String] = []

    init(_ specs: [(String, DType, [Int])]) { self.specs = specs }

    var tensorNames: [String] { specs.map(\.0) }

    func tensor(_ name: String) -> TensorView? {
        dataRequests.append(name)
        return nil
    }

    func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        specs.first { $0.0 == name }.map { ($0.1, $0.2) }
    }
}

final class TensorSourceMetadataTests: XCTestCase {
    private func layout() throws -> TensorLayout {
        TensorLayout(config: try LlamaConfig(json: Fixtures.tinyConfig(), path: "c"))
    }

    func testValidationReadsOnlyMetadata() throws {
        let layout = try layout()
        let complete = layout.expectedTensors.map { ($0.name, DType.bf16, $0.shape) }
        let good = MetadataOnlySource(complete)
        XCTAssertNoThrow(try layout.validate(good, path: "m"))
        XCTAssertEqual(good.dataRequests, [])

        var broken = complete.filter { $0.0 != TensorLayout.finalNorm }
        broken[0].1 = .i32
        broken.append(("extra.weight", .f32, [3]))
        let bad = MetadataOnlySource(broken)
        XCTAssertEqual(layout.problems(in: bad), [
            .notFloatingPoint(name: TensorLayout.embedTokens, dtype: .i32),
            .missing(name: TensorLayout.finalNorm, expectedShape: [16]),
            .unexpected(name: "extra.weight", shape: [3]),
        ])
        XCTAssertEqual(bad.dataRequests, [])
    }

    func testDefaultTensorInfoGoesThroughTensor() throws {
        let source = ShapeOnlySource([("a", .f16, [2, 3])])
        XCTAssertEqual(source.tensorInfo("a")?.dtype, .f16)
        XCTAssertEqual(source.tensorInfo("a")?.shape, [2, 3])
        XCTAssertNil(source.tensorInfo("b"))
    }

    func testImportReportsF32ShapesWithoutDecoding() throws {
        let model = try GGUFImport(path: TestFixtures.committed("SlimIOTests", "gguf/tiny-llama.gguf"))
        for name in model.tensorNames {
            let info = try XCTUnwrap(model.tensorInfo(name), name)
            XCTAssertEqual(info.dtype, .f32, name)
            XCTAssertEqual(info.shape, model.shape(name), name)
        }
        XCTAssertNil(model.tensorInfo("lm_head.weight"))
    }

    /// A dequantized (cached) view stays readable after the import's scope ended, and the
    /// import is released with the last view.
    func testImportViewOutlivesTheScopeOfItsImport() throws {
        let dir = TemporaryDirectory()
        let path = try makeTinyLlamaGGUF(in: dir)
        let name = "model.layers.0.self_attn.q_proj.weight"  // un-permuted: served from the cache
        weak var weakImport: GGUFImport?
        func openView() throws -> TensorView {
            let model = try GGUFImport(path: path)
            weakImport = model
            return try XCTUnwrap(model.tensor(name))
        }
        var view: TensorView? = try openView()
        XCTAssertNotNil(weakImport)
        let read = view?.withBytes { raw in (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        XCTAssertEqual(read, try GGUFImport(path: path).floats(name))
        view = nil
        XCTAssertNil(weakImport)
    }
}
