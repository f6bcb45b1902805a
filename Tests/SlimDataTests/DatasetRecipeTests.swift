import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimData

/// The joined corpus strings must equal, byte for byte, what the reference Python pipelines
/// build (goldens from scripts/reference/dataset_checks.py).
final class DatasetRecipeTests: XCTestCase {
    private func assertMatches(_ text: String, rows: Int, golden key: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let g = try DataGoldens.golden(key)
        XCTAssertEqual(text.unicodeScalars.count, g["characters"]?.int, "\(key): characters", file: file, line: line)
        XCTAssertEqual(text.utf8.count, g["utf8_bytes"]?.int, "\(key): UTF-8 bytes", file: file, line: line)
        XCTAssertEqual(rows, g["rows"]?.int, "\(key): rows", file: file, line: line)
        XCTAssertEqual(SHA256.hex(text), g["sha256"]?.string, "\(key): sha256", file: file, line: line)
    }

    // MARK: WikiText-2

    /// The headline check from the project brief: the "\n\n"-joined test split of WikiText-2
    /// raw is 1,294,336 characters (Python `len`, i.e. code points; 1,296,370 UTF-8 bytes).
    func testWikiText2TestEvalTextIsExact() throws {
        let path = try TestFixtures.shared("data/wikitext-2-raw/wiki.test.raw")
        let joined = try DatasetReaders.wikiText(path: path, separator: "\n\n")
        XCTAssertEqual(joined.text.unicodeScalars.count, 1_294_336)
        XCTAssertEqual(SHA256.hex(joined.text), "696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83")
        XCTAssertEqual(joined.rows, 4358)
        try assertMatches(joined.text, rows: joined.rows, golden: "wikitext2/test/eval")
    }

    func testWikiText2ValidationBothJoins() throws {
        let path = try TestFixtures.shared("data/wikitext-2-raw/wiki.valid.raw")
        let eval = try DatasetReaders.wikiText(path: path, separator: "\n\n")
        try assertMatches(eval.text, rows: eval.rows, golden: "wikitext2/validation/eval")
        let calibration = try DatasetReaders.wikiText(path: path, separator: " ")
        try assertMatches(calibration.text, rows: calibration.rows, golden: "wikitext2/validation/calibration")
    }

    func testWikiText2TrainExcerptCalibrationJoin() throws {
        let path = try TestFixtures.shared("data/wikitext-2-raw/wiki.train.excerpt.txt")
        let joined = try DatasetReaders.wikiText(path: path, separator: " ")
        try assertMatches(joined.text, rows: joined.rows, golden: "wikitext2/train-excerpt/calibration")
    }

    // MARK: PTB

    func testPTBJoinsMatchPython() throws {
        for (split, file) in [("test", "ptb.test.txt"), ("validation", "ptb.valid.txt"), ("train", "ptb.train.txt")] {
            let path = try TestFixtures.shared("data/ptb/" + file)
            let joined = try DatasetReaders.ptb(path: path)
            try assertMatches(joined.text, rows: joined.rows, golden: "ptb/" + split)
            // Stripped sentences joined by single spaces: no leading space, no newline.
            XCTAssertFalse(joined.text.hasPrefix(" "))
            XCTAssertFalse(joined.text.utf8.contains(0x0A))
        }
    }

    // MARK: C4

    func testC4SubsetEvalAndAllDocuments() throws {
        let path = try TestFixtures.shared("data/c4/c4-validation.subset-2000.json.gz")
        let first = try DatasetReaders.c4Documents(path: path, limit: c4EvalDocumentCount)
        try assertMatches(DatasetReaders.joinDocuments(first), rows: first.count, golden: "c4-subset/validation/eval")
        let all = try DatasetReaders.c4Documents(path: path)
        try assertMatches(DatasetReaders.joinDocuments(all), rows: all.count, golden: "c4-subset/validation/all")
    }

    /// Plain and gzip JSON lines read the same; blank lines are skipped; gzip is detected from
    /// the content, not the name.
    func testC4PlainAndGzipAgree() throws {
        let dir = TemporaryDirectory()
        let lines = "{\"text\": \"first doc\\nline\", \"url\": \"u\"}\n\n{\"text\": \"caf\\u00e9 \\\"q\\\"\", \"timestamp\": \"t\"}\n"
        let plain = try dir.write("c4/docs.json", text: lines)
        let gz = try dir.write("c4/docs.json.gz", bytes: try Gzip.compress(Array(lines.utf8)))
        let misnamed = try dir.write("c4/docs-gz.json", bytes: try Gzip.compress(Array(lines.utf8)))
        let expected = ["first doc\nline", "café \"q\""]
        XCTAssertEqual(try DatasetReaders.c4Documents(path: plain), expected)
        XCTAssertEqual(try DatasetReaders.c4Documents(path: gz), expected)
        XCTAssertEqual(try DatasetReaders.c4Documents(path: misnamed), expected)
        XCTAssertEqual(try DatasetReaders.c4Documents(path: gz, limit: 1), ["first doc\nline"])
    }

