import Foundation
import SlimIO
import XCTest

@testable import SlimModel

final class TensorLayoutTests: XCTestCase {
    private func tiny(_ edit: (inout JSONObject) -> Void = { _ in }) throws -> TensorLayout {
        TensorLayout(config: try LlamaConfig(json: Fixtures.tinyConfig(edit), path: "c"))
    }

    // MARK: Names and shapes

    func testExpectedTensorsForGQA() throws {
        let layout = try tiny()  // hidden 16, 4 heads × 4, 2 KV heads, inter 24, vocab 10, 2 layers
        let specs = layout.expectedTensors
        XCTAssertEqual(specs.count, 1 + 2 * 9 + 2)
        XCTAssertEqual(specs.first, TensorSpec(name: "model.embed_tokens.weight", shape: [10, 16]))
        XCTAssertEqual(specs.last, TensorSpec(name: "lm_head.weight", shape: [10, 16]))
        let layer1 = Dictionary(uniqueKeysWithValues: layout.layerTensors(1).map { ($0.name, $0.shape) })
        XCTAssertEqual(layer1["model.layers.1.input_layernorm.weight"], [16])
        XCTAssertEqual(layer1["model.layers.1.self_attn.q_proj.weight"], [16, 16])
        XCTAssertEqual(layer1["model.layers.1.self_attn.k_proj.weight"], [8, 16])
        XCTAssertEqual(layer1["model.layers.1.self_attn.v_proj.weight"], [8, 16])
        XCTAssertEqual(layer1["model.layers.1.self_attn.o_proj.weight"], [16, 16])
        XCTAssertEqual(layer1["model.layers.1.post_attention_layernorm.weight"], [16])
        XCTAssertEqual(layer1["model.layers.1.mlp.gate_proj.weight"], [24, 16])
        XCTAssertEqual(layer1["model.layers.1.mlp.up_proj.weight"], [24, 16])
        XCTAssertEqual(layer1["model.layers.1.mlp.down_proj.weight"], [16, 24])
        XCTAssertEqual(layer1.count, 9)
        XCTAssertEqual(layout.parameterCount, 10 * 16 * 2 + 16 + 2 * (2 * 16 + 16 * 16 * 2 + 8 * 16 * 2 + 24 * 16 * 3))
    }

    func testHeadDimDecoupledFromHidden() throws {
        // Explicit head_dim: q is heads × head_dim wide, o maps it back to hidden.
        let layout = try tiny { $0["head_dim"] = 8 }
        let q = layout.linearModules(layer: 0)[0]
        XCTAssertEqual([q.outFeatures, q.inFeatures], [32, 16])
        let o = layout.linearModules(layer: 0)[3]
        XCTAssertEqual([o.outFeatures, o.inFeatures], [16, 32])
    }

    func testLinearModulesInQuantizationOrder() throws {
        let layout = try tiny { $0["attention_bias"] = true }
        let modules = layout.linearModules
        XCTAssertEqual(modules.count, 14)
        XCTAssertEqual(modules.prefix(7).map(\.name), [
            "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
            "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
            "model.layers.0.mlp.down_proj",
        ])
        XCTAssertEqual(modules[7].layer, 1)
        XCTAssertEqual(modules[1].weightName, "model.layers.0.self_attn.k_proj.weight")
        XCTAssertEqual(modules[1].biasName, "model.layers.0.self_attn.k_proj.bias")
        XCTAssertNil(modules[4].biasName, "attention_bias does not add MLP biases")
        let names = Set(layout.expectedTensors.map(\.name))
        XCTAssertTrue(names.contains("model.layers.1.self_attn.o_proj.bias"))
        XCTAssertEqual(layout.expectedTensors.first { $0.name == "model.layers.0.self_attn.k_proj.bias" }?.shape, [8])
        let mlp = try tiny { $0["mlp_bias"] = true }
        XCTAssertEqual(mlp.expectedTensors.first { $0.name == "model.layers.0.mlp.down_proj.bias" }?.shape, [16])
    }

    func testToleratedNames() {
        XCTAssertTrue(TensorLayout.isTolerated("model.layers.0.self_attn.rotary_emb.inv_freq"))
        XCTAssertTrue(TensorLayout.isTolerated("model.layers.31.self_attn.rotary_emb.inv_freq"))
        XCTAssertFalse(TensorLayout.isTolerated("model.layers..self_attn.rotary_emb.inv_freq"))
        XCTAssertFalse(TensorLayout.isTolerated("model.layers.x.self_attn.rotary_emb.inv_freq"))
        XCTAssertFalse(TensorLayout.isTolerated("model.rotary_emb.inv_freq.extra"))
    }

