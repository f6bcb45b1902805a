import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimModel

final class LlamaConfigTests: XCTestCase {
    // MARK: Real configs

    func testLLaMA1UsesDefaults() throws {
        let c = try LlamaConfig(path: Fixtures.config("llama-7b"))
        XCTAssertEqual(c.architecture, "LlamaForCausalLM")
        XCTAssertEqual(c.numKeyValueHeads, 32, "absent num_key_value_heads means MHA")
        XCTAssertEqual(c.headDim, 128)
        XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertNil(c.ropeScaling)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertEqual(c.bosTokenID, 1)
        XCTAssertEqual(c.eosTokenID, [2])
        XCTAssertFalse(c.attentionBias)
        XCTAssertEqual(c.torchDtype, "float16")
        XCTAssertEqual(c.parameterCount, 6_738_415_616)  // the published LLaMA-7B size
    }

    func testLlama2() throws {
        let c = try LlamaConfig(path: Fixtures.config("llama-2-7b-hf"))
        XCTAssertEqual(c.maxPositionEmbeddings, 4096)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        XCTAssertNil(c.ropeScaling)
        XCTAssertEqual(c.parameterCount, 6_738_415_616)
    }

    func testLlama31ScalingAndEOSList() throws {
        let c = try LlamaConfig(path: Fixtures.config("llama-3.1-8b-instruct"))
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.ropeScaling, .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        XCTAssertEqual(c.eosTokenID, [128001, 128008, 128009])
        XCTAssertEqual(c.numKeyValueHeads, 8)
        XCTAssertEqual(c.kvProjectionSize, 1024)
        XCTAssertEqual(c.queriesPerKeyValueHead, 4)
        XCTAssertEqual(c.parameterCount, 8_030_261_248)  // Llama-3.1-8B
    }

    func testLlama32TiedWithExplicitHeadDim() throws {
        let c = try LlamaConfig(path: Fixtures.config("llama-3.2-1b"))
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.ropeScaling, .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        XCTAssertEqual(c.parameterCount, 1_235_814_400)  // Llama-3.2-1B
    }

    func testTinyLlamaAndSmolLM2() throws {
        let tiny = try LlamaConfig(path: Fixtures.config("tinyllama-1.1b-chat-v1.0"))
        XCTAssertEqual(tiny.numKeyValueHeads, 4)
        XCTAssertEqual(tiny.parameterCount, 1_100_048_384)
        let smol = try LlamaConfig(path: Fixtures.config("smollm2-135m"))
        XCTAssertTrue(smol.tieWordEmbeddings)
        XCTAssertEqual(smol.ropeTheta, 100_000)
        XCTAssertEqual(smol.headDim, 64)
        XCTAssertEqual(smol.parameterCount, 134_515_008)  // SmolLM2-135M
    }

    func testStories260K() throws {
        let path = try TestFixtures.shared("models/stories260K/config.json")
        let c = try LlamaConfig(path: path)
        XCTAssertEqual(c.hiddenSize, 64)
        XCTAssertEqual(c.numHiddenLayers, 5)
        XCTAssertEqual(c.numAttentionHeads, 8)
        XCTAssertEqual(c.numKeyValueHeads, 4)
        XCTAssertEqual(c.headDim, 8)
        XCTAssertEqual(c.intermediateSize, 172)
        XCTAssertEqual(c.vocabSize, 512)
        XCTAssertFalse(c.tieWordEmbeddings)
        XCTAssertEqual(c.rmsNormEps, 9.999999747378752e-06)
    }

    func testMistralWithoutSlidingWindowIsAccepted() throws {
        let c = try LlamaConfig(path: Fixtures.config("mistral-7b-instruct-v0.3"))
        XCTAssertEqual(c.architecture, "MistralForCausalLM")
        XCTAssertEqual(c.modelType, "mistral")
        XCTAssertEqual(c.ropeTheta, 1_000_000)
        XCTAssertEqual(c.vocabSize, 32768)
    }

    func testMistralSlidingWindowIsRefused() throws {
        let path = Fixtures.config("mistral-7b-v0.1")
        XCTAssertThrowsError(try LlamaConfig(path: path)) { error in
            XCTAssertEqual(error as? FileError, FileError(path,
                "sliding-window attention is not supported (sliding_window 4096 < max_position_embeddings 32768)"))
        }
        // MistralConfig's default window applies when the key is absent.
        let json = try Fixtures.configJSON("mistral-7b-v0.1").setting("sliding_window", nil)
        XCTAssertThrowsError(try LlamaConfig(json: json, path: "c.json"))
        // A window covering every position changes nothing.
        XCTAssertNoThrow(try LlamaConfig(json: json.setting("sliding_window", 32768), path: "c.json"))
    }

