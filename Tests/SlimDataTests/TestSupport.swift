import Foundation
import SlimIO
import SlimTestSupport
import XCTest

// Fixture paths come from SlimTestSupport's `TestFixtures` (../shared, committed files, temp
// directories); this file only holds the dataset goldens.

/// The golden values written by scripts/reference/dataset_checks.py
/// (Tests/SlimDataTests/Fixtures/dataset_goldens.json).
enum DataGoldens {
    private static let parsed: Result<JSON, Error> = Result {
        try JSON.parse(try TestFixtures.committedBytes("SlimDataTests", "dataset_goldens.json"))
    }

    /// The whole golden document.
    static func all() throws -> JSON { try parsed.get() }

    /// `results[key]`, failing the test (and skipping the rest of it) when it is missing.
    static func golden(_ key: String) throws -> JSON {
        guard let g = try all()["results"]?[key] else {
            XCTFail("golden \(key) missing: rerun scripts/reference/dataset_checks.py")
            throw XCTSkip("no golden \(key)")
        }
        return g
    }
}

extension TestFixtures {
    /// `../shared/data`, the dataset directory the locator defaults to.
    static var sharedDataDir: String { sharedDir + "/data" }
}
