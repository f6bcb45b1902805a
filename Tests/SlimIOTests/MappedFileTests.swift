import Foundation
import SlimTestSupport
import XCTest
@testable import SlimIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `MappedFile`: small files are read (immune to later truncation), large ones mapped, and a
/// mapped file truncated by another process gives one error line and exit 1, not a crash.
final class MappedFileTests: XCTestCase {
    func write(_ bytes: [UInt8], _ dir: String, _ name: String) throws -> String {
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testSmallFilesAreReadAndSurviveTruncation() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let path = try write(bytes, dir, "small.bin")
        let file = try MappedFile(path: path)
        XCTAssertFalse(file.isMapped)
        XCTAssertTrue(truncate(path, 0) == 0)
        file.withBytes { XCTAssertEqual(Array($0), bytes, "a read file does not change with the file on disk") }

        let mapped = try MappedFile(path: try write(bytes, dir, "mapped.bin"), mode: .map)
        XCTAssertTrue(mapped.isMapped)
        mapped.withBytes { XCTAssertEqual(Array($0), bytes) }

        let empty = try MappedFile(path: try write([], dir, "empty.bin"))
        XCTAssertEqual(empty.count, 0)
        XCTAssertThrowsError(try MappedFile(path: dir)) { XCTAssertTrue("\($0)".contains("not a regular file"), "\($0)") }
        XCTAssertThrowsError(try MappedFile(path: dir + "/missing")) { XCTAssertTrue("\($0)".contains("cannot open"), "\($0)") }
    }

    func testCopiedBytesBehaveLikeAFile() throws {
        let bytes: [UInt8] = [1, 2, 3, 250]
        let file = bytes.withUnsafeBytes { MappedFile(copying: $0, path: "memory.bin") }
        XCTAssertEqual(file.path, "memory.bin")
        XCTAssertFalse(file.isMapped)
        file.withBytes { XCTAssertEqual(Array($0), bytes) }
        XCTAssertEqual([UInt8]().withUnsafeBytes { MappedFile(copying: $0, path: "e").count }, 0)
    }

    /// A child process maps a file, the file is truncated, the child touches a page past the
    /// new end: SIGBUS, which the handler turns into one line naming the file and exit 1.
    func testTruncatedMappingExitsWithOneErrorLine() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let path = try write([UInt8](repeating: 7, count: 64 * 1024), dir, "model.safetensors")
        MappedFile.installTruncationHandler()
        let file = try MappedFile(path: path, mode: .map)
        XCTAssertEqual(file.bytes[40_000], 7)
        XCTAssertEqual(truncate(path, 0), 0)

        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let base = file.bytes.baseAddress!
        let pid = fork()
        if pid == 0 {
            // Child: only async-signal-safe work until _exit.
            dup2(fds[1], STDERR_FILENO)
            let value = base.load(fromByteOffset: 40_000, as: UInt8.self)
            _exit(value == 7 ? 42 : 43)  // not reached: the page is gone
        }
        close(fds[1])
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        var output = [UInt8](repeating: 0, count: 4096)
        let n = read(fds[0], &output, output.count)
        close(fds[0])
        let text = String(decoding: output.prefix(max(0, n)), as: UTF8.self)
        XCTAssertEqual(status & 0x7F, 0, "the child died of a signal: \(status)")
        XCTAssertEqual((status >> 8) & 0xFF, 1, text)
        XCTAssertEqual(text.split(separator: "\n").count, 1, text)
        XCTAssertTrue(text.hasPrefix("error: \(path): the file was truncated or became unreadable while in use"), text)
        withExtendedLifetime(file) {}
    }
}
