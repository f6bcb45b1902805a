import Foundation
import SlimData
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import SlimTokenizer
import XCTest
@testable import SlimPipeline
import SlimQuant

final class PipelineComponentsTests: XCTestCase {
    // MARK: Calibration

    func testCalibrationWindowsFollowCPythonOffsets() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let path = try PipelineFixture.calibrationFile(in: dir, bytes: 20_000)
        let tokenizer = try Tokenizer.load(directory: try PipelineFixture.model())
        let set = try CalibrationSet.load(.file(path), tokenizer: tokenizer, count: 6, length: 32, seed: 3)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let tokens = tokenizer.encode(text, addSpecialTokens: true)
        XCTAssertEqual(set.tokenCount, tokens.count)
        XCTAssertEqual(set.offsets, try CalibrationSampling.calibrationOffsets(seed: 3, count: 6, tokenCount: tokens.count, length: 32))
        for (offset, window) in zip(set.offsets, set.windows) {
            XCTAssertEqual(window, Array(tokens[offset ..< offset + 32]))
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(set.sha256, SHA256.hex([UInt8](data)))
        XCTAssertEqual(set.fileName, "calibration.txt")

        // T = L + 1 is the shortest corpus that works (one possible offset, 0).
        let exact = try CalibrationSet.load(.file(path), tokenizer: tokenizer, count: 2, length: tokens.count - 1, seed: 0)
        XCTAssertEqual(exact.offsets, [0, 0])
        XCTAssertThrowsError(try CalibrationSet.load(.file(path), tokenizer: tokenizer, count: 2, length: tokens.count, seed: 0)) {
            XCTAssertTrue("\($0)".contains("too short"), "\($0)")
        }
    }

    // MARK: Activations

    func testActivationStoreRoundTripsAndRejectsOverflow() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        for storage in ActivationStorage.allCases {
            let store = try ActivationStore(samples: 3, rows: 4, cols: 5, storage: storage)
            var hidden = HiddenStates(values: (0..<20).map { Float($0) * 0.25 - 2 }, rows: 4, cols: 5)
            for s in 0..<3 {
                try store.store(s, from: hidden, what: "test")
                hidden.values = hidden.values.map { $0 + 1 }
            }
            let path = dir + "/acts-\(storage.rawValue).safetensors"
            try store.write(to: path, layer: 7)
            let back = try ActivationStore.read(path: path, layer: 7, samples: 3, rows: 4, cols: 5, storage: storage)
            XCTAssertTrue(back.rawBytes.elementsEqual(store.rawBytes))
            var out = HiddenStates(values: [Float](repeating: 0, count: 20), rows: 4, cols: 5)
            back.load(2, into: &out)
            XCTAssertEqual(out.values, (0..<20).map { Float($0) * 0.25 }, "exact in both storages")
            XCTAssertThrowsError(try ActivationStore.read(path: path, layer: 8, samples: 3, rows: 4, cols: 5, storage: storage)) {
                XCTAssertTrue("\($0)".contains("layer 7, expected layer 8"), "\($0)")
            }
        }
        let half = try ActivationStore(samples: 1, rows: 1, cols: 9, storage: .f16)
        let big = HiddenStates(values: [1, 2, 3, 4, 5, 6, 7, 8, 70_000], rows: 1, cols: 9)
        XCTAssertThrowsError(try half.store(0, from: big, what: "layer 3 output")) {
            XCTAssertTrue("\($0)".contains("70000") && "\($0)".contains("--activations f32"), "\($0)")
        }
        let full = try ActivationStore(samples: 1, rows: 1, cols: 9, storage: .f32)
        XCTAssertThrowsError(try full.store(0, from: HiddenStates(values: [1, 2, 3, 4, 5, 6, 7, 8, .nan], rows: 1, cols: 9),
                                            what: "layer 1 output")) {
            XCTAssertTrue("\($0)".contains("non-finite"), "\($0)")
        }
        XCTAssertThrowsError(try ActivationStore(samples: Int.max / 2, rows: 4, cols: 4, storage: .f32))
    }

    // MARK: Layer slices

    /// A one-layer slice computes exactly what the full model's layer computes, captures included.
    func testLayerSliceMatchesTheFullModel() throws {
        let model = try LoadedModel(path: try PipelineFixture.model())
        let full = LlamaModel(weights: try LlamaWeights(model: model), threads: 2)
        var input = try full.embed([1, 403, 407, 261, 378, 27, 310, 2, 88, 100])
        for l in 0..<2 { full.runLayer(l, hidden: &input) }
        var expected = input
        var expectedCaptures: [LinearInput: [Float]] = [:]
        full.runLayer(2, hidden: &expected) { expectedCaptures[$0.input] = Array($0.values) }

        let runner = try LayerRunner(source: model.weights, config: model.config, layer: 2, path: model.path, threads: 1)
        var got = input
        var captures: [LinearInput: [Float]] = [:]
        runner.run(&got) { captures[$0.input] = Array($0.values) }
        XCTAssertEqual(got, expected)
        XCTAssertEqual(captures, expectedCaptures)
        XCTAssertEqual(try runner.denseWeight(.downProj).shape, [64, 172])
        XCTAssertTrue(try runner.denseWeight(.qProj).isBorrowed, "F32 layer weights stay in the memory map")
    }
}
