import Foundation
import XCTest
@testable import SlimIO

/// Every corruption class, produced by altering a valid file, must be rejected with its own
/// `SafetensorsError` case and a one-line "PATH: message" description.
final class SafetensorsCorruptionTests: XCTestCase {
    // A valid two-tensor file: "a" F32[2] at [0,8), "b" U8[3] at [8,11).
    let entryA = #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    let entryB = #""b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}"#
    let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40, 7, 8, 9]

    var validHeader: String { "{\(entryA),\(entryB)}" }

    /// The valid file with tensor entry "b" replaced by `b` (a full `"name":{...}` member).
    func image(b: String, data: [UInt8]? = nil) -> [UInt8] {
        safetensorsImage(header: "{\(entryA),\(b)}", data: data ?? self.data)
    }

    func testBaseFileIsValid() throws {
        let path = try writeTemporary(self, safetensorsImage(header: validHeader, data: data))
        let f = try SafetensorsFile(path: path)
        defer { withExtendedLifetime(f) {} }  // views borrow its memory map
        XCTAssertEqual(f.tensorNames, ["a", "b"])
        XCTAssertEqual(try floatArray(XCTUnwrap(f.tensor("a"))), [1, 2])
        XCTAssertEqual(Array(try XCTUnwrap(f.tensor("b")).bytes), [7, 8, 9])
        XCTAssertNil(f.metadata)
        XCTAssertNil(f.tensor("c"))
    }

    // MARK: Framing

    func testFileTooSmall() throws {
        try assertCorrupt(self, [], .fileTooSmall(size: 0))
        try assertCorrupt(self, [2, 0, 0, 0, 0, 0, 0], .fileTooSmall(size: 7))
    }

    func testHeaderTooLarge() throws {
        var bytes = safetensorsImage(header: validHeader, data: data)
        let limit = UInt64(SafetensorsLimits.maxHeaderBytes)
        for length in [limit + 1, UInt64.max] {
            withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
            try assertCorrupt(self, bytes, .headerTooLarge(length: length))
        }
        // Exactly at the limit is allowed by the limit check and then fails on bounds.
        withUnsafeBytes(of: limit.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        try assertCorrupt(self, bytes, .headerOutOfBounds(length: limit, fileSize: bytes.count))
    }

    func testHeaderOutOfBounds() throws {
        let header = Array("{}".utf8)
        try assertCorrupt(self, safetensorsImage(headerBytes: header).dropLast().map { $0 },
                          .headerOutOfBounds(length: 2, fileSize: 9))
        var bytes = safetensorsImage(header: validHeader, data: data)
        let length = UInt64(bytes.count - 7)  // one byte more than the file holds after the prefix
        withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        try assertCorrupt(self, bytes, .headerOutOfBounds(length: length, fileSize: bytes.count))
    }

    func testHeaderNotUTF8() throws {
        // An invalid byte inside a tensor name, a truncated 2-byte sequence, an overlong encoding.
        for (bad, offset) in [([0xFF], 2), ([0xC3], 2), ([0xC0, 0x80], 2)] as [([UInt8], Int)] {
            let header = Array("{\"".utf8) + bad + Array("\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}".utf8)
            try assertCorrupt(self, safetensorsImage(headerBytes: header), .headerNotUTF8(offset: offset))
        }
    }

    func testHeaderNotObject() throws {
        try assertCorrupt(self, safetensorsImage(header: ""), .headerNotObject(firstByte: nil))
        try assertCorrupt(self, safetensorsImage(header: " " + validHeader, data: data), .headerNotObject(firstByte: 0x20))
        try assertCorrupt(self, safetensorsImage(header: "[]"), .headerNotObject(firstByte: UInt8(ascii: "[")))
        try assertCorrupt(self, safetensorsImage(header: "\"{}\""), .headerNotObject(firstByte: UInt8(ascii: "\"")))
    }

    func testSpacePaddingIsAcceptedOtherPaddingIsNot() throws {
        let padded = try writeTemporary(self, safetensorsImage(header: validHeader + "     ", data: data))
        XCTAssertEqual(try SafetensorsFile(path: padded).tensorNames, ["a", "b"])
        try assertCorrupt(self, safetensorsImage(header: validHeader + "\n", data: data), .invalidHeaderPadding(byte: 0x0A))
        try assertCorrupt(self, safetensorsImage(header: validHeader + "\t  ", data: data), .invalidHeaderPadding(byte: 0x09))
        try assertCorrupt(self, safetensorsImage(header: validHeader + "\r\n", data: data), .invalidHeaderPadding(byte: 0x0A))
        // NUL padding is not whitespace at all: the JSON document has trailing data.
        try assertCorrupt(self, safetensorsImage(headerBytes: Array(validHeader.utf8) + [0], data: data)) {
            if case .invalidJSON = $0 { return true } else { return false }
        }
    }

    func testInvalidJSON() throws {
        let isInvalidJSON: (SafetensorsError) -> Bool = { if case .invalidJSON = $0 { return true } else { return false } }
        try assertCorrupt(self, safetensorsImage(header: "{\"a\":", data: data), matches: isInvalidJSON)
        try assertCorrupt(self, safetensorsImage(header: validHeader + "}", data: data), matches: isInvalidJSON)
        try assertCorrupt(self, safetensorsImage(header: "{\(entryA),\(entryB),}", data: data), matches: isInvalidJSON)
        // Duplicate tensor names: two entries "a" (the second one would otherwise cover [8,11)).
        let dup = "{\(entryA),\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}"
        try assertCorrupt(self, safetensorsImage(header: dup, data: data)) {
            if case .invalidJSON(let message) = $0 { return message.contains("duplicate key \"a\"") }
            return false
        }
    }

    // MARK: Entries

    func testInvalidMetadata() throws {
        for meta in ["null", "\"pt\"", "[]", "{\"format\":1}", "{\"a\":\"b\",\"c\":{\"d\":\"e\"}}"] {
            let header = "{\"__metadata__\":\(meta),\(entryA),\(entryB)}"
            try assertCorrupt(self, safetensorsImage(header: header, data: data)) {
                if case .invalidMetadata = $0 { return true } else { return false }
            }
        }
        let ok = try writeTemporary(self, safetensorsImage(header: "{\"__metadata__\":{},\(entryA),\(entryB)}", data: data))
        XCTAssertEqual(try SafetensorsFile(path: ok).metadata?.count, 0)
    }

    func testInvalidTensorEntry() throws {
        let bad = [
            #""b":[1,2]"#,
            #""b":"U8""#,
            #""b":{"shape":[3],"data_offsets":[8,11]}"#,
            #""b":{"dtype":"U8","data_offsets":[8,11]}"#,
            #""b":{"dtype":"U8","shape":[3]}"#,
            #""b":{"dtype":"U8","shape":[3],"data_offsets":[8,11],"extra":0}"#,
            #""b":{"dtype":8,"shape":[3],"data_offsets":[8,11]}"#,
        ]
        for entry in bad {
            try assertCorrupt(self, image(b: entry)) {
                if case .invalidTensorEntry(tensor: "b", _) = $0 { return true } else { return false }
            }
        }
    }

    func testUnknownDType() throws {
        for dtype in ["F8_E4M3", "f32", "C64", ""] {
            try assertCorrupt(self, image(b: "\"b\":{\"dtype\":\"\(dtype)\",\"shape\":[3],\"data_offsets\":[8,11]}"),
                              .unknownDType(tensor: "b", dtype: dtype))
        }
    }

    func testInvalidShape() throws {
        for shape in ["3", "[-3]", "[3.0]", "[1e30]", "[\"3\"]", "null", "[[3]]"] {
            try assertCorrupt(self, image(b: "\"b\":{\"dtype\":\"U8\",\"shape\":\(shape),\"data_offsets\":[8,11]}")) {
                if case .invalidShape(tensor: "b", _) = $0 { return true } else { return false }
            }
        }
    }

    func testInvalidOffsets() throws {
        for offsets in ["[8]", "[8,11,11]", "[-1,11]", "[8,11.0]", "[\"8\",\"11\"]", "{}", "[11,8]"] {
            try assertCorrupt(self, image(b: "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":\(offsets)}")) {
                if case .invalidOffsets(tensor: "b", _) = $0 { return true } else { return false }
            }
        }
    }

    func testSizeOverflow() throws {
        try assertCorrupt(self, image(b: #""b":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[8,11]}"#),
                          .sizeOverflow(tensor: "b"))
        // The element count fits but times the element size does not.
        try assertCorrupt(self, image(b: #""b":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[8,11]}"#),
                          .sizeOverflow(tensor: "b"))
    }

    func testSizeMismatch() throws {
        try assertCorrupt(self, image(b: #""b":{"dtype":"U8","shape":[2],"data_offsets":[8,11]}"#),
                          .sizeMismatch(tensor: "b", expected: 2, actual: 3))
        try assertCorrupt(self, image(b: #""b":{"dtype":"I16","shape":[3],"data_offsets":[8,11]}"#),
                          .sizeMismatch(tensor: "b", expected: 6, actual: 3))
        try assertCorrupt(self, image(b: #""b":{"dtype":"U8","shape":[3,0],"data_offsets":[8,11]}"#),
                          .sizeMismatch(tensor: "b", expected: 0, actual: 3))
    }

    // MARK: Layout

    func testGapsAndOverlaps() throws {
        // Gap between a and b (and one extra byte of data so the sizes still add up).
        try assertCorrupt(self, image(b: #""b":{"dtype":"U8","shape":[3],"data_offsets":[9,12]}"#, data: data + [0]),
                          .overlappingOrGap(tensor: "b", expectedBegin: 8, begin: 9))
        // b overlaps a.
        try assertCorrupt(self, image(b: #""b":{"dtype":"U8","shape":[3],"data_offsets":[6,9]}"#),
                          .overlappingOrGap(tensor: "b", expectedBegin: 8, begin: 6))
        // The first tensor must start at 0.
        let header = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}"
        try assertCorrupt(self, safetensorsImage(header: header, data: [0, 1, 2]),
                          .overlappingOrGap(tensor: "a", expectedBegin: 0, begin: 1))
        // Two tensors claiming the same bytes.
        let twice = "{\(entryA),\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        try assertCorrupt(self, safetensorsImage(header: twice, data: Array(data[0..<8]))) {
            if case .overlappingOrGap(_, expectedBegin: 8, begin: 0) = $0 { return true } else { return false }
        }
    }

    func testMissingBytes() throws {
        try assertCorrupt(self, safetensorsImage(header: validHeader, data: Array(data.dropLast(2))),
                          .missingBytes(tensor: "b", end: 11, dataSize: 9))
        // Offsets far beyond any file, with a consistent size.
        try assertCorrupt(self, image(b: #""b":{"dtype":"U8","shape":[4000000000],"data_offsets":[8,4000000008]}"#),
                          .missingBytes(tensor: "b", end: 4_000_000_008, dataSize: 11))
    }

    func testTrailingBytes() throws {
        try assertCorrupt(self, safetensorsImage(header: validHeader, data: data + [0xEE]),
                          .trailingBytes(dataEnd: 11, dataSize: 12))
        try assertCorrupt(self, safetensorsImage(header: "{}", data: [1, 2, 3]), .trailingBytes(dataEnd: 0, dataSize: 3))
    }

    // MARK: Other failures

    func testZeroSizeTensorsMayShareAnOffset() throws {
        let header = "{\"z2\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
            + "\(entryA),\"z1\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[8,8]},\(entryB)}"
        let f = try SafetensorsFile(path: writeTemporary(self, safetensorsImage(header: header, data: data)))
        defer { withExtendedLifetime(f) {} }  // views borrow its memory map
        XCTAssertEqual(f.tensorNames, ["a", "z2", "z1", "b"])
        XCTAssertEqual(try XCTUnwrap(f.tensor("z1")).bytes.count, 0)
        XCTAssertEqual(try XCTUnwrap(f.tensor("z1")).shape, [3, 0])
    }

    func testMissingFileIsAFileError() {
        let path = NSTemporaryDirectory() + "no-such-\(UUID().uuidString).safetensors"
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { error in
            guard let e = error as? FileError else { return XCTFail("expected FileError, got \(error)") }
            XCTAssertEqual(e.path, path)
        }
    }

    func testDescriptionNamesPathTensorAndNumbers() throws {
        let path = try writeTemporary(self, image(b: #""b":{"dtype":"U8","shape":[2],"data_offsets":[8,11]}"#))
        XCTAssertThrowsError(try SafetensorsFile(path: path)) { error in
            XCTAssertEqual(
                "\(error)",
                "\(path): tensor \"b\": dtype and shape need 2 bytes but data_offsets span 3")
        }
    }
}
