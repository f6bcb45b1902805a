import Foundation
import SlimIO
import SlimTestSupport
import SlimTokenizer
import SlimData
import XCTest

// Shared helpers: golden files and mismatch reports that show where two id sequences first
// differ. Fixture paths (../shared, committed files, the WikiText-2 evaluation text) come
// from SlimTestSupport's `TestFixtures`.

enum Goldens {
    /// A committed tokenizer golden (gzip-compressed JSON) from
    /// scripts/reference/tokenizer_goldens.py.
    static func load(_ name: String) throws -> JSON {
        try JSON.parse(try Gzip.decompressFile(committed(name)))
    }

    /// A path under Tests/SlimTokenizerTests/Fixtures.
    static func committed(_ name: String) -> String {
        TestFixtures.committed("SlimTokenizerTests", name)
    }
}

extension JSON {
    var intArray: [Int] { (array ?? []).compactMap { $0.int } }
}

/// Fails with the first differing position, the ids around it and their pieces.
func assertSameIDs(_ actual: [Int], _ expected: [Int], tokenizer: Tokenizer, _ label: String,
                   file: StaticString = #filePath, line: UInt = #line) {
    if actual == expected { return }
    let n = min(actual.count, expected.count)
    var first = n
    for i in 0..<n where actual[i] != expected[i] { first = i; break }
    let lo = max(0, first - 8), hiA = min(actual.count, first + 8), hiE = min(expected.count, first + 8)
    func show(_ ids: ArraySlice<Int>) -> String {
        ids.map { "\($0)\(tokenizer.piece($0).map { "(\(JSON.string($0).serialized()))" } ?? "")" }.joined(separator: " ")
    }
    XCTFail("""
        \(label): ids differ at position \(first) (got \(actual.count) ids, expected \(expected.count))
          got:      …\(show(actual[lo..<hiA]))…
          expected: …\(show(expected[lo..<hiE]))…
          decoded context (expected): \(JSON.string(tokenizer.decode(Array(expected[lo..<hiE]))).serialized())
        """, file: file, line: line)
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
