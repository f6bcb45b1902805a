import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// Weight loading: zero-copy F32, one-time F16/BF16 widening, tied classifiers, operator
/// replacement, and parity on a model stored in all three dtypes.
final class WeightsTests: XCTestCase {
    private func tinyLlama(_ dtype: String, storage: DenseStorage = .fp32) throws -> (LlamaWeights, SafetensorsFile) {
        let dir = TestFixtures.committed("SlimIOTests", "gguf")
        let config = try LlamaConfig(path: dir + "/tiny-llama.config.json")
        let file = try SafetensorsFile(path: dir + "/tiny-llama.\(dtype).safetensors")
        return (try LlamaWeights(config: config, source: file, path: file.path, storage: storage), file)
    }

    func testF32IsBorrowedAndHalfPrecisionIsWidenedOnce() throws {
        let (f32, _) = try tinyLlama("f32")
        XCTAssertTrue(f32.embedding.isBorrowed)
        XCTAssertEqual(f32.ownedBytes, 0, "every F32 tensor of an 8-byte-padded file is used in place")
        for dtype in ["f16", "bf16"] {
            let (w, file) = try tinyLlama(dtype)
            XCTAssertFalse(w.embedding.isBorrowed)
            let params = TensorLayout(config: w.config).parameterCount
            XCTAssertEqual(w.ownedBytes, params * 4, "\(dtype): one fp32 copy of each tensor, tied head not duplicated")
            // Exact widening: equal to SlimIO's scalar decoder element by element.
            let view = try XCTUnwrap(file.tensor("model.layers.0.mlp.down_proj.weight"))
            let dense = try XCTUnwrap(w.layers[0][.downProj] as? DenseLinear)
            XCTAssertEqual(Array(dense.weight.buffer), try floatArray(view), dtype)
        }
    }

    func testTiedClassifierSharesTheEmbedding() throws {
        let (w, _) = try tinyLlama("bf16")
        XCTAssertTrue(w.config.tieWordEmbeddings)
        let head = try XCTUnwrap(w.lmHead as? DenseLinear)
        XCTAssertTrue(head.weight === w.embedding.fp32)
    }

    func testLogitsMatchTransformersForEveryStoredDtype() throws {
        let golden = try Golden.load("tiny-llama.json.gz")
        let tokens = try Golden.ints(golden["tokens"])
        for dtype in ["f32", "f16", "bf16"] {
            let (w, _) = try tinyLlama(dtype)
            let logits = try LlamaModel(weights: w, threads: 2).forward(tokens)
            let expected = try Golden.floats(golden["logits"]?[dtype])
            assertRowsClose(logits, expected, width: w.config.vocabSize, tolerance: 1e-5, dtype)
        }
    }

    /// `.native`: F16/BF16 matrices stay in the file (nothing but norms is allocated), the tied
    /// classifier is the embedding, and window logits (GEMM) and decode steps (GEMV) are bit for
    /// bit those of the widened model.
    func testNativeHalfStorageIsZeroCopyAndBitIdentical() throws {
        let golden = try Golden.load("tiny-llama.json.gz")
        let tokens = try Golden.ints(golden["tokens"])
        for dtype in ["f16", "bf16"] {
            let (native, _) = try tinyLlama(dtype, storage: .native)
            let (widened, _) = try tinyLlama(dtype)
            let c = native.config
            XCTAssertEqual(native.ownedBytes, (2 * c.numHiddenLayers + 1) * c.hiddenSize * 4, "\(dtype): only the norms")
            guard case .half(let table) = native.embedding else { return XCTFail("\(dtype): embedding was widened") }
            XCTAssertEqual(table.format.rawValue, dtype)
            XCTAssertTrue(try XCTUnwrap(native.lmHead as? HalfLinear).weight === table, "tied classifier")
            XCTAssertTrue(native.layers[0][.downProj] is HalfLinear)
            XCTAssertNil(native.layers[0].denseWeight(.downProj), "no fp32 weight to hand to the quantizer")

            let a = LlamaModel(weights: native, threads: 2), b = LlamaModel(weights: widened, threads: 1)
            XCTAssertEqual(try a.forward(tokens).map(\.bitPattern), try b.forward(tokens).map(\.bitPattern), dtype)
            let sa = try InferenceSession(model: a, capacity: tokens.count), sb = try InferenceSession(model: b, capacity: tokens.count)
            XCTAssertEqual(try sa.prefill(Array(tokens.prefix(3))).map(\.bitPattern),
                           try sb.prefill(Array(tokens.prefix(3))).map(\.bitPattern))
            for token in tokens.dropFirst(3) {
                XCTAssertEqual(try sa.step(token).map(\.bitPattern), try sb.step(token).map(\.bitPattern), "\(dtype) step")
            }
        }
        // F32 files are unaffected by the policy.
        let (f32, _) = try tinyLlama("f32", storage: .native)
        XCTAssertNotNil(f32.embedding.fp32)
        XCTAssertEqual(f32.ownedBytes, 0)
    }

