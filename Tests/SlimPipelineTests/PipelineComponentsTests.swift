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

    // MARK: Streamed safetensors

    /// The streaming writer produces the bytes of SlimIO's SafetensorsWriter (itself
    /// byte-identical to the Python package) for the same tensors and metadata.
    func testStreamedSafetensorsMatchTheBufferedWriter() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let f32: [Float] = [1, -2, 3.5, 0, 7, 8]
        let f16: [UInt16] = [0x3C00, 0xC000, 0x7BFF]
        var writer = SafetensorsWriter()
        writer.metadata = [("format", "pt")]
        try writer.add(name: "b.weight", floats: f32, shape: [2, 3], as: .f32)
        try f16.withUnsafeBytes { try writer.add(name: "a\"q\n", dtype: .f16, shape: [3], bytes: $0) }
        try writer.add(name: "c", floats: [], shape: [0, 4], as: .f32)
        try writer.write(to: dir + "/buffered.safetensors")

        let tensors = [
            StreamedTensor(name: "c", dtype: .f32, shape: [0, 4]) { _ in },
            StreamedTensor(name: "b.weight", dtype: .f32, shape: [2, 3]) { emit in
                try f32.withUnsafeBytes { raw in
                    try emit(UnsafeRawBufferPointer(rebasing: raw[0..<8]))
                    try emit(UnsafeRawBufferPointer(rebasing: raw[8...]))
                }
            },
            StreamedTensor(name: "a\"q\n", dtype: .f16, shape: [3]) { emit in try f16.withUnsafeBytes { try emit($0) } },
        ]
        try SafetensorsStream.write(to: dir + "/streamed.safetensors", tensors: tensors, metadata: [("format", "pt")])
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/buffered.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/streamed.safetensors"))
        XCTAssertEqual(a, b)

        // A producer that emits too few bytes leaves no file behind.
        let short = [StreamedTensor(name: "x", dtype: .f32, shape: [2]) { emit in try f32.withUnsafeBytes {
            try emit(UnsafeRawBufferPointer(rebasing: $0[0..<4]))
        } }]
        XCTAssertThrowsError(try SafetensorsStream.write(to: dir + "/short.safetensors", tensors: short, metadata: nil)) {
            XCTAssertTrue("\($0)".contains("wrote 4 of 8 bytes"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/short.safetensors"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }, [])
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
