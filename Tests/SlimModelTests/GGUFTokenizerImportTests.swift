import Foundation
import SlimTestSupport
import XCTest
import SlimIO
import SlimTokenizer
@testable import SlimModel

/// tokenizer.json / tokenizer_config.json rebuilt from GGUF metadata, against the shared
/// Hugging Face files of the same models.
final class GGUFTokenizerImportTests: XCTestCase {
    let tmp = TemporaryDirectory()

    /// `json` with `model.unk_token` replaced.
    func withUnkToken(_ json: JSON, _ unk: JSON) throws -> JSON {
        var root = try XCTUnwrap(json.object)
        var model = try XCTUnwrap(root["model"]?.object)
        model["unk_token"] = unk
        root["model"] = .object(model)
        return .object(root)
    }

    // MARK: - SentencePiece (stories260K)

    func testStoriesTokenizerEqualsSharedTokenizerJSON() throws {
        let model = try GGUFImport(path: TestFixtures.stories260KGGUF())
        let shared = try ReadFile.json(TestFixtures.stories260KDir() + "/tokenizer.json")
        // Same vocabulary, merges (derived from scores), added tokens, pre-tokenizer,
        // post-processor and decoder; only unk_token is deliberately set (see GGUFTokenizerBuilder).
        XCTAssertEqual(model.tokenizerJSON["model"]?["unk_token"], .string("<unk>"))
        XCTAssertEqual(shared["model"]?["unk_token"], .null)
        XCTAssertEqual(try withUnkToken(model.tokenizerJSON, .null), shared)
    }

