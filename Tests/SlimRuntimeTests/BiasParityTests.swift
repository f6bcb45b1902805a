import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// attention_bias and mlp_bias: a tiny random LLaMA with a bias on every projection
/// (scripts/reference/hf_bias_llama_golden.py) against transformers' fp32 logits.
final class BiasParityTests: XCTestCase {
    func testEveryBiasMatchesTransformers() throws {
        let dir = TestFixtures.committed("SlimRuntimeTests", "bias-llama")
        let loaded = try LoadedModel(path: dir)
        XCTAssertTrue(loaded.config.attentionBias && loaded.config.mlpBias)
        let weights = try LlamaWeights(model: loaded)
        for kind in LinearKind.allCases {
            XCTAssertNotNil((weights.layers[1][kind] as? DenseLinear)?.bias, "\(kind.rawValue) has its bias")
        }
        let golden = try Golden.load("bias-llama.json.gz")
        let tokens = try Golden.ints(golden["tokens"])
        let expected = try Golden.floats(golden["logits"])
        let model = LlamaModel(weights: weights, threads: 2)
        assertRowsClose(try model.forward(tokens), expected, width: loaded.config.vocabSize, tolerance: 1e-5, "window")

        // KV-cache decode gives the same rows.
        let session = try InferenceSession(model: model, capacity: tokens.count)
        var rows = try session.prefill(Array(tokens.prefix(5)), logits: .all)
        for token in tokens.dropFirst(5) { rows += try session.step(token) }
        assertRowsClose(rows, expected, width: loaded.config.vocabSize, tolerance: 1e-5, "decode")
    }
}
