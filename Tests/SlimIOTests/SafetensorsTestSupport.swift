import Foundation
import XCTest
import SlimTestSupport
@testable import SlimIO

// Helpers shared by the safetensors tests: fixture paths, hand-built file images, temporary
// files and assertions on the specific error case.

enum STFixture {
    /// A path under Tests/SlimIOTests/Fixtures/safetensors.
    static func path(_ relative: String) -> String {
        TestFixtures.committed("SlimIOTests", "safetensors/" + relative)
    }

    /// expected.json written by scripts/reference/make_safetensors_fixtures.py.
    static func expected() throws -> JSON {
        let file = try MappedFile(path: path("expected.json"))
        return try JSON.parse(file.bytes)
    }

    static func bytes(of path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// A file image: 8-byte little-endian length, `header` bytes as given (no padding added), data.
func safetensorsImage(header: String, data: [UInt8] = []) -> [UInt8] {
    safetensorsImage(headerBytes: Array(header.utf8), data: data)
}

func safetensorsImage(headerBytes: [UInt8], data: [UInt8] = []) -> [UInt8] {
    var out = [UInt8]()
    withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
    return out + headerBytes + data
}

/// Writes `bytes` to a new file in a temporary directory owned by `test`.
func writeTemporary(_ test: XCTestCase, _ bytes: [UInt8], name: String = "test.safetensors") throws -> String {
    let dir = try TestFixtures.temporaryDirectory(test)
    let path = dir + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// Decodes a lowercase/uppercase hex string (from expected.json).
func bytesFromHex(_ hex: String) throws -> [UInt8] {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { throw FileError("expected.json", "odd-length hex string") }
    func value(_ c: UInt8) throws -> UInt8 {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: throw FileError("expected.json", "bad hex digit")
        }
    }
    var out = [UInt8]()
    out.reserveCapacity(digits.count / 2)
    for i in stride(from: 0, to: digits.count, by: 2) { out.append(try value(digits[i]) << 4 | value(digits[i + 1])) }
    return out
}

/// Asserts that `body` throws a `SafetensorsFileError` for `path` whose kind is `expected`.
func assertSafetensorsError(
    _ expected: SafetensorsError, path: String? = nil, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> Void
) {
    assertSafetensorsError(path: path, file: file, line: line, body) { kind in
        XCTAssertEqual(kind, expected, file: file, line: line)
    }
}

/// Asserts that `body` throws a `SafetensorsFileError` and hands its kind to `check`.
func assertSafetensorsError(
    path: String? = nil, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> Void, check: (SafetensorsError) -> Void
) {
    do {
        try body()
        XCTFail("expected a SafetensorsFileError, nothing was thrown", file: file, line: line)
    } catch let e as SafetensorsFileError {
        if let path { XCTAssertEqual(e.path, path, file: file, line: line) }
        XCTAssertFalse(e.description.contains("\n"), "error description must be one line", file: file, line: line)
        XCTAssertTrue(e.description.hasPrefix(e.path + ": "), file: file, line: line)
        check(e.kind)
    } catch {
        XCTFail("expected a SafetensorsFileError, got \(type(of: error)): \(error)", file: file, line: line)
    }
}

/// Opens `bytes` as a safetensors file and expects the error case `expected`.
func assertCorrupt(
    _ test: XCTestCase, _ bytes: [UInt8], _ expected: SafetensorsError,
    file: StaticString = #filePath, line: UInt = #line
) throws {
    let path = try writeTemporary(test, bytes)
    assertSafetensorsError(expected, path: path, file: file, line: line) { _ = try SafetensorsFile(path: path) }
}

/// Opens `bytes` and expects an error whose case `matches` accepts (for cases carrying free text).
func assertCorrupt(
    _ test: XCTestCase, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line,
    matches: (SafetensorsError) -> Bool
) throws {
    let path = try writeTemporary(test, bytes)
    assertSafetensorsError(path: path, file: file, line: line, { _ = try SafetensorsFile(path: path) }) { kind in
        XCTAssertTrue(matches(kind), "unexpected error case: \(kind)", file: file, line: line)
    }
}

extension Array where Element == UInt8 {
    /// The bytes as little-endian elements of `T`.
    func loadAll<T: FixedWidthInteger>(as _: T.Type) -> [T] {
        withUnsafeBytes { raw in
            (0..<(raw.count / MemoryLayout<T>.size)).map {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))
            }
        }
    }
}
