import Foundation
import SlimIO
@testable import SlimTokenizer
import SlimTestSupport
import XCTest

/// SentencePiece features LLaMA-2's model does not exercise, on tiny BPE models trained by
/// `sentencepiece` (committed under Fixtures/ by scripts/reference/tokenizer_goldens.py):
/// a precompiled normalization map with multi-character rules, remove_extra_whitespaces,
/// user-defined and control symbols, unknown pieces without byte fallback (runs merge into
/// one id), treat_whitespace_as_suffix and UNUSED pieces (re-split into their parts).
final class SentencePieceTrainedTests: XCTestCase {
    func testTrainedModelsMatchSentencePiece() throws {
        let golden = try Goldens.load("golden-spm-trained.json.gz")
        let wiki = try TestFixtures.wikiText2TestText()
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: wiki.unicodeScalars.prefix(golden["excerpt_chars"]?.int ?? 0))
        let excerpt = String(scalars)
        let models = golden["models"]?.array ?? []
        XCTAssertEqual(models.count, 3)
        for m in models {
            let name = m["model"]?.string ?? "?"
            let tokenizer = try Tokenizer(sentencePieceModelPath: Goldens.committed(name))
            // sentencepiece's own encode adds no BOS: compare without special tokens.
            assertSameIDs(tokenizer.encode(excerpt, addSpecialTokens: false), m["excerpt_ids"]?.intArray ?? [],
                          tokenizer: tokenizer, "\(name) excerpt")
            for (n, c) in (m["cases"]?.array ?? []).enumerated() {
                let t = c["text"]?.string ?? ""
                let label = "\(name) case \(n) \(JSON.string(String(t.prefix(40))).serialized())"
                let ids = c["ids"]?.intArray ?? []
                assertSameIDs(tokenizer.encode(t, addSpecialTokens: false), ids, tokenizer: tokenizer, label)
                XCTAssertEqual(tokenizer.decode(ids), c["decoded"]?.string, "\(label) decode")
            }
        }
    }
}
