import Foundation
import XCTest

/// Where tests find their fixtures. Shared read-only data lives in `../shared` next to the
/// package root; the SmolLM2-135M directory is built by `scripts/prepare-fixtures.sh`.
public enum TestFixtures {
    /// The package root, derived from this file's location (works from any cwd).
    public static let packageRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    /// `../shared` relative to the package root, or `SLIM_SHARED_DIR`.
    public static let sharedDir: String = {
        if let env = ProcessInfo.processInfo.environment["SLIM_SHARED_DIR"], !env.isEmpty { return env }
        return URL(fileURLWithPath: packageRoot).deletingLastPathComponent().appendingPathComponent("shared").path
    }()

    /// A path under `../shared`; skips the test with a message if it does not exist.
    public static func shared(_ relative: String) throws -> String {
        let path = sharedDir + "/" + relative
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("shared fixture missing: \(path)")
        }
        return path
    }

    /// `../shared/models/stories260K` (Hugging Face directory); skips the test if absent.
    public static func stories260KDir() throws -> String { try shared("models/stories260K") }

    /// `../shared/models/stories260K-gguf/stories260K-f32.gguf`; skips the test if absent.
    public static func stories260KGGUF() throws -> String { try shared("models/stories260K-gguf/stories260K-f32.gguf") }

    /// The fixture cache used by scripts/prepare-fixtures.sh.
    public static var cacheDir: String {
        if let env = ProcessInfo.processInfo.environment["SLIM_FIXTURE_CACHE"], !env.isEmpty { return env }
        return NSHomeDirectory() + "/.cache/slim-quant-fixtures"
    }

    /// The prepared SmolLM2-135M (F32) directory: `SLIM_SMOLLM2_DIR`, else the cache default.
    /// Skips the test with a visible message when it has not been prepared.
    public static func smollm2Dir() throws -> String {
        let env = ProcessInfo.processInfo.environment["SLIM_SMOLLM2_DIR"]
        let dir = (env?.isEmpty == false ? env! : cacheDir + "/smollm2-135m-f32")
        guard FileManager.default.fileExists(atPath: dir + "/model.safetensors") else {
            throw XCTSkip("SmolLM2-135M fixture not prepared at \(dir): run scripts/prepare-fixtures.sh")
        }
        return dir
    }

    /// The SmolLM2 Q4_1 GGUF cached by the preparation script.
    public static func smollm2GGUF() throws -> String {
        let path = cacheDir + "/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2 GGUF not cached at \(path): run scripts/prepare-fixtures.sh")
        }
        return path
    }

    /// A path under this test target's committed Fixtures directory.
    public static func committed(_ target: String, _ relative: String) -> String {
        packageRoot + "/Tests/\(target)/Fixtures/\(relative)"
    }

    /// The bytes of a committed fixture (`committed(target, relative)`), failing with the path
    /// when it cannot be read.
    public static func committedBytes(_ target: String, _ relative: String) throws -> [UInt8] {
        let path = committed(target, relative)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError("cannot read committed fixture \(path)")
        }
        return [UInt8](data)
    }

    /// A fresh temporary directory, removed when the test ends.
    public static func temporaryDirectory(_ test: XCTestCase) throws -> String {
        let dir = NSTemporaryDirectory() + "slim-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    // MARK: WikiText-2

    /// The WikiText-2 test split (`../shared/data/wikitext-2-raw/wiki.test.raw`) joined the way
    /// the evaluation protocol and the tokenizer goldens build it: lines keep their "\n", a
    /// line that is exactly " \n" becomes an empty row, rows are joined with "\n\n".
    /// Skips the test when the shared data is absent.
    public static func wikiText2TestText() throws -> String {
        let path = try shared("data/wikitext-2-raw/wiki.test.raw")
        guard let data = FileManager.default.contents(atPath: path) else { throw FixtureError("cannot read \(path)") }
        let raw = [UInt8](data)
        var joined = [UInt8]()
        joined.reserveCapacity(raw.count + raw.count / 16)
        var start = 0
        var first = true
        func appendRow(_ row: ArraySlice<UInt8>) {
            if !first { joined += [0x0A, 0x0A] }
            first = false
            if !(row.count == 2 && row.first == 0x20 && row.last == 0x0A) { joined += row }
        }
        for (i, b) in raw.enumerated() where b == 0x0A {
            appendRow(raw[start...i])
            start = i + 1
        }
        if start < raw.count { appendRow(raw[start...]) }
        return String(decoding: joined, as: UTF8.self)
    }
}

/// A fixture that exists but cannot be used (unreadable, malformed).
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Temporary directories

/// A fresh temporary directory that lives as long as this object (for test-case properties
/// and helpers shared by several tests); inside one test `TestFixtures.temporaryDirectory(_:)`
/// is simpler. The directory and everything in it are removed at deinit.
public final class TemporaryDirectory {
    public let path: String

    /// Creates the directory. A failure surfaces as a clear error on the first `write`.
    public init() {
        path = NSTemporaryDirectory() + "slim-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `bytes` to `relative` (parent directories created) and returns the full path.
    @discardableResult
    public func write(_ relative: String, bytes: [UInt8]) throws -> String {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: full, contents: Data(bytes)) else {
            throw FixtureError("cannot create test file \(full)")
        }
        return full
    }

    /// Writes the UTF-8 of `text` to `relative` and returns the full path.
    @discardableResult
    public func write(_ relative: String, text: String) throws -> String {
        try write(relative, bytes: Array(text.utf8))
    }
}