    // MARK: Validation

    func testValidSourcePasses() throws {
        let layout = try tiny()
        let source = ShapeOnlySource(layout: layout, dtype: .bf16)
            .adding("model.layers.0.self_attn.rotary_emb.inv_freq", .f32, [2])
        XCTAssertEqual(layout.problems(in: source), [])
        XCTAssertNoThrow(try layout.validate(source, path: "m"))
    }

    func testEveryProblemIsReported() throws {
        let layout = try tiny()
        let source = ShapeOnlySource(layout: layout)
            .removing("model.layers.1.mlp.up_proj.weight")
            .replacing("model.layers.0.self_attn.k_proj.weight", shape: [16, 16])
            .replacing("model.norm.weight", dtype: .i32)
            .adding("model.layers.0.self_attn.q_norm.weight", .f32, [4])
        XCTAssertEqual(layout.problems(in: source), [
            .wrongShape(name: "model.layers.0.self_attn.k_proj.weight", shape: [16, 16], expectedShape: [8, 16]),
            .missing(name: "model.layers.1.mlp.up_proj.weight", expectedShape: [24, 16]),
            .notFloatingPoint(name: "model.norm.weight", dtype: .i32),
            .unexpected(name: "model.layers.0.self_attn.q_norm.weight", shape: [4]),
        ])
        XCTAssertThrowsError(try layout.validate(source, path: "/m/model.safetensors")) { error in
            XCTAssertEqual(error as? FileError, FileError("/m/model.safetensors",
                "tensors do not match the config (LlamaForCausalLM, 2 layers, hidden 16, vocab 10): "
                + "1 missing, 1 with the wrong shape, 1 not floating-point, 1 unexpected: "
                + "model.layers.0.self_attn.k_proj.weight has shape [16, 16], expected [8, 16]; "
                + "missing model.layers.1.mlp.up_proj.weight [24, 16]; "
                + "model.norm.weight is I32, expected a floating-point type; "
                + "unexpected tensor model.layers.0.self_attn.q_norm.weight [4]"))
        }
    }

    func testLongProblemListsAreSummarized() throws {
        let layout = try tiny()
        // Weights of a 1-layer model against a 2-layer config: layer 1 entirely missing.
        let source = ShapeOnlySource(layout: layout).filtering { !$0.hasPrefix("model.layers.1.") }
        let problems = layout.problems(in: source)
        XCTAssertEqual(problems.count, 9)
        XCTAssertThrowsError(try layout.validate(source, path: "m")) { error in
            let message = (error as? FileError)?.message ?? ""
            XCTAssertTrue(message.contains("9 missing"), message)
            XCTAssertTrue(message.hasSuffix("; … and 3 more"), message)
        }
    }

    func testTiedEmbeddings() throws {
        let layout = try tiny { $0["tie_word_embeddings"] = true }
        XCTAssertFalse(layout.expectedTensors.contains { $0.name == "lm_head.weight" })
        let withoutHead = ShapeOnlySource(layout: layout)
        XCTAssertEqual(layout.problems(in: withoutHead), [])
        // A stored copy of the classifier is tolerated when shaped like the embedding…
        XCTAssertEqual(layout.problems(in: withoutHead.adding("lm_head.weight", .f16, [10, 16])), [])
        // …and reported when it is not.
        XCTAssertEqual(layout.problems(in: withoutHead.adding("lm_head.weight", .f32, [11, 16])),
                       [.wrongShape(name: "lm_head.weight", shape: [11, 16], expectedShape: [10, 16])])
        // Untied: the classifier is required.
        let untied = try tiny()
        XCTAssertEqual(untied.problems(in: withoutHead), [.missing(name: "lm_head.weight", expectedShape: [10, 16])])
        XCTAssertEqual(layout.parameterCount + 10 * 16, untied.parameterCount)
    }

    func testConfigOfOtherModelIsCaught() throws {
        // SmolLM2's config (30 layers, tied) against a 2-layer model: 21 tensors with other shapes, the rest missing.
        let stories = TensorLayout(config: try LlamaConfig(json: Fixtures.tinyConfig(), path: "c"))
        let smol = TensorLayout(config: try LlamaConfig(path: Fixtures.config("smollm2-135m")))
        XCTAssertThrowsError(try smol.validate(ShapeOnlySource(layout: stories), path: "m")) { error in
            XCTAssertTrue("\(error)".contains("252 missing, 21 with the wrong shape"), "\(error)")
        }
    }
}

extension ShapeOnlySource {
    func filtering(_ keep: (String) -> Bool) -> ShapeOnlySource {
        var s = self
        for name in tensorNames where !keep(name) { s = s.removing(name) }
        return s
    }
}
