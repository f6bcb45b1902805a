import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimData

final class DatasetLocatorTests: XCTestCase {
    // MARK: Choosing the data directory

    func testFlagWinsOverEnvironmentAndDefault() throws {
        let dir = TemporaryDirectory()
        let l = DatasetLocator(dataDir: dir.path, environment: ["SLIM_DATA_DIR": "/elsewhere"], currentDirectory: TestFixtures.packageRoot)
        XCTAssertEqual(l.dataDir, dir.path)
        XCTAssertEqual(l.origin, .flag)
    }

    func testEnvironmentWinsOverDefault() {
        let l = DatasetLocator(dataDir: nil, environment: ["SLIM_DATA_DIR": "/data/x"], currentDirectory: TestFixtures.packageRoot)
        XCTAssertEqual(l.dataDir, "/data/x")
        XCTAssertEqual(l.origin, .environment)
        // An empty variable counts as unset.
        let empty = DatasetLocator(dataDir: nil, environment: ["SLIM_DATA_DIR": ""], currentDirectory: "/nonexistent-root")
        XCTAssertNil(empty.dataDir)
    }

    func testSharedDefaultOnlyWhenItExists() throws {
        _ = try TestFixtures.shared("data/ptb/ptb.test.txt")
        let l = DatasetLocator(dataDir: nil, environment: [:], currentDirectory: TestFixtures.packageRoot)
        XCTAssertEqual(l.origin, .sharedDefault)
        XCTAssertEqual(l.dataDir, TestFixtures.packageRoot + "/../shared/data")

        // A directory whose ../shared/data cannot exist (its parent is a fresh directory).
        let elsewhere = TemporaryDirectory()
        let cwd = elsewhere.path + "/a/b"
        try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
        let none = DatasetLocator(dataDir: nil, environment: [:], currentDirectory: cwd)
        XCTAssertNil(none.dataDir)
        XCTAssertNil(none.origin)
        XCTAssertThrowsError(try none.text(.wikitext2, protocol: .eval)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("pass --data-dir DIR or set SLIM_DATA_DIR"), message)
            XCTAssertTrue(message.contains("wikitext-2-raw/wiki.test.raw"), message)
            XCTAssertTrue(message.contains("Salesforce/wikitext"), message)
        }
    }

    // MARK: Errors

    func testMissingDirectoryAndFilesAreExplained() throws {
        let gone = DatasetLocator(dataDir: "/nonexistent/data", environment: [:])
        XCTAssertThrowsError(try gone.text(.ptb, protocol: .eval)) { error in
            XCTAssertEqual(error as? FileError,
                           FileError("/nonexistent/data", "dataset directory (from --data-dir) does not exist or is not a directory"))
        }
        let dir = TemporaryDirectory()
        let empty = DatasetLocator(dataDir: dir.path, environment: [:])
        for (name, hint) in [(DatasetName.wikitext2, "Salesforce/wikitext"), (.ptb, "simple-examples"), (.c4, "allenai/c4")] {
            XCTAssertThrowsError(try empty.text(name, protocol: .eval)) { error in
                let e = error as? FileError
                XCTAssertEqual(e?.path, dir.path)
                XCTAssertTrue(e?.message.contains(hint) ?? false, "\(error)")
                XCTAssertTrue(e?.message.contains("looked for") ?? false, "\(error)")
            }
        }
        XCTAssertThrowsError(try empty.text(.c4, split: .test, protocol: .eval)) { error in
            XCTAssertTrue("\(error)".contains("C4 has no test split"), "\(error)")
        }
    }

    // MARK: Loading through the locator

    func testDefaultSplitsAndLabels() throws {
        _ = try TestFixtures.shared("data/wikitext-2-raw/wiki.test.raw")
        let l = DatasetLocator(dataDir: TestFixtures.sharedDataDir, environment: [:])
        let wiki = try l.text(.wikitext2, protocol: .eval)
        XCTAssertEqual(wiki.label, "WikiText-2 test")
        XCTAssertEqual(wiki.characterCount, 1_294_336)
        XCTAssertEqual(wiki.checks.count, 1)
        if case .verified(_, let name) = wiki.checks[0] { XCTAssertEqual(name, "wikitext-2-raw/wiki.test.raw") } else {
            XCTFail("expected a verified file, got \(wiki.checks)")
        }
        XCTAssertTrue(wiki.warnings.isEmpty)

        // No full train split in ../shared: calibration falls back to the excerpt and says so.
        let calib = try l.text(.wikitext2, protocol: .calibration)
        XCTAssertEqual(calib.label, "WikiText-2 train excerpt")
        XCTAssertTrue(calib.source[0].hasSuffix("wiki.train.excerpt.txt"))
        XCTAssertEqual(SHA256.hex(calib.text), try DataGoldens.golden("wikitext2/train-excerpt/calibration")["sha256"]?.string)

        let c4 = try l.text(.c4, protocol: .eval)
        XCTAssertEqual(c4.label, "C4 subset validation")
        XCTAssertEqual(c4.rows, 1100)
        XCTAssertEqual(c4.documents?.count, 1100)
        XCTAssertEqual(SHA256.hex(c4.text), try DataGoldens.golden("c4-subset/validation/eval")["sha256"]?.string)

        let ptb = try l.text(.ptb, split: .validation, protocol: .eval)
        XCTAssertEqual(ptb.label, "PTB validation")
        XCTAssertEqual(SHA256.hex(ptb.text), try DataGoldens.golden("ptb/validation")["sha256"]?.string)
    }

    func testC4EvalWithFewDocumentsSaysSo() throws {
        let dir = TemporaryDirectory()
        try dir.write("c4/c4-validation.00000-of-00008.json", text: "{\"text\":\"a\"}\n{\"text\":\"b\"}\n")
        let l = DatasetLocator(dataDir: dir.path, environment: [:])
        let t = try l.text(.c4, protocol: .eval)
        XCTAssertEqual(t.text, "a b")
        XCTAssertEqual(t.label, "C4 validation (only 2 of 1100 documents)")
        XCTAssertEqual(t.checks, [.unknown(path: dir.path + "/c4/c4-validation.00000-of-00008.json")])
    }

    /// A file named like a known original but with other content loads, with a warning.
    func testModifiedKnownFileGivesWarningNotError() throws {
        let dir = TemporaryDirectory()
        let path = try dir.write("ptb/ptb.test.txt", text: " a b \n c \n")
        let l = DatasetLocator(dataDir: dir.path, environment: [:])
        let t = try l.text(.ptb, protocol: .eval)
        XCTAssertEqual(t.text, "a b c")
        XCTAssertEqual(t.warnings.count, 1)
        XCTAssertTrue(t.warnings[0].hasPrefix(path + ": differs from the known ptb/ptb.test.txt"), t.warnings[0])

        var unverified = l
        unverified.verifyAgainstManifest = false
        XCTAssertTrue(try unverified.text(.ptb, protocol: .eval).checks.isEmpty)
    }
}
