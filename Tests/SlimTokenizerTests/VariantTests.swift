import SlimData
import Foundation
import SlimIO
@testable import SlimTokenizer
import SlimTestSupport
import XCTest

/// Every supported tokenizer.json component against `tokenizers` itself: the golden script
/// patches the real files (other split regexes and behaviours, byte-level options, Metaspace
/// schemes, legacy normalizer, normalizers, added-token flags, templates, no decoder) and
/// records ids and decodes for the tricky strings and a WikiText excerpt.
final class VariantTests: XCTestCase {
    func testVariantsMatchTokenizers() throws {
        let golden = try Goldens.load("golden-variants.json.gz")
        let wiki = try TestFixtures.wikiText2TestText()
        let excerptChars = golden["excerpt_chars"]?.int ?? 0
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: wiki.unicodeScalars.prefix(excerptChars))
        let excerpt = String(scalars)
        XCTAssertEqual(SHA256.hex(Array(excerpt.utf8)), golden["excerpt_sha256"]?.string, "excerpt hash")

        var bases: [String: JSON] = [:]
        let variants = golden["variants"]?.array ?? []
        XCTAssertGreaterThan(variants.count, 20)
        for v in variants {
            let name = v["name"]?.string ?? "?"
            let base = v["base"]?.string ?? ""
            if bases[base] == nil {
                let path = try TestFixtures.shared("models/" + base)
                bases[base] = try Tokenizer.readJSON(path)
            }
            let json = try XCTUnwrap(patched(bases[base]!, v["patch"]), name)
            let tokenizer: Tokenizer
            do {
                tokenizer = try Tokenizer(json: json, path: "\(base) [\(name)]")
            } catch {
                XCTFail("\(name): \(error)")
                continue
            }
            assertSameIDs(tokenizer.encode(excerpt), v["excerpt_ids"]?.intArray ?? [], tokenizer: tokenizer, "\(name) excerpt")
            for (n, c) in (v["cases"]?.array ?? []).enumerated() {
                let t = c["text"]?.string ?? ""
                let label = "\(name) case \(n) \(JSON.string(String(t.prefix(40))).serialized())"
                let expected = c["ids"]?.intArray ?? []
                assertSameIDs(tokenizer.encode(t), expected, tokenizer: tokenizer, label)
                assertSameIDs(tokenizer.encode(t, addSpecialTokens: false), c["ids_plain"]?.intArray ?? [],
                              tokenizer: tokenizer, label + " (no special tokens)")
                XCTAssertEqual(tokenizer.decode(expected), c["decoded"]?.string, "\(label) decode")
                XCTAssertEqual(tokenizer.decode(expected, skipSpecialTokens: true), c["decoded_skip"]?.string,
                               "\(label) decode skipping special tokens")
            }
        }
    }

    /// Applies a golden patch: "set" replaces top-level keys, "model" merges keys into the
    /// model, "add_tokens" appends added tokens.
    private func patched(_ base: JSON, _ patch: JSON?) -> JSON? {
        guard var root = base.object, let patch else { return nil }
        for (k, v) in patch["set"]?.object?.pairs ?? [] { root[k] = v }
        if let m = patch["model"]?.object, var model = root["model"]?.object {
            for (k, v) in m.pairs { model[k] = v }
            root["model"] = .object(model)
        }
        if let extra = patch["add_tokens"]?.array {
            root["added_tokens"] = .array((root["added_tokens"]?.array ?? []) + extra)
        }
        return .object(root)
    }
}
