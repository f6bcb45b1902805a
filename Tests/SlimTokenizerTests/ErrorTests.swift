import Foundation
import SlimIO
@testable import SlimTokenizer
import SlimTestSupport
import XCTest

/// Unsupported or malformed tokenizer files fail with an error naming the file and the
/// problem; hostile bytes never crash.
final class ErrorTests: XCTestCase {
    private var tempDir = ""

    override func setUpWithError() throws {
        tempDir = try TestFixtures.temporaryDirectory(self)
    }

    private func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = (tempDir as NSString).appendingPathComponent(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A small valid byte-level BPE tokenizer.json, patched by `edit`.
    private func tinyJSON(_ edit: (inout JSONObject) -> Void = { _ in }) -> JSON {
        var model = JSONObject()
        model["type"] = "BPE"
        model["vocab"] = ["a": 0, "b": 1, "ab": 2, "c": 3]
        model["merges"] = ["a b"]
        var root = JSONObject()
        root["version"] = "1.0"
        root["model"] = .object(model)
        root["pre_tokenizer"] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        edit(&root)
        return .object(root)
    }

    private func assertLoadFails(_ json: JSON, contains fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try write("tokenizer.json", Array(json.serialized().utf8))
        XCTAssertThrowsError(try Tokenizer(tokenizerJSONPath: path), file: file, line: line) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(path), "error should name the file: \(text)", file: file, line: line)
            for f in fragments {
                XCTAssertTrue(text.contains(f), "error should mention \(f): \(text)", file: file, line: line)
            }
        }
    }

    func testTinyJSONLoads() throws {
        let t = try Tokenizer(json: tinyJSON(), path: "tiny")
        XCTAssertEqual(t.encode("abc"), [2, 3])
        XCTAssertEqual(t.decode([2, 3]), "ab c")  // no decoder: HF joins tokens with spaces
    }

    func testUnsupportedModelTypes() throws {
        for type in ["Unigram", "WordPiece", "WordLevel"] {
            try assertLoadFails(tinyJSON { root in
                var m = root["model"]!.object!
                m["type"] = .string(type)
                root["model"] = .object(m)
            }, contains: ["unsupported tokenizer model '\(type)'"])
        }
    }

    func testUnsupportedComponents() throws {
        try assertLoadFails(tinyJSON { $0["pre_tokenizer"] = ["type": "BertPreTokenizer"] },
                            contains: ["unsupported pre-tokenizer 'BertPreTokenizer'"])
        try assertLoadFails(tinyJSON { $0["normalizer"] = ["type": "Precompiled", "precompiled_charsmap": "AAAA"] },
                            contains: ["unsupported normalizer 'Precompiled'"])
        try assertLoadFails(tinyJSON { $0["decoder"] = ["type": "WordPiece", "prefix": "##"] },
                            contains: ["unsupported decoder 'WordPiece'"])
        try assertLoadFails(tinyJSON { $0["post_processor"] = ["type": "Mystery"] },
                            contains: ["unsupported post-processor 'Mystery'"])
        try assertLoadFails(tinyJSON {
            $0["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "\\w+|\\d"], "behavior": "Isolated", "invert": false]
        }, contains: ["unsupported regex pattern"])
        try assertLoadFails(tinyJSON {
            $0["pre_tokenizer"] = ["type": "Split", "pattern": ["String": " "], "behavior": "Sideways", "invert": false]
        }, contains: ["behavior"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["dropout"] = 0.1
            root["model"] = .object(m)
        }, contains: ["dropout"])
    }

    func testMalformedModels() throws {
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["vocab"] = nil
            root["model"] = .object(m)
        }, contains: ["vocab"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["merges"] = ["a z"]
            root["model"] = .object(m)
        }, contains: ["merge #1", "unknown token \"z\""])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["merges"] = ["b a"]
            root["model"] = .object(m)
        }, contains: ["merge #1", "\"ba\"", "not in the vocabulary"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["merges"] = []
            root["model"] = .object(m)
        }, contains: ["no merges", "merges are required"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["merges"] = ["a  b"]
            root["model"] = .object(m)
        }, contains: ["merge #1"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["vocab"] = ["a": -1, "b": 1]
            root["model"] = .object(m)
        }, contains: ["invalid id"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["vocab"] = ["a": 0, "b": 1, "ab": 2, "c": 3_000_000_000]
            root["model"] = .object(m)
        }, contains: ["invalid id"])
        try assertLoadFails(tinyJSON { root in
            var m = root["model"]!.object!
            m["unk_token"] = "<unk>"
            root["model"] = .object(m)
        }, contains: ["unk_token"])
        try assertLoadFails(tinyJSON { $0["post_processor"] = [
            "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "special_tokens": [:]] }, contains: ["<s>"])
    }

    func testMalformedJSONText() throws {
        let path = try write("tokenizer.json", Array("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}}}".utf8))
        XCTAssertThrowsError(try Tokenizer(tokenizerJSONPath: path)) { error in
            XCTAssertTrue(String(describing: error).contains(path))
            XCTAssertTrue(String(describing: error).contains("invalid JSON"))
        }
        let dup = try write("dup.json", Array("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}}".utf8))
        XCTAssertThrowsError(try Tokenizer(tokenizerJSONPath: dup)) { error in
            XCTAssertTrue(String(describing: error).contains("duplicate key"))
        }
        let empty = try write("empty.json", [])
        XCTAssertThrowsError(try Tokenizer(tokenizerJSONPath: empty))
        XCTAssertThrowsError(try Tokenizer(tokenizerJSONPath: (tempDir as NSString).appendingPathComponent("missing.json")))
    }

    func testDirectoryWithoutTokenizer() throws {
        XCTAssertThrowsError(try Tokenizer.load(directory: tempDir)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(self.tempDir) && text.contains("no tokenizer.json or tokenizer.model"), text)
        }
    }

    // MARK: tokenizer.model

    /// Minimal protobuf encoder for hand-made ModelProtos.
    private func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] { varint(UInt64(number << 3 | 2)) + varint(UInt64(payload.count)) + payload }
    private func varintField(_ number: Int, _ v: UInt64) -> [UInt8] { varint(UInt64(number << 3)) + varint(v) }
    private func varint(_ v: UInt64) -> [UInt8] {
        var out: [UInt8] = [], n = v
        repeat {
            out.append(UInt8(n & 0x7F) | (n >= 0x80 ? 0x80 : 0))
            n >>= 7
        } while n > 0
        return out
    }
    private func piece(_ text: String, _ type: Int) -> [UInt8] {
        field(1, field(1, Array(text.utf8)) + [0x15, 0, 0, 0, 0] + varintField(3, UInt64(type)))
    }

    func testUnigramModelIsRefused() throws {
        let proto = piece("<unk>", 2) + piece("a", 1) + field(2, varintField(3, 1))
        let path = try write("unigram.model", proto)
        XCTAssertThrowsError(try Tokenizer(sentencePieceModelPath: path)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(path) && text.contains("unsupported tokenizer model 'Unigram'"), text)
        }
        let noUnk = try write("nounk.model", piece("a", 1) + field(2, varintField(3, 2)))
        XCTAssertThrowsError(try Tokenizer(sentencePieceModelPath: noUnk)) { error in
            XCTAssertTrue(String(describing: error).contains("unknown"))
        }
        let ok = try write("ok.model", piece("<unk>", 2) + piece("a", 1) + piece("b", 1) + piece("ab", 1) + field(2, varintField(3, 2)))
        let t = try Tokenizer(sentencePieceModelPath: ok)
        XCTAssertEqual(t.encode("ab", addSpecialTokens: false), [0, 3])  // unknown dummy-prefix "▁", then "ab"
    }

    /// The in-memory entry point (the fuzz harness's) is the file loader minus the mapping.
    func testModelBytesLoadLikeTheFile() throws {
        let path = Goldens.committed("spm-bpe-nfkc-rules.model")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let fromFile = try Tokenizer(sentencePieceModelPath: path)
        let fromBytes = try bytes.withUnsafeBytes { try Tokenizer(sentencePieceModel: $0, path: "memory.model") }
        let text = "Hello  wörld ﬁne AB① 日本 <sep>"
        XCTAssertEqual(fromBytes.encode(text), fromFile.encode(text))
        XCTAssertThrowsError(try Tokenizer(sentencePieceModel: UnsafeRawBufferPointer(start: nil, count: 0), path: "empty.model")) { error in
            XCTAssertEqual(String(describing: error), "empty.model: empty file")
        }
    }

    /// Every truncation of a real model and many random byte flips either load or throw.
    func testHostileModelBytesNeverCrash() throws {
        let original = try Array(Data(contentsOf: URL(fileURLWithPath: Goldens.committed("spm-bpe-nfkc-rules.model"))))
        var generator = SplitMix(seed: 42)
        var candidates: [[UInt8]] = []
        for cut in stride(from: 0, to: original.count, by: max(1, original.count / 97)) { candidates.append(Array(original[..<cut])) }
        for _ in 0..<150 {
            var b = original
            for _ in 0..<(1 + Int(generator.next() % 8)) {
                b[Int(generator.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: generator.next())
            }
            candidates.append(b)
        }
        var loaded = 0
        for (k, bytes) in candidates.enumerated() {
            let path = try write("hostile-\(k).model", bytes)
            if let t = try? Tokenizer(sentencePieceModelPath: path) {
                loaded += 1
                _ = t.decode(t.encode("Hello  wörld ﬁne AB① 日本 <sep>"))
            }
        }
        XCTAssertGreaterThan(loaded, 0)
    }

    /// Random edits of a tokenizer.json's text either load or throw.
    func testHostileJSONBytesNeverCrash() throws {
        let original = Array(tinyJSON { $0["added_tokens"] = [["id": 4, "content": "<x>", "special": true]] }.serialized().utf8)
        var generator = SplitMix(seed: 7)
        for k in 0..<300 {
            var b = original
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                b[Int(generator.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: generator.next() % 128)
            }
            let path = try write("hostile-\(k).json", b)
            if let t = try? Tokenizer(tokenizerJSONPath: path) {
                _ = t.decode(t.encode("abc <x> ab"))
            }
        }
    }
}

/// Deterministic random numbers for the robustness tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
