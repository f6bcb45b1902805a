import SlimData
import Foundation
import SlimIO
import SlimTokenizer
import SlimTestSupport
import XCTest

/// 100% id parity with the reference libraries on the whole WikiText-2 test text (encoded as
/// one string) and on tricky strings, plus decode parity. Goldens come from
/// scripts/reference/tokenizer_goldens.py.
final class GoldenParityTests: XCTestCase {
    /// The evaluation text, built once per test process and checked against the golden's hash.
    private static let wiki: Result<String, Error> = Result { try TestFixtures.wikiText2TestText() }

    private func checkGolden(_ goldenName: String, load: () throws -> Tokenizer) throws {
        let golden = try Goldens.load(goldenName)
        let tokenizer = try load()
        let text = try GoldenParityTests.wiki.get()
        XCTAssertEqual(text.unicodeScalars.count, golden["text_chars"]?.int, "evaluation text length")
        XCTAssertEqual(SHA256.hex(Array(text.utf8)), golden["text_sha256"]?.string, "evaluation text hash")

        let start = Date()
        let ids = tokenizer.encode(text)
        let seconds = Date().timeIntervalSince(start)
        print("\(goldenName): \(ids.count) tokens in \(String(format: "%.3f", seconds)) s (\(tokenizer.kindDescription))")
        assertSameIDs(ids, golden["ids"]?.intArray ?? [], tokenizer: tokenizer, "\(goldenName) WikiText-2")

        for (n, c) in (golden["cases"]?.array ?? []).enumerated() {
            let t = c["text"]?.string ?? ""
            let label = "\(goldenName) case \(n) \(JSON.string(String(t.prefix(40))).serialized())"
            let expected = c["ids"]?.intArray ?? []
            assertSameIDs(tokenizer.encode(t), expected, tokenizer: tokenizer, label)
            assertSameIDs(tokenizer.encode(t, addSpecialTokens: false), c["ids_plain"]?.intArray ?? [],
                          tokenizer: tokenizer, label + " (no special tokens)")
            XCTAssertEqual(tokenizer.decode(expected), c["decoded"]?.string, "\(label) decode")
            XCTAssertEqual(tokenizer.decode(expected, skipSpecialTokens: true), c["decoded_skip"]?.string,
                           "\(label) decode skipping special tokens")
        }
    }

    func testSmolLM2TokenizerJSON() throws {
        let path = try TestFixtures.shared("models/smollm2-135m/tokenizer.json")
        try checkGolden("golden-smollm2-json.json.gz") { try Tokenizer(tokenizerJSONPath: path) }
    }

    func testStories260KTokenizerJSON() throws {
        let path = try TestFixtures.shared("models/stories260K/tokenizer.json")
        try checkGolden("golden-stories260k-json.json.gz") { try Tokenizer(tokenizerJSONPath: path) }
    }

    func testLlama2TokenizerModel() throws {
        let dir = try TestFixtures.shared("models/llama2-tokenizer")
        try checkGolden("golden-llama2-model.json.gz") {
            let t = try Tokenizer.load(directory: dir)
            XCTAssertEqual(t.kindDescription, "SentencePiece BPE (tokenizer.model)")
            return t
        }
    }

    func testLlama2TokenizerJSON() throws {
        let dir = try TestFixtures.shared("models/llama2-tokenizer")
        try checkGolden("golden-llama2-json.json.gz") {
            let t = try Tokenizer.load(directory: dir, preferJSON: true)
            XCTAssertEqual(t.kindDescription, "SentencePiece-style BPE (tokenizer.json)")
            return t
        }
    }
}
