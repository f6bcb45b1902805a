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

    /// A fresh temporary directory, removed when the test ends.
    public static func temporaryDirectory(_ test: XCTestCase) throws -> String {
        let dir = NSTemporaryDirectory() + "slim-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }
}
