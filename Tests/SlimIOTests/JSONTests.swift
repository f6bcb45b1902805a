import Foundation
import SlimTestSupport
import XCTest
@testable import SlimIO

/// The strict JSON parser and serializer (Sources/SlimIO/JSON.swift).
final class JSONTests: XCTestCase {
    func parse(_ s: String) throws -> JSON { try JSON.parse(string: s) }

    func assertRejects(_ s: String, containing fragment: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try JSON.parse(string: s), "accepted \(s.debugDescription)", file: file, line: line) { error in
            guard let e = error as? JSONError else { return XCTFail("not a JSONError: \(error)", file: file, line: line) }
            if let fragment {
                XCTAssertTrue(e.message.contains(fragment), "\(e.message) lacks \(fragment)", file: file, line: line)
            }
        }
    }

    func assertRejects(bytes: [UInt8], containing fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try JSON.parse(bytes), file: file, line: line) { error in
            XCTAssertTrue((error as? JSONError)?.message.contains(fragment) == true, "\(error)", file: file, line: line)
        }
    }

    // MARK: Valid documents

    func testValidDocuments() throws {
        let doc = try parse(#" { "a" : [1, -2.5, "x", true, false, null, {}, []], "b": {"c": 1e3} } "#)
        XCTAssertEqual(doc["a"]?[0], .int(1))
        XCTAssertEqual(doc["a"]?[1], .double(-2.5))
        XCTAssertEqual(doc["a"]?[2]?.string, "x")
        XCTAssertEqual(doc["a"]?[3]?.bool, true)
        XCTAssertEqual(doc["a"]?[4]?.bool, false)
        XCTAssertEqual(doc["a"]?[5]?.isNull, true)
        XCTAssertEqual(doc["a"]?[6]?.object?.count, 0)
        XCTAssertEqual(doc["a"]?[7]?.array?.count, 0)
        XCTAssertNil(doc["a"]?[8])
        XCTAssertEqual(doc["b"]?["c"]?.double, 1000)
        XCTAssertEqual(doc["b"]?["c"]?.int, 1000, "integral doubles convert to Int")
        XCTAssertNil(doc["missing"])
        for scalar in ["0", "-0", "0.5", "0e1", "1E+2", "-1.25e-3", "\"\"", "true", "null", " 7 \n\t\r"] {
            XCTAssertNoThrow(try parse(scalar), scalar)
        }
    }

    func testKeyOrderIsPreserved() throws {
        let doc = try parse(#"{"zeta":1,"alpha":2,"mid":{"y":0,"x":0},"beta":3}"#)
        XCTAssertEqual(doc.object?.keys, ["zeta", "alpha", "mid", "beta"])
        XCTAssertEqual(doc["mid"]?.object?.keys, ["y", "x"])
        XCTAssertEqual(doc.object?.pairs.map(\.key), ["zeta", "alpha", "mid", "beta"])
    }

    func testDuplicateKeysAreRejected() {
        assertRejects(#"{"a":1,"a":2}"#, containing: "duplicate key \"a\"")
        assertRejects(#"{"x":{"k":1,"j":2,"k":3}}"#, containing: "duplicate key \"k\"")
        // Equal after escape decoding.
        assertRejects(#"{"a":1,"\u0061":2}"#, containing: "duplicate key")
    }

    func testDepthLimit() throws {
        let n = JSON.maxDepth
        XCTAssertNoThrow(try parse(String(repeating: "[", count: n) + String(repeating: "]", count: n)))
        assertRejects(String(repeating: "[", count: n + 1) + String(repeating: "]", count: n + 1), containing: "nesting")
        let objects = String(repeating: "{\"a\":", count: n + 1) + "1" + String(repeating: "}", count: n + 1)
        assertRejects(objects, containing: "nesting")
        // Hostile depth far beyond the limit fails cleanly instead of overflowing the stack.
        assertRejects(String(repeating: "[", count: 1_000_000), containing: "nesting")
    }

    // MARK: Strings

    func testEscapesAndSurrogates() throws {
        XCTAssertEqual(try parse(#""\"\\\/\b\f\n\r\t""#).string, "\"\\/\u{8}\u{C}\n\r\t")
        XCTAssertEqual(try parse(#""\u00e9\u00E9 \u4e16""#).string, "\u{E9}\u{E9} \u{4E16}")
        XCTAssertEqual(try parse(#""\ud83d\ude00""#).string, "\u{1F600}")
        XCTAssertEqual(try parse(#""a\u0000b""#).string, "a\u{0}b")
        XCTAssertEqual(try parse("\"h\u{E9}llo \u{1F600}\"").string, "h\u{E9}llo \u{1F600}", "raw UTF-8 passes")
        assertRejects(#""\ud83d""#, containing: "surrogate")
        assertRejects(#""\ud83dx""#, containing: "surrogate")
        assertRejects(#""\ud83d\u0041""#, containing: "surrogate")
        assertRejects(#""\ude00""#, containing: "surrogate")
        assertRejects(#""\x""#, containing: "invalid escape")
        assertRejects(#""\u12g4""#, containing: "hex")
        assertRejects(#""\u12""#)
        assertRejects("\"tab\there\"", containing: "control character")
        assertRejects("\"unterminated", containing: "unterminated")
        assertRejects("\"esc\\", containing: "unterminated")
    }

    func testInvalidUTF8IsRejected() {
        assertRejects(bytes: [0x22, 0xFF, 0x22], containing: "UTF-8")
        assertRejects(bytes: [0x22, 0xC0, 0x80, 0x22], containing: "UTF-8")           // overlong NUL
        assertRejects(bytes: [0x22, 0xED, 0xA0, 0x80, 0x22], containing: "UTF-8")     // encoded surrogate
        assertRejects(bytes: [0x22, 0xE4, 0xB8, 0x22], containing: "UTF-8")           // truncated sequence
        assertRejects(bytes: [0x22, 0x5C, 0x6E, 0xFF, 0x22], containing: "UTF-8")     // after an escape
        assertRejects(bytes: [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], containing: "unexpected character")  // BOM
    }

    // MARK: Numbers and structure

    func testNumbersAndLeadingZeros() throws {
        for bad in ["01", "-01", "00", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "--1", "1.e3", "NaN", "Infinity"] {
            assertRejects(bad)
        }
        assertRejects("012", containing: "leading zero")
    }

    func testInt64Exactness() throws {
        XCTAssertEqual(try parse("9223372036854775807"), .int(Int64.max))
        XCTAssertEqual(try parse("-9223372036854775808"), .int(Int64.min))
        XCTAssertEqual(try parse("9007199254740993"), .int(9_007_199_254_740_993), "2^53 + 1 stays exact")
        XCTAssertEqual(try parse("9223372036854775808"), .double(9_223_372_036_854_775_808.0), "beyond Int64: a double")
        XCTAssertEqual(try parse("-0"), .int(0))
        XCTAssertEqual(try parse("1.0"), .double(1))
        XCTAssertEqual(try parse("1.5").int, nil)
        XCTAssertEqual(try parse("1e5").int, 100_000)
        XCTAssertEqual(try parse("\"5\"").int, nil)
    }

    func testTrailingDataIsRejected() {
        for bad in ["1 2", "{} x", "[]]", "{}{}", "null,", "\"a\" \"b\""] {
            assertRejects(bad, containing: "after the top-level value")
        }
        for bad in ["", "   ", "[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "{1:2}", "tru", "nul", "[", "{\"a\":"] {
            assertRejects(bad)
        }
    }

    // MARK: Serialization

    func testSerializedRoundTrips() throws {
        let text = #"{"b":[1,-2.5,"x\n\"q\"\\",true,null,{}],"a":{"z":1e-7,"y":12345678901234567,"e":""},"u":"\u0001\u00e9\ud83d\ude00"}"#
        let doc = try parse(text)
        for pretty in [false, true] {
            for sorted in [false, true] {
                let again = try parse(doc.serialized(pretty: pretty, sortedKeys: sorted))
                if sorted {  // same content, keys reordered at every level
                    XCTAssertEqual(again.object?.keys, ["a", "b", "u"])
                    XCTAssertEqual(again["a"]?.object?.keys, ["e", "y", "z"])
                    XCTAssertEqual(again.serialized(), doc.serialized(sortedKeys: true))
                } else {
                    XCTAssertEqual(again, doc, "pretty \(pretty)")
                }
            }
        }
        XCTAssertEqual(try parse(#"{"b":1,"a":[true,null]}"#).serialized(), #"{"b":1,"a":[true,null]}"#)
        XCTAssertEqual(try parse(#"{"b":1,"a":2}"#).serialized(sortedKeys: true), #"{"a":2,"b":1}"#)
        XCTAssertEqual(try parse(#"{"a":[1,{}]}"#).serialized(pretty: true), "{\n  \"a\": [\n    1,\n    {}\n  ]\n}")
        XCTAssertEqual(JSON.double(3).serialized(), "3.0")
        XCTAssertEqual(JSON.double(0.1).serialized(), "0.1")
        XCTAssertEqual(JSON.double(.nan).serialized(), "null")
        XCTAssertEqual(JSON.string("a\"b\\c\n\u{1}").serialized(), #""a\"b\\c\n\u0001""#)
        // Doubles survive exactly through text.
        for d in [0.1, 1e-300, 1.7976931348623157e308, 123456.789, -2.5e15, Double.leastNonzeroMagnitude] {
            XCTAssertEqual(try parse(JSON.double(d).serialized()).double, d)
        }
    }

    func testObjectEditingKeepsOrder() {
        var o = JSONObject([("a", 1), ("b", 2)])
        o["c"] = 3
        o["a"] = 10
        o["b"] = nil
        XCTAssertEqual(o.keys, ["a", "c"])
        XCTAssertEqual(o["a"], .int(10))
        XCTAssertEqual(JSON.object(o).serialized(), #"{"a":10,"c":3}"#)
    }
}

/// zlib-backed gzip (Sources/SlimIO/Gzip.swift).
final class GzipTests: XCTestCase {
    func sampleText(_ count: Int) -> [UInt8] {
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "\n"]
        var out = [UInt8]()
        var i = 0
        while out.count < count {
            out += Array(words[(i * 7 + i / 3) % words.count].utf8) + [0x20]
            i += 1
        }
        return Array(out.prefix(count))
    }

    func testRoundTrip() throws {
        for size in [0, 1, 100, 70_000, 300_001] {  // several 64 KiB output chunks
            let data = sampleText(size)
            let packed = try Gzip.compress(data)
            XCTAssertEqual(Array(packed.prefix(2)), [0x1F, 0x8B], "gzip magic")
            XCTAssertEqual(try packed.withUnsafeBytes { try Gzip.decompress($0) }, data, "size \(size)")
        }
        // Incompressible bytes too.
        var state: UInt32 = 12345
        let noise = (0..<50_000).map { _ -> UInt8 in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
        XCTAssertEqual(try Gzip.compress(noise, level: 9).withUnsafeBytes { try Gzip.decompress($0) }, noise)
    }

    func testConcatenatedMembersAndZeroPadding() throws {
        let a = sampleText(1000), b = Array("second member".utf8), c = sampleText(80_000)
        let joined = try Gzip.compress(a) + Gzip.compress(b) + Gzip.compress(c)
        XCTAssertEqual(try joined.withUnsafeBytes { try Gzip.decompress($0) }, a + b + c)
        let padded = try Gzip.compress(b) + [UInt8](repeating: 0, count: 512)
        XCTAssertEqual(try padded.withUnsafeBytes { try Gzip.decompress($0) }, b)
    }

    func testTruncatedAndCorruptStreamsThrow() throws {
        let packed = try Gzip.compress(sampleText(20_000))
        for keep in [packed.count - 1, packed.count - 8, packed.count / 2, 10, 3] {
            XCTAssertThrowsError(try Array(packed.prefix(keep)).withUnsafeBytes { try Gzip.decompress($0, path: "x.gz") }) {
                XCTAssertEqual(($0 as? FileError)?.path, "x.gz")
                XCTAssertTrue(($0 as? FileError)?.message.contains("truncated") == true, "keep \(keep): \($0)")
            }
        }
        // A truncated second member is an error too, not a silent short read.
        let two = try Gzip.compress(Array("one".utf8)) + Array(packed.prefix(packed.count - 4))
        XCTAssertThrowsError(try two.withUnsafeBytes { try Gzip.decompress($0) })

        var corrupt = packed
        corrupt[corrupt.count / 2] ^= 0xFF
        corrupt[corrupt.count / 2 + 1] ^= 0x5A
        XCTAssertThrowsError(try corrupt.withUnsafeBytes { try Gzip.decompress($0) })
        var badCRC = packed
        badCRC[badCRC.count - 6] ^= 0x01  // the CRC-32 in the trailer
        XCTAssertThrowsError(try badCRC.withUnsafeBytes { try Gzip.decompress($0) }) {
            XCTAssertTrue(($0 as? FileError)?.message.contains("corrupt") == true, "\($0)")
        }
        XCTAssertThrowsError(try [UInt8]().withUnsafeBytes { try Gzip.decompress($0) }) {
            XCTAssertEqual(($0 as? FileError)?.message, "empty gzip stream")
        }
        XCTAssertThrowsError(try Array("not gzip at all".utf8).withUnsafeBytes { try Gzip.decompress($0) })
    }

    func testDecompressFile() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let data = sampleText(5000)
        try Data(try Gzip.compress(data)).write(to: URL(fileURLWithPath: dir + "/t.gz"))
        XCTAssertEqual(try Gzip.decompressFile(dir + "/t.gz"), data)
        XCTAssertThrowsError(try Gzip.decompressFile(dir + "/missing.gz")) {
            XCTAssertEqual(($0 as? FileError)?.path, dir + "/missing.gz")
        }
    }
}

final class JSONExactKeyTests: XCTestCase {
    /// Canonically equivalent but byte-different keys are distinct (LLaMA-2 vocab has such pairs).
    func testCanonicallyEquivalentKeysStayDistinct() throws {
        let doc = "{\"\u{03AF}\": 1, \"\u{1F77}\": 2, \"e\u{0301}\": 3, \"\u{00E9}\": 4}"
        let json = try JSON.parse(string: doc)
        let o = try XCTUnwrap(json.object)
        XCTAssertEqual(o.count, 4)
        XCTAssertEqual(o["\u{03AF}"], .int(1))
        XCTAssertEqual(o["\u{1F77}"], .int(2))
        XCTAssertEqual(o["e\u{0301}"], .int(3))
        XCTAssertEqual(o["\u{00E9}"], .int(4))
        // True duplicates are still rejected.
        XCTAssertThrowsError(try JSON.parse(string: "{\"\u{03AF}\": 1, \"\u{03AF}\": 2}"))
    }
}
