import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimModel

final class ModelDirectoryTests: XCTestCase {
    private var temp: String!

    override func setUpWithError() throws {
        temp = try TestFixtures.temporaryDirectory(self)
    }

    /// A directory in `temp` with the given config JSON and a link to stories260K's weights.
    private func modelDir(_ name: String, config: JSON?, linkWeights: Bool = true) throws -> String {
        let stories = try TestFixtures.shared("models/stories260K")
        let dir = temp + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if let config {
            XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/config.json", contents: Data(config.serialized().utf8)))
        }
        if linkWeights {
            try FileManager.default.createSymbolicLink(atPath: dir + "/model.safetensors", withDestinationPath: stories + "/model.safetensors")
        }
        return dir
    }

    private func storiesConfig() throws -> JSON {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: try TestFixtures.shared("models/stories260K/config.json")))
        return try JSON.parse(Array(data))
    }

    // MARK: Real models

    func testStories260KDirectory() throws {
        let dir = try TestFixtures.shared("models/stories260K")
        let model = try LoadedModel(path: dir)
        XCTAssertEqual(model.format, .safetensors)
        XCTAssertEqual(model.location, dir)
        XCTAssertEqual(model.config.numHiddenLayers, 5)
        XCTAssertEqual(model.weights.tensorNames.count, 48)
        // The layout's count equals the elements actually stored.
        let stored = model.weights.tensorNames.reduce(0) { $0 + (model.weights.tensor($1)?.elementCount ?? 0) }
        XCTAssertEqual(model.parameterCount, stored)
        XCTAssertEqual(model.layout.linearModules.count, 35)

        // The config.json or weights file of the directory means the directory.
        XCTAssertEqual(try LoadedModel(path: dir + "/config.json").location, dir)
        XCTAssertEqual(try LoadedModel(path: dir + "/model.safetensors").parameterCount, stored)
    }

    func testStories260KGGUF() throws {
        let path = try TestFixtures.shared("models/stories260K-gguf/stories260K-f32.gguf")
        let gguf = try LoadedModel(path: path)
        XCTAssertEqual(gguf.format, .gguf)
        let hf = try LoadedModel(path: try TestFixtures.shared("models/stories260K"))
        XCTAssertEqual(gguf.config.hiddenSize, hf.config.hiddenSize)
        XCTAssertEqual(gguf.config.numKeyValueHeads, hf.config.numKeyValueHeads)
        XCTAssertEqual(gguf.config.intermediateSize, hf.config.intermediateSize)
        XCTAssertEqual(gguf.config.vocabSize, hf.config.vocabSize)
        XCTAssertEqual(gguf.parameterCount, hf.parameterCount)
        XCTAssertEqual(Set(gguf.weights.tensorNames), Set(hf.weights.tensorNames))
    }

    /// The directory's tokenizer files and the vocabulary embedded in the GGUF agree.
    func testTokenizerFromDirectoryAndGGUF() throws {
        let hf = try LoadedModel(path: try TestFixtures.shared("models/stories260K")).tokenizer()
        let gguf = try LoadedModel(path: try TestFixtures.shared("models/stories260K-gguf/stories260K-f32.gguf")).tokenizer()
        let text = "Once upon a time, there was a little girl named Lily."
        let ids = hf.encode(text, addSpecialTokens: true)
        XCTAssertEqual(ids.first, 1, "BOS first")
        XCTAssertGreaterThan(ids.count, 5)
        XCTAssertEqual(gguf.encode(text, addSpecialTokens: true), ids)
    }

    func testSmolLM2() throws {
        let dir = try TestFixtures.smollm2Dir()
        let model = try LoadedModel(path: dir)
        XCTAssertTrue(model.config.tieWordEmbeddings)
        XCTAssertEqual(model.config.numHiddenLayers, 30)
        XCTAssertEqual(model.parameterCount, 134_515_008)
        XCTAssertEqual(model.layout.linearModules.count, 210)
    }

    // MARK: Errors

    func testMissingPathsAndFiles() throws {
        XCTAssertThrowsError(try LoadedModel(path: temp + "/nope")) { error in
            XCTAssertEqual((error as? FileError)?.path, self.temp + "/nope")
        }
        let empty = try modelDir("empty", config: nil, linkWeights: false)
        XCTAssertThrowsError(try LoadedModel(path: empty)) { error in
            XCTAssertEqual(error as? FileError, FileError(empty, "no config.json: not a Hugging Face model directory (a .gguf file can be given instead)"))
        }
        let noWeights = try modelDir("noweights", config: try storiesConfig(), linkWeights: false)
        XCTAssertThrowsError(try LoadedModel(path: noWeights)) { error in
            XCTAssertEqual(error as? FileError, FileError(noWeights, "no weights: expected model.safetensors or model.safetensors.index.json next to config.json"))
        }
        XCTAssertTrue(FileManager.default.createFile(atPath: noWeights + "/pytorch_model.bin", contents: Data([0])))
        XCTAssertThrowsError(try LoadedModel(path: noWeights)) { error in
            XCTAssertTrue("\(error)".contains("found PyTorch .bin/.pt weights"), "\(error)")
        }
        let text = temp + "/notes.txt"
        XCTAssertTrue(FileManager.default.createFile(atPath: text, contents: Data("x".utf8)))
        XCTAssertThrowsError(try LoadedModel(path: text)) { error in
            XCTAssertTrue("\(error)".hasPrefix(text + ": not a model"), "\(error)")
        }
    }

    func testUnsupportedArchitectureIsReportedBeforeWeights() throws {
        let config = try storiesConfig().setting("architectures", ["Qwen2ForCausalLM"]).setting("model_type", "qwen2")
        let dir = try modelDir("qwen", config: config, linkWeights: false)
        XCTAssertThrowsError(try LoadedModel(path: dir)) { error in
            XCTAssertEqual((error as? FileError)?.path, dir + "/config.json")
            XCTAssertTrue("\(error)".contains("unsupported architecture \"Qwen2ForCausalLM\""), "\(error)")
        }
    }

    func testWeightsOfAnotherShapeAreRefused() throws {
        // stories260K weights under a config that claims 4 layers: layer 4 is unexpected.
        let dir = try modelDir("fewer-layers", config: try storiesConfig().setting("num_hidden_layers", 4))
        XCTAssertThrowsError(try LoadedModel(path: dir)) { error in
            let e = error as? FileError
            XCTAssertEqual(e?.path, dir + "/model.safetensors")
            XCTAssertTrue(e?.message.contains("9 unexpected: unexpected tensor model.layers.4.") ?? false, "\(error)")
        }
        // Tied classifier claimed, but the stored lm_head has the embedding's shape: tolerated.
        let tied = try modelDir("tied", config: try storiesConfig().setting("tie_word_embeddings", true))
        XCTAssertEqual(try LoadedModel(path: tied).parameterCount, try LoadedModel(path: try TestFixtures.shared("models/stories260K")).parameterCount - 512 * 64)
    }
}
