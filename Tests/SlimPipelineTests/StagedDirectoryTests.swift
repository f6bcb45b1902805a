import Foundation
import SlimIO
import SlimTestSupport
import XCTest
@testable import SlimPipeline

/// The staging + rename helper shared by `quantize` and `convert --dequantize`.
final class StagedDirectoryTests: XCTestCase {
    private func hidden(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }.sorted()
    }

    func testWritesBesideTheOutputWithConfigLastAndSwapsAnExistingOutput() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let out = dir + "/out"
        var stagingPath = ""
        try StagedDirectory.write(to: out) { staging in
            stagingPath = staging.path
            XCTAssertEqual(staging.path, dir + "/.out.partial-\(getpid())", "staged next to the output")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing at the output while staging")
            try AtomicFile.write(text: "weights", to: staging.file("model.safetensors"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: staging.file("config.json")), "config.json comes last")
            return ["n": 1]
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: stagingPath))
        XCTAssertEqual(try String(contentsOfFile: out + "/model.safetensors", encoding: .utf8), "weights")
        XCTAssertEqual(try WorkDirectory.readJSON(out + "/config.json")?["n"]?.int, 1)

        // A second write replaces the whole directory (files of the old one do not survive).
        try "old".write(toFile: out + "/extra.txt", atomically: true, encoding: .utf8)
        try StagedDirectory.write(to: out) { _ in ["n": 2] }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), ["config.json"])
        XCTAssertEqual(try WorkDirectory.readJSON(out + "/config.json")?["n"]?.int, 2)
        XCTAssertEqual(try hidden(dir), [], "no staging or aside directory left")
    }

    func testFailureLeavesTheOutputAsItWas() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let out = dir + "/out"
        try StagedDirectory.write(to: out) { _ in ["n": 1] }
        struct Boom: Error {}
        XCTAssertThrowsError(try StagedDirectory.write(to: out) { staging in
            try AtomicFile.write(text: "half", to: staging.file("model.safetensors"))
            throw Boom()
        }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out), ["config.json"])
        XCTAssertEqual(try WorkDirectory.readJSON(out + "/config.json")?["n"]?.int, 1)
        XCTAssertEqual(try hidden(dir), [], "the staging directory is removed")
    }

    func testLeftoversOfDeadRunsAreRemoved() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let fm = FileManager.default
        // A killed run's staging directory, and another output's, whose process is gone.
        try fm.createDirectory(atPath: dir + "/.out.partial-99999999", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/.other.partial-99999999", withIntermediateDirectories: true)
        try StagedDirectory.write(to: dir + "/out") { _ in [:] }
        XCTAssertEqual(try hidden(dir), [".other.partial-99999999"], "only this output's leftovers are removed")
        XCTAssertTrue(fm.fileExists(atPath: dir + "/out/config.json"))
    }
}
