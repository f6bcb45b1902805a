import Foundation
import SlimTestSupport
import XCTest
@testable import SlimIO

// Helpers shared by the GGUF tests: a raw byte builder for hand-made (and deliberately
// corrupt) files and temporary-file handling. Fixture paths come from `TestFixtures`.

/// Appends GGUF primitives little-endian, with no validation, so tests can write any file.
struct RawGGUF {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    mutating func string(_ s: String) { stringBytes(Array(s.utf8)) }
    mutating func stringBytes(_ b: [UInt8]) {
        u64(UInt64(b.count))
        raw(b)
    }

    mutating func header(version: UInt32 = 3, tensors: UInt64, kv: UInt64) {
        raw(Array("GGUF".utf8))
        u32(version)
        u64(tensors)
        u64(kv)
    }

    /// A uint32 metadata pair.
    mutating func kvU32(_ key: String, _ v: UInt32) {
        string(key)
        u32(4)
        u32(v)
    }

    /// A string metadata pair.
    mutating func kvString(_ key: String, _ v: String) {
        string(key)
        u32(8)
        string(v)
    }

    mutating func tensorInfo(_ name: String, dims: [UInt64], type: UInt32, offset: UInt64) {
        string(name)
        u32(UInt32(dims.count))
        for d in dims { u64(d) }
        u32(type)
        u64(offset)
    }

    /// Zero padding up to the next multiple of `alignment`.
    mutating func pad(to alignment: Int = 32) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
}

extension TemporaryDirectory {
    /// Writes `bytes` to a new file in the directory and returns its path (a failure to write
    /// fails the test; opening the path then reports it too).
    func file(_ bytes: [UInt8], name: String = "t.gguf") -> String {
        do {
            return try write(name, bytes: bytes)
        } catch {
            XCTFail("\(error)")
            return path + "/" + name
        }
    }
}

/// Asserts that opening `bytes` as a GGUF file fails with exactly `expected`, naming the path.
func XCTAssertGGUFError(_ bytes: [UInt8], _ expected: GGUFError.Kind, in dir: TemporaryDirectory,
                        file: StaticString = #filePath, line: UInt = #line) {
    let path = dir.file(bytes)
    do {
        _ = try GGUFFile(path: path)
        XCTFail("opened a corrupt file; expected \(expected)", file: file, line: line)
    } catch {
        XCTAssertEqual(error.kind, expected, file: file, line: line)
        XCTAssertEqual(error.path, path, file: file, line: line)
        XCTAssertTrue(error.description.hasPrefix(path + ": "), file: file, line: line)
    }
}

/// Little-endian bytes of floats.
func f32Bytes(_ values: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
    return out
}