    func testC4BadLinesNameFileAndLine() throws {
        let dir = TemporaryDirectory()
        let notJSON = try dir.write("a.json", text: "{\"text\": \"ok\"}\n{\"text\": broken}\n")
        XCTAssertThrowsError(try DatasetReaders.c4Documents(path: notJSON)) { error in
            let e = error as? FileError
            XCTAssertEqual(e?.path, notJSON)
            XCTAssertTrue(e?.message.hasPrefix("line 2: not valid JSON") ?? false, "\(error)")
        }
        let noText = try dir.write("b.json", text: "{\"content\": \"x\"}\n")
        XCTAssertThrowsError(try DatasetReaders.c4Documents(path: noText)) { error in
            XCTAssertTrue((error as? FileError)?.message.contains("line 1: expected a JSON object with a string \"text\"") ?? false, "\(error)")
        }
        let truncated = try dir.write("c.json.gz", bytes: Array(try Gzip.compress(Array("{\"text\": \"x\"}\n".utf8)).dropLast(6)))
        XCTAssertThrowsError(try DatasetReaders.c4Documents(path: truncated)) { error in
            XCTAssertEqual((error as? FileError)?.path, truncated)
        }
    }

    // MARK: Line and whitespace rules

    /// Universal newlines, Unicode whitespace, BOM, empty files: compared with Python's output
    /// on the same bytes (edge_cases in the golden file).
    func testEdgeCasesMatchPython() throws {
        guard let cases = try DataGoldens.all()["edge_cases"]?.array, !cases.isEmpty else {
            return XCTFail("no edge cases in the golden file")
        }
        let dir = TemporaryDirectory()
        for (i, c) in cases.enumerated() {
            guard let input = c["input"]?.string else { return XCTFail("edge case \(i) has no input") }
            let path = try dir.write("edge\(i).txt", text: input)
            let eval = try DatasetReaders.wikiText(path: path, separator: "\n\n")
            XCTAssertEqual(eval.text, c["wikitext_eval"]?.string, "case \(i) \(input.debugDescription)")
            XCTAssertEqual(eval.rows, c["wikitext_rows"]?.int, "case \(i)")
            XCTAssertEqual(try DatasetReaders.wikiText(path: path, separator: " ").text, c["wikitext_calibration"]?.string, "case \(i)")
            XCTAssertEqual(try DatasetReaders.ptb(path: path).text, c["ptb"]?.string, "case \(i) \(input.debugDescription)")
        }
    }

    // MARK: Plain text

    func testPlainTextKeepsContentExactly() throws {
        let dir = TemporaryDirectory()
        let content = "\u{FEFF}line one\r\nline two\n\n  é\u{3000}"
        let path = try dir.write("plain.txt", text: content)
        XCTAssertEqual(try loadTextFile(path: path), content)
        let empty = try dir.write("empty.txt", text: "")
        XCTAssertEqual(try loadTextFile(path: empty), "")
        let text = try DatasetText.plainText(file: path)
        XCTAssertEqual(text.text, content)
        XCTAssertEqual(text.label, "plain.txt")
    }

    func testInvalidUTF8IsRefusedWithOffsetAndLine() throws {
        let dir = TemporaryDirectory()
        // "ab\ncd" then a lone continuation byte at offset 5.
        let path = try dir.write("bad.txt", bytes: [0x61, 0x62, 0x0A, 0x63, 0x64, 0x80, 0x65])
        XCTAssertThrowsError(try loadTextFile(path: path)) { error in
            XCTAssertEqual(error as? FileError,
                           FileError(path, "not valid UTF-8: invalid byte sequence at byte offset 5 (line 2)"))
        }
        XCTAssertThrowsError(try DatasetReaders.wikiText(path: path, separator: "\n\n"))
        XCTAssertThrowsError(try DatasetReaders.ptb(path: path))
        XCTAssertThrowsError(try loadTextFile(path: dir.path + "/missing.txt")) { error in
            XCTAssertEqual((error as? FileError)?.path, dir.path + "/missing.txt")
        }
    }

    func testUTF8ValidatorAgreesWithSwiftDecoder() {
        let samples: [[UInt8]] = [
            [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0x61, 0xC3], [0xC3, 0xA9, 0x41],
            [0xEF, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF], [0xFF], [0x80],
        ]
        for s in samples {
            let swiftValid = String(validating: s, as: UTF8.self) != nil
            let ours = s.withUnsafeBytes { UTF8Check.firstInvalidOffset($0) } == nil
            XCTAssertEqual(ours, swiftValid, "\(s)")
        }
    }
}
