import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimData

final class ManifestTests: XCTestCase {
    /// The compiled-in table and calibration/datasets.json come from one script run.
    func testBuiltinMatchesCommittedJSON() throws {
        let committed = try DatasetManifest.load(path: TestFixtures.packageRoot + "/calibration/datasets.json")
        XCTAssertEqual(committed, DatasetManifest.builtin)
        XCTAssertFalse(committed.entries.isEmpty)
    }

    /// Every shared file still matches its entry (size, sha256 and newline count).
    func testSharedFilesVerify() throws {
        _ = try TestFixtures.shared("data/ptb/ptb.test.txt")
        for e in DatasetManifest.builtin.entries {
            let path = TestFixtures.sharedDataDir + "/" + e.name
            guard FileManager.default.fileExists(atPath: path) else { continue }
            XCTAssertEqual(try DatasetManifest.builtin.check(path: path), .verified(path: path, name: e.name))
            let content: [UInt8]
            if e.name.hasSuffix(".gz") {
                content = try Gzip.decompressFile(path)
            } else {
                let file = try MappedFile(path: path)  // keep the map alive while copying
                content = withExtendedLifetime(file) { Array(file.bytes) }
            }
            XCTAssertEqual(content.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }, e.lines, e.name)
        }
    }

    func testLookupByRelativeNameThenFileName() {
        let m = DatasetManifest(entries: [
            .init(name: "ptb/ptb.test.txt", bytes: 1, sha256: String(repeating: "0", count: 64), lines: 0, uses: []),
        ])
        XCTAssertEqual(m.entry(for: "/x/ptb/ptb.test.txt")?.name, "ptb/ptb.test.txt")
        XCTAssertEqual(m.entry(for: "ptb/ptb.test.txt")?.name, "ptb/ptb.test.txt")
        XCTAssertEqual(m.entry(for: "/y/ptb.test.txt")?.name, "ptb/ptb.test.txt")
        XCTAssertNil(m.entry(for: "/y/xptb.test.txt"))
    }

    func testSizeMismatchIsReportedWithoutHashing() throws {
        let dir = TemporaryDirectory()
        let path = try dir.write("wiki.test.raw", text: "short")
        guard case .mismatch(_, let name, let detail) = try DatasetManifest.builtin.check(path: path) else {
            return XCTFail("expected a mismatch")
        }
        XCTAssertEqual(name, "wikitext-2-raw/wiki.test.raw")
        XCTAssertTrue(detail.hasPrefix("5 bytes, the original has 1290590"), detail)
    }

    func testMalformedManifestIsRefused() throws {
        let bad: JSON = ["files": [["name": "a", "bytes": 1]]]
        XCTAssertThrowsError(try DatasetManifest(json: bad, path: "m.json")) { error in
            XCTAssertEqual((error as? FileError)?.path, "m.json")
        }
        XCTAssertThrowsError(try DatasetManifest(json: ["x": 1], path: "m.json"))
    }
}
