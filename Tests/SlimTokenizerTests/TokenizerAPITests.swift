import Foundation
import SlimIO
@testable import SlimTokenizer
import SlimTestSupport
import XCTest

/// Loading rules, special-token ids, lookups and configuration handling of the public API.
final class TokenizerAPITests: XCTestCase {
    private var tempDir = ""

    override func setUpWithError() throws {
        tempDir = try TestFixtures.temporaryDirectory(self)
    }

    private func copy(_ source: String, as name: String) throws {
        try FileManager.default.copyItem(atPath: source, toPath: (tempDir as NSString).appendingPathComponent(name))
    }

    private func writeConfig(_ json: JSON) throws {
        try Data(json.serialized().utf8).write(to: URL(fileURLWithPath: (tempDir as NSString).appendingPathComponent("tokenizer_config.json")))
    }

    func testLoadRulesAndSpecialTokens() throws {
        let llama = try TestFixtures.shared("models/llama2-tokenizer")
        let sp = try Tokenizer.load(directory: llama)
        XCTAssertEqual(sp.kindDescription, "SentencePiece BPE (tokenizer.model)")
        XCTAssertTrue(sp.sourcePath.hasSuffix("tokenizer.model"))
        XCTAssertEqual(sp.bosTokenID, 1)
        XCTAssertEqual(sp.eosTokenID, 2)
        XCTAssertEqual(sp.vocabularySize, 32000)
        XCTAssertEqual(sp.encode(""), [1])
        XCTAssertEqual(sp.encode("", addSpecialTokens: false), [])

        let js = try Tokenizer.load(directory: llama, preferJSON: true)
        XCTAssertTrue(js.sourcePath.hasSuffix("tokenizer.json"))
        XCTAssertEqual(js.bosTokenID, 1, "from the TemplateProcessing prefix")
        XCTAssertEqual(js.eosTokenID, 2, "from the </s> added token")
        XCTAssertEqual(js.vocabularySize, 32000)
        // Canonically equivalent but distinct tokens stay distinct ("ί" U+03AF vs U+1F77).
        XCTAssertEqual(js.id(of: "\u{03AF}"), 30207)
        XCTAssertEqual(js.id(of: "\u{1F77}"), 30873)
        XCTAssertEqual(sp.id(of: "\u{1F77}"), 30873)

        let stories = try Tokenizer.load(directory: try TestFixtures.shared("models/stories260K"))
        XCTAssertEqual(stories.kindDescription, "SentencePiece-style BPE (tokenizer.json)")
        XCTAssertEqual(stories.bosTokenID, 1)
        XCTAssertEqual(stories.eosTokenID, 2)
        XCTAssertEqual(stories.vocabularySize, 512)

        let smol = try Tokenizer.load(directory: try TestFixtures.shared("models/smollm2-135m"))
        XCTAssertEqual(smol.kindDescription, "byte-level BPE (tokenizer.json)")
        XCTAssertEqual(smol.bosTokenID, smol.id(of: "<|im_start|>"))
        XCTAssertEqual(smol.eosTokenID, smol.id(of: "<|im_end|>"))
        XCTAssertEqual(smol.vocabularySize, 49152)
        XCTAssertEqual(smol.encode(""), [])
    }

    func testPieceAndIDRoundTrip() throws {
        let smol = try Tokenizer(tokenizerJSONPath: try TestFixtures.shared("models/smollm2-135m/tokenizer.json"))
        for id in [0, 1, 17, 100, 1000, 49151] {
            let p = try XCTUnwrap(smol.piece(id))
            XCTAssertEqual(smol.id(of: p), id)
        }
        XCTAssertNil(smol.piece(-1))
        XCTAssertNil(smol.piece(49152))
        XCTAssertNil(smol.id(of: "definitely not a token"))
        // Unknown ids are skipped when decoding, as HF does.
        XCTAssertEqual(smol.decode([-5, 1_000_000] + smol.encode("Hello")), "Hello")
    }

    func testSentencePieceConfigFlags() throws {
        try copy(Goldens.committed("spm-bpe-nfkc-rules.model"), as: "tokenizer.model")
        let plain = try Tokenizer.load(directory: tempDir)
        let body = plain.encode("Hello world", addSpecialTokens: false)
        XCTAssertEqual(plain.encode("Hello world"), [try XCTUnwrap(plain.bosTokenID)] + body)

        try writeConfig(["add_bos_token": false, "add_eos_token": true, "bos_token": ["content": "<s>"], "eos_token": "</s>"])
        let configured = try Tokenizer.load(directory: tempDir)
        XCTAssertEqual(configured.encode("Hello world"), body + [try XCTUnwrap(configured.eosTokenID)])
    }

    func testLlamaClassFlagsRebuildTemplate() throws {
        try copy(try TestFixtures.shared("models/stories260K/tokenizer.json"), as: "tokenizer.json")
        let base = try Tokenizer.load(directory: tempDir)
        let body = base.encode("Once upon a time", addSpecialTokens: false)
        XCTAssertEqual(base.encode("Once upon a time"), [1] + body)
        try writeConfig(["tokenizer_class": "LlamaTokenizer", "add_bos_token": false, "add_eos_token": true,
                         "bos_token": "<s>", "eos_token": "</s>"])
        XCTAssertEqual(try Tokenizer.load(directory: tempDir).encode("Once upon a time"), body + [2])
    }

    /// A tokenizer built from an in-memory SentencePiece vocabulary (the GGUF import path)
    /// behaves exactly like the tokenizer.model it came from.
    func testInMemorySentencePieceVocabulary() throws {
        let path = try TestFixtures.shared("models/llama2-tokenizer/tokenizer.model")
        let model = try SentencePieceModel.load(path: path)
        let vocabulary = SentencePieceVocabulary(pieces: model.pieceStrings, scores: model.scores, types: model.types,
                                                 byteFallback: true)
        let fromVocabulary = try Tokenizer(sentencePiece: vocabulary, path: "memory")
        let fromFile = try Tokenizer(sentencePieceModelPath: path)
        for text in ["Hello world", "  two  spaces", "日本語 \u{1F600}", "<s>x</s>", "", "12345"] {
            XCTAssertEqual(fromVocabulary.encode(text), fromFile.encode(text), text)
        }
        XCTAssertThrowsError(try Tokenizer(sentencePiece: SentencePieceVocabulary(pieces: ["a"], scores: [], types: [.normal], byteFallback: false), path: "bad"))
    }

    func testConcurrentEncodingIsConsistent() throws {
        let smol = try Tokenizer(tokenizerJSONPath: try TestFixtures.shared("models/smollm2-135m/tokenizer.json"))
        let texts = (0..<16).map { "Sample \($0): the quick brown fox jumps over the lazy dog \($0 * 7919) times." }
        let expected = texts.map { smol.encode($0) }
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var values: [[Int]]
            init(_ n: Int) { values = Array(repeating: [], count: n) }
        }
        let results = Results(texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count * 4) { k in
            let i = k % texts.count
            let ids = smol.encode(texts[i])
            results.lock.lock()
            if k < texts.count { results.values[i] = ids } else { XCTAssertEqual(ids, expected[i]) }
            results.lock.unlock()
        }
        XCTAssertEqual(results.values, expected)
    }
}
