import Foundation
import SlimData
import SlimIO
import SlimTestSupport
import SlimTokenizer
import XCTest
@testable import SlimPipeline

/// Calibration windows against the reference libraries (CPython `random` + HF `tokenizers`):
/// goldens from scripts/reference/calibration_windows_golden.py.
final class CalibrationGoldenTests: XCTestCase {
    func golden() throws -> JSON {
        try JSON.parse(try TestFixtures.committedBytes("SlimPipelineTests", "calibration_windows_golden.json"))
    }

    /// "1,2,3;4,5,6": the digest the golden script records.
    static func digest(_ windows: [[Int]]) -> String {
        SHA256.hex(windows.map { $0.map(String.init).joined(separator: ",") }.joined(separator: ";"))
    }

    /// SliM-LLM's get_wikitext2: train rows joined with " ", tokenized once, CPython offsets.
    func testWikiText2WindowsMatchTheReference() throws {
        let g = try XCTUnwrap(try golden()["wikitext2"])
        let tokenizer = try Tokenizer.load(directory: try TestFixtures.shared("models/smollm2-135m"))
        let set = try CalibrationSet.load(.dataset(.wikitext2, dataDir: try TestFixtures.shared("data")), tokenizer: tokenizer,
                                          count: try XCTUnwrap(g["samples"]?.int), length: try XCTUnwrap(g["length"]?.int),
                                          seed: try XCTUnwrap(g["seed"]?.int))
        XCTAssertEqual(set.label, "WikiText-2 train excerpt")
        XCTAssertEqual(set.fileName, "wiki.train.excerpt.txt")
        XCTAssertEqual(set.tokenCount, g["tokens"]?.int)
        XCTAssertEqual(set.offsets, g["offsets"]?.array?.compactMap(\.int))
        XCTAssertEqual(set.windows.map { Array($0.prefix(8)) }, g["heads"]?.array?.map { $0.array?.compactMap(\.int) ?? [] })
        XCTAssertEqual(Self.digest(set.windows), g["windows_sha256"]?.string)
    }

    /// GPTQ's get_c4: one random document with more than L tokens per window.
    func testC4DocumentSamplingMatchesTheReference() throws {
        let g = try XCTUnwrap(try golden()["c4"])
        let tokenizer = try Tokenizer.load(directory: try TestFixtures.stories260KDir())
        let path = try TestFixtures.shared("data/c4/c4-validation.subset-2000.json.gz")
        let text = try DatasetText.load(.c4, file: path, protocol: .calibration, label: "C4 subset")
        let documents = try XCTUnwrap(text.documents)
        let set = try CalibrationSet.sampleDocuments(documents, text: text, sha256: "-", tokenizer: tokenizer,
                                                     count: try XCTUnwrap(g["samples"]?.int),
                                                     length: try XCTUnwrap(g["length"]?.int), seed: try XCTUnwrap(g["seed"]?.int))
        XCTAssertEqual(set.offsets, g["offsets"]?.array?.compactMap(\.int))
        XCTAssertEqual(set.windows.map { Array($0.prefix(8)) }, g["heads"]?.array?.map { $0.array?.compactMap(\.int) ?? [] })
        XCTAssertEqual(Self.digest(set.windows), g["windows_sha256"]?.string)

        // No document long enough: a clear error instead of an endless loop.
        XCTAssertThrowsError(try CalibrationSet.sampleDocuments(["short one", "another"], text: text, sha256: "-",
                                                                tokenizer: tokenizer, count: 1, length: 256, seed: 0)) {
            XCTAssertTrue("\($0)".contains("no document with more than 256 tokens"), "\($0)")
        }
    }
}
