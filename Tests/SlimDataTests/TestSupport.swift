import Foundation
import SlimIO
import XCTest

/// Paths of the shared fixtures and committed goldens, computed from this file so tests work
/// from any current directory.
enum Fixtures {
    /// The package root (three levels above this file).
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `../shared/data` next to the package.
    static let dataDir = packageRoot + "/../shared/data"

    static func data(_ relative: String) -> String { dataDir + "/" + relative }

    /// Skips the test when a shared fixture is absent (a checkout without ../shared).
    static func requireData(_ relative: String) throws -> String {
        let path = data(relative)
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("shared fixture \(path) is not present")
        }
        return path
    }

    /// The golden values written by scripts/reference/dataset_checks.py.
    static let goldens: JSON = {
        let path = packageRoot + "/Tests/SlimDataTests/Fixtures/dataset_goldens.json"
        guard let data = FileManager.default.contents(atPath: path), let json = try? JSON.parse(Array(data)) else {
            fatalError("cannot read \(path)")
        }
        return json
    }()

    static func golden(_ key: String) throws -> JSON {
        guard let g = goldens["results"]?[key] else {
            XCTFail("golden \(key) missing: rerun scripts/reference/dataset_checks.py")
            throw XCTSkip("no golden")
        }
        return g
    }
}

/// A fresh temporary directory removed at the end of the test.
final class TempDir {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "/slimdata-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ relative: String, bytes: [UInt8]) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: full, contents: Data(bytes)) else {
            throw FileError(full, "cannot create test file")
        }
        return full
    }

    @discardableResult
    func write(_ relative: String, text: String) throws -> String {
        try write(relative, bytes: Array(text.utf8))
    }
}