    func testReplacingAnOperatorChangesTheForwardAndChecksShapes() throws {
        let (w, _) = try tinyLlama("f32")
        let model = LlamaModel(weights: w, threads: 1)
        let tokens = [1, 5, 9, 2, 31, 0, 17]
        let before = try model.forward(tokens)
        let original = try XCTUnwrap(w.layers[0].denseWeight(.upProj))
        // A perturbed copy, as the quantizer's fake-quantized weights would be.
        let perturbed = FloatTensor(shape: original.shape, values: original.buffer.map { $0 * 0.5 })
        let old = try w.layers[0].replace(.upProj, with: DenseLinear(weight: perturbed))
        let after = try model.forward(tokens)
        XCTAssertNotEqual(before, after)
        try w.layers[0].replace(.upProj, with: old)
        XCTAssertEqual(try model.forward(tokens), before, "restoring the operator restores the output exactly")

        let wrong = FloatTensor(shape: [original.shape[0] + 1, original.shape[1]], values: .init(repeating: 0, count: (original.shape[0] + 1) * original.shape[1]))
        XCTAssertThrowsError(try w.layers[0].replace(.upProj, with: DenseLinear(weight: wrong))) { error in
            XCTAssertTrue("\(error)".contains("layer 0 up_proj: replacement is 33×32, expected 32×32"), "\(error)")
        }
    }

    func testLoadedModelDirectoryGivesTheSameWeights() throws {
        let dir = try TestFixtures.shared("models/stories260K")
        let loaded = try LoadedModel(path: dir)
        let weights = try LlamaWeights(model: loaded)
        XCTAssertEqual(weights.config, loaded.config)
        XCTAssertEqual(weights.layers.count, 5)
        XCTAssertEqual(weights.ownedBytes, 0, "stories260K is F32: nothing copied")
        let head = try XCTUnwrap(weights.lmHead as? DenseLinear)
        XCTAssertFalse(head.weight === weights.embedding.fp32, "untied classifier")
        XCTAssertEqual(head.outFeatures, 512)
        XCTAssertEqual(head.inFeatures, 64)
    }

    func testMismatchedCheckpointIsRejectedWithThePath() throws {
        let dir = TestFixtures.committed("SlimIOTests", "gguf")
        let stories = try LlamaConfig(path: try TestFixtures.shared("models/stories260K/config.json"))
        let file = try SafetensorsFile(path: dir + "/tiny-llama.f32.safetensors")
        XCTAssertThrowsError(try LlamaWeights(config: stories, source: file, path: file.path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(file.path + ": tensors do not match the config"), text)
        }
    }

    func testMisalignedF32ViewIsCopiedNotBorrowed() throws {
        // A view whose start is not 4-byte aligned (a writer that does not pad its header).
        let values: [Float] = [1, -2, 3.5, 0x1p-140, .infinity, -0.0]
        var bytes = [UInt8](repeating: 0, count: 1 + values.count * 4)
        for (i, v) in values.enumerated() {
            withUnsafeBytes(of: v.bitPattern.littleEndian) { b in bytes.replaceSubrange((1 + 4 * i)..<(5 + 4 * i), with: b) }
        }
        let owner = NSObject()
        let tensor = try bytes.withUnsafeBytes { raw in
            let view = TensorView(name: "x", dtype: .f32, shape: [2, 3], bytes: UnsafeRawBufferPointer(rebasing: raw[1...]))
            return try FloatTensor(view, source: owner, path: "mem")
        }
        XCTAssertFalse(tensor.isBorrowed)
        XCTAssertEqual(Array(tensor.buffer).map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(tensor.rows, 2)
        XCTAssertEqual(tensor.cols, 3)

        let short = bytes.withUnsafeBytes { raw in
            Result { try FloatTensor(TensorView(name: "y", dtype: .f32, shape: [7], bytes: UnsafeRawBufferPointer(rebasing: raw[1...])),
                                     source: owner, path: "mem") }
        }
        XCTAssertThrowsError(try short.get()) { error in
            XCTAssertEqual("\(error)", "mem: tensor y has 24 bytes, which does not match F32 [7]")
        }
        let ints = bytes.withUnsafeBytes { raw in
            Result { try FloatTensor(TensorView(name: "z", dtype: .i32, shape: [6], bytes: UnsafeRawBufferPointer(rebasing: raw[1...])),
                                     source: owner, path: "mem") }
        }
        XCTAssertThrowsError(try ints.get()) { error in
            XCTAssertEqual("\(error)", "mem: tensor z is I32, expected a floating-point type")
        }
    }
}
