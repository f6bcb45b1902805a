import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimModel
@testable import SlimTokenizer

/// GGUF "llama" vocabularies loaded directly run SentencePiece's algorithm on the stored
/// scores (as llama.cpp does), and vocabulary pieces are keyed by their exact code points.
final class GGUFSentencePieceTokenizerTests: XCTestCase {
    let tmp = TemporaryDirectory()

    // MARK: - LLaMA-2 vocabulary against the sentencepiece golden

    /// A llama GGUF (hidden 8, one layer) whose tokenizer metadata holds the pieces, scores and
    /// types of ../shared/models/llama2-tokenizer/tokenizer.model.
    private func llama2VocabularyGGUF() throws -> String {
        let model = try SentencePieceModel.load(path: try TestFixtures.shared("models/llama2-tokenizer/tokenizer.model"))
        let vocab = model.pieceStrings.count
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.embedding_length", .uint32(8))
        w.set("llama.feed_forward_length", .uint32(8))
        w.set("llama.block_count", .uint32(1))
        w.set("llama.attention.head_count", .uint32(2))
        w.set("llama.attention.head_count_kv", .uint32(1))
        w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("tokenizer.ggml.model", .string("llama"))
        w.set("tokenizer.ggml.tokens", .array(model.pieceStrings.map { .string($0) }))
        w.set("tokenizer.ggml.scores", .array(model.scores.map { .float32($0) }))
        w.set("tokenizer.ggml.token_type", .array(model.types.map { .int32(Int32($0.rawValue)) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("tokenizer.ggml.unknown_token_id", .uint32(0))
        // ggml dims: ne0 (input features) first.
        let tensors: [(String, [Int])] = [
            ("token_embd.weight", [8, vocab]), ("output_norm.weight", [8]), ("output.weight", [8, vocab]),
            ("blk.0.attn_norm.weight", [8]), ("blk.0.ffn_norm.weight", [8]), ("blk.0.attn_q.weight", [8, 8]),
            ("blk.0.attn_k.weight", [8, 4]), ("blk.0.attn_v.weight", [8, 4]), ("blk.0.attn_output.weight", [8, 8]),
            ("blk.0.ffn_gate.weight", [8, 8]), ("blk.0.ffn_up.weight", [8, 8]), ("blk.0.ffn_down.weight", [8, 8]),
        ]
        for (name, dims) in tensors {
            try w.addTensor(name: name, dims: dims, floats: [Float](repeating: 0.5, count: dims.reduce(1, *)))
        }
        let path = tmp.path + "/llama2-vocab.gguf"
        try w.write(to: path)
        return path
    }

    /// Fails at the first differing id with the ids around it.
    private func assertSameIDs(_ got: [Int], _ want: [Int], _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        guard got != want else { return }
        let n = min(got.count, want.count)
        let first = (0..<n).first { got[$0] != want[$0] } ?? n
        XCTFail("\(label): ids differ at \(first) (got \(got.count), expected \(want.count)): "
            + "got \(got[max(0, first - 4)..<min(got.count, first + 4)]), expected \(want[max(0, first - 4)..<min(want.count, first + 4)])",
            file: file, line: line)
    }

    private func golden(_ name: String) throws -> JSON {
        try JSON.parse(try Gzip.decompressFile(TestFixtures.committed("SlimTokenizerTests", name)))
    }

    /// The GGUF loaded directly tokenizes WikiText-2 (whole test split) and the golden's edge
    /// cases exactly as sentencepiece does with tokenizer.model, including at runs of spaces
    /// where the merge-based tokenizer.json differs.
    func testLlama2VocabularyLoadedDirectlyMatchesSentencePiece() throws {
        let path = try llama2VocabularyGGUF()
        let loaded = try LoadedModel(path: path)
        let tokenizer = try loaded.tokenizer()
        XCTAssertEqual(tokenizer.kindDescription, "SentencePiece BPE (embedded vocabulary)")
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)

        let golden = try golden("golden-llama2-model.json.gz")
        let text = try TestFixtures.wikiText2TestText()
        XCTAssertEqual(text.unicodeScalars.count, golden["text_chars"]?.int, "evaluation text length")
        let want = (golden["ids"]?.array ?? []).compactMap(\.int)
        XCTAssertGreaterThan(want.count, 300_000)
        assertSameIDs(tokenizer.encode(text), want, "WikiText-2")
        for (n, c) in (golden["cases"]?.array ?? []).enumerated() {
            let t = c["text"]?.string ?? ""
            assertSameIDs(tokenizer.encode(t), (c["ids"]?.array ?? []).compactMap(\.int), "case \(n)")
            assertSameIDs(tokenizer.encode(t, addSpecialTokens: false), (c["ids_plain"]?.array ?? []).compactMap(\.int),
                          "case \(n) without special tokens")
            XCTAssertEqual(tokenizer.decode((c["ids"]?.array ?? []).compactMap(\.int)), c["decoded"]?.string, "case \(n) decode")
        }

        // Runs of leading spaces: sentencepiece (tokenizer.model, golden-checked in
        // SlimTokenizerTests) keeps the dummy prefix as its own "▁"; the merge-based
        // tokenizer.json that `convert` writes (preferJSON) does not, so it must differ here
        // while the directly loaded GGUF agrees.
        let reference = try Tokenizer(sentencePieceModelPath: try TestFixtures.shared("models/llama2-tokenizer/tokenizer.model"))
        let json = try loaded.tokenizer(preferJSON: true)
        XCTAssertEqual(json.kindDescription, "SentencePiece-style BPE (tokenizer.json)")
        var jsonDiffers = false
        for k in 1...12 {
            for t in [String(repeating: " ", count: k) + "x", "a" + String(repeating: " ", count: k) + "b", String(repeating: " ", count: k)] {
                XCTAssertEqual(tokenizer.encode(t), reference.encode(t), JSON.string(t).serialized())
                jsonDiffers = jsonDiffers || json.encode(t) != reference.encode(t)
            }
        }
        XCTAssertTrue(jsonDiffers, "the merge-based tokenizer.json should differ from sentencepiece at leading spaces")
    }

    // MARK: - Canonically equivalent pieces

    /// "ί" U+03AF and "ί" U+1F77 are canonically equivalent: Swift's String == says they are
    /// equal, tokenizers (and Python) keep them apart.
    private static let tonos = "\u{03AF}", oxia = "\u{1F77}"

    /// A SentencePiece GGUF whose vocabulary holds both forms, alone and after "a".
    private func equivalentPiecesGGUF() throws -> String {
        let tokens = ["<unk>", "<s>", "</s>", "a", Self.tonos, Self.oxia, "a" + Self.tonos, "a" + Self.oxia]
        return try makeTinyLlamaGGUF(in: tmp, name: "equivalent.gguf", omit: ["token_embd.weight"]) { w in
            w.set("tokenizer.ggml.tokens", .array(tokens.map { .string($0) }))
            w.set("tokenizer.ggml.scores", .array([0, 0, 0, -1, -1, -1, -2, -3].map { .float32($0) }))
            w.set("tokenizer.ggml.token_type", .array([2, 3, 3, 1, 1, 1, 1, 1].map { .int32($0) }))
            w.set("tokenizer.ggml.add_space_prefix", .bool(false))
            try w.addTensor(name: "token_embd.weight", dims: [64, tokens.count], floats: [Float](repeating: 0, count: 64 * tokens.count))
        }
    }

    func testCanonicallyEquivalentPiecesStayDistinct() throws {
        XCTAssertEqual("a" + Self.tonos, "a" + Self.oxia, "precondition: Swift String == merges them")
        let path = try equivalentPiecesGGUF()

        // Merges derived from scores: one per piece, both forms present.
        let tokens = ["<unk>", "a", Self.tonos, Self.oxia, "a" + Self.tonos, "a" + Self.oxia]
        let merges = GGUFTokenizerBuilder.sentencePieceMerges(tokens: tokens, scores: [0, -1, -1, -1, -2, -3])
        XCTAssertEqual(merges.map { Array(($0.0 + "|" + $0.1).unicodeScalars) },
                       [Array(("a|" + Self.tonos).unicodeScalars), Array(("a|" + Self.oxia).unicodeScalars)])

        let model = try GGUFImport(path: path)
        XCTAssertEqual(model.tokenizerJSON["model"]?["vocab"]?.object?.count, 8)
        let direct = try LoadedModel(path: path).tokenizer()
        let viaJSON = try Tokenizer(json: model.tokenizerJSON, path: path)
        for t in [direct, viaJSON] {
            XCTAssertEqual(t.encode("a" + Self.tonos, addSpecialTokens: false), [6], t.kindDescription)
            XCTAssertEqual(t.encode("a" + Self.oxia, addSpecialTokens: false), [7], t.kindDescription)
            XCTAssertEqual(t.encode(Self.oxia + "a" + Self.tonos, addSpecialTokens: false), [5, 6], t.kindDescription)
            XCTAssertEqual(t.id(of: Self.oxia), 5)
            XCTAssertEqual(t.piece(7).map { Array($0.unicodeScalars) }, Array(("a" + Self.oxia).unicodeScalars))
        }
    }

    func testByteLevelMergeNamingOnlyAnEquivalentPieceIsRefused() throws {
        let path = try makeTinyLlamaGGUF(in: tmp, name: "gpt2-equivalent.gguf") { w in
            w.set("tokenizer.ggml.model", .string("gpt2"))
            w.set("tokenizer.ggml.tokens", .array(["a", Self.tonos, "a" + Self.tonos, "b"].map { .string($0) }))
            w.set("tokenizer.ggml.merges", .array([.string("a " + Self.oxia)]))
        }
        let message = importError { _ = try GGUFImport(path: path) }
        XCTAssertTrue(message.contains("tokenizer.ggml.merges[0]") && message.contains("not in the vocabulary"), message)
    }

    func testUnknownTokenTypeIsRefusedWhenLoadingDirectly() throws {
        let path = try makeTinyLlamaGGUF(in: tmp, name: "bad-type.gguf") { w in
            w.set("tokenizer.ggml.token_type", .array([2, 3, 3, 9].map { .int32($0) }))
        }
        let message = importError { _ = try LoadedModel(path: path).tokenizer() }
        XCTAssertTrue(message.contains(path) && message.contains("tokenizer.ggml.token_type[3] is 9"), message)
    }
}