    func testStoriesTokenizerConfig() throws {
        let c = try GGUFImport(path: TestFixtures.stories260KGGUF()).tokenizerConfig
        let shared = try ReadFile.json(TestFixtures.stories260KDir() + "/tokenizer_config.json")
        for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            XCTAssertEqual(c[key], shared[key], key)
        }
        XCTAssertEqual(c["add_bos_token"], .bool(true))
        XCTAssertEqual(c["add_eos_token"], .bool(false))
        XCTAssertEqual(c["model_max_length"], .int(2048))
    }

    // MARK: - Byte-level BPE (SmolLM2)

    func testSmolLM2TokenizerEqualsSharedTokenizerJSON() throws {
        let model = try GGUFImport(path: try TestFixtures.smollm2GGUF())
        let dir = try TestFixtures.shared("models/smollm2-135m")
        XCTAssertEqual(model.tokenizerJSON, try ReadFile.json(dir + "/tokenizer.json"))
        let shared = try ReadFile.json(dir + "/tokenizer_config.json")
        for key in ["add_bos_token", "add_eos_token", "bos_token", "eos_token", "unk_token", "pad_token", "model_max_length"] {
            XCTAssertEqual(model.tokenizerConfig[key], shared[key], key)
        }
        XCTAssertNotNil(model.tokenizerConfig["chat_template"]?.string)
    }

    // MARK: - Encoding parity

    /// Short edge cases plus about 5,000 characters of WikiText-2 test text.
    func sampleTexts() throws -> [String] {
        let data = try ReadFile.bytes(try TestFixtures.shared("data/wikitext-2-raw/wiki.test.raw"))
        let wiki = String(String(decoding: data.prefix(8000), as: UTF8.self).prefix(5000))
        return [
            "Once upon a time", " leading space", "trailing space ", "two  spaces\tand\ttabs\n\nnewlines",
            "Numbers 1234567 and 3.14159, dates 2024-06-11.", "Ünïcödé — “quotes” 日本語 🙂 ½",
            "<s>special</s> <|im_start|>user<|im_end|>", "", wiki,
        ]
    }

    func assertSameIDs(_ got: Tokenizer, _ want: Tokenizer, file: StaticString = #filePath, line: UInt = #line) throws {
        for text in try sampleTexts() {
            for special in [true, false] {
                XCTAssertEqual(got.encode(text, addSpecialTokens: special), want.encode(text, addSpecialTokens: special),
                               "\(text.prefix(40))… (special tokens: \(special))", file: file, line: line)
            }
        }
    }

    func testStoriesTokenizerEncodesLikeSharedTokenizer() throws {
        let model = try GGUFImport(path: TestFixtures.stories260KGGUF())
        let shared = try Tokenizer(tokenizerJSONPath: TestFixtures.stories260KDir() + "/tokenizer.json")
        try assertSameIDs(try Tokenizer(json: model.tokenizerJSON, path: TestFixtures.stories260KGGUF()), shared)
        // The written directory loads (tokenizer_config.json included) to the same tokenizer.
        let out = tmp.path + "/stories"
        try model.write(directory: out, dtype: .f16)
        try assertSameIDs(try Tokenizer.load(directory: out), try Tokenizer.load(directory: TestFixtures.stories260KDir()))
        XCTAssertEqual(shared.encode("Once upon a time").first, 1, "BOS is added")
    }

    func testSmolLM2TokenizerEncodesLikeSharedTokenizer() throws {
        let model = try GGUFImport(path: try TestFixtures.smollm2GGUF())
        let shared = try Tokenizer(tokenizerJSONPath: TestFixtures.shared("models/smollm2-135m") + "/tokenizer.json")
        try assertSameIDs(try Tokenizer(json: model.tokenizerJSON, path: "smollm2.gguf"), shared)
    }

    func testLlama3StyleFixtureEncodes() throws {
        // Vocabulary of tiny-llama.gguf: 0 <|begin_of_text|>, 1 <|end_of_text|>, 2 <|user|>,
        // 3…18 "a"…"p", 19 "Ġ", 20 "Ċ", 21 "!", 22 ".", 23 ab, 24 cd, 25 Ġa, 26 abcd, 27 ef,
        // 28 Ġab, 29 gh, 30 Ġabcd, 31 ij. The Llama 3 split gives "abcd" | " ab", both whole
        // tokens (ignore_merges), and BOS is prepended. (HF tokenizers agrees on all three.)
        let model = try GGUFImport(path: TestFixtures.committed("SlimIOTests", "gguf/tiny-llama.gguf"))
        let t = try Tokenizer(json: model.tokenizerJSON, path: "tiny-llama.gguf")
        XCTAssertEqual(t.encode("abcd ab"), [0, 26, 28])
        XCTAssertEqual(t.encode("ab<|user|>ef!"), [0, 23, 2, 27, 21])
        XCTAssertEqual(t.encode("ab\ncd.", addSpecialTokens: false), [23, 20, 24, 22])
    }

    // MARK: - Merge derivation

    func testSentencePieceMergesFollowTransformersGenerateMerges() {
        // Pieces in id order with scores. "abc" splits as a+bc and ab+c (ids of the left
        // pieces order them); equal scores order by longer left piece first, then longer right.
        let tokens = ["<unk>", "a", "b", "c", "ab", "bc", "abc", "▁", "▁a", "▁ab"]
        let scores: [Float] = [0, 0, 0, 0, -1, -1, -2, 0, -1, -3]
        let merges = GGUFTokenizerBuilder.sentencePieceMerges(tokens: tokens, scores: scores)
        let expected: [(String, String)] = [
            ("a", "b"), ("b", "c"), ("▁", "a"),  // score -1, all 1+1 code points, piece order
            ("ab", "c"), ("a", "bc"),             // score -2: left length 2 before 1
            ("▁a", "b"), ("▁", "ab"),             // score -3
        ]
        XCTAssertEqual(merges.map { "\($0.0) \($0.1)" }, expected.map { "\($0.0) \($0.1)" })
    }

    // MARK: - Byte-level variants and special ids (committed fixture and hand-made files)

    func testLlama3PreTokenizerUserDefinedTokensAndOutOfRangeIDs() throws {
        let model = try GGUFImport(path: TestFixtures.committed("SlimIOTests", "gguf/tiny-llama.gguf"))
        let t = model.tokenizerJSON
        XCTAssertEqual(t["pre_tokenizer"]?["pretokenizers"]?[0]?["type"], .string("Split"))
        XCTAssertEqual(t["pre_tokenizer"]?["pretokenizers"]?[0]?["pattern"]?["Regex"], .string(GGUFTokenizerBuilder.llama3Regex))
        XCTAssertEqual(t["pre_tokenizer"]?["pretokenizers"]?[1]?["use_regex"], .bool(false))
        XCTAssertEqual(t["model"]?["ignore_merges"], .bool(true))
        XCTAssertEqual(t["model"]?["merges"]?[3], .array(["ab", "cd"]))
        let added = try XCTUnwrap(t["added_tokens"]?.array)
        XCTAssertEqual(added.map { $0["content"] }, ["<|begin_of_text|>", "<|end_of_text|>", "<|user|>"])
        XCTAssertEqual(added.map { $0["special"] }, [true, true, false])
        // Llama 3 family adds BOS by default; padding id 0xFFFFFFFF is ignored.
        XCTAssertEqual(t["post_processor"]?["single"]?[0]?["SpecialToken"]?["id"], .string("<|begin_of_text|>"))
        XCTAssertEqual(model.tokenizerConfig["add_bos_token"], .bool(true))
        XCTAssertEqual(model.tokenizerConfig["pad_token"], .null)
        XCTAssertEqual(model.tokenizerConfig["tokenizer_class"], .string("PreTrainedTokenizerFast"))
    }

    func testAddEOSAndNoSpacePrefixShapeTheSentencePieceTokenizer() throws {
        let path = try makeTinyLlamaGGUF(in: tmp) { w in
            w.set("tokenizer.ggml.add_eos_token", .bool(true))
            w.set("tokenizer.ggml.add_space_prefix", .bool(false))
            w.set("tokenizer.ggml.padding_token_id", .uint32(0xFFFF_FFFF))
        }
        let model = try GGUFImport(path: path)
        let t = model.tokenizerJSON
        XCTAssertEqual(t["pre_tokenizer"]?["prepend_scheme"], .string("never"))
        let single = try XCTUnwrap(t["post_processor"]?["single"]?.array)
        XCTAssertEqual(single.count, 3)
        XCTAssertEqual(single[2]["SpecialToken"]?["id"], .string("</s>"))
        XCTAssertEqual(t["post_processor"]?["pair"]?.array?.count, 6)
        XCTAssertEqual(t["post_processor"]?["special_tokens"]?.object?.keys, ["<s>", "</s>"])
        XCTAssertEqual(t["decoder"]?["decoders"]?.array?.count, 3, "no Strip without a space prefix")
        XCTAssertEqual(model.tokenizerConfig["add_eos_token"], .bool(true))
        XCTAssertEqual(model.tokenizerConfig["pad_token"], .null)
    }

    func testTokenizerRefusals() throws {
        func message(_ edit: @escaping (inout GGUFWriter) throws -> Void) throws -> String {
            let path = try makeTinyLlamaGGUF(in: tmp, name: "r\(UInt32.random(in: 0...UInt32.max)).gguf", edit: edit)
            return importError { _ = try GGUFImport(path: path) }
        }
        XCTAssertTrue(try message { $0.set("tokenizer.ggml.model", .string("bert")) }.contains("unsupported tokenizer.ggml.model \"bert\""))
        XCTAssertTrue(try message { w in
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.pre", .string("qwen2"))
        }.contains("unsupported tokenizer.ggml.pre \"qwen2\""))
        XCTAssertTrue(try message { w in
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.merges", .array([.string("a")]))
        }.contains("tokenizer.ggml.merges[0]"))
        XCTAssertTrue(try message { w in
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.merges", .array([.string("<s> </s>")]))
        }.contains("not in the vocabulary"))
        XCTAssertTrue(try message { $0.set("tokenizer.ggml.scores", .array([.float32(0)])) }.contains("1 entries for 4 tokens"))
        XCTAssertTrue(try message { $0.set("tokenizer.ggml.scores", .array([0, 0, .nan, 0].map { .float32($0) })) }.contains("NaN"))
        XCTAssertTrue(try message { $0.set("tokenizer.ggml.tokens", .array([])) }.contains("tokenizer.ggml.tokens"))
        XCTAssertTrue(try message { w in
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.merges", .array([]))
            w.set("tokenizer.ggml.add_bos_token", .bool(true))
        }.contains("adds a BOS token but tokenizer.ggml.bos_token_id names none"))
    }

    func testOutOfRangeSentencePieceIDsFallBackToLlamaCppDefaults() throws {
        let path = try makeTinyLlamaGGUF(in: tmp) { w in
            w.set("tokenizer.ggml.bos_token_id", .uint32(0xFFFF_FFFF))
            w.set("tokenizer.ggml.eos_token_id", .uint32(3))
            w.set("tokenizer.ggml.unknown_token_id", .int32(-1))
        }
        let model = try GGUFImport(path: path)
        XCTAssertEqual(model.tokenizerConfig["bos_token"], .string("<s>"))
        XCTAssertEqual(model.tokenizerConfig["eos_token"], .string("\u{2581}a"))
        XCTAssertEqual(model.tokenizerConfig["unk_token"], .string("<unk>"))
        // config.json mirrors the converter: the raw key, null when it is not a vocabulary id.
        XCTAssertEqual(model.config["bos_token_id"], .null)
        XCTAssertEqual(model.config["eos_token_id"], .int(3))
    }
}