    /// toJSON writes every field explicitly; reading it back gives the same config.
    func testRoundTripThroughJSON() throws {
        var names = ["llama-7b", "llama-2-7b-hf", "llama-3.1-8b-instruct", "llama-3.2-1b", "tinyllama-1.1b-chat-v1.0",
                     "mistral-7b-instruct-v0.3", "smollm2-135m"].map(Fixtures.config)
        if let stories = try? TestFixtures.shared("models/stories260K/config.json") { names.append(stories) }
        for path in names {
            let c = try LlamaConfig(path: path)
            let text = c.toJSON().serialized(pretty: true)
            XCTAssertEqual(try LlamaConfig(json: JSON.parse(string: text), path: "roundtrip"), c, path)
        }
        let noTokens = try LlamaConfig(json: Fixtures.tinyConfig { $0["bos_token_id"] = .null; $0["eos_token_id"] = .null }, path: "c")
        XCTAssertNil(noTokens.bosTokenID)
        XCTAssertEqual(noTokens.eosTokenID, [])
        XCTAssertEqual(try LlamaConfig(json: noTokens.toJSON(), path: "c"), noTokens)
    }

    /// transformers 5 writes rope_parameters instead of rope_theta + rope_scaling.
    func testRopeParametersSpelling() throws {
        let base = try Fixtures.configJSON("llama-3.1-8b-instruct")
        let old = try LlamaConfig(json: base, path: "old")
        let params: JSON = ["rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192]
        let new = base.setting("rope_theta", nil).setting("rope_scaling", nil).setting("rope_parameters", params)
        XCTAssertEqual(try LlamaConfig(json: new, path: "new"), old)
        // Both spellings present and agreeing (a converted config) is fine.
        XCTAssertEqual(try LlamaConfig(json: base.setting("rope_parameters", params), path: "both"), old)
        let plain = try LlamaConfig(json: Fixtures.tinyConfig { $0["rope_parameters"] = ["rope_type": "default", "rope_theta": 1e6] }, path: "c")
        XCTAssertNil(plain.ropeScaling)
        XCTAssertEqual(plain.ropeTheta, 1e6)
    }

    // MARK: Refusals

    private func assertRefused(_ json: JSON, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try LlamaConfig(json: json, path: "dir/config.json"), file: file, line: line) { error in
            guard let e = error as? FileError else { return XCTFail("not a FileError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.path, "dir/config.json", file: file, line: line)
            XCTAssertTrue(e.message.contains(expected), "\"\(e.message)\" does not contain \"\(expected)\"", file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), "one-line error", file: file, line: line)
        }
    }

    func testUnsupportedArchitecturesNameFileAndArchitecture() {
        for (arch, type) in [("GPT2LMHeadModel", "gpt2"), ("Qwen2ForCausalLM", "qwen2"), ("MixtralForCausalLM", "mixtral")] {
            assertRefused(Fixtures.tinyConfig { $0["architectures"] = [.string(arch)]; $0["model_type"] = .string(type) },
                          "unsupported architecture \"\(arch)\" (model_type \"\(type)\")")
        }
        assertRefused(Fixtures.tinyConfig { $0["architectures"] = nil; $0["model_type"] = "qwen2" }, "unsupported model_type \"qwen2\"")
        assertRefused(Fixtures.tinyConfig { $0["architectures"] = nil; $0["model_type"] = nil }, "neither \"architectures\" nor \"model_type\"")
        assertRefused(Fixtures.tinyConfig { $0["model_type"] = "mistral" }, "does not match model_type \"mistral\"")
        assertRefused(Fixtures.tinyConfig { $0["architectures"] = ["LlamaForCausalLM", "LlamaModel"] }, "lists 2 classes")
        assertRefused(Fixtures.tinyConfig { $0["architectures"] = "LlamaForCausalLM" }, "\"architectures\" must be a list of strings")
        assertRefused(.array([]), "must be a JSON object")
        // Only the identity is needed to derive the other half.
        XCTAssertEqual(try LlamaConfig(json: Fixtures.tinyConfig { $0["architectures"] = nil }, path: "c").architecture, "LlamaForCausalLM")
        XCTAssertEqual(try LlamaConfig(json: Fixtures.tinyConfig { $0["model_type"] = nil }, path: "c").modelType, "llama")
    }

    func testWrongTypesNameTheKey() {
        assertRefused(Fixtures.tinyConfig { $0["hidden_size"] = "4096" }, "\"hidden_size\" must be an integer, found a string (\"4096\")")
        assertRefused(Fixtures.tinyConfig { $0["num_hidden_layers"] = 2.5 }, "\"num_hidden_layers\" must be an integer, found a number (2.5)")
        assertRefused(Fixtures.tinyConfig { $0["rms_norm_eps"] = "1e-5" }, "\"rms_norm_eps\" must be a number")
        assertRefused(Fixtures.tinyConfig { $0["tie_word_embeddings"] = 1 }, "\"tie_word_embeddings\" must be true or false, found an integer (1)")
        assertRefused(Fixtures.tinyConfig { $0["eos_token_id"] = [1, "2"] }, "\"eos_token_id\" must list non-negative integer token ids")
        assertRefused(Fixtures.tinyConfig { $0["bos_token_id"] = -1 }, "\"bos_token_id\" must be a non-negative token id")
        assertRefused(Fixtures.tinyConfig { $0["rope_scaling"] = "llama3" }, "\"rope_scaling\" must be an object")
        assertRefused(Fixtures.tinyConfig { $0["vocab_size"] = nil }, "missing required key \"vocab_size\"")
        // Integral doubles are integers (configs written by some tools use 4096.0).
        XCTAssertEqual(try LlamaConfig(json: Fixtures.tinyConfig { $0["hidden_size"] = 16.0 }, path: "c").hiddenSize, 16)
    }

    func testInconsistentSizes() {
        assertRefused(Fixtures.tinyConfig { $0["hidden_size"] = 0 }, "\"hidden_size\" must be positive, found 0")
        assertRefused(Fixtures.tinyConfig { $0["vocab_size"] = -1 }, "\"vocab_size\" must be positive, found -1")
        assertRefused(Fixtures.tinyConfig { $0["num_key_value_heads"] = 3 }, "num_attention_heads (4) is not a multiple of num_key_value_heads (3)")
        assertRefused(Fixtures.tinyConfig { $0["hidden_size"] = 18 }, "hidden_size (18) is not a multiple of num_attention_heads (4)")
        assertRefused(Fixtures.tinyConfig { $0["head_dim"] = 5 }, "head_dim 5 is odd")
        // Sizes no real model has are refused before anything is derived from them (a
        // 10^11-layer config used to spin building its tensor list).
        assertRefused(Fixtures.tinyConfig { $0["head_dim"] = .int(1 << 61) }, "\"head_dim\" is 2305843009213693952, above the supported maximum 65536")
        assertRefused(Fixtures.tinyConfig { $0["num_hidden_layers"] = .int(100_000_000_000) }, "\"num_hidden_layers\" is 100000000000, above the supported maximum 4096")
        assertRefused(Fixtures.tinyConfig { $0["vocab_size"] = .int(1 << 25) }, "\"vocab_size\" is 33554432, above the supported maximum 16777216")
        assertRefused(Fixtures.tinyConfig { $0["max_position_embeddings"] = .int(1 << 40) }, "above the supported maximum")
        assertRefused(Fixtures.tinyConfig { $0["rms_norm_eps"] = 0 }, "rms_norm_eps must be a positive number")
        assertRefused(Fixtures.tinyConfig { $0["hidden_act"] = "gelu" }, "hidden_act \"gelu\" is not supported")
        assertRefused(Fixtures.tinyConfig { $0["partial_rotary_factor"] = 0.5 }, "partial_rotary_factor 0.5 is not supported")
        // An explicit head_dim need not divide hidden_size.
        XCTAssertEqual(try LlamaConfig(json: Fixtures.tinyConfig { $0["hidden_size"] = 18; $0["head_dim"] = 4 }, path: "c").qProjectionSize, 16)
    }

    func testRotaryScalingRefusals() {
        for kind in ["linear", "dynamic", "yarn", "longrope"] {
            assertRefused(Fixtures.tinyConfig { $0["rope_scaling"] = ["rope_type": .string(kind), "factor": 2.0] },
                          "rotary scaling \"\(kind)\" (rope_scaling.rope_type) is not supported")
        }
        // transformers < 4.45 spelling: "type".
        assertRefused(Fixtures.tinyConfig { $0["rope_scaling"] = ["type": "linear", "factor": 2.0] }, "rotary scaling \"linear\"")
        assertRefused(Fixtures.tinyConfig { $0["rope_scaling"] = ["factor": 2.0] }, "has a factor but no rope_type")
        assertRefused(Fixtures.tinyConfig { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0] },
                      "missing required key \"rope_scaling.original_max_position_embeddings\"")
        assertRefused(Fixtures.tinyConfig { $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 8192] },
                      "high_freq_factor (1.0) must exceed")
        assertRefused(Fixtures.tinyConfig { $0["rope_theta"] = 1e4; $0["rope_parameters"] = ["rope_theta": 5e5] },
                      "rope_theta 10000.0 conflicts with rope_parameters.rope_theta 500000.0")
        assertRefused(Fixtures.tinyConfig {
            $0["rope_scaling"] = ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192]
            $0["rope_parameters"] = ["rope_type": "default"]
        }, "describe different rotary scalings")
        assertRefused(Fixtures.tinyConfig { $0["rope_theta"] = -1.0 }, "rope_theta must be positive")
        XCTAssertNil(try LlamaConfig(json: Fixtures.tinyConfig { $0["rope_scaling"] = ["rope_type": "default"] }, path: "c").ropeScaling)
    }

    func testUnreadableFiles() throws {
        XCTAssertThrowsError(try LlamaConfig(path: "/nonexistent/config.json")) { error in
            XCTAssertEqual((error as? FileError)?.path, "/nonexistent/config.json")
        }
        let bad = try TestFixtures.temporaryDirectory(self) + "/bad.json"
        XCTAssertTrue(FileManager.default.createFile(atPath: bad, contents: Data("{\"hidden_size\": 1,}".utf8)))
        XCTAssertThrowsError(try LlamaConfig(path: bad)) { error in
            let e = error as? FileError
            XCTAssertEqual(e?.path, bad)
            XCTAssertTrue(e?.message.hasPrefix("not valid JSON: invalid JSON at byte") ?? false, "\(error)")
        }
    }
}
